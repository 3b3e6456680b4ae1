'use strict';
// ferry-test-requires: mqcontroller
// Automatic failover of a broker set in controller mode (docs/CONTROLLER.md, issue 8), with real
// processes on free loopback ports: three mqcontrollers, one mqnamesrv and three mqbrokers of
// one set (brokerName fo-set, brokerId 1, 2, 3, enableControllerMode=true, SYNC_MASTER flavour,
// SYNC_FLUSH, inSyncReplicas=1), driven by the remoting client of tests/compat.
//  1. the first broker registered is master (masterEpoch 1, route id 0); the others follow it,
//     refuse sends, and the master widens the sync state set (1004 / 1006: >= 2 members);
//  2. three loops send synchronously to the master the name server names (re-resolved on
//     errors) while the master is killed with kill -9: the failover time (kill to the first
//     SEND_OK from another broker) is printed (`# failover ms=<n>`) and bounded; the broker
//     that acknowledges is the one the controllers elected (masterEpoch 2, from the old sync
//     state set) and the route's id 0;
//  3. every acknowledged message is on the new master at the queue / offset / CommitLog offset
//     its SEND_OK named, with its exact body; the surviving slave catches up and holds the
//     same message at every (queue, offset); no (queue, offset) holds two keys and no key sits
//     at two places on any replica;
//  4. the killed broker restarts (same config and store): it is a slave (route: its own id,
//     controller: not master), refuses sends, cuts what it alone had and follows the new
//     master: the same key at every (queue, offset), every acknowledged key, and messages
//     sent after its restart; the master takes it back into the sync state set;
//  5. two controllers killed: the master, cut off from a majority, stops accepting sends; the
//     master killed too: nothing is elected (route id 0 never names another broker, the
//     surviving controller's replica info is unchanged) for twice the lease; the controllers
//     restarted: one of the two alive brokers is elected, SEND_OK again, and every message
//     acknowledged in step 2 is still readable on it.
// Every process is stopped (also on failure) and the temp dir removed; a failed step prints
// the tails of every log and skips the steps after it. The processes and helpers are in
// replica_set.js (shared with ha_admin.test.js); the send loops and the steps are here.

const { after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { waitFor, ms, sleep, tail } = require('../compat/harness');
const remoting = require('../compat/remoting');
const { ReplicaSet, SendLoops, writeConf, assertConsistent, assertAckedIn } = require('./replica_set');

const { RESP } = remoting;
const LEASE = 3000; // controllerHeartBeatTimeoutMills (controllers and brokers); not scaled: it is config
const SCAN = 500; // scanNotActiveBrokerInterval
const FAILOVER_BOUND = ms(20000);
const TOPIC = 'FailoverTopic';
const QUEUES = 4;
const LOOPS = 3;
const ACKS_BEFORE_KILL = 300;
const ACKS_AFTER_FAILOVER = 100;

// The processes and the plumbing (configs, links, what controllers and name server say, sends
// and reads): tests/integration/replica_set.js.
const rs = new ReplicaSet({ name: 'failover', cluster: 'FerryFoCluster', set: 'fo-set', secret: 'failover-test-secret',
  topic: TOPIC, queues: QUEUES, group: 'CID_failover_check', lease: LEASE, scan: SCAN });
const { dir, controllers, brokers } = rs;
const startController = c => rs.startController(c);
const startBroker = b => rs.startBroker(b);
const killProc = p => rs.killProc(p);
const waitListening = (p, what) => rs.waitListening(p, what);
const findLeader = () => rs.findLeader();
const replicaInfoFrom = c => rs.replicaInfoFrom(c);
const agreedInfo = () => rs.agreedInfo();
const syncStateDataFrom = c => rs.syncStateDataFrom(c);
const aliveControllers = () => rs.aliveControllers();
const routeAddrs = () => rs.routeAddrs();
const brokerByAddr = addr => rs.brokerByAddr(addr);
const brokerById = id => rs.brokerById(id);
const roleState = () => rs.roleState();
const sendOn = (b, key, opts) => rs.sendOn(b, key, opts);
const maxOffsets = b => rs.maxOffsets(b);
const readAll = b => rs.readAll(b);

// ---- the send loops (replica_set.js) -----------------------------------------------------------

const traffic = new SendLoops(rs, { prefix: 'fo', loops: LOOPS });
const { sends } = traffic;
const acked = () => traffic.acked();
const codeTally = list => traffic.tally(list);
const stopLoops = () => traffic.stop();

// ---- steps ----------------------------------------------------------------------------------

const step = rs.stepper();

after(async () => {
  await traffic.stop().catch(() => {});
  const problems = await rs.stopAll();
  process.stderr.write(`failover figures: ${JSON.stringify(figures)}\n`);
  if (problems.length) {
    process.stderr.write(`${rs.logs.logsText(40)}\n`);
    throw new Error(`processes did not stop cleanly with SIGTERM: ${problems.join('; ')}`);
  }
});

const figures = {};
const st = { oldMaster: null, newMaster: null, slave: null, setBefore: null, acked: [] };

step('a controller-mode broker set: first registered is master, the others follow, sync state set >= 2', 60000,
  async t => {
    await rs.startControllers();
    await rs.startNamesrv();
    await waitFor(() => findLeader(), { timeoutMs: ms(20000), what: 'a Raft leader among the three controllers' });
    await rs.defineBrokers();
    const [ b1, b2, b3 ] = brokers;
    startBroker(b1);
    await waitListening(b1, 'broker 1');
    rs.checkControllerMode(b1);
    await waitFor(async () => (await routeAddrs())['0'] === b1.addr && await agreedInfo(), {
      timeoutMs: ms(20000), what: () => `broker 1 (first registered) to be master: route id 0 = ${b1.addr} ` +
        `(${roleState()})` });
    startBroker(b2);
    startBroker(b3);
    await waitListening(b2, 'broker 2');
    await waitListening(b3, 'broker 3');
    const info = await waitFor(async () => {
      const a = await routeAddrs();
      const x = await agreedInfo();
      return a['0'] === b1.addr && a['2'] === b2.addr && a['3'] === b3.addr && x && x.syncStateSet.length >= 2 && x;
    }, { timeoutMs: ms(30000), what: () => 'route {0: broker 1, 2: broker 2, 3: broker 3} and a sync state set ' +
      `of >= 2 on every controller (${roleState()})` });
    assert.equal(info.master, 1, 'the first registered broker is master');
    assert.equal(info.masterAddress, b1.addr);
    assert.equal(info.masterEpoch, 1);
    assert.ok(info.syncStateSet.includes(1), `the master is in its sync state set ${info.syncStateSet}`);
    const data = await syncStateDataFrom(controllers[0]);
    assert.ok(data && data.master === 1 && data.inSync.length >= 2, `1006 agrees: ${JSON.stringify(data)}`);
    t.diagnostic(`master ${b1.addr} (id 1), sync state set ${JSON.stringify(info.syncStateSet)}`);

    // The test topic on the master; slaves refuse topic changes (as RocketMQ's) and copy the
    // master's topics (slave sync), which every broker that may be elected later needs.
    const cr = await b1.link.invoke(remoting.REQ.UPDATE_AND_CREATE_TOPIC, { topic: TOPIC, defaultTopic: 'TBW102',
      readQueueNums: QUEUES, writeQueueNums: QUEUES, perm: 6, topicFilterType: 'SINGLE_TAG', topicSysFlag: 0,
      order: false }, { timeoutMs: ms(10000) });
    assert.equal(cr.code, RESP.SUCCESS, `UPDATE_AND_CREATE_TOPIC on the master: ${cr.remark}`);
    for (const b of [ b2, b3 ]) {
      const r = await b.link.invoke(remoting.REQ.UPDATE_AND_CREATE_TOPIC, { topic: `${TOPIC}X`, defaultTopic: 'TBW102',
        readQueueNums: QUEUES, writeQueueNums: QUEUES, perm: 6, topicFilterType: 'SINGLE_TAG', topicSysFlag: 0,
        order: false }, { timeoutMs: ms(10000) });
      assert.notEqual(r.code, RESP.SUCCESS, `slave ${b.id} refuses topic changes`);
      await rs.waitTopicCopied(b);
    }
    rs.topicCreated = true;
    await waitFor(async () => (await routeAddrs())['0'] === b1.addr, { timeoutMs: ms(10000),
      what: () => `the route of ${TOPIC} to name broker 1 as id 0 (${rs.lastRoute})` });

    // Slaves refuse sends; the master acknowledges once a slave is in sync.
    for (const b of [ b2, b3 ]) {
      const r = await sendOn(b, `to-slave-${b.id}`);
      assert.notEqual(r.code, RESP.SUCCESS, `slave ${b.id} must not answer SEND_OK`);
    }
    await waitFor(async () => (await sendOn(b1, `warm-${Date.now()}`)).code === RESP.SUCCESS,
      { timeoutMs: ms(15000), intervalMs: 100, what: 'a SEND_OK from the master' });
  });

step('kill -9 the master during continuous sends: a new master acknowledges within the bound', 90000, async t => {
  const [ b1 ] = brokers;
  st.oldMaster = b1;
  traffic.start();
  await waitFor(() => acked().length >= ACKS_BEFORE_KILL, { timeoutMs: ms(30000), intervalMs: 20,
    what: () => `${ACKS_BEFORE_KILL} acknowledged sends before the kill (${codeTally()})` });
  const before = await agreedInfo();
  assert.ok(before && before.master === 1, `broker 1 is still master before the kill (${rs.lastInfos})`);
  st.setBefore = before.syncStateSet;

  const tKill = Date.now();
  await b1.proc.stop({ signal: 'SIGKILL' });
  await b1.link.close();
  const firstNew = await waitFor(() => sends.find(s => s.code === RESP.SUCCESS && s.addr !== b1.addr && s.t >= tKill),
    { timeoutMs: FAILOVER_BOUND + ms(5000), intervalMs: 20,
      what: () => `a SEND_OK from another broker after the kill (sends since: ${codeTally(sends.filter(s => s.t >= tKill))}; ` +
        `${roleState()})` }).catch(async e => {
    await agreedInfo().catch(() => {});
    await routeAddrs().catch(() => {});
    e.message += `\nstate at the deadline: ${roleState()}`;
    throw e;
  });
  const failoverMs = firstNew.t - tKill;
  figures.failoverMs = failoverMs;
  process.stdout.write(`# failover ms=${failoverMs}\n`);
  t.diagnostic(`failover ms=${failoverMs}`);
  assert.ok(failoverMs < FAILOVER_BOUND, `failover took ${failoverMs} ms (bound ${FAILOVER_BOUND} ms)`);
  const nm = brokerByAddr(firstNew.addr);
  assert.ok(nm && nm !== b1, `the first SEND_OK after the kill came from ${firstNew.addr}`);
  st.newMaster = nm;
  st.slave = brokers.find(b => b !== b1 && b !== nm);

  // Keep sending on the new master for a while.
  const ackedBefore = acked().length;
  await waitFor(() => acked().filter(s => s.addr === nm.addr).length >= ACKS_AFTER_FAILOVER,
    { timeoutMs: ms(20000), intervalMs: 20,
      what: () => `${ACKS_AFTER_FAILOVER} SEND_OK from the new master (${codeTally()})` });
  await stopLoops();
  st.acked = acked();
  t.diagnostic(`sends ${sends.length}, acked ${st.acked.length} (${ackedBefore} until the first ack after the ` +
    `failover); by broker:code ${codeTally()}`);
  for (const a of st.acked) {
    assert.ok(a.addr === b1.addr || a.addr === nm.addr, `SEND_OK ${a.key} from ${a.addr}: neither master`);
  }

  // The controllers elected it from the old sync state set, with the next epoch; the route says so.
  const info = await waitFor(async () => (await routeAddrs())['0'] === nm.addr && await agreedInfo(),
    { timeoutMs: ms(10000), what: () => `route id 0 = ${nm.addr} and controllers that agree (${roleState()})` });
  assert.equal(info.master, nm.id, `the controllers name broker ${nm.id}, which acknowledged`);
  assert.equal(info.masterAddress, nm.addr);
  assert.equal(info.masterEpoch, 2);
  assert.ok(st.setBefore.includes(nm.id), `broker ${nm.id} was in the sync state set ${st.setBefore} when elected`);
});

step('every acknowledged message is on the new master where its SEND_OK put it; replicas agree', 60000, async t => {
  const { newMaster: nm, slave, acked: ok } = st;
  const onMaster = await readAll(nm);
  assertAckedIn(`new master (broker ${nm.id})`, onMaster, ok);
  // The surviving slave follows the new master: once its queues reach the master's ends it
  // holds the same message at every (queue, offset).
  let mo = [];
  let so = [];
  await waitFor(async () => {
    mo = await maxOffsets(nm);
    so = await maxOffsets(slave);
    return JSON.stringify(mo) === JSON.stringify(so);
  }, { timeoutMs: ms(20000), intervalMs: 100,
    what: () => `slave ${slave.id} to catch up with master ${nm.id} (max offsets ${so} vs ${mo})` });
  const onSlave = await readAll(slave);
  assertConsistent([ [ `master ${nm.id}`, onMaster ], [ `slave ${slave.id}`, onSlave ] ]);
  assertAckedIn(`surviving slave (broker ${slave.id})`, onSlave, ok);
  t.diagnostic(`${onMaster.size} messages on the new master, max offsets ${mo}`);
});

step('the killed master restarts as a slave of the new master and catches up', 60000, async t => {
  const { oldMaster: b1, newMaster: nm, slave } = st;
  startBroker(b1);
  await waitListening(b1, 'the restarted broker 1');
  await waitFor(async () => {
    const a = await routeAddrs();
    const x = await agreedInfo();
    return a['0'] === nm.addr && a[String(b1.id)] === b1.addr && x && x.master === nm.id;
  }, { timeoutMs: ms(20000), what: () => `broker 1 registered as slave (id 1) with broker ${nm.id} still master ` +
    `(${roleState()})` });
  const r = await sendOn(b1, 'to-restarted-old-master');
  assert.notEqual(r.code, RESP.SUCCESS, 'the restarted old master must not answer SEND_OK');

  // Fresh messages on the master after the restart.
  const late = [];
  let n = 0;
  await waitFor(async () => {
    const key = `late-${n++}`;
    const res = await sendOn(nm, key, { queueId: n % QUEUES });
    if (res.code === RESP.SUCCESS) {
      late.push({ key, queueId: Number(res.extFields.queueId), queueOffset: Number(res.extFields.queueOffset) });
    }
    return late.length >= 20;
  }, { timeoutMs: ms(20000), intervalMs: 10, what: () => `20 SEND_OK from the new master after the restart (${late.length})` });

  let mo = [];
  let oo = [];
  await waitFor(async () => {
    mo = await maxOffsets(nm);
    oo = await maxOffsets(b1);
    return JSON.stringify(mo) === JSON.stringify(oo);
  }, { timeoutMs: ms(30000), intervalMs: 100,
    what: () => `the restarted broker 1 to catch up with master ${nm.id} (max offsets ${oo} vs ${mo})` });
  const onMaster = await readAll(nm);
  const onOld = await readAll(b1);
  const onSlave = await readAll(slave);
  assertConsistent([ [ `master ${nm.id}`, onMaster ], [ 'restarted broker 1', onOld ], [ `slave ${slave.id}`, onSlave ] ]);
  assert.equal(onOld.size, onMaster.size, 'the restarted broker holds as many messages as the master');
  assertAckedIn('restarted broker 1', onOld, st.acked);
  for (const l of late) {
    const m = onOld.get(`${l.queueId}:${l.queueOffset}`);
    assert.ok(m && m.key === l.key, `message ${l.key} sent after the restart is on broker 1 at ${l.queueId}:${l.queueOffset}`);
  }
  // The master takes it back into the sync state set.
  await waitFor(async () => { const x = await agreedInfo(); return x && x.syncStateSet.includes(b1.id); },
    { timeoutMs: ms(15000), what: () => `broker 1 back in the sync state set (${rs.lastInfos})` });
  for (const b of [ b1, nm ]) {
    assert.ok(fs.existsSync(path.join(b.store, 'epochFileCheckpoint')), `broker ${b.id} has ${b.store}/epochFileCheckpoint`);
  }
  t.diagnostic(`restarted broker 1 holds ${onOld.size} messages, max offsets ${oo}`);
});

step('a returning master that wrote past the new master\'s epoch start loses exactly those records',
  90000, async t => {
    // The old master's unreplicated tail: the master is stopped (its slaves have everything),
    // the controllers elect another; then the stopped broker's store takes more records under
    // its old epoch (started once on its own, no controller, no name server), as a master cut
    // off at the wrong moment would. Back in controller mode it must cut them (epochs) and follow.
    const m = st.newMaster;
    const before = await waitFor(() => agreedInfo(), { timeoutMs: ms(10000), what: () => `agreement (${rs.lastInfos})` });
    assert.equal(before.master, m.id);
    await waitFor(async () => {
      const mo = JSON.stringify(await maxOffsets(m));
      for (const b of brokers.filter(x => x !== m)) if (JSON.stringify(await maxOffsets(b)) !== mo) return false;
      return true;
    }, { timeoutMs: ms(20000), what: 'every slave to hold what the master holds' });
    const st0 = await m.proc.stop();
    await m.link.close().catch(() => {});
    assert.equal(st0.code, 0, `broker ${m.id} stops cleanly on SIGTERM`);
    const info = await waitFor(async () => {
      const x = await agreedInfo();
      return x && x.master && x.master !== m.id && x.masterEpoch > before.masterEpoch &&
        (await routeAddrs())['0'] === brokerById(x.master).addr && x;
    }, { timeoutMs: LEASE + ms(20000), what: () => `another master once broker ${m.id} stopped (${roleState()})` });
    const elected = brokerById(info.master);

    // Standalone writes under the old epoch.
    const keys = Object.fromEntries(fs.readFileSync(m.conf, 'utf8').split('\n').filter(Boolean)
      .map(l => [ l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1) ]));
    Object.assign(keys, { enableControllerMode: 'false', brokerRole: 'ASYNC_MASTER', brokerId: 0, namesrvAddr: '',
      haSecret: '' });
    const soloConf = path.join(dir, `broker-${m.id}-solo.conf`);
    writeConf(soloConf, keys);
    const solo = rs.startSolo(m, soloConf, 'solo');
    await waitListening(solo, `broker ${m.id} on its own`);
    const stray = [];
    for (let i = 0; i < 5; i++) {
      const r = await remoting.sendMessage(await solo.link.connection(), { topic: TOPIC, queueId: i % QUEUES,
        keys: `stray-${i}`, body: Buffer.from(`stray-${i}`), timeoutMs: ms(6000) });
      assert.equal(r.code, RESP.SUCCESS, `the stray write ${i} is stored by broker ${m.id} on its own: ${r.remark}`);
      stray.push(`stray-${i}`);
    }
    const stS = await solo.proc.stop();
    await solo.link.close().catch(() => {});
    assert.equal(stS.code, 0, 'the standalone run stops cleanly');

    // Back in controller mode: a slave of the elected master, without the stray records.
    startBroker(m);
    await waitListening(m, `the restarted broker ${m.id}`);
    await waitFor(async () => {
      const a = await routeAddrs();
      return a['0'] === elected.addr && a[String(m.id)] === m.addr;
    }, { timeoutMs: ms(20000), what: () => `broker ${m.id} registered as a slave of ${elected.id} (${roleState()})` });
    let mo = [];
    let oo = [];
    await waitFor(async () => {
      mo = await maxOffsets(elected);
      oo = await maxOffsets(m);
      return JSON.stringify(mo) === JSON.stringify(oo);
    }, { timeoutMs: ms(30000), intervalMs: 100,
      what: () => `broker ${m.id} to follow ${elected.id} (max offsets ${oo} vs ${mo}; its log: ` +
        `${tail(m.proc.logFile, 5).replace(/\n/g, ' | ')})` });
    const log = fs.readFileSync(m.proc.logFile, 'utf8');
    assert.match(log, /new master's history does not have \(epochs\); cutting at/,
      'the returning broker cut its CommitLog at the consistent point');
    const onM = await readAll(m);
    const onElected = await readAll(elected);
    const third = brokers.find(b => b !== m && b !== elected);
    assertConsistent([ [ `broker ${m.id}`, onM ], [ `master ${elected.id}`, onElected ], [ `broker ${third.id}`, await readAll(third) ] ]);
    for (const v of onM.values()) assert.ok(!stray.includes(v.key), `${v.key} (written under the old epoch) was cut`);
    assertAckedIn(`broker ${m.id}`, onM, st.acked);
    assertAckedIn(`master ${elected.id}`, onElected, st.acked);
    // Both slaves back in the new master's sync state set (the next step elects from it).
    await waitFor(async () => { const x = await agreedInfo(); return x && x.syncStateSet.length === 3; },
      { timeoutMs: ms(20000), what: () => `all three brokers in the sync state set (${rs.lastInfos})` });
    t.diagnostic(`broker ${m.id} cut its 5 stray records and follows ${elected.id} (epoch ${info.masterEpoch})`);
    st.newMaster = elected;
  });

step('without a controller majority nothing is elected; with it back a master is elected and sends succeed',
  90000, async t => {
    const master = st.newMaster;
    const others = brokers.filter(b => b !== master);
    const agreed = await waitFor(() => agreedInfo(), { timeoutMs: ms(10000), what: () => `agreement (${rs.lastInfos})` });
    assert.equal(agreed.master, master.id);
    const leader = await waitFor(() => findLeader(), { timeoutMs: ms(10000), what: 'a Raft leader' });
    const victims = [ leader, controllers.find(c => c !== leader) ];
    const survivor = controllers.find(c => !victims.includes(c));
    for (const v of victims) await killProc(v);
    // What the survivor holds now is what it must keep holding without a majority.
    const before = await replicaInfoFrom(survivor);
    assert.equal(before.master, master.id, `the survivor names broker ${master.id} master: ${JSON.stringify(before)}`);

    // The master, cut off from a majority, stops accepting sends within half the lease (plus slack).
    const tCut = Date.now();
    let fenced = null;
    try {
      await waitFor(async () => (await sendOn(master, `cut-${Date.now()}`, { timeoutMs: ms(5000) })).code !== RESP.SUCCESS,
        { timeoutMs: LEASE / 2 + ms(5000), intervalMs: 100, what: 'the master cut off from the controllers to refuse sends' });
      fenced = Date.now() - tCut;
    } catch (e) {
      fenced = e.message;
    }
    figures.masterFencedMs = fenced;

    await killProc(master);
    const tKill = Date.now();
    const watchUntil = tKill + 2 * LEASE + 4 * SCAN;
    let samples = 0;
    while (Date.now() < watchUntil) {
      const a = await routeAddrs();
      assert.ok(a['0'] === undefined || a['0'] === master.addr, `route id 0 moved to ${a['0']} without a controller majority`);
      assert.deepEqual(await replicaInfoFrom(survivor), before, 'the surviving controller changed the replica info alone');
      if (samples++ % 10 === 0) {
        for (const b of others) {
          const r = await sendOn(b, `no-majority-${b.id}-${samples}`, { timeoutMs: ms(5000) });
          assert.notEqual(r.code, RESP.SUCCESS, `broker ${b.id} answered SEND_OK without a controller majority`);
        }
      }
      await sleep(100); // sampling interval of the watch
    }

    const tBack = Date.now();
    for (const v of victims) startController(v);
    const info = await waitFor(async () => {
      if (aliveControllers().length !== 3) return false;
      const x = await agreedInfo();
      return x && others.some(b => b.id === x.master) && x.masterEpoch > before.masterEpoch &&
        (await routeAddrs())['0'] === brokerById(x.master).addr && x;
    }, { timeoutMs: LEASE + ms(30000), what: () => `a master elected among brokers ${others.map(b => b.id)} once ` +
      `the controllers are back (${roleState()})` });
    const elected = brokerById(info.master);
    await waitFor(async () => (await sendOn(elected, `back-${Date.now()}`)).code === RESP.SUCCESS,
      { timeoutMs: ms(20000), intervalMs: 100, what: () => `a SEND_OK from the elected broker ${elected.id}` });
    figures.recoverMs = Date.now() - tBack;
    t.diagnostic(`master fenced after ${typeof fenced === 'number' ? fenced + ' ms' : 'never'}; broker ${elected.id} ` +
      `elected (epoch ${info.masterEpoch}) and acknowledging ${figures.recoverMs} ms after the controllers restarted`);
    assertAckedIn(`elected broker ${elected.id}`, await readAll(elected), st.acked);
    assert.equal(typeof fenced, 'number', `a master without a controller majority must stop accepting sends: ${fenced}`);
  });
