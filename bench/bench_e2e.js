'use strict';
// End-to-end benchmark: a small load generator speaking the RocketMQ remoting protocol (the
// tests' Java-style client, tests/compat/remoting.js) against `ferrymq` (name server + broker in
// one process) over loopback. For ASYNC_FLUSH and SYNC_FLUSH, 128 B and 1 KiB bodies, 1 and 32
// concurrent senders it measures SEND_MESSAGE_V2 sends/s with p50/p99 latency, then PULL_MESSAGE
// throughput (messages/s) reading everything back.
//
// Baseline, measured right before each case with the same client, size and concurrency: a
// trivial loopback server (bench_e2e_echo.c, a single-threaded epoll loop; this file's Node
// echo server when FERRY_BENCH_ECHO_BIN is not set) that answers every frame at once - a send
// with a response frame of the request's size, a pull with a body of maxMsgNums x record size
// bytes. The ratio value/baseline says how much of the plain request/response rate over this
// client and loopback the broker delivers (for latencies: how many times the baseline latency).
//
// Output: one line per result,
//   RESULT bench=<name> value=<n> unit=<u> baseline=<n> ratio=<r>
// Each send case (baseline, then broker) runs FERRY_BENCH_RUNS times (default 3) and the medians
// are printed: the machine is small and shared. Run through bench/bench_e2e.sh. Environment:
// FERRY_FERRYMQ_BIN (required), FERRY_BENCH_ECHO_BIN (the C baseline server), FERRY_BENCH_SECS
// (seconds per run, default 3), FERRY_BENCH_RUNS, FERRY_BENCH_DIR (where the store goes,
// default os.tmpdir()).

const fs = require('node:fs');
const os = require('node:os');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');
const harness = require('../tests/compat/harness');
const remoting = require('../tests/compat/remoting');

const { RESP } = remoting;
const TOPIC = 'BenchE2eTopic';
const QUEUES = 8;
const CONNS_FOR_CONCURRENCY = 4; // 32 senders share 4 connections, like a few client processes

// ---------------------------------------------------------------------------------------------
// Baseline server: run as `node bench_e2e.js --echo-server <port>`.

function echoServer(port) {
  const srv = net.createServer(sock => {
    sock.setNoDelay(true);
    let buf = Buffer.alloc(0);
    sock.on('data', d => {
      buf = buf.length ? Buffer.concat([ buf, d ]) : d;
      while (buf.length >= 4) {
        const total = buf.readInt32BE(0);
        if (buf.length < 4 + total) break;
        const frame = buf.subarray(4, 4 + total);
        buf = buf.subarray(4 + total);
        const cmd = remoting.decodeFrame(frame);
        let body = cmd.body;
        if (cmd.code === remoting.REQ.PULL_MESSAGE) body = Buffer.alloc(Number(cmd.extFields.bodyBytes || 0));
        sock.write(remoting.encodeFrame({ code: 0, flag: 1, opaque: cmd.opaque, extFields: cmd.extFields, body }));
      }
    });
    sock.on('error', () => {});
  });
  srv.listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
  process.on('SIGTERM', () => process.exit(0));
}

// ---------------------------------------------------------------------------------------------
// Measurement

function percentile(sorted, p) {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

/**
 * Runs `concurrency` senders over min(concurrency, 4) connections for `secs` seconds; each
 * sender has one request in flight. Returns { rate, p50, p99, count, errors }.
 */
async function sendLoad(addr, { size, concurrency, secs, acked, baseline = false }) {
  const nconn = Math.min(concurrency, CONNS_FOR_CONCURRENCY);
  const conns = [];
  for (let i = 0; i < nconn; i++) conns.push(await remoting.RemotingConnection.connect(addr));
  const body = Buffer.alloc(size, 0x6d);
  const lat = [];
  let errors = 0;
  let firstError = null;
  let seq = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(secs * 1e9));
  const senders = [];
  for (let s = 0; s < concurrency; s++) {
    const conn = conns[s % nconn];
    senders.push((async () => {
      while (process.hrtime.bigint() < end) {
        const i = seq++;
        const t0 = process.hrtime.bigint();
        const resp = await remoting.sendMessage(conn, { topic: TOPIC, queueId: i % QUEUES, body, tags: 'TagB',
          keys: `b${i}`, timeoutMs: 30000 });
        const t1 = process.hrtime.bigint();
        if (resp.code === RESP.SUCCESS || baseline) { // the echo server answers with the request's code
          lat.push(Number(t1 - t0) / 1e6);
          if (acked) acked[i % QUEUES]++;
        } else {
          errors++;
          if (!firstError) firstError = `code ${resp.code} ${resp.remark}`;
        }
      }
    })());
  }
  await Promise.all(senders);
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  for (const c of conns) await c.close();
  lat.sort((a, b) => a - b);
  return { rate: lat.length / elapsed, p50: percentile(lat, 0.5), p99: percentile(lat, 0.99), count: lat.length,
    errors, firstError };
}

/** The baseline pull: the echo server answers each request with 32 x size bytes at once. */
async function pullBaseline(addr, size, secs) {
  const conn = await remoting.RemotingConnection.connect(addr);
  let msgs = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(secs * 1e9));
  await Promise.all(Array.from({ length: QUEUES }, async () => {
    while (process.hrtime.bigint() < end) {
      const resp = await conn.invoke(remoting.REQ.PULL_MESSAGE, { bodyBytes: 32 * (size + 91 + TOPIC.length + 20) });
      if (resp.body.length < 32 * size) throw new Error(`baseline pull: ${resp.body.length}-byte answer`);
      msgs += 32;
    }
  }));
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  await conn.close();
  return msgs / elapsed;
}

// ---------------------------------------------------------------------------------------------
// Servers

async function startEcho(dir) {
  const port = await harness.freePort();
  // The C echo server (bench_e2e_echo.c, built by bench_e2e.sh) when given, else this file.
  const argv = process.env.FERRY_BENCH_ECHO_BIN ? [ process.env.FERRY_BENCH_ECHO_BIN, String(port) ] :
    [ process.execPath, __filename, '--echo-server', String(port) ];
  const proc = new harness.ServerProcess('echo', argv,
    { cwd: dir, env: process.env, logFile: path.join(dir, 'echo.log') }).start();
  await harness.waitFor(() => new Promise(resolve => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  }), { timeoutMs: 10000, what: 'the baseline echo server' });
  return { proc, addr: `127.0.0.1:${port}` };
}

async function startFerrymq(bin, dir, flushDiskType) {
  const nsPort = await harness.freePort();
  const port = await harness.freeBrokerPort();
  const store = path.join(dir, `store-${flushDiskType}`);
  const conf = path.join(dir, `standalone-${flushDiskType}.conf`);
  fs.writeFileSync(conf, [
    `namesrv.listenAddress=127.0.0.1`, `namesrv.listenPort=${nsPort}`,
    `namesrv.kvConfigPath=${path.join(dir, 'kvConfig.json')}`,
    `listenPort=${port}`, 'bindAddress=127.0.0.1', 'brokerIP1=127.0.0.1', `namesrvAddr=127.0.0.1:${nsPort}`,
    'brokerName=bench-a', `storePathRootDir=${store}`, `flushDiskType=${flushDiskType}`,
    `mappedFileSizeCommitLog=${256 * 1024 * 1024}`, 'maxHashSlotNum=500000', 'maxIndexNum=2000000', '',
  ].join('\n'));
  const proc = new harness.ServerProcess('ferrymq', [ bin, '-c', conf ],
    { cwd: dir, env: process.env, logFile: path.join(dir, `ferrymq-${flushDiskType}.log`) }).start();
  const addr = `127.0.0.1:${port}`;
  await harness.waitFor(async () => {
    proc.checkAlive('starting');
    return remoting.withConnection(`127.0.0.1:${nsPort}`, async c => {
      const r = await remoting.getRoute(c, 'TBW102');
      return !!(r.route && r.route.brokerDatas.some(bd => Object.values(bd.brokerAddrs).includes(addr)));
    });
  }, { timeoutMs: 20000, what: `ferrymq (${flushDiskType}) to register its broker` });
  await remoting.withConnection(addr, c => remoting.createTopic(c, TOPIC, QUEUES));
  return { proc, addr };
}

// ---------------------------------------------------------------------------------------------

function fmt(n) {
  if (n >= 100) return n.toFixed(0);
  if (n >= 1) return n.toFixed(2);
  return n.toFixed(4);
}

function median(list, key) {
  const v = list.map(x => x[key]).sort((a, b) => a - b);
  return v[Math.floor(v.length / 2)];
}

function result(name, value, unit, baseline) {
  const ratio = baseline > 0 ? value / baseline : 0;
  process.stdout.write(`RESULT bench=${name} value=${fmt(value)} unit=${unit} baseline=${fmt(baseline)} ratio=${ratio.toFixed(3)}\n`);
}

async function main() {
  const bin = process.env.FERRY_FERRYMQ_BIN;
  if (!bin || !fs.existsSync(bin)) throw new Error(`FERRY_FERRYMQ_BIN=${bin}: ferrymq binary not found`);
  const secs = Number(process.env.FERRY_BENCH_SECS || 3);
  const runs = Math.max(1, Number(process.env.FERRY_BENCH_RUNS || 3));
  const base = process.env.FERRY_BENCH_DIR || os.tmpdir();
  fs.mkdirSync(base, { recursive: true });
  const dir = fs.mkdtempSync(path.join(base, 'bench_e2e.'));
  const procs = [];
  try {
    const echo = await startEcho(dir);
    procs.push(echo.proc);
    const sizes = [ 128, 1024 ];
    const concs = [ 1, 32 ];
    for (const c of concs) await sendLoad(echo.addr, { size: 128, concurrency: c, secs: Math.min(1, secs), baseline: true }); // warm-up

    // Each case runs right after its baseline, so both see the same machine.
    for (const flush of [ 'ASYNC_FLUSH', 'SYNC_FLUSH' ]) {
      const tag = flush === 'ASYNC_FLUSH' ? 'async' : 'sync';
      const srv = await startFerrymq(bin, dir, flush);
      procs.push(srv.proc);
      const acked = new Array(QUEUES).fill(0);
      let pulled = new Array(QUEUES).fill(0);
      for (const size of sizes) {
        for (const c of concs) {
          const bs = [];
          const rs = [];
          for (let run = 0; run < runs; run++) {
            bs.push(await sendLoad(echo.addr, { size, concurrency: c, secs, baseline: true }));
            const r = await sendLoad(srv.addr, { size, concurrency: c, secs, acked });
            if (r.errors) throw new Error(`${flush} ${size} B x${c}: ${r.errors} failed sends, first: ${r.firstError}`);
            rs.push(r);
          }
          const name = `e2e_send_${tag}_${size}B_c${c}`;
          result(name, median(rs, 'rate'), 'msg/s', median(bs, 'rate'));
          result(`${name}_p50`, median(rs, 'p50'), 'ms', median(bs, 'p50'));
          result(`${name}_p99`, median(rs, 'p99'), 'ms', median(bs, 'p99'));
        }
        // Pull back what this size added: everything after what the previous pull read.
        const counts = await remoting.withConnection(srv.addr, async conn => {
          const out = [];
          for (let q = 0; q < QUEUES; q++) out.push(await remoting.getMaxOffset(conn, TOPIC, q));
          return out;
        });
        const expected = acked.reduce((a, b) => a + b, 0);
        const stored = counts.reduce((a, b) => a + b, 0);
        if (stored !== expected) throw new Error(`${flush}: ${expected} acknowledged sends but ${stored} messages in the queues`);
        const pb = await pullBaseline(echo.addr, size, secs);
        const rate = await pullSince(srv.addr, counts, size, pulled);
        pulled = counts;
        result(`e2e_pull_${tag}_${size}B`, rate, 'msg/s', pb);
      }
      await srv.proc.stop();
    }
  } finally {
    for (const p of procs) await p.stop({ signal: 'SIGKILL', graceMs: 1000 });
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Walks a PULL_MESSAGE body by TOTALSIZE and checks each record's BODYLENGTH (IPv4 hosts: at
 * byte 84); no full decode, so the client does about as little per byte as for the baseline.
 */
function countRecords(body, size) {
  let n = 0;
  for (let pos = 0; pos < body.length; n++) {
    const total = body.readInt32BE(pos);
    if (total < 91 || pos + total > body.length) throw new Error(`bad record size ${total} at ${pos}`);
    const bodyLen = body.readInt32BE(pos + 84);
    if (bodyLen !== size) throw new Error(`pulled a ${bodyLen}-byte body, expected ${size}`);
    pos += total;
  }
  return n;
}

/** Pulls [from[q], counts[q]) of every queue, one puller per queue on one connection; returns messages/s. */
async function pullSince(addr, counts, size, from) {
  const conn = await remoting.RemotingConnection.connect(addr);
  const start = process.hrtime.bigint();
  let total = 0;
  await Promise.all(counts.map(async (n, q) => {
    let off = from[q];
    while (off < n) {
      const resp = await conn.invoke(remoting.REQ.PULL_MESSAGE, {
        consumerGroup: 'GID_bench', topic: TOPIC, queueId: q, queueOffset: off, maxMsgNums: 32,
        sysFlag: 4, commitOffset: 0, suspendTimeoutMillis: 0, subscription: '*', subVersion: 0,
      }, { timeoutMs: 30000 });
      if (resp.code !== RESP.SUCCESS) throw new Error(`PULL_MESSAGE ${q}@${off}: code ${resp.code} ${resp.remark}`);
      total += countRecords(resp.body, size);
      off = Number(resp.extFields.nextBeginOffset);
    }
  }));
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  await conn.close();
  return total / elapsed;
}

if (process.argv[2] === '--echo-server') {
  echoServer(Number(process.argv[3]));
} else {
  main().catch(e => {
    process.stderr.write(`bench_e2e: ${e.stack || e}\n`);
    process.exit(1);
  });
}
