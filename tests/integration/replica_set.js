'use strict';
// A broker set in controller mode (docs/CONTROLLER.md) with real processes on free loopback
// ports, for the integration tests failover.test.js and ha_admin.test.js: three mqcontrollers,
// one mqnamesrv and mqbrokers of one set (brokerId 1, 2, 3 by default, enableControllerMode,
// SYNC_MASTER flavour, SYNC_FLUSH, inSyncReplicas=1), driven by the remoting client of
// tests/compat. Not a *.test.js file: not registered as a test of its own.
//
// new ReplicaSet(opts) makes the temp dir (removed at exit unless FERRY_KEEP_TMP); then
// startControllers(), startNamesrv(), defineBrokers() write the configs and start the
// processes; the helpers read what the controllers and the name server say (agreedInfo,
// routeAddrs), send and read messages (sendOn, readAll), and check replicas (assertConsistent,
// assertAckedIn). stopAll() stops every process (SIGTERM) and closes every link; it returns
// the processes that did not stop cleanly. stepper() makes node:test steps that are skipped
// once one failed and print every log tail on a failure.
//
// With opts.net (a NetHosts of netns.js, set up) the brokers run on network-namespace hosts
// (broker k on host k, advertised at that host's address) and the name server and controllers
// listen on the bridge address, so that a test can cut a broker's network (partition.test.js).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const net = require('node:net');
const path = require('node:path');
const { ServerProcess, findBinary, freePort, freeBrokerPort, waitFor, ms, sleep, tail, withLogsOnFailure } =
  require('../compat/harness');
const remoting = require('../compat/remoting');

const { RemotingConnection, RESP } = remoting;
const CTL = { ELECT: 1002, REGISTER: 1003, REPLICA_INFO: 1004, METADATA: 1005, SYNC_STATE_DATA: 1006 };

// ---- connections ------------------------------------------------------------------------------

/** A connection to one address, opened again when it closed. */
class Link {
  constructor(addr) {
    this.addr = addr;
    this.conn = null;
    this.opening = null;
  }

  async connection() {
    if (!this.conn || this.conn.isClosed) {
      if (!this.opening) {
        this.opening = RemotingConnection.connect(this.addr, 1000)
          .then(c => { this.conn = c; return c; })
          .finally(() => { this.opening = null; });
      }
      return this.opening;
    }
    return this.conn;
  }

  async invoke(code, fields = {}, opts = {}) {
    const conn = await this.connection();
    return conn.invoke(code, fields, { timeoutMs: opts.timeoutMs || ms(3000), body: opts.body });
  }

  async close() {
    const c = this.conn;
    this.conn = null;
    if (c) await c.close();
  }
}

function writeConf(file, keys) {
  fs.writeFileSync(file, Object.entries(keys).map(([ k, v ]) => `${k}=${v}`).join('\n') + '\n');
}

// ---- checks on what replicas hold -------------------------------------------------------------

/** Every key sits at one place on a replica, and replicas never disagree on a (queue, offset). */
function assertConsistent(reads) {
  const byPos = new Map(); // "q:off" -> { key, who }
  const byKey = new Map(); // key -> { pos, who }
  for (const [ who, msgs ] of reads) {
    const seen = new Map();
    for (const [ pos, m ] of msgs) {
      assert.ok(!seen.has(m.key), `${who}: key ${m.key} at ${seen.get(m.key)} and at ${pos}`);
      seen.set(m.key, pos);
      const p = byPos.get(pos);
      if (p) assert.equal(m.key, p.key, `(queue:offset) ${pos} holds ${p.key} on ${p.who} but ${m.key} on ${who}`);
      else byPos.set(pos, { key: m.key, who });
      const k = byKey.get(m.key);
      if (k) assert.equal(pos, k.pos, `key ${m.key} at ${k.pos} on ${k.who} but at ${pos} on ${who}`);
      else byKey.set(m.key, { pos, who });
    }
  }
}

/** Every acknowledged send is in msgs at the queue / offset / CommitLog offset its SEND_OK named, with its body. */
function assertAckedIn(who, msgs, acked) {
  let missing = 0;
  const examples = [];
  for (const a of acked) {
    const m = msgs.get(`${a.queueId}:${a.queueOffset}`);
    if (m && m.key === a.key) {
      assert.equal(m.body, a.body, `${who}: body of acked ${a.key}`);
      assert.equal(m.phys, a.phys, `${who}: CommitLog offset of acked ${a.key} (its msgId names ${a.phys})`);
      continue;
    }
    missing++;
    if (examples.length < 5) {
      examples.push(`${a.key} acked by broker ${a.broker} at ${a.queueId}:${a.queueOffset}, found ` +
        `${m ? m.key : 'nothing'} there`);
    }
  }
  assert.equal(missing, 0, `${who}: ${missing} of ${acked.length} acknowledged messages are not where their ` +
    `SEND_OK put them, e.g. ${examples.join('; ')}`);
}

// ---- the set --------------------------------------------------------------------------------

class ReplicaSet {
  /**
   * name: temp dir prefix and log label; cluster, set (brokerName), secret (haSecret), topic,
   * queues, group (for pulls); lease (controllerHeartBeatTimeoutMills of controllers and
   * brokers), scan (scanNotActiveBrokerInterval); brokerIds; brokerConf: extra broker keys.
   */
  constructor({ name = 'replica-set', cluster = 'FerryReplicaCluster', set = 'rs-set', secret = 'replica-set-secret',
    topic = 'ReplicaSetTopic', queues = 4, group = 'CID_replica_set_check', lease = 3000, scan = 500,
    brokerIds = [ 1, 2, 3 ], brokerConf = {}, net = null } = {}) {
    Object.assign(this, { name, cluster, set, secret, topic, queues, group, lease, scan, brokerIds, brokerConf, net });
    this.hostIp = net ? net.bridgeIp : '127.0.0.1'; // where the name server and controllers listen
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `ferry-${name}-`));
    fs.writeFileSync(path.join(this.dir, '.ferry-harness-owner'), String(process.pid));
    const dir = this.dir;
    process.on('exit', () => {
      if (!process.env.FERRY_KEEP_TMP) fs.rmSync(dir, { recursive: true, force: true });
      else process.stderr.write(`${name}: keeping ${dir} (FERRY_KEEP_TMP)\n`);
    });
    this.env = Object.assign({}, process.env, { HOME: dir });
    this.controllers = []; // { name, port, addr, conf, proc, link }
    this.brokers = []; // { id, port, addr, haPort, store, conf, proc, link }
    this.namesrv = null; // { port, addr, proc, link }
    this.links = new Set();
    this.usedPorts = new Set();
    this.topicCreated = false;
    this.lastRoute = '(none yet)';
    this.lastInfos = '(none yet)';
    const self = this;
    /** withLogsOnFailure wants a cluster: the logs of every process of this set. */
    this.logs = {
      name: `int-${name}`,
      dir,
      logsText(maxLines) {
        return self.allProcs().map(p => `----- ${path.basename(p.logFile)} (last ${maxLines} lines) -----\n` +
          tail(p.logFile, maxLines)).join('\n');
      },
    };
  }

  link(addr) {
    const l = new Link(addr);
    this.links.add(l);
    return l;
  }

  async uniquePort(pick = freePort) {
    for (;;) {
      const p = await pick();
      const u = this.usedPorts;
      if (!u.has(p) && !u.has(p + 1) && !u.has(p - 1) && !u.has(p - 2)) {
        u.add(p);
        return p;
      }
    }
  }

  // ---- processes ----

  startController(c) {
    c.proc = new ServerProcess(c.name, [ findBinary('mqcontroller'), '-c', c.conf ],
      { cwd: this.dir, env: this.env, logFile: path.join(this.dir, `${c.name}.log`) }).start();
  }

  startBroker(b) {
    const on = this.net ? this.net.exec(b.host) : [];
    b.proc = new ServerProcess(`mqbroker(${b.id})`, [ ...on, findBinary('mqbroker'), '-c', b.conf ],
      { cwd: this.dir, env: this.env, logFile: path.join(this.dir, `broker-${b.id}.log`) }).start();
  }

  /** A broker started from another config (its own log), e.g. the same store on its own. */
  startSolo(b, conf, label) {
    const solo = { port: b.port, link: this.link(b.addr) };
    solo.proc = new ServerProcess(`mqbroker(${b.id} ${label})`, [ findBinary('mqbroker'), '-c', conf ],
      { cwd: this.dir, env: this.env, logFile: path.join(this.dir, `broker-${b.id}-${label}.log`) }).start();
    this.solos = (this.solos || []).concat(solo);
    return solo;
  }

  async killProc(p) {
    await p.proc.stop({ signal: 'SIGKILL' });
    await p.link.close().catch(() => {});
  }

  allProcs() {
    return [ ...this.brokers, ...(this.solos || []), this.namesrv, ...this.controllers ]
      .filter(p => p && p.proc).map(p => p.proc);
  }

  async waitListening(p, what) {
    await waitFor(() => {
      p.proc.checkAlive(`waiting for ${what}`);
      return new Promise(resolve => {
        const s = net.connect({ host: p.ip || '127.0.0.1', port: p.port });
        s.once('connect', () => { s.destroy(); resolve(true); });
        s.once('error', () => resolve(false));
      });
    }, { timeoutMs: ms(15000), what: `${what} to accept connections on port ${p.port}` });
  }

  /** Three controllers (configs written, started; not waited for). */
  async startControllers() {
    const raftPorts = [];
    for (let i = 0; i < 3; i++) raftPorts.push(await this.uniquePort());
    const peers = raftPorts.map((p, i) => `n${i}-127.0.0.1:${p}`).join(';');
    for (let i = 0; i < 3; i++) {
      const port = await this.uniquePort();
      const c = { name: `controller-n${i}`, port, ip: this.hostIp, addr: `${this.hostIp}:${port}`,
        conf: path.join(this.dir, `n${i}.conf`) };
      writeConf(c.conf, { controllerPeers: peers, controllerSelfId: `n${i}`,
        controllerStorePath: path.join(this.dir, `ctl-n${i}`), listenPort: port,
        scanNotActiveBrokerInterval: this.scan, controllerHeartBeatTimeoutMills: this.lease });
      c.link = this.link(c.addr);
      this.controllers.push(c);
    }
    for (const c of this.controllers) this.startController(c);
  }

  /** The name server, started and listening. */
  async startNamesrv() {
    const nsPort = await this.uniquePort();
    const nsAddr = `${this.hostIp}:${nsPort}`;
    this.namesrv = { port: nsPort, ip: this.hostIp, addr: nsAddr, link: this.link(nsAddr) };
    const nsConf = path.join(this.dir, 'namesrv.conf');
    writeConf(nsConf, { listenAddress: this.hostIp, listenPort: nsPort,
      kvConfigPath: path.join(this.dir, 'namesrv', 'kvConfig.json') });
    this.namesrv.proc = new ServerProcess('mqnamesrv', [ findBinary('mqnamesrv'), '-c', nsConf ],
      { cwd: this.dir, env: this.env, logFile: path.join(this.dir, 'namesrv.log') }).start();
    await this.waitListening(this.namesrv, 'the name server');
  }

  /** The brokers' configs (not started). */
  async defineBrokers() {
    const controllerAddr = this.controllers.map(c => c.addr).join(';');
    for (const [ host, id ] of this.brokerIds.entries()) {
      const port = await this.uniquePort(freeBrokerPort);
      const haPort = await this.uniquePort();
      const ip = this.net ? this.net.ipOf(host) : '127.0.0.1';
      const b = { id, host, ip, port, addr: `${ip}:${port}`, haPort, store: path.join(this.dir, `store-${id}`),
        conf: path.join(this.dir, `broker-${id}.conf`), link: this.link(`${ip}:${port}`) };
      writeConf(b.conf, Object.assign({
        brokerClusterName: this.cluster, brokerName: this.set, brokerId: id, listenPort: port, bindAddress: ip,
        brokerIP1: ip, namesrvAddr: this.namesrv.addr, storePathRootDir: b.store,
        mappedFileSizeCommitLog: 64 * 1024 * 1024, mappedFileSizeConsumeQueue: 300000 * 20,
        maxHashSlotNum: 50000, maxIndexNum: 200000, autoCreateTopicEnable: true, autoCreateSubscriptionGroup: true,
        enableControllerMode: true, controllerAddr, brokerRole: 'SYNC_MASTER', flushDiskType: 'SYNC_FLUSH',
        haSecret: this.secret, haListenPort: haPort, brokerHeartbeatInterval: 200, checkSyncStateSetPeriod: 500,
        controllerHeartBeatTimeoutMills: this.lease, haSendHeartbeatInterval: 500, inSyncReplicas: 1,
        syncFlushTimeout: 3000,
      }, this.brokerConf));
      this.brokers.push(b);
    }
  }

  /** Throws when the broker's log says it ignored the controller-mode keys (an old mqbroker). */
  checkControllerMode(b) {
    const unknown = /unknown key (enableControllerMode|controllerAddr|brokerHeartbeatInterval|checkSyncStateSetPeriod)/
      .exec(fs.readFileSync(b.proc.logFile, 'utf8'));
    if (unknown) {
      throw new Error(`this mqbroker has no controller mode yet (its log: "${unknown[0]} ignored"): ` +
        'the broker side of docs/CONTROLLER.md is not built');
    }
  }

  /**
   * The whole set up: controllers with a leader, the name server, broker 1 master (first
   * registered), the others following it, every controller naming a sync state set of at
   * least minSet members. Returns the agreed replica info.
   */
  async bringUp({ minSet = 2 } = {}) {
    await this.startControllers();
    await this.startNamesrv();
    await waitFor(() => this.findLeader(), { timeoutMs: ms(20000), what: 'a Raft leader among the three controllers' });
    await this.defineBrokers();
    const [ first, ...rest ] = this.brokers;
    this.startBroker(first);
    await this.waitListening(first, `broker ${first.id}`);
    this.checkControllerMode(first);
    await waitFor(async () => (await this.routeAddrs())['0'] === first.addr && await this.agreedInfo(), {
      timeoutMs: ms(20000), what: () => `broker ${first.id} (first registered) to be master: route id 0 = ` +
        `${first.addr} (${this.roleState()})` });
    for (const b of rest) this.startBroker(b);
    for (const b of rest) await this.waitListening(b, `broker ${b.id}`);
    return waitFor(async () => {
      const a = await this.routeAddrs();
      const x = await this.agreedInfo();
      return a['0'] === first.addr && rest.every(b => a[String(b.id)] === b.addr) && x &&
        x.syncStateSet.length >= minSet && x;
    }, { timeoutMs: ms(30000), what: () => `route {0: broker ${first.id}, ${rest.map(b => `${b.id}: broker ${b.id}`)}} ` +
      `and a sync state set of >= ${minSet} on every controller (${this.roleState()})` });
  }

  /** The test topic on the master; waits until every slave copied it and the route names the master. */
  async createTopic(master) {
    const cr = await master.link.invoke(remoting.REQ.UPDATE_AND_CREATE_TOPIC, { topic: this.topic,
      defaultTopic: 'TBW102', readQueueNums: this.queues, writeQueueNums: this.queues, perm: 6,
      topicFilterType: 'SINGLE_TAG', topicSysFlag: 0, order: false }, { timeoutMs: ms(10000) });
    assert.equal(cr.code, RESP.SUCCESS, `UPDATE_AND_CREATE_TOPIC on the master: ${cr.remark}`);
    for (const b of this.brokers.filter(x => x !== master)) await this.waitTopicCopied(b);
    this.topicCreated = true;
    await waitFor(async () => (await this.routeAddrs())['0'] === master.addr, { timeoutMs: ms(10000),
      what: () => `the route of ${this.topic} to name broker ${master.id} as id 0 (${this.lastRoute})` });
  }

  /** A slave copies the test topic from its master (slave sync). */
  async waitTopicCopied(b) {
    await waitFor(async () => {
      const t = await b.link.invoke(21 /* GET_ALL_TOPIC_CONFIG */, {}, { timeoutMs: ms(5000) });
      return t.code === RESP.SUCCESS && t.body && t.body.toString().includes(`"${this.topic}"`);
    }, { timeoutMs: ms(20000), intervalMs: 200, what: `slave ${b.id} to copy topic ${this.topic} from the master` });
  }

  /** Stop every process (SIGTERM, then SIGKILL) and close every link; the ones that did not stop cleanly. */
  async stopAll() {
    for (const l of this.links) await l.close().catch(() => {});
    const problems = [];
    for (const p of this.allProcs()) {
      if (!p.running) continue;
      const r = await p.stop();
      if (r.forced || r.code !== 0) problems.push(`${p.name}: code=${r.code} signal=${r.signal} forced=${r.forced}`);
    }
    return problems;
  }

  // ---- controllers ----

  aliveControllers() {
    return this.controllers.filter(c => c.proc && c.proc.running);
  }

  async findLeader() {
    const leaders = [];
    for (const c of this.aliveControllers()) {
      try {
        const r = await c.link.invoke(CTL.METADATA, {}, { timeoutMs: 1000 });
        if (r.code === RESP.SUCCESS && r.extFields.isLeader === 'true') leaders.push(c);
      } catch (_) { /* down or starting */ }
    }
    return leaders.length === 1 ? leaders[0] : null;
  }

  /** CONTROLLER_GET_REPLICA_INFO of the set from one controller: { master, masterAddress, masterEpoch, syncStateSet }. */
  async replicaInfoFrom(c) {
    const r = await c.link.invoke(CTL.REPLICA_INFO, { brokerName: this.set }, { timeoutMs: 1000 });
    if (r.code !== RESP.SUCCESS) return { code: r.code, remark: r.remark };
    const body = r.body.length ? JSON.parse(r.body.toString()) : {};
    return { master: r.extFields.masterBrokerId === undefined ? null : Number(r.extFields.masterBrokerId),
      masterAddress: r.extFields.masterAddress || null, masterEpoch: Number(r.extFields.masterEpoch),
      syncStateSet: body.syncStateSet || [], syncStateSetEpoch: body.syncStateSetEpoch };
  }

  /** The replica info every alive controller answers the same, else null (lastInfos says why). */
  async agreedInfo() {
    const infos = [];
    const alive = this.aliveControllers();
    for (const c of alive) {
      try { infos.push(await this.replicaInfoFrom(c)); } catch (e) { infos.push({ error: e.message }); }
    }
    this.lastInfos = alive.map((c, k) => `${c.name}: ${JSON.stringify(infos[k])}`).join('; ');
    const first = JSON.stringify(infos[0]);
    return infos.length && infos[0].code === undefined && !infos[0].error &&
      infos.every(x => JSON.stringify(x) === first) ? infos[0] : null;
  }

  /** CONTROLLER_GET_SYNC_STATE_DATA of the set from one controller: in-sync broker ids. */
  async syncStateDataFrom(c) {
    const r = await c.link.invoke(CTL.SYNC_STATE_DATA, {}, { body: Buffer.from(JSON.stringify([ this.set ])),
      timeoutMs: 1000 });
    if (r.code !== RESP.SUCCESS) return null;
    const t = JSON.parse(r.body.toString()).replicasInfoTable[this.set];
    return t ? { master: t.masterBrokerId, inSync: t.inSyncReplicas.map(x => x.brokerId).sort() } : null;
  }

  // ---- name server route ----

  /** brokerAddrs of the set in the route of the test topic (TBW102 before it exists): { "0": addr, "2": addr }. */
  async routeAddrs() {
    const topic = this.topicCreated ? this.topic : 'TBW102';
    const r = await this.namesrv.link.invoke(remoting.REQ.GET_ROUTEINFO_BY_TOPIC, { topic }, { timeoutMs: 1000 });
    if (r.code !== RESP.SUCCESS) {
      this.lastRoute = `${topic}: code ${r.code} ${r.remark}`;
      return {};
    }
    const bd = (remoting.parseLenientJson(r.body).brokerDatas || []).find(d => d.brokerName === this.set);
    const addrs = bd ? bd.brokerAddrs : {};
    this.lastRoute = `${topic}: ${JSON.stringify(addrs)}`;
    return addrs;
  }

  brokerByAddr(addr) {
    return this.brokers.find(b => b.addr === addr) || null;
  }

  brokerById(id) {
    return this.brokers.find(b => b.id === id) || null;
  }

  roleState() {
    return `route ${this.lastRoute}; controllers ${this.lastInfos}`;
  }

  // ---- messages ----

  async sendOn(b, key, { queueId = 0, timeoutMs = ms(6000) } = {}) {
    return remoting.sendMessage(await b.link.connection(), { topic: this.topic, queueId, keys: key,
      body: Buffer.from(`${key}|${Math.random().toString(36).slice(2)}`), timeoutMs });
  }

  /** Max offset of every queue of the test topic on a broker. */
  async maxOffsets(b) {
    const out = [];
    for (let q = 0; q < this.queues; q++) {
      const r = await b.link.invoke(remoting.REQ.GET_MAX_OFFSET, { topic: this.topic, queueId: q });
      if (r.code !== RESP.SUCCESS) {
        throw new Error(`GET_MAX_OFFSET ${this.topic}/${q} on broker ${b.id}: code ${r.code} ${r.remark}`);
      }
      out.push(Number(r.extFields.offset));
    }
    return out;
  }

  /**
   * Every message of the test topic on a broker, pulled from offset 0 of each queue:
   * Map "q:off" -> { q, off, key, body, phys, storeTs, props }. Throws when a queue has a hole.
   */
  async readAll(b) {
    const conn = await RemotingConnection.connect(b.addr, 2000);
    try {
      const out = new Map();
      for (let q = 0; q < this.queues; q++) {
        const max = await remoting.getMaxOffset(conn, this.topic, q);
        let off = 0;
        let retries = 0;
        while (off < max) {
          const r = await remoting.pullMessages(conn, { group: this.group, topic: this.topic, queueId: q, offset: off,
            maxNums: 32, timeoutMs: ms(5000) });
          if (r.code === RESP.PULL_RETRY_IMMEDIATELY && retries++ < 20) continue;
          if (r.code !== RESP.SUCCESS || !r.msgs.length || !(r.nextBeginOffset > off)) {
            throw new Error(`PULL_MESSAGE broker ${b.id} ${this.topic}/${q}@${off} (max ${max}): code ${r.code} ` +
              `${r.remark} next ${r.nextBeginOffset} msgs ${r.msgs.length}`);
          }
          for (const m of r.msgs) {
            out.set(`${q}:${m.queueOffset}`, { q, off: m.queueOffset, key: m.keys, body: m.body.toString(),
              phys: Number(m.commitLogOffset), storeTs: m.storeTimestamp, props: m.properties });
          }
          off = r.nextBeginOffset;
        }
        for (let o = 0; o < max; o++) {
          assert.ok(out.has(`${q}:${o}`), `broker ${b.id}: queue ${q} has no message at offset ${o} (max ${max})`);
        }
      }
      return out;
    } finally {
      await conn.close();
    }
  }

  /**
   * A node:test step that is skipped once an earlier one failed, and prints every log tail
   * when it fails.
   */
  stepper() {
    let broken = null;
    return (name, timeoutMs, fn) => {
      test(name, { timeout: ms(timeoutMs) }, async t => {
        if (broken) {
          t.skip(`skipped: "${broken}" failed`);
          return;
        }
        try {
          await withLogsOnFailure(this.logs, () => fn(t));
        } catch (e) {
          broken = name;
          throw e;
        }
      });
    };
  }
}

// ---- continuous sends -------------------------------------------------------------------------

/**
 * `loops` loops that send synchronously to the master the name server names (id 0, cached
 * until a send to it fails or times out after timeoutMs, then looked up again), each send
 * recorded in `sends`:
 * { key, body, broker, addr, queueId, t0, t, code, msgId, queueOffset, phys, remark }.
 */
class SendLoops {
  constructor(rs, { prefix = 'send', loops = 3, timeoutMs = ms(6000) } = {}) {
    Object.assign(this, { rs, prefix, nloops: loops, timeoutMs });
    this.sends = [];
    this.stopping = false;
    this.running = [];
    this.masterCache = null;
    this.resolving = null;
  }

  start() {
    this.stopping = false;
    for (let w = 0; w < this.nloops; w++) this.running.push(this.loop(w));
  }

  async stop() {
    this.stopping = true;
    const r = this.running;
    this.running = [];
    await Promise.all(r);
  }

  acked() {
    return this.sends.filter(s => s.code === RESP.SUCCESS);
  }

  /** {"broker:code": count} of @list (every send by default), as JSON. */
  tally(list = this.sends) {
    const m = {};
    for (const s of list) {
      const k = `${s.broker}:${s.code}`;
      m[k] = (m[k] || 0) + 1;
    }
    return JSON.stringify(m);
  }

  async currentMaster() {
    if (this.masterCache) return this.masterCache;
    if (!this.resolving) {
      this.resolving = this.rs.routeAddrs().then(a => { this.masterCache = a['0'] || null; return this.masterCache; })
        .catch(() => null).finally(() => { this.resolving = null; });
    }
    return this.resolving;
  }

  async loop(w) {
    const rs = this.rs;
    let conn = null;
    for (let i = 0; !this.stopping; i++) {
      const addr = await this.currentMaster();
      if (!addr) {
        await sleep(50); // pace the route lookups while no master is named
        continue;
      }
      const key = `${this.prefix}-${w}-${i}`;
      const rec = { key, body: `${key}|${Math.random().toString(36).slice(2)}`, addr,
        broker: (rs.brokerByAddr(addr) || {}).id, queueId: (w + i) % rs.queues, t0: Date.now() };
      try {
        if (!conn || conn.isClosed || conn.addr !== addr) {
          if (conn) await conn.close();
          conn = null;
          conn = await RemotingConnection.connect(addr, 1000);
        }
        const r = await remoting.sendMessage(conn, { topic: rs.topic, queueId: rec.queueId, keys: key,
          body: Buffer.from(rec.body), timeoutMs: this.timeoutMs });
        rec.code = r.code;
        if (r.code === RESP.SUCCESS) {
          rec.msgId = r.extFields.msgId;
          rec.queueId = Number(r.extFields.queueId);
          rec.queueOffset = Number(r.extFields.queueOffset);
          rec.phys = Number(remoting.decodeMessageId(rec.msgId).offset);
        } else {
          rec.remark = r.remark;
        }
      } catch (e) {
        rec.code = 'error';
        rec.remark = e.message;
      }
      rec.t = Date.now();
      this.sends.push(rec);
      if (rec.code !== RESP.SUCCESS) {
        if (this.masterCache === addr) this.masterCache = null;
        if (conn && rec.code === 'error') { await conn.close(); conn = null; }
        await sleep(50); // pace the retries against a dead or refusing broker
      }
    }
    if (conn) await conn.close();
  }
}

module.exports = { ReplicaSet, SendLoops, Link, CTL, writeConf, assertConsistent, assertAckedIn };
