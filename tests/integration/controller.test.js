'use strict';
// ferry-test-requires: mqcontroller
// The Raft-replicated controller (docs/CONTROLLER.md) as real processes: three mqcontrollers on
// free loopback ports, and a fake broker set (brokerName bs1: ids 1, 2, 3) driven from here
// with RocketMQ controller requests and BROKER_HEARTBEATs sent to every controller.
//  - a bad config is refused with a message naming the key;
//  - one Raft leader; a follower refuses writes with CONTROLLER_NOT_LEADER naming the leader;
//  - register master + 2 slaves, the master widens the sync state set; all controllers agree;
//  - the master's heartbeats stop: a new master is elected from the sync state set (the
//    highest reported max offset) within a bounded, measured time; every controller answers
//    the same replica info; the old master's alter is fenced by its epoch;
//  - kill -9 the Raft leader: a new leader, the state intact, writes go on; the killed one
//    restarts and catches up;
//  - kill -9 two controllers: the master's lease expires but nothing is elected (no
//    majority); restart them: the group goes on and elects.
// Every process is stopped and the temp dir removed, also on failure.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { ServerProcess, findBinary, freePort, waitFor, ms, sleep, tail } = require('../compat/harness');
const { RemotingConnection } = require('../compat/remoting');

const REQ = { HEARTBEAT: 904, ALTER: 1001, ELECT: 1002, REGISTER: 1003, REPLICA_INFO: 1004,
  METADATA: 1005, SYNC_STATE_DATA: 1006, NEXT_ID: 1012, APPLY_ID: 1013 };
const RESP = { SUCCESS: 0, FENCED_MASTER_EPOCH: 2000, BROKER_NOT_ALIVE: 2006, NOT_LEADER: 2007,
  MASTER_STILL_EXIST: 2011 };
const LEASE = ms(2000); // controllerHeartBeatTimeoutMills
const SCAN = 200; // scanNotActiveBrokerInterval
const HB_EVERY = 250;
const ELECTION_TIMEOUT = 1000; // raft's
const CLUSTER = 'FerryCtlCluster';
const SET = 'bs1';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-ctl-'));
fs.writeFileSync(path.join(dir, '.ferry-harness-owner'), String(process.pid));
process.on('exit', () => {
  if (!process.env.FERRY_KEEP_TMP) fs.rmSync(dir, { recursive: true, force: true });
});

/** A connection to one address, opened again when it closed. */
class Link {
  constructor(addr) {
    this.addr = addr;
    this.conn = null;
  }

  async invoke(code, fields = {}, opts = {}) {
    if (!this.conn || this.conn.isClosed) this.conn = await RemotingConnection.connect(this.addr, 1000);
    return this.conn.invoke(code, fields, { timeoutMs: opts.timeoutMs || 3000, body: opts.body });
  }

  async close() {
    if (this.conn) await this.conn.close();
    this.conn = null;
  }
}

const nodes = []; // { name, raftPort, port, addr, conf, proc, link }
const links = new Set();

function link(addr) {
  const l = new Link(addr);
  links.add(l);
  return l;
}

function writeConf(file, keys) {
  fs.writeFileSync(file, Object.entries(keys).map(([ k, v ]) => `${k}=${v}`).join('\n') + '\n');
}

function startNode(i) {
  const n = nodes[i];
  n.proc = new ServerProcess(n.name, [ findBinary('mqcontroller'), '-c', n.conf ],
    { cwd: dir, env: process.env, logFile: path.join(dir, `${n.name}.log`) }).start();
}

async function killNode(i) {
  await nodes[i].proc.stop({ signal: 'SIGKILL' });
  await nodes[i].link.close();
}

function alive() {
  return nodes.map((n, i) => i).filter(i => nodes[i].proc && nodes[i].proc.running);
}

async function metadata(i) {
  const r = await nodes[i].link.invoke(REQ.METADATA, {}, { timeoutMs: 1000 });
  assert.equal(r.code, RESP.SUCCESS);
  return r.extFields;
}

/** Index of the controller that says it leads (and that the others name), or null. */
async function findLeader(among = alive()) {
  const md = [];
  for (const i of among) {
    try { md.push([ i, await metadata(i) ]); } catch (_) { /* down or starting */ }
  }
  const leaders = md.filter(([ , m ]) => m.isLeader === 'true');
  if (leaders.length !== 1) return null;
  const [ li, lm ] = leaders[0];
  // Every answering controller names it, with its remoting address (replicated via Raft).
  if (!md.every(([ , m ]) => m.controllerLeaderId === lm.controllerSelfId &&
      m.controllerLeaderAddress === nodes[li].addr)) return null;
  return li;
}

async function replicaInfo(i) {
  const r = await nodes[i].link.invoke(REQ.REPLICA_INFO, { brokerName: SET }, { timeoutMs: 1000 });
  if (r.code !== RESP.SUCCESS) return { code: r.code, remark: r.remark };
  const body = JSON.parse(r.body.toString());
  return { master: r.extFields.masterBrokerId === undefined ? null : Number(r.extFields.masterBrokerId),
    masterAddress: r.extFields.masterAddress || null, masterEpoch: Number(r.extFields.masterEpoch),
    syncStateSet: body.syncStateSet, syncStateSetEpoch: body.syncStateSetEpoch };
}

/** The replica info when every live controller answers the same one, else null. */
let lastInfos = null;
async function agreedInfo(among = alive()) {
  const infos = [];
  for (const i of among) infos.push(await replicaInfo(i));
  lastInfos = among.map((i, k) => `${nodes[i].name}: ${JSON.stringify(infos[k])}`).join('; ');
  const first = JSON.stringify(infos[0]);
  return infos.every(x => JSON.stringify(x) === first) ? infos[0] : null;
}

/** A write sent to the current leader (found again when leadership moved). */
async function toLeader(code, fields, body) {
  let resp;
  await waitFor(async () => {
    const li = await findLeader();
    if (li === null) return false;
    resp = await nodes[li].link.invoke(code, fields,
      { body: body ? Buffer.from(JSON.stringify(body)) : undefined });
    return resp.code !== RESP.NOT_LEADER;
  }, { timeoutMs: ms(15000), what: `a leader to answer request ${code}` });
  return resp;
}

// ---- the fake broker set: heartbeats to every controller ----

const brokers = [ 1, 2, 3 ].map(id => ({ id, addr: `127.0.0.1:${30910 + id * 10}`, beating: false,
  maxOffset: { 1: 1000, 2: 900, 3: 950 }[id], epoch: 1 }));
let hbStop = false;
let hbLoop = null;

async function heartbeatLoop() {
  const hbLinks = nodes.map(n => link(n.addr));
  while (!hbStop) {
    const started = Date.now();
    await Promise.all(brokers.filter(b => b.beating).flatMap(b => hbLinks.map(l =>
      l.invoke(REQ.HEARTBEAT, { clusterName: CLUSTER, brokerName: SET, brokerId: b.id,
        brokerAddr: b.addr, maxOffset: b.maxOffset, epoch: b.epoch }, { timeoutMs: 500 })
        .catch(() => { /* controller down: the next round reconnects */ }))));
    await sleep(Math.max(0, HB_EVERY - (Date.now() - started)));
  }
}

const figures = {};

after(async () => {
  hbStop = true;
  if (hbLoop) await hbLoop;
  for (const l of links) await l.close().catch(() => {});
  const problems = [];
  for (const n of nodes) {
    if (!n.proc || !n.proc.running) continue;
    const r = await n.proc.stop();
    if (r.forced || r.code !== 0) problems.push(`${n.name}: code=${r.code} signal=${r.signal} forced=${r.forced}`);
  }
  process.stderr.write(`controller figures: ${JSON.stringify(figures)}\n`);
  if (problems.length) {
    for (const n of nodes) process.stderr.write(`--- ${n.name} log ---\n${tail(n.proc.logFile, 40)}\n`);
    throw new Error(`controllers did not stop cleanly with SIGTERM: ${problems.join('; ')}`);
  }
});

test('a bad config is refused with a message naming the key', () => {
  const bin = findBinary('mqcontroller');
  const cases = [
    [ { controllerSelfId: 'n0', controllerStorePath: dir }, 'controllerPeers' ],
    [ { controllerPeers: 'n0-127.0.0.1', controllerSelfId: 'n0', controllerStorePath: dir }, 'controllerPeers' ],
    [ { controllerPeers: 'n0-127.0.0.1:1;n1-127.0.0.1:2', controllerSelfId: 'n9', controllerStorePath: dir },
      'controllerSelfId' ],
    [ { controllerPeers: 'n0-127.0.0.1:1', controllerSelfId: 'n0' }, 'controllerStorePath' ],
    [ { controllerPeers: 'n0-127.0.0.1:1', controllerSelfId: 'n0', controllerStorePath: dir, listenPort: 'x' },
      'listenPort' ],
  ];
  for (const [ keys, key ] of cases) {
    const conf = path.join(dir, 'bad.conf');
    writeConf(conf, keys);
    const r = spawnSync(bin, [ '-c', conf ], { encoding: 'utf8', timeout: ms(10000) });
    assert.equal(r.status, 1, `exit status for ${JSON.stringify(keys)}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(key), `the message names ${key}`);
  }
});

test('three controllers: one Raft leader; a follower refuses writes naming it', async () => {
  const raftPorts = [];
  for (let i = 0; i < 3; i++) raftPorts.push(await freePort());
  const peers = raftPorts.map((p, i) => `n${i}-127.0.0.1:${p}`).join(';');
  for (let i = 0; i < 3; i++) {
    const port = await freePort();
    const n = { name: `n${i}`, raftPort: raftPorts[i], port, addr: `127.0.0.1:${port}`,
      conf: path.join(dir, `n${i}.conf`) };
    writeConf(n.conf, { controllerPeers: peers, controllerSelfId: n.name,
      controllerStorePath: path.join(dir, `store-n${i}`), listenPort: port,
      scanNotActiveBrokerInterval: SCAN, controllerHeartBeatTimeoutMills: LEASE });
    n.link = link(n.addr);
    nodes.push(n);
  }
  const t0 = Date.now();
  for (let i = 0; i < 3; i++) startNode(i);
  const li = await waitFor(async () => { const l = await findLeader(); return l === null ? null : { l }; },
    { timeoutMs: ms(20000), what: 'one Raft leader named by all three controllers' });
  figures.firstLeaderMs = Date.now() - t0;
  const follower = [ 0, 1, 2 ].find(i => i !== li.l);
  const r = await nodes[follower].link.invoke(REQ.APPLY_ID, { clusterName: CLUSTER, brokerName: SET,
    appliedBrokerId: 1, registerCheckCode: `${brokers[0].addr};1` });
  assert.equal(r.code, RESP.NOT_LEADER, r.remark);
  assert.ok(r.remark.includes(nodes[li.l].addr), `remark names the leader's address: ${r.remark}`);
  assert.equal(r.extFields.controllerLeaderAddress, nodes[li.l].addr);
});

test('register master and two slaves, widen the sync state set: all controllers agree', async () => {
  for (const b of brokers) {
    const next = await toLeader(REQ.NEXT_ID, { clusterName: CLUSTER, brokerName: SET });
    assert.equal(Number(next.extFields.nextBrokerId), b.id);
    const a = await toLeader(REQ.APPLY_ID, { clusterName: CLUSTER, brokerName: SET, appliedBrokerId: b.id,
      registerCheckCode: `${b.addr};${Date.now()}` });
    assert.equal(a.code, RESP.SUCCESS, a.remark);
  }
  // Another broker cannot take id 1.
  const taken = await toLeader(REQ.APPLY_ID, { clusterName: CLUSTER, brokerName: SET, appliedBrokerId: 1,
    registerCheckCode: '127.0.0.1:1;1' });
  assert.equal(taken.code, 2014, taken.remark);
  for (const b of brokers) {
    b.beating = true;
    const r = await toLeader(REQ.REGISTER, { clusterName: CLUSTER, brokerName: SET, brokerId: b.id,
      brokerAddress: b.addr });
    assert.equal(r.code, RESP.SUCCESS, r.remark);
    assert.equal(r.extFields.masterBrokerId, '1', 'the first registered broker is master');
    assert.equal(r.extFields.masterEpoch, '1');
  }
  hbLoop = heartbeatLoop();
  const alter = await toLeader(REQ.ALTER, { brokerName: SET, masterBrokerId: 1, masterEpoch: 1 },
    { syncStateSet: [ 1, 2, 3 ], syncStateSetEpoch: 1 });
  assert.equal(alter.code, RESP.SUCCESS, alter.remark);
  assert.equal(alter.extFields.newSyncStateSetEpoch, '2');
  const info = await waitFor(() => agreedInfo(), { timeoutMs: ms(10000), what: () => `all controllers to agree (${lastInfos})` });
  assert.deepEqual(info, { master: 1, masterAddress: brokers[0].addr, masterEpoch: 1,
    syncStateSet: [ 1, 2, 3 ], syncStateSetEpoch: 2 });
});

test('the master stops heartbeating: a new master from the sync state set, bounded time', async () => {
  brokers[0].beating = false;
  const t0 = Date.now();
  const bound = LEASE + SCAN + ms(5000);
  await waitFor(async () => {
    for (const i of alive()) {
      const x = await replicaInfo(i);
      if (x.master !== 1) return true;
    }
    return false;
  }, { timeoutMs: bound, what: 'a new master after the lease expired' });
  const elapsed = Date.now() - t0;
  figures.failoverMs = elapsed;
  // Not before the lease ran out (the last heartbeat was at most HB_EVERY before t0).
  assert.ok(elapsed >= LEASE - HB_EVERY - 500, `elected after ${elapsed} ms, lease is ${LEASE} ms`);
  const info = await waitFor(() => agreedInfo(), { timeoutMs: ms(10000), what: () => `all controllers to agree (${lastInfos})` });
  // 3 reported the highest max offset (950 > 900) among the alive members of {1,2,3}.
  assert.deepEqual(info, { master: 3, masterAddress: brokers[2].addr, masterEpoch: 2,
    syncStateSet: [ 3 ], syncStateSetEpoch: 3 });
  // The old master is fenced: its epoch is stale.
  const stale = await toLeader(REQ.ALTER, { brokerName: SET, masterBrokerId: 1, masterEpoch: 1 },
    { syncStateSet: [ 1, 2 ], syncStateSetEpoch: 2 });
  assert.equal(stale.code, RESP.FENCED_MASTER_EPOCH, stale.remark);
  // A dead broker cannot join; an alive one can.
  const dead = await toLeader(REQ.ALTER, { brokerName: SET, masterBrokerId: 3, masterEpoch: 2 },
    { syncStateSet: [ 3, 1 ], syncStateSetEpoch: 3 });
  assert.equal(dead.code, RESP.BROKER_NOT_ALIVE, dead.remark);
  const ok = await toLeader(REQ.ALTER, { brokerName: SET, masterBrokerId: 3, masterEpoch: 2 },
    { syncStateSet: [ 3, 2 ], syncStateSetEpoch: 3 });
  assert.equal(ok.code, RESP.SUCCESS, ok.remark);
  // An elect request while the master is alive changes nothing.
  const el = await toLeader(REQ.ELECT, { clusterName: CLUSTER, brokerName: SET });
  assert.equal(el.code, RESP.MASTER_STILL_EXIST, el.remark);
  const after2 = await waitFor(() => agreedInfo(), { timeoutMs: ms(10000), what: () => `all controllers to agree (${lastInfos})` });
  assert.deepEqual(after2.syncStateSet, [ 3, 2 ]);
  assert.equal(after2.syncStateSetEpoch, 4);
  assert.equal(after2.masterEpoch, 2);
  const data = await nodes[0].link.invoke(REQ.SYNC_STATE_DATA, {}, { body: Buffer.from(JSON.stringify([ SET ])) });
  const table = JSON.parse(data.body.toString()).replicasInfoTable[SET];
  assert.deepEqual(table.inSyncReplicas.map(r => [ r.brokerId, r.alive ]), [ [ 2, true ], [ 3, true ] ]);
  assert.deepEqual(table.notInSyncReplicas.map(r => [ r.brokerId, r.alive ]), [ [ 1, false ] ]);
});

test('kill -9 the Raft leader: a new leader, state intact; the old one restarts and catches up', async () => {
  const before = await agreedInfo();
  const old = await findLeader();
  assert.notEqual(old, null);
  const t0 = Date.now();
  await killNode(old);
  const nl = await waitFor(async () => { const l = await findLeader(); return l === null ? null : { l }; },
    { timeoutMs: ms(20000), what: 'a new Raft leader among the two left' });
  figures.leaderFailoverMs = Date.now() - t0;
  assert.notEqual(nl.l, old);
  const kept = await waitFor(() => agreedInfo(), { timeoutMs: ms(10000),
    what: () => `the two survivors to agree (${lastInfos})` });
  assert.deepEqual(kept, before, 'both survivors keep the state');
  // Writes go on through the new leader.
  const ok = await toLeader(REQ.ALTER, { brokerName: SET, masterBrokerId: 3, masterEpoch: 2 },
    { syncStateSet: [ 3, 2 ], syncStateSetEpoch: 4 });
  assert.equal(ok.code, RESP.SUCCESS, ok.remark);
  startNode(old);
  const info = await waitFor(async () => {
    const a = alive();
    return a.length === 3 && await agreedInfo(a);
  }, { timeoutMs: ms(20000), what: () => `the restarted controller to catch up (${lastInfos})` });
  assert.equal(info.syncStateSetEpoch, 5);
  assert.equal(info.master, 3);
});

test('without a Raft majority nothing is elected; with it back the group goes on', async () => {
  const before = await waitFor(() => agreedInfo(), { timeoutMs: ms(10000), what: () => `agreement (${lastInfos})` });
  const leader = await waitFor(async () => { const l = await findLeader(); return l === null ? null : { l }; },
    { timeoutMs: ms(20000), what: 'a leader' });
  // Kill the leader and one follower: the survivor alone is no majority.
  const victims = [ leader.l, [ 0, 1, 2 ].find(i => i !== leader.l) ];
  const survivor = [ 0, 1, 2 ].find(i => !victims.includes(i));
  for (const v of victims) await killNode(v);
  brokers[2].beating = false; // master 3 goes silent too
  const t0 = Date.now();
  // Watch the survivor through the lease, several scans and a Raft election timeout: the
  // master's lease expires, but no election can commit.
  const watchUntil = t0 + LEASE + 5 * SCAN + 2 * ELECTION_TIMEOUT + ms(1000);
  while (Date.now() < watchUntil) {
    const x = await replicaInfo(survivor);
    assert.deepEqual(x, before, 'the survivor changed the state without a majority');
    await sleep(100);
  }
  // An explicit elect request is refused (or never answered): no majority commits it.
  let code = 'no answer';
  try {
    const r = await nodes[survivor].link.invoke(REQ.ELECT, { clusterName: CLUSTER, brokerName: SET },
      { timeoutMs: ms(3000) });
    code = r.code;
  } catch (_) { /* timed out: not committed */ }
  figures.electWithoutMajority = code;
  assert.ok(code === RESP.NOT_LEADER || code === 'no answer', `elect without majority answered ${code}`);
  assert.deepEqual(await replicaInfo(survivor), before);
  // Restart the two: a leader again, and master 3's expired lease leads to an election of the
  // only alive member of its sync state set {3,2}: broker 2.
  const t1 = Date.now();
  for (const v of victims) startNode(v);
  await waitFor(async () => {
    const a = alive();
    if (a.length !== 3) return false;
    const x = await agreedInfo(a);
    return x && x.master === 2;
  }, { timeoutMs: LEASE + ms(25000), what: () => `the restarted group to elect broker 2 (${lastInfos})` });
  figures.recoverAndElectMs = Date.now() - t1;
  const info = await agreedInfo();
  assert.deepEqual(info, { master: 2, masterAddress: brokers[1].addr, masterEpoch: 3,
    syncStateSet: [ 2 ], syncStateSetEpoch: 6 });
});
