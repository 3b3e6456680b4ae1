'use strict';
// The cluster of the chaos suite's replicated mode (README.md, "Replicated mode"): three
// mqcontrollers, one mqnamesrv and two broker sets (broker-a, broker-b) of 2 or 3 mqbrokers each
// in controller mode (docs/CONTROLLER.md: SYNC_MASTER + SYNC_FLUSH, haSecret, short timers), on
// free loopback ports, in a private temp dir that is removed at the end. It starts and restarts
// processes and answers the orchestrator's questions: who is master of a set (the controllers'
// agreed replica info, the name server's route), is a set healthy (every member up, in the sync
// state set and routed), do the replicas of a set agree. The faults themselves are chaos.js's.
// With `net` (a NetHosts of tests/integration/netns.js, set up) every broker runs on its own
// network-namespace host and the name server and controllers listen on the bridge address, so
// that a broker's network can be cut (cut/heal), not only its process stopped.

const fs = require('node:fs');
const os = require('node:os');
const net = require('node:net');
const path = require('node:path');
const { ServerProcess, findBinary, freePort, freeBrokerPort, waitFor, checkServersAlive, ms, sleep, tail } =
  require('../compat/harness');
const remoting = require('../compat/remoting');

const { RemotingConnection, RESP, REQ } = remoting;
const CTL = { REPLICA_INFO: 1004, METADATA: 1005 };
const GET_ALL_TOPIC_CONFIG = 21;

// Timers (docs/CONTROLLER.md). Config values, not scaled by FERRY_TEST_TIMEOUT_MULTIPLIER.
const LEASE_MS = 3000; // controllerHeartBeatTimeoutMills, controllers and brokers
const TIMERS = {
  scanNotActiveBrokerInterval: 500,
  brokerHeartbeatInterval: 200,
  checkSyncStateSetPeriod: 500,
  haSendHeartbeatInterval: 500,
};
const CLUSTER = 'ChaosReplCluster';
const SET_NAMES = [ 'broker-a', 'broker-b' ];
const SECRET = 'chaos-replicated-secret';
const OWNER_FILE = '.ferry-harness-owner'; // harness.js removes the dir when its owner died

function writeConf(file, keys) {
  fs.writeFileSync(file, Object.entries(keys).map(([ k, v ]) => `${k}=${v}`).join('\n') + '\n');
}

/** One cached remoting connection to an address; dropped after any error (a stopped peer). */
class Link {
  constructor(addr) {
    this.addr = addr;
    this.conn = null;
  }

  async invoke(code, fields = {}, { timeoutMs = 1000, body } = {}) {
    try {
      if (!this.conn || this.conn.isClosed) {
        this.conn = null;
        this.conn = await RemotingConnection.connect(this.addr, timeoutMs);
      }
      return await this.conn.invoke(code, fields, { timeoutMs, body });
    } catch (e) {
      this.close();
      throw e;
    }
  }

  close() {
    const c = this.conn;
    this.conn = null;
    if (c) c.close().catch(() => {});
  }
}

function listening(host, port) {
  return new Promise(resolve => {
    const s = net.connect({ host, port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

class ReplCluster {
  /**
   * @param {object} opts - setSize (2 or 3 brokers per set), topic and queues (created on each
   *   set's first master and copied by its slaves before start() returns)
   */
  constructor({ setSize = 3, topic, queues, net: hosts = null }) {
    if (setSize !== 2 && setSize !== 3) throw new Error('--set-size must be 2 or 3');
    this.setSize = setSize;
    this.net = hosts;
    this.hostIp = hosts ? hosts.bridgeIp : '127.0.0.1'; // the name server's and the controllers'
    this.cutHosts = new Set(); // broker hosts whose link is down (healed at the end in any case)
    this.topic = topic;
    this.queues = queues;
    this.dir = null;
    this.controllers = []; // { name, port, addr, conf, proc, link }
    this.namesrv = null; // { port, addr, conf, proc, link }
    this.sets = []; // { name, brokers: [{ id, set, name, port, addr, haPort, conf, proc, link }] }
    this.usedPorts = new Set();
    this.stoppedPids = new Set(); // processes under SIGSTOP (SIGCONT at the end in any case)
    this.env = null;
  }

  get nsAddr() {
    return this.namesrv.addr;
  }

  get brokers() {
    return this.sets.flatMap(s => s.brokers);
  }

  get processes() {
    return [ ...this.brokers, this.namesrv, ...this.controllers ].filter(p => p && p.proc);
  }

  get logFiles() {
    return this.processes.map(p => p.proc.logFile);
  }

  set(name) {
    return this.sets.find(s => s.name === name);
  }

  async uniquePort(pick = freePort) {
    for (;;) {
      const p = await pick();
      if (![ p - 2, p - 1, p, p + 1 ].some(x => this.usedPorts.has(x))) {
        this.usedPorts.add(p);
        return p;
      }
    }
  }

  // ---- processes ----

  startController(c) {
    c.proc = new ServerProcess(c.name, [ findBinary('mqcontroller'), '-c', c.conf ],
      { cwd: this.dir, env: this.env, logFile: path.join(this.dir, `${c.name}.log`) }).start();
  }

  startNamesrv() {
    const n = this.namesrv;
    n.proc = new ServerProcess('mqnamesrv', [ findBinary('mqnamesrv'), '-c', n.conf ],
      { cwd: this.dir, env: this.env, logFile: path.join(this.dir, 'namesrv.log') }).start();
  }

  startBroker(b) {
    const on = this.net ? this.net.exec(b.host) : [];
    b.proc = new ServerProcess(`mqbroker(${b.name})`, [ ...on, findBinary('mqbroker'), '-c', b.conf ],
      { cwd: this.dir, env: this.env, logFile: path.join(this.dir, `${b.name}.log`) }).start();
  }

  async waitListening(p, what) {
    await waitFor(async () => {
      p.proc.checkAlive(`waiting for ${what}`);
      return listening(p.ip || '127.0.0.1', p.port);
    }, { timeoutMs: ms(15000), what: `${what} to accept connections on port ${p.port}` });
  }

  async kill9(p) {
    p.link.close();
    this.stoppedPids.delete(p.proc.pid);
    await p.proc.stop({ signal: 'SIGKILL' });
  }

  sigstop(p) {
    this.stoppedPids.add(p.proc.pid);
    process.kill(p.proc.pid, 'SIGSTOP');
  }

  sigcont(p) {
    try { process.kill(p.proc.pid, 'SIGCONT'); } catch (_) { /* gone */ }
    this.stoppedPids.delete(p.proc.pid);
  }

  /** The broker's host loses its link: nothing reaches it, it reaches nothing. */
  cut(b) {
    this.net.cut(b.host);
    this.cutHosts.add(b.host);
  }

  heal(b) {
    this.net.heal(b.host);
    this.cutHosts.delete(b.host);
  }

  isStopped(p) {
    return p.proc && this.stoppedPids.has(p.proc.pid);
  }

  // ---- questions ----

  /** Replica info of a set from one controller: { master, masterAddress, masterEpoch, syncStateSet }. */
  async replicaInfoFrom(c, setName) {
    const r = await c.link.invoke(CTL.REPLICA_INFO, { brokerName: setName }, { timeoutMs: 1000 });
    if (r.code !== RESP.SUCCESS) return { code: r.code, remark: r.remark };
    const body = r.body.length ? JSON.parse(r.body.toString()) : {};
    return { master: r.extFields.masterBrokerId === undefined ? null : Number(r.extFields.masterBrokerId),
      masterAddress: r.extFields.masterAddress || null, masterEpoch: Number(r.extFields.masterEpoch),
      syncStateSet: (body.syncStateSet || []).slice().sort() };
  }

  /** The replica info of a set that every running controller answers alike, else null. */
  async agreedInfo(setName) {
    const alive = this.controllers.filter(c => c.proc.running && !this.isStopped(c));
    const infos = [];
    for (const c of alive) {
      try { infos.push(await this.replicaInfoFrom(c, setName)); } catch (e) { return null; }
    }
    const first = JSON.stringify(infos[0]);
    return infos.length && infos[0].code === undefined && infos.every(x => JSON.stringify(x) === first) ? infos[0] : null;
  }

  /** The controller that says it leads, when exactly one running controller does; else null. */
  async leader() {
    const leaders = [];
    for (const c of this.controllers.filter(x => x.proc.running)) {
      try {
        const r = await c.link.invoke(CTL.METADATA, {}, { timeoutMs: 1000 });
        if (r.code === RESP.SUCCESS && r.extFields.isLeader === 'true') leaders.push(c);
      } catch (_) { /* down or starting */ }
    }
    return leaders.length === 1 ? leaders[0] : null;
  }

  /** brokerAddrs of every set in the route of `topic` (the chaos topic by default): { set: { id: addr } }. */
  async routes(topic = this.topic) {
    return (await this.route(topic)).addrs;
  }

  /** The route of `topic`: { addrs: { set: { id: addr } }, queueDatas } (empty when there is none). */
  async route(topic = this.topic) {
    const r = await this.namesrv.link.invoke(REQ.GET_ROUTEINFO_BY_TOPIC, { topic }, { timeoutMs: 1000 });
    const out = { addrs: {}, queueDatas: [] };
    if (r.code !== RESP.SUCCESS) return out;
    const route = remoting.parseLenientJson(r.body);
    for (const bd of route.brokerDatas || []) out.addrs[bd.brokerName] = bd.brokerAddrs || {};
    out.queueDatas = route.queueDatas || [];
    return out;
  }

  /**
   * The state of a set now: { ok, why, info } where ok means every member runs (not stopped),
   * the controllers agree on a running master, every member is in the sync state set, and the
   * name server's route of the topic has the master as id 0 and lists every member.
   */
  async setState(s) {
    const down = s.brokers.filter(b => !b.proc.running || this.isStopped(b));
    if (down.length) return { ok: false, why: `down: ${down.map(b => b.name)}` };
    const info = await this.agreedInfo(s.name);
    if (!info || info.master === null) return { ok: false, why: `controllers: ${JSON.stringify(info)}`, info };
    const master = s.brokers.find(b => b.id === info.master);
    if (!master || info.masterAddress !== master.addr) return { ok: false, why: `master ${JSON.stringify(info)}`, info };
    if (info.syncStateSet.length !== s.brokers.length) return { ok: false, why: `sync state set ${info.syncStateSet}`, info };
    let addrs;
    try {
      addrs = (await this.routes())[s.name] || {};
    } catch (e) {
      return { ok: false, why: `name server: ${e.message}`, info };
    }
    if (addrs['0'] !== master.addr) return { ok: false, why: `route ${JSON.stringify(addrs)} (master ${master.addr})`, info };
    const listed = Object.values(addrs);
    if (!s.brokers.every(b => listed.includes(b.addr))) return { ok: false, why: `route ${JSON.stringify(addrs)}`, info };
    return { ok: true, info, master };
  }

  /** Waits until the set is healthy (setState); returns the ms it took. */
  async waitHealthy(s, timeoutMs) {
    const t0 = Date.now();
    let last = null;
    await waitFor(async () => (last = await this.setState(s)).ok,
      { timeoutMs, intervalMs: 200, what: () => `set ${s.name} healthy (${last && last.why})` });
    return Date.now() - t0;
  }

  /** The member the controllers name master of a set, or null. */
  async master(s) {
    const info = await this.agreedInfo(s.name);
    return info && info.master !== null ? s.brokers.find(b => b.id === info.master) || null : null;
  }

  /**
   * Polls until the controllers agree on a master of the set other than `old` with an epoch
   * above `oldEpoch` (elected) and the route names it id 0 (serving: it promoted itself and
   * registered as master), or until `deadline` (Date.now()). Returns { master, electedMs,
   * servingMs } (ms since t0; master and servingMs null at the deadline, electedMs null when
   * the controllers elected nobody; `electedMs` carries it over from an earlier call).
   */
  async waitFailover(s, old, oldEpoch, t0, deadline, electedMs = null) {
    for (;;) {
      checkServersAlive(() => `a failover of ${s.name}`);
      const info = await this.agreedInfo(s.name).catch(() => null);
      if (info && info.master !== null && info.master !== old.id && info.masterEpoch > oldEpoch) {
        if (electedMs === null) electedMs = Date.now() - t0;
        const nm = s.brokers.find(b => b.id === info.master);
        const addrs = (await this.routes().catch(() => ({})))[s.name] || {};
        if (nm && addrs['0'] === nm.addr) return { master: nm, electedMs, servingMs: Date.now() - t0 };
      }
      if (Date.now() >= deadline) return { master: null, electedMs, servingMs: null };
      await sleep(100); // poll interval: bounds the precision of the figures
    }
  }

  /** Waits until a restarted broker is listed under its set by the name server. */
  async waitRouted(b, timeoutMs) {
    await this.waitListening(b, b.name);
    await waitFor(async () => Object.values((await this.routes())[b.set] || {}).includes(b.addr),
      { timeoutMs, intervalMs: 200, what: `${b.name} (${b.addr}) in the route of ${this.topic}` });
  }

  // ---- start and stop ----

  async start() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-chaos-repl-'));
    fs.writeFileSync(path.join(this.dir, OWNER_FILE), String(process.pid));
    this.env = Object.assign({}, process.env, { HOME: this.dir });

    const raftPorts = [];
    for (let i = 0; i < 3; i++) raftPorts.push(await this.uniquePort());
    const peers = raftPorts.map((p, i) => `n${i}-127.0.0.1:${p}`).join(';');
    for (let i = 0; i < 3; i++) {
      const port = await this.uniquePort();
      const c = { name: `controller-n${i}`, port, ip: this.hostIp, addr: `${this.hostIp}:${port}`,
        conf: path.join(this.dir, `n${i}.conf`) };
      writeConf(c.conf, { controllerPeers: peers, controllerSelfId: `n${i}`,
        controllerStorePath: path.join(this.dir, `ctl-n${i}`), listenPort: port,
        scanNotActiveBrokerInterval: TIMERS.scanNotActiveBrokerInterval, controllerHeartBeatTimeoutMills: LEASE_MS });
      c.link = new Link(c.addr);
      this.controllers.push(c);
    }
    for (const c of this.controllers) this.startController(c);

    const nsPort = await this.uniquePort();
    const nsAddr = `${this.hostIp}:${nsPort}`;
    this.namesrv = { name: 'namesrv', port: nsPort, ip: this.hostIp, addr: nsAddr, conf: path.join(this.dir, 'namesrv.conf'),
      link: new Link(nsAddr) };
    writeConf(this.namesrv.conf, { listenAddress: this.hostIp, listenPort: nsPort,
      kvConfigPath: path.join(this.dir, 'namesrv', 'kvConfig.json') });
    this.startNamesrv();
    await this.waitListening(this.namesrv, 'the name server');
    for (const c of this.controllers) await this.waitListening(c, c.name);
    await waitFor(() => this.leader(), { timeoutMs: ms(20000), what: 'a Raft leader among the three controllers' });

    const controllerAddr = this.controllers.map(c => c.addr).join(';');
    for (const setName of SET_NAMES) {
      const s = { name: setName, brokers: [] };
      for (let id = 1; id <= this.setSize; id++) {
        const port = await this.uniquePort(freeBrokerPort);
        const haPort = await this.uniquePort();
        const name = `${setName}-${id}`;
        const host = this.brokers.length + s.brokers.length;
        const ip = this.net ? this.net.ipOf(host) : '127.0.0.1';
        const b = { id, set: setName, name, host, ip, port, addr: `${ip}:${port}`, haPort,
          conf: path.join(this.dir, `${name}.conf`), link: new Link(`${ip}:${port}`) };
        writeConf(b.conf, Object.assign({
          brokerClusterName: CLUSTER, brokerName: setName, brokerId: id, listenPort: port, bindAddress: ip,
          brokerIP1: ip, namesrvAddr: this.namesrv.addr, storePathRootDir: path.join(this.dir, `store-${name}`),
          mappedFileSizeCommitLog: 64 * 1024 * 1024, mappedFileSizeConsumeQueue: 300000 * 20,
          maxHashSlotNum: 50000, maxIndexNum: 200000, autoCreateTopicEnable: true, autoCreateSubscriptionGroup: true,
          registerNameServerPeriod: 10000,
          enableControllerMode: true, controllerAddr, brokerRole: 'SYNC_MASTER', flushDiskType: 'SYNC_FLUSH',
          haSecret: SECRET, haListenPort: haPort, controllerHeartBeatTimeoutMills: LEASE_MS, inSyncReplicas: 1,
          syncFlushTimeout: 3000, brokerHeartbeatInterval: TIMERS.brokerHeartbeatInterval,
          checkSyncStateSetPeriod: TIMERS.checkSyncStateSetPeriod, haSendHeartbeatInterval: TIMERS.haSendHeartbeatInterval,
        }));
        s.brokers.push(b);
      }
      this.sets.push(s);
    }
    // The first broker of each set registers first and becomes its master; then the others.
    for (const s of this.sets) {
      const first = s.brokers[0];
      this.startBroker(first);
      await this.waitListening(first, first.name);
      await waitFor(async () => {
        const info = await this.agreedInfo(s.name);
        return info && info.master === first.id && ((await this.routes('TBW102'))[s.name] || {})['0'] === first.addr;
      }, { timeoutMs: ms(20000), what: `${first.name} to be master of ${s.name}` });
    }
    for (const s of this.sets) {
      for (const b of s.brokers.slice(1)) this.startBroker(b);
      for (const b of s.brokers.slice(1)) await this.waitListening(b, b.name);
    }
    // The topic on each master; every slave copies it (slave sync) before anything else runs,
    // so that whichever member is elected later serves it.
    for (const s of this.sets) {
      const m = s.brokers[0];
      await remoting.withConnection(m.addr, conn => remoting.createTopic(conn, this.topic, this.queues));
      for (const b of s.brokers.slice(1)) {
        await waitFor(async () => {
          const r = await b.link.invoke(GET_ALL_TOPIC_CONFIG, {}, { timeoutMs: ms(5000) });
          return r.code === RESP.SUCCESS && r.body && r.body.toString().includes(`"${this.topic}"`);
        }, { timeoutMs: ms(30000), intervalMs: 200, what: `${b.name} to copy topic ${this.topic} from its master` });
      }
    }
    for (const s of this.sets) await this.waitHealthy(s, ms(30000));
    await waitFor(async () => {
      const r = await this.route();
      return this.sets.every(s => r.queueDatas.some(q => q.brokerName === s.name && Number(q.writeQueueNums) === this.queues));
    }, { timeoutMs: ms(15000), what: `the route of ${this.topic} with ${this.queues} queues on every set` });
    return this;
  }

  /**
   * Every replica of every set holds the same message at every (queue, offset) of the topic,
   * once each replica has caught up with its master (bounded wait), and every acknowledged id
   * sits where its ACK put it on every replica. `acked`: Map id -> "set/queue/offset".
   * Returns a list of problems (empty when all holds) and the message count per set.
   */
  async checkReplicas(acked, timeoutMs) {
    const problems = [];
    const counts = {};
    for (const s of this.sets) {
      const m = await this.master(s);
      if (!m) {
        problems.push(`replicas: ${s.name} has no master`);
        continue;
      }
      let ends = null;
      try {
        await waitFor(async () => {
          ends = [];
          for (const b of s.brokers) ends.push(JSON.stringify(await this.maxOffsets(b)));
          return ends.every(e => e === ends[0]);
        }, { timeoutMs, intervalMs: 200, what: `the replicas of ${s.name} to reach the same queue ends` });
      } catch (e) {
        problems.push(`replicas: ${s.name}: ${s.brokers.map((b, i) => `${b.name} ${ends && ends[i]}`).join(', ')} ` +
          `(${e.message})`);
        continue;
      }
      const reads = [];
      for (const b of s.brokers) reads.push([ b.name, await this.readAll(b) ]);
      const byPos = new Map();
      for (const [ who, msgs ] of reads) {
        for (const [ pos, key ] of msgs) {
          const p = byPos.get(pos);
          if (p && p.key !== key) problems.push(`replicas: ${s.name} ${pos} holds ${p.key} on ${p.who} but ${key} on ${who}`);
          else if (!p) byPos.set(pos, { key, who });
        }
      }
      counts[s.name] = byPos.size;
      for (const [ id, loc ] of acked) {
        const [ set, q, off ] = loc.split('/');
        if (set !== s.name) continue;
        for (const [ who, msgs ] of reads) {
          const key = msgs.get(`${q}:${off}`);
          if (key !== id) problems.push(`replicas: ${id} acknowledged at ${loc}; ${who} holds ${key || 'nothing'} there`);
        }
      }
    }
    return { problems: problems.slice(0, 20).concat(problems.length > 20 ? [ `... ${problems.length - 20} more` ] : []),
      counts };
  }

  async maxOffsets(b) {
    const out = [];
    for (let q = 0; q < this.queues; q++) {
      const r = await b.link.invoke(REQ.GET_MAX_OFFSET, { topic: this.topic, queueId: q }, { timeoutMs: ms(5000) });
      if (r.code !== RESP.SUCCESS) throw new Error(`GET_MAX_OFFSET ${this.topic}/${q} on ${b.name}: ${r.code} ${r.remark}`);
      out.push(Number(r.extFields.offset));
    }
    return out;
  }

  /** Every message of the topic on a broker: Map "queue:offset" -> KEYS. Throws on a hole. */
  async readAll(b) {
    return remoting.withConnection(b.addr, async conn => {
      const out = new Map();
      for (let q = 0; q < this.queues; q++) {
        const max = await remoting.getMaxOffset(conn, this.topic, q);
        let off = 0;
        let retries = 0;
        while (off < max) {
          const r = await remoting.pullMessages(conn, { group: 'CID_chaos_replica_check', topic: this.topic, queueId: q,
            offset: off, maxNums: 32, timeoutMs: ms(5000) });
          if (r.code === RESP.PULL_RETRY_IMMEDIATELY && retries++ < 20) continue;
          if (r.code !== RESP.SUCCESS || !r.msgs.length || !(r.nextBeginOffset > off)) {
            throw new Error(`PULL ${b.name} ${this.topic}/${q}@${off} (max ${max}): code ${r.code} ${r.remark}`);
          }
          for (const m of r.msgs) out.set(`${q}:${m.queueOffset}`, m.keys);
          off = r.nextBeginOffset;
        }
      }
      return out;
    });
  }

  /**
   * Stops everything (SIGCONT first for stopped ones; SIGTERM, brokers first) and removes the
   * dir. Returns problems: a server that did not exit 0 by itself after SIGTERM, sanitizer reports.
   */
  async stop() {
    const problems = [];
    for (const p of this.processes) if (this.isStopped(p)) this.sigcont(p);
    for (const h of this.cutHosts) this.net.heal(h);
    this.cutHosts.clear();
    for (const p of this.processes) p.link.close();
    for (const p of this.processes) {
      const srv = p.proc;
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
    if (this.dir && !process.env.FERRY_KEEP_TMP) fs.rmSync(this.dir, { recursive: true, force: true });
    return problems;
  }
}

module.exports = { ReplCluster, LEASE_MS, TIMERS };
