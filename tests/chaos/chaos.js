'use strict';
// The chaos round (README.md): one mqnamesrv and two mqbroker masters (SYNC_FLUSH) on loopback
// (tests/compat/harness.js), producers and push consumers (chaos_client) recording a history,
// faults at random moments from a seeded RNG, then the invariant checks (check.js). Prints
// "RESULT bench=chaos ..." and exits 1 when a check fails; the run directory (client histories,
// fault log, server logs, merged history) is kept and printed on failure.
//
// The replicated mode (--mode replicated, README.md "Replicated mode"): three mqcontrollers and
// two broker sets of 2-3 brokers each in controller mode (repl_cluster.js) instead of two
// masters; faults kill and SIGSTOP masters and slaves, kill controllers, and (where network
// namespaces can be made: root) cut a master's network: each broker then runs on its own netns
// host (tests/integration/netns.js); the same checks, plus bounded failovers and heals and
// replicas that agree. Prints "RESULT bench=chaos_replicated ...".
//
//   node chaos.js [--seconds 60] [--seed N] [--max-faults N] [--faults type,...] [--keep]
//                 [--mode normal|replicated] [--replicated] [--set-size 2|3]
//
// Environment: FERRY_BIN_DIR / FERRY_MQBROKER_BIN / FERRY_MQNAMESRV_BIN / FERRY_MQCONTROLLER_BIN
// (the servers), FERRY_CHAOS_CLIENT (chaos_client), FERRY_CHAOS_SEED (the seed when --seed is
// absent), CHAOS_MODE (the mode when --mode is absent), FERRY_TEST_TIMEOUT_MULTIPLIER (scales
// the waits, not the fault phase).

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const harness = require('../compat/harness');
const remoting = require('../compat/remoting');
const { createTopicOn } = require('../integration/examples');
const check = require('./check');
const { ReplCluster } = require('./repl_cluster');
const { NetHosts } = require('../integration/netns');

const { ms, sleep, waitFor } = harness;

const TOPIC = 'ChaosTopic';
const QUEUES_PER_BROKER = 4;
const SEND_TIMEOUT_MS = 3000;
const GROUPS = {
  conc: { name: 'CG_chaos_conc', orderly: false, members: 2 },
  ord: { name: 'CG_chaos_ord', orderly: true, members: 2 },
};
const PRODUCERS = 2;
const FAULT_TYPES = [ 'broker-kill', 'namesrv-kill', 'consumer-kill', 'broker-stop', 'producer-kill' ];
// The replicated mode's faults and their weights (a master failover is the point of the mode).
// Broker faults are recorded for check.js as broker-kill / broker-stop (the kinds it knows: a
// broker fault that overlaps a send explains the library's retry of it, one before a
// redelivery explains the redelivery); controller-kill explains nothing.
// master-partition needs network namespaces (root); without them it is left out, with the reason.
const REPL_FAULTS = { 'master-kill': 4, 'master-stop': 2, 'master-partition': 2, 'slave-kill': 2, 'slave-stop': 2,
  'controller-kill': 1, 'namesrv-kill': 1, 'consumer-kill': 1, 'producer-kill': 1 };
const REPL_CHECK_TYPE = { 'master-kill': 'broker-kill', 'slave-kill': 'broker-kill', 'master-stop': 'broker-stop',
  'slave-stop': 'broker-stop', 'master-partition': 'broker-stop' };
// Bounds of the replicated mode (scaled by FERRY_TEST_TIMEOUT_MULTIPLIER): a master kill or stop
// to a new master named by the controllers and the route; a set back to every member in sync.
const FAILOVER_BOUND_MS = 20000;
const HEAL_BOUND_MS = 60000;

function parseArgs(argv) {
  const o = { seconds: 60, seed: null, maxFaults: null, keep: false, faults: null, mode: null, setSize: 3 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--seconds') o.seconds = Number(val());
    else if (a === '--seed') o.seed = Number(val());
    else if (a === '--max-faults') o.maxFaults = Number(val());
    else if (a === '--keep') o.keep = true;
    else if (a === '--faults') o.faults = val().split(',');
    else if (a === '--mode') o.mode = val();
    else if (a === '--replicated') o.mode = 'replicated';
    else if (a === '--set-size') o.setSize = Number(val());
    else {
      throw new Error(`unknown argument ${a} (usage: chaos.js [--seconds N] [--seed N] [--max-faults N] ` +
        '[--faults type,...] [--keep] [--mode normal|replicated] [--set-size 2|3])');
    }
  }
  if (o.mode === null) o.mode = process.env.CHAOS_MODE || 'normal';
  if (o.mode !== 'normal' && o.mode !== 'replicated') throw new Error(`unknown mode ${o.mode} (normal, replicated)`);
  if (o.setSize !== 2 && o.setSize !== 3) throw new Error('--set-size must be 2 or 3');
  const known = o.mode === 'replicated' ? Object.keys(REPL_FAULTS) : FAULT_TYPES;
  o.faultsGiven = o.faults !== null;
  if (o.faults === null) o.faults = known;
  if (o.seed === null && process.env.FERRY_CHAOS_SEED) o.seed = Number(process.env.FERRY_CHAOS_SEED);
  if (o.seed === null) o.seed = Math.floor(Math.random() * 0x7fffffff);
  if (!Number.isInteger(o.seed) || o.seed < 0) throw new Error('the seed must be a non-negative integer');
  if (!(o.seconds > 0)) throw new Error('--seconds must be positive');
  for (const f of o.faults) if (!known.includes(f)) throw new Error(`unknown fault ${f} in ${o.mode} mode (${known.join(', ')})`);
  if (o.maxFaults === null) o.maxFaults = Math.max(3, Math.ceil(o.seconds / 5));
  return o;
}

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
function rngFrom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** CLOCK_MONOTONIC in microseconds (the clock chaos_client writes). */
function monoUs() {
  return Number(process.hrtime.bigint() / 1000n);
}

function clientBin() {
  const file = process.env.FERRY_CHAOS_CLIENT ||
    (process.env.FERRY_BIN_DIR ? path.join(process.env.FERRY_BIN_DIR, '..', 'tests', 'chaos', 'chaos_client') : '');
  if (!file) throw new Error('FERRY_CHAOS_CLIENT is not set (the path of the built chaos_client)');
  try {
    fs.accessSync(file, fs.constants.X_OK);
  } catch (_) {
    throw new Error(`${file} is missing or not executable (build the chaos_client target)`);
  }
  return file;
}

/** One chaos_client process: history in <runDir>/<name>.log, stderr in <name>.stderr. */
class Client {
  constructor(run, name, role, args) {
    this.run = run;
    this.name = name;
    this.role = role; // 'producer' or a group key
    this.logFile = path.join(run.dir, `${name}.log`);
    this.args = args.concat([ '--log', this.logFile ]);
    this.exit = null;
    this.expectExit = false;
  }

  start() {
    const errFd = fs.openSync(path.join(this.run.dir, `${this.name}.stderr`), 'a');
    const full = harness.pdeathsigPrefix().concat([ clientBin() ], this.args);
    this.child = harness.trackChild(spawn(full[0], full.slice(1), { stdio: [ 'ignore', errFd, errFd ] }));
    fs.closeSync(errFd);
    this.exited = new Promise(resolve => {
      const done = (code, signal) => {
        if (this.exit) return;
        this.exit = { code, signal };
        if (!this.expectExit) {
          this.run.problems.push(`${this.name} exited unexpectedly (code=${code} signal=${signal}); ` +
            `stderr:\n${harness.tail(path.join(this.run.dir, `${this.name}.stderr`), 20)}`);
        }
        resolve(this.exit);
      };
      this.child.once('exit', done);
      this.child.once('error', err => done(null, String(err.message)));
    });
    return this;
  }

  get pid() {
    return this.child.pid;
  }

  get running() {
    return this.exit === null;
  }

  async waitStarted() {
    await waitFor(() => {
      if (this.exit) throw new Error(`${this.name} exited before starting: ${JSON.stringify(this.exit)}`);
      return fs.existsSync(this.logFile) && fs.readFileSync(this.logFile, 'utf8').includes('STARTED');
    }, { timeoutMs: ms(20000), what: `${this.name} to start` });
  }

  async kill9() {
    this.expectExit = true;
    try { process.kill(this.pid, 'SIGKILL'); } catch (_) { /* gone */ }
    return this.exited;
  }

  /** SIGTERM; SIGKILL after graceMs. Returns { code, signal, forced }. */
  async stop(graceMs = ms(20000)) {
    this.expectExit = true;
    if (this.exit) return Object.assign({ forced: false }, this.exit);
    try { process.kill(this.pid, 'SIGTERM'); } catch (_) { /* gone */ }
    let timer;
    const r = await Promise.race([ this.exited, new Promise(res => { timer = setTimeout(() => res(null), graceMs); }) ]);
    clearTimeout(timer);
    if (r) return Object.assign({ forced: false }, r);
    try { process.kill(this.pid, 'SIGKILL'); } catch (_) { /* gone */ }
    return Object.assign({ forced: true }, await this.exited);
  }

  /** The last complete line of the history (for "kill a producer mid-send"). */
  lastLine() {
    let fd;
    try {
      fd = fs.openSync(this.logFile, 'r');
      const size = fs.fstatSync(fd).size;
      const n = Math.min(size, 512);
      const buf = Buffer.alloc(n);
      fs.readSync(fd, buf, 0, n, size - n);
      const lines = buf.toString('utf8').split('\n');
      return lines.length >= 2 ? lines[lines.length - 2] : '';
    } catch (_) {
      return '';
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  }
}

class ChaosRun {
  constructor(opts) {
    this.opts = opts;
    this.rng = rngFrom(opts.seed);
    this.problems = []; // failures that are not history checks (crashes, unclean exits)
    this.faults = [];
    this.events = []; // group membership changes (consumer starts and stops), not faults
    this.producers = [];
    this.consumers = [];
    this.allClients = [];
    this.nextProducer = 1;
    this.restarts = new Map();
    this.stopped = new Set(); // brokers under SIGSTOP
    this.faultEnd = Infinity; // no fault starts after this (Date.now())
    this.injected = false; // nextFault() has picked the first fault
    // Replicated mode: failovers [{ kind, set, startUs, ms (serving), electedMs }], heal waits
    // (ms), master stops the controllers did not act on.
    this.repl = { failovers: [], heals: [], noFailover: 0 };
  }

  get replicated() {
    return this.opts.mode === 'replicated';
  }

  log(msg) {
    const line = `${new Date().toISOString()} ${msg}`;
    process.stdout.write(`chaos: ${line}\n`);
    fs.appendFileSync(path.join(this.dir, 'orchestrator.log'), line + '\n');
  }

  pick(list) {
    return list[Math.floor(this.rng() * list.length)];
  }

  between(lo, hi) {
    return Math.round(lo + this.rng() * (hi - lo));
  }

  get brokers() {
    const c = this.cluster;
    const extra = c.extraBrokers[0];
    return [
      { name: c.brokerName, addr: c.brokerAddr, proc: c.broker, start: () => c.startBroker() },
      { name: extra.brokerName, addr: extra.addr, proc: extra.proc, start: () => extra.start() },
    ];
  }

  startProducer() {
    const id = `p${this.nextProducer++}`;
    const p = new Client(this, id, 'producer', [ 'produce', '-n', this.cluster.nsAddr, '-t', TOPIC, '--id', id,
      '--interval-ms', '15', '--ordered-pct', '50', '--keys', '4',
      '--queues', String(2 * QUEUES_PER_BROKER), '--timeout-ms', String(SEND_TIMEOUT_MS) ]).start();
    this.producers.push(p);
    this.allClients.push(p);
    return p;
  }

  startConsumer(groupKey, base) {
    const n = (this.restarts.get(base) || 0) + 1;
    this.restarts.set(base, n);
    const name = n === 1 ? base : `${base}.r${n}`;
    const g = GROUPS[groupKey];
    const args = [ 'consume', '-n', this.cluster.nsAddr, '-t', TOPIC, '-g', g.name, '--instance', name, '--threads', '4' ];
    if (g.orderly) args.push('--orderly');
    this.events.push({ type: 'consumer-start', target: name, startUs: monoUs() });
    const c = new Client(this, name, groupKey, args).start();
    c.base = base;
    this.consumers.push(c);
    this.allClients.push(c);
    return c;
  }

  recordFault(f) {
    this.faults.push(f);
    const kind = f.kind && f.kind !== f.type ? `${f.kind} (${f.type})` : f.type;
    fs.appendFileSync(path.join(this.dir, 'faults.log'),
      `${new Date().toISOString()} FAULT ${kind} ${f.target} start=${f.startUs} end=${f.endUs} ${f.detail || ''}\n`);
    this.log(`fault #${this.faults.length} ${kind} ${f.target} (${Math.round((f.endUs - f.startUs) / 1000)} ms) ${f.detail || ''}`);
  }

  /**
   * The fault type to inject next: uniform, or by REPL_FAULTS weight in the replicated mode,
   * whose first fault is a master kill (else a master stop) when allowed, so that every round,
   * however short, has a failover.
   */
  nextFault() {
    if (this.replicated && !this.injected) {
      this.injected = true;
      const first = [ 'master-kill', 'master-stop' ].find(f => this.opts.faults.includes(f));
      if (first) return first;
    }
    return this.pickFault();
  }

  pickFault() {
    if (!this.replicated) return this.pick(this.opts.faults);
    const total = this.opts.faults.reduce((n, f) => n + REPL_FAULTS[f], 0);
    let x = this.rng() * total;
    for (const f of this.opts.faults) {
      x -= REPL_FAULTS[f];
      if (x < 0) return f;
    }
    return this.opts.faults[this.opts.faults.length - 1];
  }

  /** kill -9 of a consumer, a new member of its group started after 0-2 s. */
  async consumerKill() {
    const victim = this.pick(this.consumers.filter(c => c.running));
    await victim.kill9();
    this.consumers = this.consumers.filter(c => c !== victim);
    const down = this.between(0, 2000);
    await sleep(down);
    const repl = this.startConsumer(victim.role, victim.base);
    await repl.waitStarted();
    return { target: victim.name, detail: `replacement=${repl.name}` };
  }

  /** kill -9 of a producer during a send (bounded wait for one), a new producer started. */
  async producerKill() {
    const victim = this.pick(this.producers.filter(p => p.running));
    // Kill while a send is in flight: the last history line is a SEND (bounded wait).
    const deadline = Date.now() + 3000;
    let midSend = false;
    while (Date.now() < deadline) {
      if (victim.lastLine().startsWith('SEND ')) {
        midSend = true;
        break;
      }
      await sleep(1);
    }
    await victim.kill9();
    this.producers = this.producers.filter(p => p !== victim);
    const repl = this.startProducer();
    await repl.waitStarted();
    return { target: victim.name, detail: `midSend=${midSend} replacement=${repl.name}` };
  }

  /**
   * One fault of the replicated mode (README.md "Replicated mode"). A broker fault first waits
   * (bounded) until its set is healthy: every member up, in the sync state set and routed, so
   * that there is always an electable member and never two brokers of a set down. Returns false
   * when no fault was injected (the phase is over or a bound was missed: a problem).
   */
  async replFault(kind) {
    const rc = this.cluster;
    let target;
    let detail = '';
    let s = null;
    let st = null;
    if (REPL_CHECK_TYPE[kind]) {
      s = this.pick(rc.sets);
      try {
        const healMs = await rc.waitHealthy(s, ms(HEAL_BOUND_MS));
        this.repl.heals.push(healMs);
      } catch (e) {
        this.problems.push(`set ${s.name} did not heal within ${ms(HEAL_BOUND_MS)} ms before a ${kind}: ${e.message}`);
        return false;
      }
      if (Date.now() >= this.faultEnd) return false;
      st = await rc.setState(s);
      if (!st.ok) return false; // changed under us (it was healthy a moment ago): next gap
    }
    const startUs = monoUs();
    if (kind === 'master-kill' || kind === 'master-stop' || kind === 'master-partition') {
      const m = st.master;
      const epoch = st.info.masterEpoch;
      target = m.name;
      const t0 = Date.now();
      let fo;
      if (kind === 'master-kill') {
        const down = this.between(500, 3000);
        await rc.kill9(m);
        fo = await rc.waitFailover(s, m, epoch, t0, t0 + ms(FAILOVER_BOUND_MS));
        await sleep(down);
        rc.startBroker(m);
        await rc.waitRouted(m, ms(30000));
        detail = `restarted ${down} ms after the failover`;
      } else if (kind === 'master-partition') {
        // The master's host loses its link for `hold` ms: it runs on, its clients' requests and
        // its replication get no answer (no RST, unlike a kill), and it cannot reach the
        // controllers. Past the lease it must stop acknowledging (fencing) while another
        // member is elected; back on the network it must cut what it alone stored and follow.
        const hold = this.between(1000, 7000);
        rc.cut(m);
        try {
          fo = await rc.waitFailover(s, m, epoch, t0, t0 + hold);
          const left = t0 + hold - Date.now();
          if (left > 0) await sleep(left);
        } finally {
          rc.heal(m);
        }
        if (!fo.master && fo.electedMs !== null) {
          fo = await rc.waitFailover(s, m, epoch, t0, t0 + ms(FAILOVER_BOUND_MS), fo.electedMs);
        }
        detail = `cut=${hold}ms`;
      } else {
        // A master cut off for `hold` ms (SIGSTOP: no heartbeat, no answer, no replication).
        // Beyond the lease (3 s) plus a scan, the controllers elect another master; the old
        // one, resumed, must stop acting as master and follow. When the controllers elected
        // one during the stop, the failover must complete (bounded) after it too.
        const hold = this.between(1000, 7000);
        rc.sigstop(m);
        try {
          fo = await rc.waitFailover(s, m, epoch, t0, t0 + hold);
          const left = t0 + hold - Date.now();
          if (left > 0) await sleep(left);
        } finally {
          rc.sigcont(m);
        }
        if (!fo.master && fo.electedMs !== null) {
          fo = await rc.waitFailover(s, m, epoch, t0, t0 + ms(FAILOVER_BOUND_MS), fo.electedMs);
        }
        detail = `stopped=${hold}ms`;
      }
      if (fo.master) {
        this.repl.failovers.push({ kind, set: s.name, startUs, ms: fo.servingMs, electedMs: fo.electedMs });
        detail += ` failover: elected ${fo.electedMs} ms, ${fo.master.name} serving ${fo.servingMs} ms after the fault`;
      } else if (fo.electedMs !== null || kind === 'master-kill') {
        this.problems.push(`${kind} of ${m.name}: no new master of ${s.name} serving within ${ms(FAILOVER_BOUND_MS)} ms ` +
          `(elected: ${fo.electedMs === null ? 'no' : `${fo.electedMs} ms`})`);
        detail += ' failover: NONE within the bound';
      } else {
        this.repl.noFailover++;
        detail += ' no failover (the controllers kept it)';
      }
    } else if (kind === 'slave-kill' || kind === 'slave-stop') {
      const victim = this.pick(s.brokers.filter(b => b !== st.master));
      target = victim.name;
      if (kind === 'slave-kill') {
        await rc.kill9(victim);
        const down = this.between(500, 3000);
        await sleep(down);
        rc.startBroker(victim);
        await rc.waitRouted(victim, ms(30000));
        detail = `down=${down}ms`;
      } else {
        const hold = this.between(1000, 7000);
        rc.sigstop(victim);
        try {
          await sleep(hold);
        } finally {
          rc.sigcont(victim);
        }
        detail = `stopped=${hold}ms`;
      }
    } else if (kind === 'controller-kill') {
      const wantLeader = this.rng() < 0.5;
      const other = this.pick(rc.controllers);
      const leader = wantLeader ? await rc.leader() : null;
      const victim = leader || other;
      target = `${victim.name}${leader ? '(leader)' : ''}`;
      await rc.kill9(victim);
      const down = this.between(500, 3000);
      await sleep(down);
      rc.startController(victim);
      await rc.waitListening(victim, victim.name);
      await waitFor(async () => rc.controllers.every(c => c.proc.running) && await rc.leader(),
        { timeoutMs: ms(20000), intervalMs: 200, what: 'a Raft leader once the controller is back' });
      detail = `down=${down}ms`;
    } else if (kind === 'namesrv-kill') {
      target = 'namesrv';
      await rc.kill9(rc.namesrv);
      const down = this.between(500, 3000);
      await sleep(down);
      rc.startNamesrv();
      await rc.waitListening(rc.namesrv, 'the name server');
      // Every broker registers again (registerNameServerPeriod 10 s; a slave without master at once).
      await waitFor(async () => {
        const r = await rc.routes();
        return rc.sets.every(x => x.brokers.every(b => Object.values(r[x.name] || {}).includes(b.addr)));
      }, { timeoutMs: ms(40000), intervalMs: 200, what: 'every broker registered at the restarted name server' });
      detail = `down=${down}ms`;
    } else if (kind === 'consumer-kill') {
      ({ target, detail } = await this.consumerKill());
    } else if (kind === 'producer-kill') {
      ({ target, detail } = await this.producerKill());
    }
    this.recordFault({ type: REPL_CHECK_TYPE[kind] || kind, kind, target, startUs, endUs: monoUs(), detail });
    return true;
  }

  async waitRegistered(b) {
    await waitFor(() => this.cluster.isBrokerRegistered(b.name, b.addr).catch(() => false),
      { timeoutMs: ms(40000), intervalMs: 200, what: `${b.name} registered at the name server` });
  }

  async fault(type) {
    if (this.replicated) return this.replFault(type);
    const startUs = monoUs();
    let target;
    let detail = '';
    if (type === 'broker-kill') {
      const b = this.pick(this.brokers);
      target = b.name;
      await b.proc.stop({ signal: 'SIGKILL' });
      const down = this.between(500, 3000);
      await sleep(down);
      await b.start();
      detail = `down=${down}ms`;
    } else if (type === 'namesrv-kill') {
      const ns = this.cluster.namesrv;
      target = 'namesrv';
      await ns.stop({ signal: 'SIGKILL' });
      const down = this.between(500, 3000);
      await sleep(down);
      ns.start();
      await this.cluster._waitListening(ns, this.cluster.nsPort, 'the name server to accept connections');
      for (const b of this.brokers) await this.waitRegistered(b);
      detail = `down=${down}ms`;
    } else if (type === 'consumer-kill') {
      ({ target, detail } = await this.consumerKill());
    } else if (type === 'broker-stop') {
      const b = this.pick(this.brokers);
      target = b.name;
      const hold = SEND_TIMEOUT_MS + this.between(1000, 3000);
      this.stopped.add(b.proc.pid);
      process.kill(b.proc.pid, 'SIGSTOP');
      try {
        await sleep(hold);
      } finally {
        process.kill(b.proc.pid, 'SIGCONT');
        this.stopped.delete(b.proc.pid);
      }
      detail = `stopped=${hold}ms`;
    } else if (type === 'producer-kill') {
      ({ target, detail } = await this.producerKill());
    }
    this.recordFault({ type, target, startUs, endUs: monoUs(), detail });
    return true;
  }

  async runFaults() {
    const end = Date.now() + this.opts.seconds * 1000;
    this.faultEnd = end;
    while (Date.now() < end && this.faults.length < this.opts.maxFaults) {
      const gap = this.between(1000, 4000);
      if (Date.now() + gap >= end) break;
      await sleep(gap);
      if (this.problems.length) break;
      await this.fault(this.nextFault());
      if (this.problems.length) break;
    }
  }

  /** Replicated mode: the figures (failover and heal times, first ACK of a set after its failover). */
  replReport(parsed) {
    const r = this.repl;
    const stats = list => {
      if (!list.length) return 'n=0';
      const v = list.slice().sort((a, b) => a - b);
      return `n=${v.length} median=${v[Math.floor((v.length - 1) / 2)]} max=${v[v.length - 1]}`;
    };
    // First ACK from the failed-over set of a send started after the fault began.
    const firstAck = [];
    for (const f of r.failovers) {
      let best = Infinity;
      for (const m of parsed.msgs.values()) {
        for (const a of m.attempts) {
          if (a.outcome === 'ack' && a.t0 >= f.startUs && a.loc.startsWith(`${f.set}/`)) best = Math.min(best, a.t1);
        }
      }
      if (best !== Infinity) firstAck.push(Math.round((best - f.startUs) / 1000));
    }
    const kinds = {};
    for (const f of this.faults) kinds[f.kind || f.type] = (kinds[f.kind || f.type] || 0) + 1;
    return `REPL fault kinds ${JSON.stringify(kinds)}\n` +
      `REPL failovers: elected ${stats(r.failovers.map(f => f.electedMs))} ms, serving ${stats(r.failovers.map(f => f.ms))} ms ` +
      `(kill or stop -> the controllers name a new master -> the route names it; bound ${ms(FAILOVER_BOUND_MS)}); ` +
      `master stops without failover=${r.noFailover}\n` +
      `REPL first ACK from the set after its failover: ${stats(firstAck)} ms\n` +
      `REPL heal before a broker fault: ${stats(r.heals)} ms (bound ${ms(HEAL_BOUND_MS)})\n`;
  }

  readHistories() {
    return this.allClients.map(c => ({
      name: c.name,
      role: c.role,
      group: c.role === 'producer' ? null : GROUPS[c.role].name,
      text: fs.existsSync(c.logFile) ? fs.readFileSync(c.logFile, 'utf8') : '',
    }));
  }

  async main() {
    const o = this.opts;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `chaos-run-${o.seed}-`));
    const allFaults = this.replicated ? Object.keys(REPL_FAULTS) : FAULT_TYPES;
    const modeArgs = (this.replicated ? ` --mode replicated --set-size ${o.setSize}` : '') +
      (o.faults.length !== allFaults.length ? ` --faults ${o.faults.join(',')}` : '');
    this.log(`seed=${o.seed} seconds=${o.seconds} maxFaults=${o.maxFaults} mode=${o.mode} runDir=${this.dir} ` +
      `(reproduce: node tests/chaos/chaos.js --seed ${o.seed} --seconds ${o.seconds}${modeArgs})`);
    let ok = false;
    let result = null;
    let replText = '';
    try {
      if (this.replicated) {
        if (o.faults.includes('master-partition')) {
          const why = NetHosts.unavailable();
          if (why && o.faultsGiven) throw new Error(`--faults master-partition: ${why}`);
          if (why) {
            o.faults = o.faults.filter(f => f !== 'master-partition');
            this.log(`no master-partition faults: ${why}`);
          } else {
            this.net = new NetHosts(2 * o.setSize);
            this.net.setup();
          }
        }
        this.cluster = new ReplCluster({ setSize: o.setSize, topic: TOPIC, queues: QUEUES_PER_BROKER, net: this.net });
        await this.cluster.start();
        this.log(`cluster up: namesrv ${this.cluster.nsAddr}, controllers ` +
          `${this.cluster.controllers.map(c => c.addr).join(' ')}, ` +
          this.cluster.sets.map(x => `${x.name} [${x.brokers.map(b => `${b.id}=${b.addr}`).join(' ')}]`).join(', '));
      } else {
        this.cluster = new harness.Cluster({
          name: 'chaos',
          flushDiskType: 'SYNC_FLUSH',
          extraBrokers: [ 'broker-b' ],
          brokerConf: { registerNameServerPeriod: 10000 },
        });
        await this.cluster.start();
        await createTopicOn(remoting, this.cluster, TOPIC, QUEUES_PER_BROKER,
          this.brokers.map(b => ({ brokerName: b.name, addr: b.addr })));
        this.log(`cluster up: namesrv ${this.cluster.nsAddr}, ${this.brokers.map(b => `${b.name} ${b.addr}`).join(', ')}`);
      }

      for (const [ key, g ] of Object.entries(GROUPS)) {
        for (let i = 1; i <= g.members; i++) this.startConsumer(key, `${key}-${i}`);
      }
      for (const c of this.consumers) await c.waitStarted();
      for (let i = 0; i < PRODUCERS; i++) this.startProducer();
      for (const p of this.producers) await p.waitStarted();
      await waitFor(() => check.parse(this.readHistories()).acked.size >= 50,
        { timeoutMs: ms(30000), intervalMs: 200, what: 'the first 50 acknowledged sends' });

      this.log('fault phase');
      await this.runFaults();
      this.log(`fault phase over: ${this.faults.length} faults`);
      if (this.replicated && !this.problems.length) {
        for (const x of this.cluster.sets) {
          try {
            await this.cluster.waitHealthy(x, ms(HEAL_BOUND_MS));
          } catch (e) {
            this.problems.push(`set ${x.name} did not heal within ${ms(HEAL_BOUND_MS)} ms after the fault phase: ${e.message}`);
          }
        }
      }

      for (const p of this.producers) {
        const r = await p.stop();
        if (r.forced || r.code !== 0) this.problems.push(`producer ${p.name} did not exit cleanly on SIGTERM (${JSON.stringify(r)})`);
      }
      // Every acknowledged copy delivered to every group (bounded wait), then the consumers stop.
      let pending = null;
      try {
        await waitFor(() => {
          pending = check.undelivered(check.parse(this.readHistories()), Object.values(GROUPS).map(g => g.name));
          return pending.total === 0;
        }, { timeoutMs: ms(120000), intervalMs: 1000,
          what: () => `every acknowledged message delivered to every group (missing: ${JSON.stringify(pending && pending.byGroup)})` });
        this.log('every acknowledged message was delivered to every group');
      } catch (e) {
        this.log(`drain deadline passed: ${e.message}`);
      }
      for (const c of this.consumers) this.events.push({ type: 'consumer-stop', target: c.name, startUs: monoUs() });
      await Promise.all(this.consumers.map(async c => {
        const r = await c.stop();
        if (r.forced || r.code !== 0) this.problems.push(`consumer ${c.name} did not exit cleanly on SIGTERM (${JSON.stringify(r)})`);
      }));

      // A client built with FERRY_SANITIZE reports leaks and errors on its stderr.
      for (const c of this.allClients) {
        const err = path.join(this.dir, `${c.name}.stderr`);
        const text = fs.existsSync(err) ? fs.readFileSync(err, 'utf8') : '';
        const m = /(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:)[^]*/.exec(text);
        if (m) this.problems.push(`sanitizer report in ${c.name}.stderr:\n${m[0].split('\n').slice(0, 30).join('\n')}`);
      }
      const hist = this.readHistories();
      const parsed = check.parse(hist);
      if (this.replicated) {
        // Every replica of a set holds every acknowledged id where its ACK put it, and replicas
        // never disagree on a (queue, offset).
        const rep = await this.cluster.checkReplicas(parsed.acked, ms(60000));
        replText = this.replReport(parsed) + `REPL replicas: messages per set ${JSON.stringify(rep.counts)}, ` +
          `${rep.problems.length ? `${rep.problems.length} problem(s)` : 'every replica agrees and holds every acknowledged id'}\n`;
        for (const p of rep.problems) this.problems.push(p);
      }
      result = check.analyze(parsed, {
        groups: Object.values(GROUPS).map(g => ({ name: g.name, orderly: g.orderly })),
        faults: this.faults,
        events: this.events,
      });
      fs.writeFileSync(path.join(this.dir, 'history.txt'), check.mergedHistory(hist, this.faults));
      process.stdout.write(result.report + replText);
      for (const p of this.problems) process.stdout.write(`PROBLEM ${p}\n`);
      ok = result.ok && this.problems.length === 0;
    } catch (e) {
      process.stdout.write(`chaos: ERROR ${e.stack || e}\n`);
      ok = false;
    } finally {
      for (const pid of this.stopped) {
        try { process.kill(pid, 'SIGCONT'); } catch (_) { /* gone */ }
      }
      for (const c of this.allClients) {
        if (c.running) await c.kill9();
      }
      if (this.cluster && this.cluster.dir) {
        for (const f of this.cluster.logFiles) {
          try { fs.copyFileSync(f, path.join(this.dir, `server-${path.basename(f)}`)); } catch (_) { /* none */ }
        }
        const problems = await this.cluster.stop();
        for (const p of problems) process.stdout.write(`PROBLEM server shutdown: ${p}\n`);
        if (problems.length) ok = false;
      }
      if (this.net) this.net.teardown();
    }
    const r = result || { acked: 0, lost: 0, duplicates: 0, reordered: 0 };
    process.stdout.write(`RESULT bench=${this.replicated ? 'chaos_replicated' : 'chaos'} acked=${r.acked} lost=${r.lost} duplicates=${r.duplicates} ` +
      `reordered=${r.reordered} faults=${this.faults.length}\n`);
    if (ok && !o.keep) {
      fs.rmSync(this.dir, { recursive: true, force: true });
      process.stdout.write(`chaos: PASS (seed ${o.seed})\n`);
    } else {
      process.stdout.write(`chaos: ${ok ? 'PASS' : 'FAIL'} (seed ${o.seed}); run directory kept: ${this.dir}\n`);
    }
    return ok;
  }
}

if (require.main === module) {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`chaos: ${e.message}\n`);
    process.exit(2);
  }
  new ChaosRun(opts).main().then(ok => process.exit(ok ? 0 : 1), e => {
    process.stderr.write(`chaos: ${e.stack || e}\n`);
    process.exit(1);
  });
}

module.exports = { ChaosRun, parseArgs, rngFrom };
