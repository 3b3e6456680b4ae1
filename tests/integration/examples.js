'use strict';
// Drives the libferry example programs (examples/*.c) as child processes: example_send_many
// (SENT lines), example_consumer and example_pull_consumer (MSG lines). Their binaries are in
// $FERRY_EXAMPLES_DIR (set by tests/integration/CMakeLists.txt). Every process is tracked by
// the harness (SIGKILL on exit, PR_SET_PDEATHSIG) and by stopAll(), which the tests run before
// the servers stop. Node standard library only.

const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { ms, waitFor, trackChild, pdeathsigPrefix, tail } = require('../compat/harness');

/** Path of an example program; throws a clear error when it is not built. */
function exampleBin(name) {
  const dir = process.env.FERRY_EXAMPLES_DIR;
  if (!dir) {
    throw new Error('FERRY_EXAMPLES_DIR is not set: run through CTest, or point it at the directory ' +
      `that holds ${name} (e.g. FERRY_EXAMPLES_DIR=build/src/client)`);
  }
  const file = path.join(dir, name);
  try {
    fs.accessSync(file, fs.constants.X_OK);
  } catch (_) {
    throw new Error(`${file} is missing or not executable (build the ${name} target)`);
  }
  return file;
}

function hasExample(name) {
  try {
    exampleBin(name);
    return true;
  } catch (_) {
    return false;
  }
}

/**
 * "SENT <msg_id> <broker> <queue_id> <queue_offset> [@<start>,<ack>[,<deliver_ms>]] <body>"
 * (the time field with --print-time: sendStartMs, ackMs, deliverMs).
 */
function parseSent(line) {
  const m = /^SENT (\S+) (\S+) (-?\d+) (-?\d+) (?:@(\d+),(\d+)(?:,(\d+))? )?(.*)$/.exec(line);
  if (!m) return null;
  const r = { msgId: m[1], broker: m[2], queueId: Number(m[3]), queueOffset: Number(m[4]), body: m[8] };
  if (m[5] !== undefined) {
    r.sendStartMs = Number(m[5]);
    r.ackMs = Number(m[6]);
    if (m[7] !== undefined) r.deliverMs = Number(m[7]);
  }
  return r;
}

/**
 * "MSG|LATER <broker> <queue_id> <queue_offset> <msg_id> <reconsume_times> [@<now>,<born>,<store>]
 * <tags> <keys> <body>" (the time field with --print-time: atMs, bornMs, storeMs).
 */
function parseMsg(line) {
  const m = /^(MSG|LATER) (\S+) (-?\d+) (-?\d+) (\S+) (-?\d+) (?:@(\d+),(-?\d+),(-?\d+) )?(\S+) (\S+) (.*)$/.exec(line);
  if (!m) return null;
  const r = {
    kind: m[1], broker: m[2], queueId: Number(m[3]), queueOffset: Number(m[4]), msgId: m[5],
    reconsumeTimes: Number(m[6]), tags: m[10] === '-' ? null : m[10],
    keys: m[11] === '-' ? null : m[11].split(',').join(' '), body: m[12],
  };
  if (m[7] !== undefined) {
    r.atMs = Number(m[7]);
    r.bornMs = Number(m[8]);
    r.storeMs = Number(m[9]);
  }
  return r;
}

const running = new Set();

/**
 * One example program. stdout is split into lines (`lines`, and `parsed` for the lines `parse`
 * understands); stderr goes to <logDir>/<label>.stderr and is kept in memory for diagnostics.
 */
class ExampleProcess {
  constructor(label, bin, args, { logDir, parse, env } = {}) {
    this.label = label;
    this.args = args;
    this.lines = [];
    this.parsed = [];
    this.stderr = '';
    this.exit = null;
    this.stopRequested = false;
    this.logFile = logDir ? path.join(logDir, `${label}.stderr`) : null;
    const full = pdeathsigPrefix().concat([ bin ], args);
    this.child = trackChild(spawn(full[0], full.slice(1), {
      stdio: [ 'ignore', 'pipe', 'pipe' ],
      env: Object.assign({}, process.env, env || {}),
    }));
    running.add(this);
    let partial = '';
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', chunk => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop();
      for (const line of parts) {
        this.lines.push(line);
        const p = parse ? parse(line) : null;
        if (p) this.parsed.push(p);
      }
    });
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', chunk => {
      this.stderr += chunk;
      if (this.logFile) {
        try { fs.appendFileSync(this.logFile, chunk); } catch (_) { /* dir may be gone */ }
      }
    });
    const stdoutDone = new Promise(resolve => this.child.stdout.once('close', resolve));
    this.exited = new Promise(resolve => {
      this.child.once('close', (code, signal) => {
        running.delete(this);
        this.exit = { code, signal };
        resolve(this.exit);
      });
      this.child.once('error', err => {
        running.delete(this);
        this.exit = { code: null, signal: null, error: err };
        resolve(this.exit);
      });
    }).then(async e => { await stdoutDone; return e; });
  }

  get pid() {
    return this.child.pid;
  }

  get running() {
    return this.exit === null;
  }

  stderrTail(n = 30) {
    return this.stderr.split('\n').slice(-n).join('\n');
  }

  /** Throws (with the stderr tail) if the process exited without being asked to. */
  checkAlive() {
    if (this.exit && !this.stopRequested) {
      throw new Error(`${this.label} exited unexpectedly (code=${this.exit.code} signal=${this.exit.signal}); ` +
        `stderr tail:\n${this.stderrTail()}`);
    }
  }

  /** Waits until stderr contains `text` (e.g. STARTED). */
  async waitStderr(text, timeoutMs = ms(20000)) {
    await waitFor(() => {
      if (this.stderr.includes(text)) return true;
      this.checkAlive();
      if (this.exit) throw new Error(`${this.label} exited`);
      return false;
    }, { timeoutMs, what: `${this.label} to print ${JSON.stringify(text)} on stderr (stderr so far: ` +
      `${JSON.stringify(this.stderrTail(5))})` });
  }

  /** Signal, wait graceMs for the exit, then SIGKILL. Returns { code, signal, forced }. */
  async stop({ signal = 'SIGTERM', graceMs = ms(20000) } = {}) {
    this.stopRequested = true;
    if (this.exit) return Object.assign({ forced: false }, this.exit);
    try { this.child.kill(signal); } catch (_) { /* gone */ }
    let timer;
    const t = new Promise(resolve => { timer = setTimeout(() => resolve(null), graceMs); });
    let r = await Promise.race([ this.exited, t ]);
    clearTimeout(timer);
    if (r) return Object.assign({ forced: false }, r);
    try { this.child.kill('SIGKILL'); } catch (_) { /* gone */ }
    r = await this.exited;
    return Object.assign({ forced: true }, r);
  }

  kill9() {
    return this.stop({ signal: 'SIGKILL' });
  }
}

/** Stops every example process still running (SIGTERM, then SIGKILL); for after hooks. */
async function stopAll() {
  await Promise.all([ ...running ].map(p => p.stop({ graceMs: ms(10000) })));
}

/**
 * Starts example_send_many. opts: count, start, tag, bodyPrefix, keyPrefix, orderKeys (array),
 * intervalMs, timeoutMs, group, delayLevel, deliverAtMs, deliverAfterMs, props ({name: value}),
 * printTime. `parsed` collects the SENT lines.
 */
function sendMany(cluster, topic, opts = {}, label = 'send_many') {
  const args = [ '-n', cluster.nsAddr, '-t', topic, '-c', String(opts.count || 10) ];
  if (opts.start !== undefined) args.push('--start', String(opts.start));
  if (opts.group) args.push('-g', opts.group);
  if (opts.tag) args.push('--tag', opts.tag);
  if (opts.bodyPrefix) args.push('--body-prefix', opts.bodyPrefix);
  if (opts.keyPrefix) args.push('--key-prefix', opts.keyPrefix);
  if (opts.orderKeys) args.push('--order-key', opts.orderKeys.join(','));
  if (opts.intervalMs) args.push('--interval-ms', String(opts.intervalMs));
  if (opts.timeoutMs) args.push('--timeout-ms', String(opts.timeoutMs));
  if (opts.delayLevel) args.push('--delay-level', String(opts.delayLevel));
  if (opts.deliverAtMs) args.push('--deliver-at-ms', String(opts.deliverAtMs));
  if (opts.deliverAfterMs !== undefined) args.push('--deliver-after-ms', String(opts.deliverAfterMs));
  for (const [ k, v ] of Object.entries(opts.props || {})) args.push('--prop', `${k}=${v}`);
  if (opts.printTime) args.push('--print-time');
  return new ExampleProcess(label, exampleBin('example_send_many'), args,
    { logDir: cluster.dir, parse: parseSent });
}

/** FAILED/UNKNOWN lines of a send_many's stderr. */
function sendFailures(p) {
  return p.stderr.split('\n').filter(l => /^(FAILED|UNKNOWN) /.test(l));
}

/** Runs example_send_many to its end; throws unless it exits 0 with `count` SENT lines. */
async function sendAllOk(cluster, topic, opts, label) {
  const p = sendMany(cluster, topic, opts, label);
  const timeoutMs = ms(30000) + (opts.count || 10) * ((opts.intervalMs || 0) + 20);
  await waitFor(() => p.exit, { timeoutMs, intervalMs: 100,
    what: () => `${label || 'send_many'} to finish (${p.parsed.length} SENT so far)` });
  if (p.exit.code !== 0 || p.parsed.length !== (opts.count || 10)) {
    throw new Error(`${label || 'send_many'} exited with code ${p.exit.code} signal ${p.exit.signal} after ` +
      `${p.parsed.length} SENT lines of ${opts.count}; stderr:\n${p.stderrTail(20)}`);
  }
  return p.parsed;
}

/**
 * Starts example_consumer. opts: group, topic, expr, broadcast, orderly, fromFirst, failEvery,
 * sleepMs, offsetDir, instance, threads, batch, rebalanceMs, persistMs, pullBatch, pullThreshold,
 * failTimes, alwaysFail, failTag, maxReconsume, printTime. `parsed` collects the MSG and LATER
 * lines.
 */
function startConsumer(cluster, label, opts) {
  const args = [ '-n', cluster.nsAddr, '-g', opts.group, '-t', opts.topic ];
  if (opts.expr) args.push('-e', opts.expr);
  if (opts.broadcast) args.push('--broadcast');
  if (opts.orderly) args.push('--orderly');
  if (opts.fromFirst) args.push('--from-first');
  if (opts.alwaysFail) args.push('--always-fail');
  if (opts.printTime) args.push('--print-time');
  for (const [ k, flag ] of [ [ 'failTimes', '--fail-times' ], [ 'failTag', '--fail-tag' ],
    [ 'maxReconsume', '--max-reconsume' ], [ 'failEvery', '--fail-every' ], [ 'sleepMs', '--sleep-ms' ],
    [ 'offsetDir', '--offset-dir' ], [ 'instance', '--instance' ], [ 'threads', '--threads' ],
    [ 'batch', '--batch' ], [ 'rebalanceMs', '--rebalance-ms' ], [ 'persistMs', '--persist-ms' ],
    [ 'pullBatch', '--pull-batch' ], [ 'pullThreshold', '--pull-threshold' ] ]) {
    if (opts[k] !== undefined && opts[k] !== null) args.push(flag, String(opts[k]));
  }
  return new ExampleProcess(label, exampleBin('example_consumer'), args,
    { logDir: cluster.dir, parse: parseMsg });
}

/** Starts example_pull_consumer. opts: group, topic, fromFirst, idleExitMs, max. */
function startPullConsumer(cluster, label, opts) {
  const args = [ '-n', cluster.nsAddr, '-g', opts.group, '-t', opts.topic ];
  if (opts.fromFirst) args.push('--from-first');
  if (opts.idleExitMs) args.push('--idle-exit-ms', String(opts.idleExitMs));
  if (opts.max) args.push('--max', String(opts.max));
  return new ExampleProcess(label, exampleBin('example_pull_consumer'), args,
    { logDir: cluster.dir, parse: parseMsg });
}

/** Client ids the broker at `addr` lists for `group` (GET_CONSUMER_LIST_BY_GROUP, code 38). */
async function consumerIds(remoting, addr, group) {
  return remoting.withConnection(addr, async conn => {
    const resp = await conn.invoke(38, { consumerGroup: group });
    if (resp.code !== remoting.RESP.SUCCESS || !resp.body.length) return [];
    const body = remoting.parseLenientJson(resp.body);
    return body.consumerIdList || [];
  });
}

/** Creates `topic` with `queues` queues on each broker address and waits for the route. */
async function createTopicOn(remoting, cluster, topic, queues, brokers) {
  for (const b of brokers) {
    await remoting.withConnection(b.addr, conn => remoting.createTopic(conn, topic, queues));
  }
  await waitFor(() => remoting.withConnection(cluster.nsAddr, async conn => {
    const r = await remoting.getRoute(conn, topic);
    if (!r.route) return false;
    return brokers.every(b => {
      const qd = (r.route.queueDatas || []).find(q => q.brokerName === b.brokerName);
      const bd = (r.route.brokerDatas || []).find(d => d.brokerName === b.brokerName);
      return qd && Number(qd.writeQueueNums) === queues && Number(qd.readQueueNums) === queues &&
        bd && Object.values(bd.brokerAddrs || {}).includes(b.addr);
    });
  }), { timeoutMs: ms(15000), what: `the name server to route ${topic} (${queues} queues) to ` +
    brokers.map(b => b.brokerName).join(', ') });
}

/** The cluster's main broker as { brokerName, addr } for createTopicOn. */
function mainBroker(cluster) {
  return { brokerName: cluster.brokerName, addr: cluster.brokerAddr };
}

/** Text for a failed test: each process's state and stderr tail. */
function describe(procs, n = 25) {
  return procs.map(p => `----- ${p.label} (pid ${p.pid}, ${p.exit ? `exit code=${p.exit.code} signal=${p.exit.signal}` :
    'running'}, ${p.parsed.length} parsed lines) stderr tail -----\n${p.stderrTail(n)}`).join('\n');
}

/**
 * A line of example_tx_producer: "TX <i> <txid> <state>", "CHECK <i> <txid> <state>",
 * "CRASH <i> <txid>" or "FAILED <i> <rc> <reason>". `atMs` is when this process read it.
 */
function parseTx(line) {
  let m = /^(TX|CHECK) (-?\d+) (\S+) (COMMIT|ROLLBACK|UNKNOWN)$/.exec(line);
  if (m) return { kind: m[1], i: Number(m[2]), txId: m[3], state: m[4], atMs: Date.now() };
  if ((m = /^CRASH (-?\d+) (\S+)$/.exec(line))) return { kind: 'CRASH', i: Number(m[1]), txId: m[2], atMs: Date.now() };
  if ((m = /^FAILED (-?\d+) (-?\d+) (.*)$/.exec(line))) {
    return { kind: 'FAILED', i: Number(m[1]), rc: Number(m[2]), reason: m[3], atMs: Date.now() };
  }
  return null;
}

/**
 * Starts example_tx_producer. opts: group, count, start, decide, check (commit, rollback,
 * unknown, rule), unknownChecks, crashAfter, stay, execMs, intervalMs, timeoutMs. `parsed`
 * collects the TX, CHECK, CRASH and FAILED lines (parseTx).
 */
function startTxProducer(cluster, label, topic, opts = {}) {
  const args = [ '-n', cluster.nsAddr, '-t', topic ];
  if (opts.group) args.push('-g', opts.group);
  if (opts.stay) args.push('--stay');
  for (const [ k, flag ] of [ [ 'count', '-c' ], [ 'start', '--start' ], [ 'decide', '--decide' ],
    [ 'check', '--check' ], [ 'unknownChecks', '--unknown-checks' ], [ 'crashAfter', '--crash-after' ],
    [ 'execMs', '--exec-ms' ], [ 'intervalMs', '--interval-ms' ], [ 'timeoutMs', '--timeout-ms' ] ]) {
    if (opts[k] !== undefined && opts[k] !== null) args.push(flag, String(opts[k]));
  }
  return new ExampleProcess(label, exampleBin('example_tx_producer'), args,
    { logDir: cluster.dir, parse: parseTx });
}

module.exports = {
  exampleBin,
  hasExample,
  parseSent,
  parseMsg,
  ExampleProcess,
  stopAll,
  sendMany,
  sendFailures,
  sendAllOk,
  startConsumer,
  startPullConsumer,
  consumerIds,
  createTopicOn,
  mainBroker,
  describe,
  tail,
  parseTx,
  startTxProducer,
};
