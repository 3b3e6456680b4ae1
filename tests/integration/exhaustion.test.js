'use strict';
// Resource exhaustion against a real mqbroker (issue 7, part 3). The broker runs with
// RLIMIT_NOFILE 256 (prlimit on its pid right after it started) and must:
//   1. survive 2000 idle connections, far more than its descriptor limit: it does not die,
//      does not spin on EMFILE (CPU measured from /proc/<pid>/stat while they are held), and
//      serves a send + pull round trip again once they are closed;
//   2. keep its memory bounded with slow consumers (connections that pipeline pull requests
//      and never read their socket): VmRSS measured before, during and after stays under
//      RSS_BOUND_MB above the start, every slow connection is closed by the per-connection
//      output limit, and another client's send + pull round trip completes within
//      ROUND_TRIP_MS meanwhile;
//   3. stay up and answer others through floods: pipelined requests as fast as the socket
//      takes them, oversize frames, unknown request codes and garbage bytes.
// RSS and CPU figures are printed as "# exhaustion:" lines.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const fs = require('node:fs');
const { spawnSync } = require('node:child_process');
const { Cluster, waitFor, ms, sleep, runLimited } = require('../compat/harness');
const remoting = require('../compat/remoting');
const lib = require('./damage_lib');
const { RESP, REQ } = remoting;

const NOFILE = 256;
const IDLE_CONNS = 2000;
const SLOW_CONNS = 20;
const SLOW_PULLS = 700; // per slow connection, ~130 KB each: more than the 64 MB output limit
const RSS_BOUND_MB = 64; // VmRSS growth allowed: one connection's output limit, while 20 x 64 MB are queued
const ROUND_TRIP_MS = ms(3000);
const CLK_TCK = 100;

let cluster;
let pid;
const figures = [];

function note(s) {
  figures.push(s);
  process.stdout.write(`# exhaustion: ${s}\n`);
}

const rssMb = () => Math.round(lib.procStatus(pid).VmRSS / 1024);

/** A send + pull round trip on a new connection; returns its duration in ms. */
async function roundTrip(tag, timeoutMs = ROUND_TRIP_MS) {
  const t0 = Date.now();
  const conn = await remoting.RemotingConnection.connect(cluster.brokerAddr, timeoutMs);
  try {
    const body = Buffer.from(`${tag}-${t0}`);
    const resp = await remoting.sendMessage(conn, { topic: 'ExhRt', queueId: 0, body, keys: tag, timeoutMs });
    remoting.expectCode(resp, RESP.SUCCESS, `round trip send (${tag})`);
    const off = Number(resp.extFields.queueOffset);
    for (;;) {
      const r = await remoting.pullMessages(conn, { group: 'GID_exh_rt', topic: 'ExhRt', queueId: 0, offset: off,
        maxNums: 1, timeoutMs });
      if (r.code === RESP.SUCCESS) {
        assert.ok(r.msgs[0].body.equals(body), 'the round trip pulls back what it sent');
        break;
      }
      if (Date.now() - t0 > timeoutMs) throw new Error(`round trip (${tag}): pull answered ${r.code} until the deadline`);
      await sleep(10);
    }
  } finally {
    conn.close();
  }
  const dt = Date.now() - t0;
  assert.ok(dt <= timeoutMs, `round trip (${tag}) took ${dt} ms, over ${timeoutMs} ms`);
  return dt;
}

function brokerAlive() {
  cluster.broker.checkAlive('the test ran');
  assert.ok(fs.existsSync(`/proc/${pid}`), 'the broker process exists');
}

function logCount(re) {
  const text = fs.readFileSync(cluster.broker.logFile, 'utf8');
  return (text.match(re) || []).length;
}

before(async () => {
  cluster = new Cluster({ name: 'int-exhaust', brokerConf: {
    mappedFileSizeCommitLog: 32 * 1024 * 1024,
    mappedFileSizeConsumeQueue: 20000 * 20,
  } });
  await cluster.start();
  pid = cluster.broker.pid;
  const r = spawnSync('prlimit', [ '--pid', String(pid), `--nofile=${NOFILE}:${NOFILE}` ], { encoding: 'utf8' });
  assert.equal(r.status, 0, `prlimit: ${r.stderr}`);
  const lim = fs.readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find(l => l.startsWith('Max open files'));
  assert.match(lim, new RegExp(`\\s${NOFILE}\\s+${NOFILE}\\s`), `the broker's limit is ${NOFILE}: ${lim}`);
  await remoting.withConnection(cluster.brokerAddr, async conn => {
    await remoting.createTopic(conn, 'ExhRt', 1);
    await remoting.createTopic(conn, 'ExhSlow', 1);
  });
  note(`start: VmRSS ${rssMb()} MB, ${lib.procStatus(pid).fds} descriptors, RLIMIT_NOFILE ${NOFILE}`);
});

after(async () => {
  if (cluster) {
    const problems = await cluster.stop();
    if (problems.length) throw new Error(`server shutdown: ${problems.join('\n')}`);
  }
});

test('2000 idle connections over RLIMIT_NOFILE: no death, no EMFILE spin, serves again after', async () => {
  const fdsBefore = lib.procStatus(pid).fds;
  const emfileBefore = logCount(/accept on port \d+: too many open files/gi);
  const pre = await remoting.RemotingConnection.connect(cluster.brokerAddr); // opened before the flood
  // Its queue's files exist before the flood: at the limit the store cannot open new files
  // (it retries until it can: "dispatch stalled ... retrying").
  await roundTrip('before-idle');
  const sockets = [];
  let refused = 0;
  let closedByPeer = 0;
  try {
    await runLimited(IDLE_CONNS, 100, () => new Promise(resolve => {
      const s = net.connect({ host: '127.0.0.1', port: cluster.brokerPort });
      sockets.push(s);
      s.on('error', () => {});
      s.once('close', () => { closedByPeer++; });
      s.once('connect', resolve);
      s.once('error', () => { refused++; resolve(); });
    }));
    // The broker holds every descriptor it may: the limit is reached.
    await waitFor(() => lib.procStatus(pid).fds >= NOFILE - 8, { timeoutMs: ms(10000),
      what: () => `the broker to reach its descriptor limit (has ${lib.procStatus(pid).fds})` });
    const cpu0 = lib.procCpuTicks(pid);
    const t0 = Date.now();
    await sleep(2000); // a measurement window, not a wait for a condition
    const cpu = (lib.procCpuTicks(pid) - cpu0) / CLK_TCK / ((Date.now() - t0) / 1000);
    const st = lib.procStatus(pid);
    note(`2000 idle connections: broker holds ${st.fds} descriptors, CPU ${(cpu * 100).toFixed(1)}% of a core ` +
      `over 2 s at the limit, VmRSS ${Math.round(st.VmRSS / 1024)} MB; client side: ${refused} refused, ` +
      `${closedByPeer} closed by the broker`);
    brokerAlive();
    // A connection opened before keeps being served at the limit.
    const resp = await remoting.sendMessage(pre, { topic: 'ExhRt', queueId: 0, body: Buffer.from('at-limit'), keys: 'at-limit' });
    remoting.expectCode(resp, RESP.SUCCESS, 'send on a connection opened before, at the descriptor limit');
    const got = await waitFor(async () => {
      const r = await remoting.pullMessages(pre, { group: 'GID_exh_rt', topic: 'ExhRt', queueId: 0,
        offset: Number(resp.extFields.queueOffset), maxNums: 1 });
      return r.code === RESP.SUCCESS && r.msgs[0];
    }, { timeoutMs: ROUND_TRIP_MS, what: 'the pull at the descriptor limit' });
    assert.equal(got.body.toString(), 'at-limit');
    assert.ok(cpu < 0.3, `the broker does not spin at the descriptor limit (CPU ${(cpu * 100).toFixed(1)}% of a core)`);
    const emfile = logCount(/accept on port \d+: too many open files/gi) - emfileBefore;
    assert.ok(emfile >= 1, 'the broker logged the EMFILE accept failure (the limit was really hit)');
    assert.ok(emfile <= 3, `the EMFILE warning is rate-limited (${emfile} lines in 2 s)`);
  } finally {
    for (const s of sockets) s.destroy();
    pre.close();
  }
  await waitFor(() => lib.procStatus(pid).fds <= fdsBefore + 10, { timeoutMs: ms(10000),
    what: () => `the broker to close the released connections (${lib.procStatus(pid).fds} descriptors, ${fdsBefore} before)` });
  const dt = await waitFor(async () => roundTrip('after-idle'), { timeoutMs: ms(10000), what: 'a round trip after the release' });
  note(`after closing them: ${lib.procStatus(pid).fds} descriptors, round trip ${dt} ms`);
  brokerAlive();
});

test('slow consumers that never read: bounded memory, others still served', async () => {
  // ~6 MB in one queue, so each pull answers ~32 x 4 KB.
  const body = Buffer.alloc(4000, 'S');
  await remoting.withConnection(cluster.brokerAddr, async conn => {
    await runLimited(1500, 32, async i => {
      const resp = await remoting.sendMessage(conn, { topic: 'ExhSlow', queueId: 0, body, keys: `s${i}` });
      remoting.expectCode(resp, RESP.SUCCESS, 'fill');
    });
    await waitFor(async () => (await remoting.getMaxOffset(conn, 'ExhSlow', 0)) >= 1500, { what: 'the fill dispatched' });
    // Read it all once, so the pages are resident before the baseline RSS is taken.
    for (let off = 0; off < 1500; off += 32) await remoting.pullMessages(conn, { group: 'GID_exh_rt', topic: 'ExhSlow', queueId: 0, offset: off });
  });
  const overflowBefore = logCount(/bytes of output queued, over the limit/g);
  const rssBefore = rssMb();
  const slow = [];
  let rssMax = rssBefore;
  const rtts = [];
  try {
    for (let c = 0; c < SLOW_CONNS; c++) {
      const s = net.connect({ host: '127.0.0.1', port: cluster.brokerPort });
      s.on('error', () => {});
      s.once('connect', () => {
        s.pause(); // never read: the broker's output to it piles up
        const frames = [];
        for (let i = 0; i < SLOW_PULLS; i++) {
          frames.push(remoting.encodeFrame({ code: REQ.PULL_MESSAGE, opaque: i + 1, extFields: {
            consumerGroup: 'GID_exh_slow', topic: 'ExhSlow', queueId: 0, queueOffset: (i * 32) % 1440, maxMsgNums: 32,
            sysFlag: 4, commitOffset: 0, suspendTimeoutMillis: 0, subscription: '*', subVersion: 0 } }));
        }
        s.write(Buffer.concat(frames));
      });
      slow.push(s);
    }
    // While they pile up: sample VmRSS and run round trips by another client.
    // A paused socket does not see the broker's FIN: the broker's log tells when it closed them.
    const overflowNow = () => logCount(/bytes of output queued, over the limit/g) - overflowBefore;
    const deadline = Date.now() + ms(20000);
    while (Date.now() < deadline && (overflowNow() < SLOW_CONNS || rtts.length < 3)) {
      rtts.push(await roundTrip(`during-slow-${rtts.length}`));
      rssMax = Math.max(rssMax, rssMb());
      await sleep(100);
    }
    rssMax = Math.max(rssMax, rssMb());
    const overflow = overflowNow();
    note(`${SLOW_CONNS} slow consumers x ${SLOW_PULLS} pulls (~${Math.round(SLOW_PULLS * 128 / 1024)} MB asked each): ` +
      `VmRSS before ${rssBefore} MB, max during ${rssMax} MB; ${overflow}/${SLOW_CONNS} closed by the 64 MB output limit, ` +
      `${rtts.length} round trips by another client, max ${Math.max(...rtts)} ms`);
    brokerAlive();
    assert.ok(rssMax - rssBefore <= RSS_BOUND_MB,
      `VmRSS grows by at most ${RSS_BOUND_MB} MB (${rssBefore} -> ${rssMax} MB)`);
    assert.equal(overflow, SLOW_CONNS, 'every slow connection is closed by the broker once over its output limit');
  } finally {
    for (const s of slow) s.destroy();
  }
  await sleep(500); // let the broker release what it held (a measurement, asserted below)
  const rssAfter = rssMb();
  note(`after the slow consumers: VmRSS ${rssAfter} MB`);
  assert.ok(rssAfter - rssBefore <= RSS_BOUND_MB, `VmRSS after ${rssAfter} MB`);
  await roundTrip('after-slow');
});

test('floods: pipelined requests, oversize frames, unknown codes, garbage: broker stays up', async () => {
  const rssBefore = rssMb();
  let stop = false;
  const rtts = [];
  // Another client keeps doing round trips through the whole flood.
  const observer = (async () => {
    while (!stop) {
      rtts.push(await roundTrip(`during-flood-${rtts.length}`));
      await sleep(50);
    }
  })();
  try {
    // a) 20000 pipelined requests on one connection, written as fast as the socket takes them.
    const conn = await remoting.RemotingConnection.connect(cluster.brokerAddr);
    const t0 = Date.now();
    const answers = await Promise.all(Array.from({ length: 20000 }, () =>
      conn.invoke(REQ.GET_MAX_OFFSET, { topic: 'ExhRt', queueId: 0 }, { timeoutMs: ms(30000) })));
    const pipelineMs = Date.now() - t0;
    assert.ok(answers.every(a => a.code === RESP.SUCCESS), 'every pipelined request is answered with SUCCESS');
    // c) unknown request codes, pipelined.
    const unknown = await Promise.all(Array.from({ length: 5000 }, (_, i) =>
      conn.invoke(9000 + (i % 900), {}, { timeoutMs: ms(30000) })));
    assert.ok(unknown.every(a => a.code === RESP.REQUEST_CODE_NOT_SUPPORTED), 'unknown codes get code 3');
    await conn.close();
    // b) oversize frames and d) garbage bytes, 100 connections each: every one is closed.
    const rand = lib.rng(12345);
    const bad = [];
    for (let i = 0; i < 200; i++) {
      let payload;
      if (i % 2 === 0) {
        payload = Buffer.alloc(8);
        payload.writeUInt32BE(0x7ffffff0 - i, 0); // a frame length far over the 16 MB limit
        payload.writeUInt32BE(100, 4);
      } else {
        payload = Buffer.alloc(65536);
        for (let k = 0; k < payload.length; k++) payload[k] = rand.int(256);
      }
      bad.push(payload);
    }
    let closedCount = 0;
    await runLimited(bad.length, 50, i => new Promise(resolve => {
      const s = net.connect({ host: '127.0.0.1', port: cluster.brokerPort });
      const timer = setTimeout(() => { s.destroy(); resolve(); }, ms(10000));
      s.on('error', () => {});
      s.on('data', () => {});
      s.once('close', () => { clearTimeout(timer); closedCount++; resolve(); });
      s.once('connect', () => s.write(bad[i]));
    }));
    assert.equal(closedCount, bad.length, 'the broker closes every connection with an oversize frame or garbage');
    const rssAfter = rssMb();
    note(`floods: 20000 pipelined GET_MAX_OFFSET answered in ${pipelineMs} ms, 5000 unknown codes answered 3, ` +
      `100 oversize + 100 garbage connections closed; VmRSS ${rssBefore} -> ${rssAfter} MB`);
    assert.ok(rssAfter - rssBefore <= RSS_BOUND_MB, `VmRSS after the floods ${rssAfter} MB (before ${rssBefore} MB)`);
  } finally {
    stop = true;
    await observer;
  }
  note(`round trips during the floods: ${rtts.length}, max ${Math.max(...rtts)} ms`);
  brokerAlive();
  await roundTrip('after-floods');
});
