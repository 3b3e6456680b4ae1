'use strict';
// Test harness: starts FerryMQ's name server and broker as child processes on free loopback
// ports with a private temp dir, waits until the broker is registered, captures their logs,
// restarts the broker (SIGTERM or kill -9), and always stops everything and removes the temp
// dir (after hooks, process exit, SIGINT/SIGTERM; children also get SIGKILL through
// PR_SET_PDEATHSIG when this process dies). Node standard library only.

const fs = require('node:fs');
const os = require('node:os');
const net = require('node:net');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const remoting = require('./remoting');

const TIME_MULT = Math.max(1, Number(process.env.FERRY_TEST_TIMEOUT_MULTIPLIER || 1) || 1);
const ms = n => Math.round(n * TIME_MULT);

// ---------------------------------------------------------------------------------------------
// Process bookkeeping: never leave a child or a temp dir behind.

const liveChildren = new Set();
const tempDirs = new Set();
let exitHooksInstalled = false;

function installExitHooks() {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', () => {
    for (const child of liveChildren) {
      try { process.kill(child.pid, 'SIGKILL'); } catch (_) { /* already gone */ }
    }
    if (!process.env.FERRY_KEEP_TMP) {
      for (const d of tempDirs) {
        try { fs.rmSync(d, { recursive: true, force: true }); } catch (_) { /* best effort */ }
      }
    }
  });
  for (const sig of [ 'SIGINT', 'SIGTERM', 'SIGHUP' ]) {
    process.once(sig, () => {
      process.stderr.write(`harness: ${sig} received, killing ${liveChildren.size} server process(es)\n`);
      process.exit(128 + os.constants.signals[sig]);
    });
  }
}

let setprivPdeathsig = null;
function pdeathsigPrefix() {
  if (setprivPdeathsig === null) {
    const r = spawnSync('setpriv', [ '--pdeathsig', 'KILL', '--', 'true' ], { stdio: 'ignore' });
    setprivPdeathsig = r.status === 0;
  }
  return setprivPdeathsig ? [ 'setpriv', '--pdeathsig', 'KILL', '--' ] : [];
}

/**
 * Tracks a child process that is not a server (a client program started by a test): it gets
 * SIGKILL when this process exits, like the servers. Spawn it with pdeathsigPrefix() in front
 * of its argv so that it also dies when this process is killed.
 */
function trackChild(child) {
  installExitHooks();
  liveChildren.add(child);
  const forget = () => liveChildren.delete(child);
  child.once('exit', forget);
  child.once('error', forget);
  return child;
}

// ---------------------------------------------------------------------------------------------
// Small utilities

function sleep(n) {
  return new Promise(resolve => setTimeout(resolve, n));
}

/**
 * Polls fn() until it returns a truthy value (returned) or the deadline passes (throws with
 * `what` (a string, or a function giving one) and the last error/value). This waits on a condition; the poll interval only bounds
 * the reaction time.
 */
async function waitFor(fn, { timeoutMs = 10000, intervalMs = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  let lastErr;
  for (;;) {
    checkServersAlive(typeof what === 'function' ? what : () => what);
    try {
      last = await fn();
      if (last) return last;
      lastErr = null;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() >= deadline) {
      const detail = lastErr ? `last error: ${lastErr.message}` : `last value: ${JSON.stringify(last)}`;
      const w = typeof what === 'function' ? what() : what;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${w} (${detail})`);
    }
    await sleep(intervalMs);
  }
}

/** Server processes started by this harness; a wait fails at once when one of them died. */
const startedServers = new Set();

function checkServersAlive(what) {
  for (const srv of startedServers) {
    if (srv.exit && !srv.stopRequested) {
      throw new Error(`${srv.name} exited unexpectedly (code=${srv.exit.code} signal=${srv.exit.signal}) ` +
        `while waiting for ${what()}; its log tail:\n${tail(srv.logFile, 60)}`);
    }
  }
}

/** Runs tasks (functions returning promises) with at most `limit` in flight. */
async function runLimited(count, limit, task) {
  let next = 0;
  const workers = [];
  for (let w = 0; w < Math.min(limit, count); w++) {
    workers.push((async () => {
      for (;;) {
        const i = next++;
        if (i >= count) return;
        await task(i);
      }
    })());
  }
  await Promise.all(workers);
}

function listenPort(port) {
  return new Promise(resolve => {
    const srv = net.createServer();
    srv.once('error', () => resolve(null));
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
      const p = srv.address().port;
      srv.close(() => resolve(p));
    });
  });
}

/**
 * A free loopback port. Picked below the kernel's ephemeral range when there is room, so that
 * no outgoing connection of another process can take it while a test restarts a server on it;
 * else an ephemeral one (listen on 0, read it, close).
 */
async function freePort() {
  let low = 32768;
  try {
    low = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || low;
  } catch (_) { /* not Linux: use the default */ }
  if (low - 12000 >= 10000) {
    for (let attempt = 0; attempt < 50; attempt++) {
      const cand = low - 12000 + Math.floor(Math.random() * 11990);
      const p = await listenPort(cand);
      if (p) return p;
    }
  }
  const p = await listenPort(0);
  if (!p) throw new Error('could not bind an ephemeral port on 127.0.0.1');
  return p;
}

/**
 * A port P such that P-2 .. P+1 are free too: a broker listens on P, may listen on the VIP port
 * P-2 (RocketMQ's fast port, fastListenPortEnable) and, once it replicates, on P+1 (HA).
 */
async function freeBrokerPort() {
  for (let attempt = 0; attempt < 50; attempt++) {
    const p = await freePort();
    if (p < 1100 || p > 65530) continue;
    const others = await Promise.all([ p - 2, p - 1, p + 1 ].map(listenPort));
    if (others.every(Boolean)) return p;
  }
  throw new Error('could not find 4 consecutive free ports on 127.0.0.1');
}

function tail(file, maxLines = 80) {
  try {
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    return lines.slice(-maxLines).join('\n');
  } catch (e) {
    return `(no log: ${e.message})`;
  }
}

// ---------------------------------------------------------------------------------------------
// Binaries

/**
 * Path of a server binary: $FERRY_<NAME>_BIN (e.g. FERRY_MQBROKER_BIN), else $FERRY_BIN_DIR/<name>.
 * Throws a clear error when it is not there.
 */
function findBinary(name) {
  const envName = `FERRY_${name.toUpperCase()}_BIN`;
  let file = process.env[envName];
  if (!file) {
    const dir = process.env.FERRY_BIN_DIR;
    if (!dir) {
      throw new Error(`neither ${envName} nor FERRY_BIN_DIR is set: run through CTest, or set FERRY_BIN_DIR to ` +
        'the directory that holds mqnamesrv and mqbroker (e.g. FERRY_BIN_DIR=build/tools)');
    }
    file = path.join(dir, name);
  }
  try {
    fs.accessSync(file, fs.constants.X_OK);
  } catch (_) {
    throw new Error(`server binary ${file} is missing or not executable (build the ${name} target first)`);
  }
  return file;
}

// ---------------------------------------------------------------------------------------------
// A server child process with its log file.

class ServerProcess {
  constructor(name, argv, { cwd, env, logFile }) {
    this.name = name;
    this.argv = argv;
    this.cwd = cwd;
    this.env = env;
    this.logFile = logFile;
    this.child = null;
    this.exit = null; // { code, signal } once exited
  }

  start() {
    installExitHooks();
    const fd = fs.openSync(this.logFile, 'a');
    fs.writeSync(fd, `\n===== ${new Date().toISOString()} start: ${this.argv.join(' ')}\n`);
    const full = pdeathsigPrefix().concat(this.argv);
    this.exit = null;
    this.stopRequested = false;
    startedServers.add(this);
    const child = spawn(full[0], full.slice(1), { cwd: this.cwd, env: this.env, stdio: [ 'ignore', fd, fd ] });
    fs.closeSync(fd);
    this.child = child;
    liveChildren.add(child);
    this.exited = new Promise(resolve => {
      child.once('exit', (code, signal) => {
        liveChildren.delete(child);
        this.exit = { code, signal };
        try {
          fs.appendFileSync(this.logFile, `===== ${new Date().toISOString()} exit: code=${code} signal=${signal}\n`);
        } catch (_) { /* dir may be gone */ }
        resolve(this.exit);
      });
      child.once('error', err => {
        liveChildren.delete(child);
        this.exit = { code: null, signal: null, error: err };
        resolve(this.exit);
      });
    });
    return this;
  }

  get running() {
    return this.child !== null && this.exit === null;
  }

  get pid() {
    return this.child && this.child.pid;
  }

  /** Throws (with the log tail) if the process has exited. */
  checkAlive(what) {
    if (this.exit) {
      throw new Error(`${this.name} exited (code=${this.exit.code} signal=${this.exit.signal}` +
        `${this.exit.error ? ' ' + this.exit.error.message : ''}) while ${what}; log tail:\n${tail(this.logFile, 40)}`);
    }
  }

  /**
   * SIGTERM, wait up to graceMs for the exit, then SIGKILL. Returns { code, signal, forced }.
   */
  async stop({ signal = 'SIGTERM', graceMs = ms(15000) } = {}) {
    this.stopRequested = true;
    if (!this.running) return Object.assign({ forced: false }, this.exit);
    try { this.child.kill(signal); } catch (_) { /* gone */ }
    let timer;
    const timeout = new Promise(resolve => { timer = setTimeout(() => resolve(null), graceMs); });
    let r = await Promise.race([ this.exited, timeout ]);
    clearTimeout(timer);
    if (r) return Object.assign({ forced: false }, r);
    try { this.child.kill('SIGKILL'); } catch (_) { /* gone */ }
    r = await this.exited;
    return Object.assign({ forced: true }, r);
  }
}

// ---------------------------------------------------------------------------------------------
// Temp dirs left by a test process that was killed with SIGKILL (its servers died with it
// through PR_SET_PDEATHSIG, but nothing could remove the dir) are removed by the next run.

const OWNER_FILE = '.ferry-harness-owner';

function sweepStaleDirs() {
  let names;
  try {
    names = fs.readdirSync(os.tmpdir());
  } catch (_) {
    return;
  }
  for (const n of names) {
    if (!n.startsWith('ferry-')) continue;
    const dir = path.join(os.tmpdir(), n);
    let pid;
    try {
      pid = Number(fs.readFileSync(path.join(dir, OWNER_FILE), 'utf8'));
    } catch (_) {
      continue; // not ours
    }
    if (!pid || pid === process.pid) continue;
    try {
      process.kill(pid, 0);
      continue; // owner alive
    } catch (e) {
      if (e.code !== 'ESRCH') continue;
    }
    try { fs.rmSync(dir, { recursive: true, force: true }); } catch (_) { /* best effort */ }
  }
}

// ---------------------------------------------------------------------------------------------
// The cluster: one name server + one broker.

function confText(obj) {
  return Object.entries(obj).map(([ k, v ]) => `${k}=${v}`).join('\n') + '\n';
}

class Cluster {
  /**
   * @param {object} opts
   *  - name: used in the temp dir name and log headers
   *  - flushDiskType: 'ASYNC_FLUSH' (default) or 'SYNC_FLUSH'
   *  - brokerConf: extra broker.conf keys
   *  - namesrvConf: extra namesrv.conf keys
   *  - extraBrokers: more master brokers started after the first one (addBroker options, or
   *    just a brokerName); they are in `extraBrokers` once started
   */
  constructor(opts = {}) {
    this.opts = opts;
    this.name = opts.name || 'ferry';
    this.dir = null;
    this.namesrv = null;
    this.broker = null;
    this.nsPort = 0;
    this.brokerPort = 0;
    this.brokerName = opts.brokerName || 'broker-a';
    this.clusterName = opts.clusterName || 'DefaultCluster';
    this.extraBrokers = []; // addBroker()
  }

  get nsAddr() {
    return `127.0.0.1:${this.nsPort}`;
  }

  get brokerAddr() {
    return `127.0.0.1:${this.brokerPort}`;
  }

  get logFiles() {
    return [ this.namesrv && this.namesrv.logFile, this.broker && this.broker.logFile,
      ...this.extraBrokers.map(b => b.proc.logFile) ].filter(Boolean);
  }

  async start() {
    const nsBin = findBinary('mqnamesrv');
    const brokerBin = findBinary('mqbroker');
    installExitHooks();
    sweepStaleDirs();
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `ferry-${this.name}-`));
    tempDirs.add(this.dir);
    fs.writeFileSync(path.join(this.dir, OWNER_FILE), String(process.pid));
    const env = Object.assign({}, process.env, { HOME: this.dir });

    // The port pick races with other processes: retry with new ports if a server cannot bind.
    for (let attempt = 1; ; attempt++) {
      this.nsPort = await freePort();
      this.brokerPort = await freeBrokerPort();
      this._writeConfigs();
      this.namesrv = new ServerProcess('mqnamesrv', [ nsBin, '-c', path.join(this.dir, 'namesrv.conf') ],
        { cwd: this.dir, env, logFile: path.join(this.dir, 'namesrv.log') }).start();
      try {
        await this._waitListening(this.namesrv, this.nsPort, 'the name server to accept connections');
      } catch (e) {
        await this.namesrv.stop({ signal: 'SIGKILL' });
        if (attempt < 3 && this.namesrv.exit) continue;
        throw e;
      }
      this.brokerArgv = [ brokerBin, '-c', path.join(this.dir, 'broker.conf') ];
      this.broker = new ServerProcess('mqbroker', this.brokerArgv,
        { cwd: this.dir, env, logFile: path.join(this.dir, 'broker.log') });
      this.broker.start();
      try {
        await this.waitBrokerReady();
      } catch (e) {
        const earlyExit = !!this.broker.exit;
        await this.broker.stop({ signal: 'SIGKILL' });
        await this.namesrv.stop({ signal: 'SIGKILL' });
        if (attempt < 3 && earlyExit && /address already in use|EADDRINUSE/i.test(tail(this.broker.logFile))) continue;
        throw e;
      }
      for (const b of this.opts.extraBrokers || []) await this.addBroker(typeof b === 'string' ? { brokerName: b } : b);
      return this;
    }
  }

  _writeConfigs() {
    fs.writeFileSync(path.join(this.dir, 'namesrv.conf'), confText(Object.assign({
      listenAddress: '127.0.0.1',
      listenPort: this.nsPort,
      kvConfigPath: path.join(this.dir, 'namesrv', 'kvConfig.json'),
    }, this.opts.namesrvConf || {})));
    fs.writeFileSync(path.join(this.dir, 'broker.conf'),
      this._brokerConfText(this.brokerName, this.brokerPort, path.join(this.dir, 'store'), this.opts.brokerConf));
  }

  _brokerConfText(brokerName, port, store, extra) {
    return confText(Object.assign({
      brokerClusterName: this.clusterName,
      brokerName,
      brokerId: 0,
      listenPort: port,
      bindAddress: '127.0.0.1',
      namesrvAddr: this.nsAddr,
      brokerIP1: '127.0.0.1',
      storePathRootDir: store,
      flushDiskType: this.opts.flushDiskType || 'ASYNC_FLUSH',
      mappedFileSizeCommitLog: 64 * 1024 * 1024,
      mappedFileSizeConsumeQueue: 300000 * 20,
      maxHashSlotNum: 50000,
      maxIndexNum: 200000,
      autoCreateTopicEnable: true,
      autoCreateSubscriptionGroup: true,
    }, extra || {}));
  }

  /**
   * Starts one more master broker (its own name, port, store and log in the cluster's dir)
   * registered at the same name server; waits until it is registered. Returns a handle
   * { brokerName, port, addr, proc, stop({ kill9 }), start() }. Cluster.stop() stops it too.
   * @param {object} opts - brokerName (default broker-b, broker-c, ...), brokerConf (extra keys)
   */
  async addBroker(opts = {}) {
    const brokerBin = findBinary('mqbroker');
    const brokerName = opts.brokerName || `broker-${String.fromCharCode(98 + this.extraBrokers.length)}`;
    const env = Object.assign({}, process.env, { HOME: this.dir });
    for (let attempt = 1; ; attempt++) {
      const port = await freeBrokerPort();
      const confFile = path.join(this.dir, `${brokerName}.conf`);
      fs.writeFileSync(confFile, this._brokerConfText(brokerName, port, path.join(this.dir, `store-${brokerName}`),
        Object.assign({}, this.opts.brokerConf || {}, opts.brokerConf || {})));
      const proc = new ServerProcess(`mqbroker(${brokerName})`, [ brokerBin, '-c', confFile ],
        { cwd: this.dir, env, logFile: path.join(this.dir, `${brokerName}.log`) }).start();
      const b = {
        brokerName, port, addr: `127.0.0.1:${port}`, proc,
        stop: ({ kill9 = false } = {}) => proc.stop({ signal: kill9 ? 'SIGKILL' : 'SIGTERM' }),
        start: async () => {
          proc.start();
          await this._waitBrokerProcReady(proc, brokerName, port);
        },
      };
      try {
        await this._waitBrokerProcReady(proc, brokerName, port);
      } catch (e) {
        const earlyExit = !!proc.exit;
        await proc.stop({ signal: 'SIGKILL' });
        startedServers.delete(proc);
        if (attempt < 3 && earlyExit && /address already in use|EADDRINUSE/i.test(tail(proc.logFile))) continue;
        e.message += `\n----- ${path.basename(proc.logFile)} (last 40 lines) -----\n${tail(proc.logFile, 40)}`;
        throw e;
      }
      this.extraBrokers.push(b);
      return b;
    }
  }

  async _waitListening(proc, port, what) {
    await waitFor(async () => {
      proc.checkAlive(`waiting for ${what}`);
      return await new Promise(resolve => {
        const s = net.connect({ host: '127.0.0.1', port });
        s.once('connect', () => { s.destroy(); resolve(true); });
        s.once('error', () => resolve(false));
      });
    }, { timeoutMs: ms(15000), what: `${what} on port ${port}` }).catch(e => {
      throw new Error(`${e.message}\n${proc.name} log tail:\n${tail(proc.logFile, 40)}`);
    });
  }

  /** True when the name server lists this broker's address (cluster info or the TBW102 route). */
  async isBrokerRegistered(brokerName = this.brokerName, brokerAddr = this.brokerAddr) {
    return remoting.withConnection(this.nsAddr, async conn => {
      const resp = await conn.invoke(remoting.REQ.GET_BROKER_CLUSTER_INFO, {});
      if (resp.code === remoting.RESP.SUCCESS && resp.body.length) {
        const info = remoting.parseLenientJson(resp.body);
        const bd = info.brokerAddrTable && info.brokerAddrTable[brokerName];
        if (bd && bd.brokerAddrs && Object.values(bd.brokerAddrs).includes(brokerAddr)) return true;
      }
      const r = await remoting.getRoute(conn, 'TBW102');
      return !!(r.route && (r.route.brokerDatas || []).some(bd =>
        Object.values(bd.brokerAddrs || {}).includes(brokerAddr)));
    });
  }

  async waitBrokerReady() {
    await this._waitBrokerProcReady(this.broker, this.brokerName, this.brokerPort);
  }

  async _waitBrokerProcReady(proc, brokerName, port) {
    const addr = `127.0.0.1:${port}`;
    await this._waitListening(proc, port, 'the broker to accept connections');
    await waitFor(async () => {
      proc.checkAlive('waiting for it to register with the name server');
      this.namesrv.checkAlive('waiting for the broker to register');
      return await this.isBrokerRegistered(brokerName, addr);
    }, { timeoutMs: ms(20000), what: `broker ${addr} to be registered at name server ${this.nsAddr} ` +
      '(GET_BROKER_CLUSTER_INFO / GET_ROUTEINFO_BY_TOPIC TBW102)' }).catch(e => {
      throw new Error(`${e.message}\n${this.logsText(40)}`);
    });
  }

  /** Stops the broker: SIGTERM (clean) or SIGKILL (kill -9). Returns { code, signal, forced }. */
  async stopBroker({ kill9 = false } = {}) {
    return this.broker.stop({ signal: kill9 ? 'SIGKILL' : 'SIGTERM' });
  }

  /** Starts the broker again with the same config, port and store; waits until registered. */
  async startBroker() {
    this.broker.start();
    await this.waitBrokerReady();
  }

  async restartBroker({ kill9 = false } = {}) {
    const r = await this.stopBroker({ kill9 });
    await this.startBroker();
    return r;
  }

  logsText(maxLines = 80) {
    return this.logFiles.map(f => `----- ${path.basename(f)} (last ${maxLines} lines) -----\n${tail(f, maxLines)}`).join('\n');
  }

  /**
   * Stops both servers (SIGTERM, then SIGKILL after a grace period) and removes the temp dir.
   * Returns a list of problems: a server that did not exit with status 0 by itself after
   * SIGTERM, or a sanitizer report in a server log (servers built with FERRY_SANITIZE).
   */
  async stop() {
    const problems = [];
    for (const srv of [ ...this.extraBrokers.map(b => b.proc), this.broker, this.namesrv ]) {
      if (!srv) continue;
      const wasRunning = srv.running;
      const r = await srv.stop();
      if (wasRunning && (r.forced || r.code !== 0)) {
        problems.push(`${srv.name} did not exit cleanly after SIGTERM (code=${r.code} signal=${r.signal}` +
          `${r.forced ? ', killed after the grace period' : ''}); log tail:\n${tail(srv.logFile, 30)}`);
      }
      let log = '';
      try { log = fs.readFileSync(srv.logFile, 'utf8'); } catch (_) { /* none */ }
      const m = /(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:)[^]*/.exec(log);
      if (m) problems.push(`sanitizer report in the ${srv.name} log:\n${m[0].split('\n').slice(0, 40).join('\n')}`);
    }
    if (this.dir && !process.env.FERRY_KEEP_TMP) {
      fs.rmSync(this.dir, { recursive: true, force: true });
      tempDirs.delete(this.dir);
    } else if (this.dir) {
      process.stderr.write(`harness: keeping ${this.dir} (FERRY_KEEP_TMP)\n`);
    }
    return problems;
  }
}

/**
 * Runs fn(); on failure prints the servers' log tails to stderr (they show up in the test
 * output) and rethrows.
 */
async function withLogsOnFailure(cluster, fn) {
  try {
    return await fn();
  } catch (e) {
    // A crashed server often shows up first as a closed connection: give its exit status a
    // moment to arrive so the error can name it.
    const running = [ ...startedServers ].filter(srv => !srv.exit && srv.exited);
    if (running.length) await Promise.race([ ...running.map(srv => srv.exited), sleep(500) ]);
    const died = [ ...startedServers ].filter(srv => srv.exit && !srv.stopRequested)
      .map(srv => `${srv.name} exited unexpectedly (code=${srv.exit.code} signal=${srv.exit.signal})`);
    if (died.length && e && typeof e.message === 'string' && !e.message.includes('exited unexpectedly')) {
      e.message = `${died.join('; ')} -- ${e.message}`;
    }
    if (cluster && cluster.dir) {
      process.stderr.write(`\n===== server logs for failed test (${cluster.name}) =====\n${cluster.logsText(120)}\n`);
    }
    throw e;
  }
}

/**
 * For a test file: registers node:test `before`/`after` hooks that start one cluster for the
 * file and always stop it. Returns a context whose `cluster` is set once started; push async
 * functions to `ctx.beforeStop` to close clients before the servers go away.
 */
function useCluster(opts) {
  const { before, after } = require('node:test');
  const ctx = { cluster: null, beforeStop: [] };
  before(async () => {
    const cluster = new Cluster(opts);
    ctx.cluster = cluster;
    await cluster.start();
  });
  after(async () => {
    for (const fn of ctx.beforeStop.splice(0).reverse()) {
      try {
        await fn();
      } catch (e) {
        process.stderr.write(`harness: teardown step failed: ${e.stack || e}\n`);
      }
    }
    if (ctx.cluster) {
      const problems = await ctx.cluster.stop();
      if (problems.length) throw new Error(`server shutdown: ${problems.join('\n')}`);
    }
  });
  return ctx;
}

/** The mqadmin binary: FERRY_MQADMIN_DIR/mqadmin (CTest sets it). */
function mqadminBin() {
  const dir = process.env.FERRY_MQADMIN_DIR;
  if (!dir) throw new Error('FERRY_MQADMIN_DIR is not set: run through CTest, or point it at the directory of mqadmin');
  const file = path.join(dir, 'mqadmin');
  fs.accessSync(file, fs.constants.X_OK);
  return file;
}

/**
 * Runs mqadmin with @args to its end (tracked, killed after 30 s scaled); returns
 * { code, signal, stdout, stderr, args }. opts.env: the environment (default: this process's).
 */
async function runMqadmin(args, opts = {}) {
  const full = pdeathsigPrefix().concat([ mqadminBin() ], args);
  const child = trackChild(spawn(full[0], full.slice(1), { stdio: [ 'ignore', 'pipe', 'pipe' ], env: opts.env }));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', b => { stdout += b; });
  child.stderr.on('data', b => { stderr += b; });
  const done = new Promise(resolve => child.once('close', (code, signal) => resolve({ code, signal })));
  let timer;
  const r = await Promise.race([ done, new Promise(resolve => { timer = setTimeout(() => resolve(null), ms(30000)); }) ]);
  clearTimeout(timer);
  if (!r) {
    child.kill('SIGKILL');
    await done;
    throw new Error(`mqadmin ${args.join(' ')} did not finish in ${ms(30000)} ms; stdout:\n${stdout}\nstderr:\n${stderr}`);
  }
  return Object.assign(r, { stdout, stderr, args });
}

/**
 * A plain_acl.yml for a broker with aclEnable, outside any cluster's temp dir (the broker reads
 * it at start), removed when the process exits. write(text) replaces it by a rename, as an
 * editor or a config tool does. Returns { file, dir, write }.
 */
function aclRulesFile(prefix, text) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const file = path.join(dir, 'plain_acl.yml');
  const write = t => {
    fs.writeFileSync(`${file}.tmp`, t);
    fs.renameSync(`${file}.tmp`, file);
  };
  write(text);
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return { file, dir, write };
}

module.exports = {
  aclRulesFile,
  TIME_MULT,
  ms,
  sleep,
  waitFor,
  checkServersAlive,
  runLimited,
  freePort,
  freeBrokerPort,
  tail,
  trackChild,
  pdeathsigPrefix,
  findBinary,
  mqadminBin,
  runMqadmin,
  ServerProcess,
  Cluster,
  useCluster,
  withLogsOnFailure,
};
