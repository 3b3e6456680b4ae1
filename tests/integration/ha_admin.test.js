'use strict';
// ferry-test-requires: mqcontroller mqadmin
// The operator views of replication and failover (docs/CONTROLLER.md "Operating: mqadmin"):
// the real mqadmin binary (FERRY_MQADMIN_DIR) against three mqcontrollers, a name server and
// three controller-mode mqbrokers of one set (replica_set.js):
//  1. haStatus, getBrokerEpoch, getSyncStateSet and getControllerMetaData print what is true:
//     their --json output equals what the brokers and controllers answer directly, and the
//     known facts (master broker 1, epoch 1 from offset 0, both slaves in the sync state set
//     and caught up: lag 0 when idle, every replica at the same CommitLog end);
//  2. slow slaves: both slaves SIGSTOPped while sending to the SYNC_MASTER master: every answer
//     is FLUSH_SLAVE_TIMEOUT (12) or SLAVE_NOT_AVAILABLE (11), never SEND_OK, until and after
//     the sync state set shrinks to the master; haStatus shows the slaves' lag; SIGCONT: they
//     catch up, rejoin the set, sends are SEND_OK again and haStatus shows lag 0;
//  3. electMaster (sent to a follower controller: NOT_LEADER is followed) makes slave 2 the
//     master while master 1 is alive: route id 0 and the controllers name it (epoch 2),
//     getBrokerEpoch shows epoch 2 from where epoch 1 ended, sends succeed on it and the old
//     master refuses them; mqadmin exits non-zero with a clear message for a broker id that is
//     no member, for the master itself, for an unreachable controller and on usage errors.

const { after } = require('node:test');
const assert = require('node:assert/strict');
const { waitFor, ms, freePort, runMqadmin } = require('../compat/harness');
const { ReplicaSet, CTL } = require('./replica_set');
const { RESP } = require('../compat/remoting');

const SLAVE_NOT_AVAILABLE = 11;
const FLUSH_SLAVE_TIMEOUT = 12;
const GET_BROKER_HA_STATUS = 907;
const GET_BROKER_EPOCH_CACHE = 1007;
const CLUSTER = 'FerryHaAdminCluster';
const SET = 'ha-set';

const rs = new ReplicaSet({ name: 'ha-admin', cluster: CLUSTER, set: SET, secret: 'ha-admin-secret',
  topic: 'HaAdminTopic', group: 'CID_ha_admin_check' });
const step = rs.stepper();
const st = {};

after(async () => {
  for (const b of rs.brokers) if (b.proc && b.proc.running) b.proc.child.kill('SIGCONT');
  const problems = await rs.stopAll();
  if (problems.length) {
    process.stderr.write(`${rs.logs.logsText(40)}\n`);
    throw new Error(`processes did not stop cleanly with SIGTERM: ${problems.join('; ')}`);
  }
});

// ---- mqadmin ----------------------------------------------------------------------------------

/** Runs mqadmin to its end (tests/compat/harness.js). */
const mqadmin = (...args) => runMqadmin(args);

/** mqadmin ... --json that must succeed: its parsed output. */
async function mqadminJson(...args) {
  const r = await mqadmin(...args, '--json');
  assert.equal(r.code, 0, `mqadmin ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  try {
    return JSON.parse(r.stdout);
  } catch (e) {
    throw new Error(`mqadmin ${args.join(' ')} printed no JSON: ${e.message}\n${r.stdout}`);
  }
}

/** mqadmin ... that must fail with @code; its stderr. */
async function mqadminFails(code, ...args) {
  const r = await mqadmin(...args);
  assert.equal(r.code, code, `mqadmin ${args.join(' ')} exited ${r.code} (want ${code}): ${r.stdout}${r.stderr}`);
  assert.ok(r.stderr.startsWith(`mqadmin: ${args[0]}: `), `a message naming the command: ${r.stderr}`);
  return r.stderr;
}

const ctlList = () => rs.controllers.map(c => c.addr).join(';');

// ---- direct requests --------------------------------------------------------------------------

async function brokerJson(b, code) {
  const r = await b.link.invoke(code, {}, { timeoutMs: ms(3000) });
  assert.equal(r.code, RESP.SUCCESS, `request ${code} to broker ${b.id}: ${r.remark}`);
  return JSON.parse(r.body.toString());
}

const haStatusOf = b => brokerJson(b, GET_BROKER_HA_STATUS);

/** The master's HA view once idle: both slaves streaming, acknowledged up to its end. */
async function idleMasterStatus(master, slaves) {
  return waitFor(async () => {
    const h = await haStatusOf(master);
    const ids = h.haConnectionInfo.map(x => x.brokerId).sort();
    return JSON.stringify(ids) === JSON.stringify(slaves.map(s => s.id).sort()) &&
      h.haConnectionInfo.every(x => x.diff === 0 && x.slaveAckOffset === h.masterCommitLogMaxOffset) && h;
  }, { timeoutMs: ms(20000), intervalMs: 100, what: () => `master ${master.id} to see slaves ${slaves.map(s => s.id)} ` +
    'streaming with lag 0' });
}

// ---- the steps --------------------------------------------------------------------------------

step('haStatus, getBrokerEpoch, getSyncStateSet, getControllerMetaData print what is true', 60000, async t => {
  const info = await rs.bringUp({ minSet: 3 });
  const [ b1, b2, b3 ] = rs.brokers;
  assert.equal(info.master, 1);
  assert.equal(info.masterEpoch, 1);
  assert.deepEqual([ ...info.syncStateSet ].sort(), [ 1, 2, 3 ]);
  await rs.createTopic(b1);
  for (let i = 0; i < 8; i++) {
    const r = await rs.sendOn(b1, `warm-${i}`, { queueId: i % rs.queues });
    assert.equal(r.code, RESP.SUCCESS, `warm-up send ${i}: ${r.remark}`);
  }
  const ns = rs.namesrv.addr;

  // getControllerMetaData: what the first controller answers; its leader is the Raft leader.
  const leader = await waitFor(() => rs.findLeader(), { timeoutMs: ms(10000), what: 'a Raft leader' });
  const meta = await mqadminJson('getControllerMetaData', '-a', ctlList());
  const direct = (await rs.controllers[0].link.invoke(CTL.METADATA, {})).extFields;
  assert.deepEqual(meta, { controllerAddress: rs.controllers[0].addr, group: direct.group,
    controllerLeaderId: direct.controllerLeaderId, controllerLeaderAddress: direct.controllerLeaderAddress,
    controllerSelfId: 'n0', isLeader: direct.isLeader === 'true', peers: direct.peers.split(';') });
  assert.equal(meta.controllerLeaderAddress, leader.addr, 'the leader it names is the Raft leader');
  assert.equal(meta.controllerLeaderId, leader.name.replace('controller-', ''));
  assert.equal(meta.peers.length, 3);
  const metaTable = await mqadmin('getControllerMetaData', '-a', leader.addr);
  assert.equal(metaTable.code, 0, metaTable.stderr);
  assert.match(metaTable.stdout, new RegExp(`#IsLeader\\ttrue\\n#ControllerLeaderId\\t\\S+\\n#ControllerLeaderAddress\\t${leader.addr}\\n`));

  // getSyncStateSet: the controller's table, as it answers it; master 1, all three in sync.
  const sss = await mqadminJson('getSyncStateSet', '-a', ctlList(), '-b', SET);
  const r1006 = await rs.controllers[0].link.invoke(CTL.SYNC_STATE_DATA, {}, { body: Buffer.from(JSON.stringify([ SET ])) });
  assert.deepEqual(sss, JSON.parse(r1006.body.toString()));
  const row = sss.replicasInfoTable[SET];
  assert.equal(row.masterBrokerId, 1);
  assert.equal(row.masterAddress, b1.addr);
  assert.equal(row.masterEpoch, 1);
  assert.deepEqual(row.inSyncReplicas.map(x => x.brokerId).sort(), [ 1, 2, 3 ]);
  assert.ok(row.inSyncReplicas.every(x => x.alive), 'every replica is alive');
  assert.deepEqual(row.notInSyncReplicas, []);
  assert.deepEqual(await mqadminJson('getSyncStateSet', '-a', ctlList(), '-c', CLUSTER, '-n', ns), sss,
    'the set found through the cluster is the same');
  const sssTable = await mqadmin('getSyncStateSet', '-a', ctlList(), '-b', SET);
  assert.match(sssTable.stdout, new RegExp(`#brokerName\\t${SET}\\n#MasterAddr\\t${b1.addr}\\n#MasterBrokerId\\t1\\n` +
    '#MasterEpoch\\t1\\n#SyncStateSetEpoch\\t\\d+\\n#SyncStateSetNums\\t3\\n'));
  assert.equal((sssTable.stdout.match(/ InSyncReplica:\tid \d\t127\.0\.0\.1:\d+\tonline/g) || []).length, 3);

  // haStatus of the master: both slaves streaming, required for acks, lag 0 when idle.
  const hs = await idleMasterStatus(b1, [ b2, b3 ]);
  const [ viaAdmin ] = await mqadminJson('haStatus', '-b', b1.addr);
  const again = await haStatusOf(b1);
  for (const x of [ viaAdmin, again ]) {
    for (const c of x.haConnectionInfo) delete c.lastReportMs; // changes between two requests
  }
  assert.deepEqual(viaAdmin, again, 'mqadmin prints what the broker answers');
  assert.equal(hs.master, true);
  assert.equal(hs.role, 'SYNC_MASTER');
  assert.equal(hs.controllerMode, true);
  assert.equal(hs.fenced, false);
  assert.equal(hs.inSyncSlaveNums, 2);
  assert.deepEqual(hs.requiredSlaveIds, [ 2, 3 ]);
  for (const c of hs.haConnectionInfo) {
    assert.ok(c.inSync && c.ackRequired && c.diff === 0, `slave ${c.brokerId}: ${JSON.stringify(c)}`);
    assert.ok(c.lastReportMs >= 0 && c.lastReportMs < ms(3000), `slave ${c.brokerId} reported lately: ${c.lastReportMs}`);
  }
  const max = hs.masterCommitLogMaxOffset;
  assert.ok(max > 0);
  const hsTable = await mqadmin('haStatus', '-b', b1.addr);
  assert.match(hsTable.stdout, /#Role\tSYNC_MASTER \(master\) \(controller mode\)\n/);
  assert.match(hsTable.stdout, /#AckRequiredSlaves\t2,3\n/);
  assert.match(hsTable.stdout, new RegExp(`\\n127\\.0\\.0\\.1:\\d+ +2 +${max} +0 +OK +true `));

  // haStatus of the cluster: the master and two slaves that follow it, at the same end.
  const all = await mqadminJson('haStatus', '-c', CLUSTER, '-n', ns);
  assert.deepEqual(all.map(x => [ x.brokerAddr, x.master ]), [ [ b1.addr, true ], [ b2.addr, false ], [ b3.addr, false ] ]);
  for (const s of all.slice(1)) {
    const c = s.haClientRuntimeInfo;
    assert.equal(s.role, 'SLAVE');
    assert.deepEqual(s.haConnectionInfo, []);
    assert.deepEqual({ masterAddr: c.masterAddr, masterHaAddr: c.masterHaAddr, connected: c.connected, maxOffset: c.maxOffset },
      { masterAddr: b1.addr, masterHaAddr: `127.0.0.1:${b1.haPort}`, connected: true, maxOffset: max });
    assert.ok(c.receivedOffset >= max && c.durableOffset >= max, `slave ${s.brokerId}: ${JSON.stringify(c)}`);
  }
  const slaveTable = await mqadmin('haStatus', '-b', b2.addr);
  assert.match(slaveTable.stdout, new RegExp(`#Role\\tSLAVE \\(controller mode\\)\\n#MasterAddr\\t${b1.addr}\\n` +
    `#MasterHaAddr\\t127\\.0\\.0\\.1:${b1.haPort}\\n#Connected\\ttrue\\n#CommitLogMaxOffset\\t${max}\\n`));

  // getBrokerEpoch: every replica has epoch 1 from offset 0 up to the common end.
  const ep = await mqadminJson('getBrokerEpoch', '-b', SET, '-n', ns);
  assert.deepEqual(ep.map(x => x.brokerId), [ 1, 2, 3 ]);
  for (const [ k, e ] of ep.entries()) {
    assert.deepEqual(e, await brokerJson(rs.brokers[k], GET_BROKER_EPOCH_CACHE), `broker ${k + 1}: as it answers`);
    assert.deepEqual(e, { clusterName: CLUSTER, brokerName: SET, brokerId: k + 1, brokerAddr: rs.brokers[k].addr,
      epochList: [ { epoch: 1, startOffset: 0, endOffset: max } ], maxOffset: max });
  }
  const epTable = await mqadmin('getBrokerEpoch', '-c', CLUSTER, '-n', ns);
  assert.equal((epTable.stdout.match(new RegExp(`\\n1 +0 +${max}\\n`, 'g')) || []).length, 3, epTable.stdout);
  t.diagnostic(`master ${b1.addr}, CommitLog end ${max}, controller leader ${leader.name}`);
});

step('slow slaves: no SEND_OK until the set shrinks; SIGCONT: they catch up, rejoin, SEND_OK again', 60000, async t => {
  const [ b1, b2, b3 ] = rs.brokers;
  const codes = [];
  let stop = false;
  const loop = async w => {
    for (let i = 0; !stop; i++) {
      const r = await rs.sendOn(b1, `slow-${w}-${i}`, { queueId: (w + i) % rs.queues, timeoutMs: ms(10000) });
      codes.push(r.code);
    }
  };
  const visibleBefore = await rs.maxOffsets(b1);
  for (const b of [ b2, b3 ]) b.proc.child.kill('SIGSTOP');
  const tStop = Date.now();
  const loops = [ loop(0), loop(1) ];
  try {
    // The master's view while they stall: both slaves behind its end (until it drops them).
    const lag = await waitFor(async () => {
      const h = await mqadminJson('haStatus', '-b', b1.addr);
      const c = h[0].haConnectionInfo;
      return c.length === 2 && c.every(x => x.diff > 0 && x.slaveAckOffset + x.diff === h[0].masterCommitLogMaxOffset) && h[0];
    }, { timeoutMs: ms(2500), intervalMs: 20, what: 'haStatus to show both stalled slaves behind the master' });
    t.diagnostic(`lag shown: ${lag.haConnectionInfo.map(x => `${x.brokerId}: ${x.diff} bytes`).join(', ')}`);
    const shrunk = await waitFor(async () => {
      const x = await rs.agreedInfo();
      return x && x.syncStateSet.length === 1 && x;
    }, { timeoutMs: ms(20000), intervalMs: 100, what: () => `the sync state set to shrink to the master (${rs.lastInfos})` });
    assert.deepEqual(shrunk.syncStateSet, [ 1 ]);
    st.shrinkMs = Date.now() - tStop;
    // After the shrink too: a set without slaves acknowledges nothing.
    const n = codes.length;
    await waitFor(() => codes.length >= n + 2, { timeoutMs: ms(10000), what: 'two more answers after the shrink' });
    const sss = await mqadminJson('getSyncStateSet', '-a', ctlList(), '-b', SET);
    assert.deepEqual(sss.replicasInfoTable[SET].inSyncReplicas.map(x => x.brokerId), [ 1 ]);
    assert.deepEqual(sss.replicasInfoTable[SET].notInSyncReplicas.map(x => x.brokerId).sort(), [ 2, 3 ]);
    // Stored but never acknowledged: no consumer may read them (a failover could take them
    // back), so the queues' ends have not moved.
    assert.deepEqual(await rs.maxOffsets(b1), visibleBefore,
      'messages no replica has are not visible to consumers (queue max offsets unchanged)');
    // The master stops waiting for them once the controller agreed (its ALTER answer).
    await waitFor(async () => (await mqadminJson('haStatus', '-b', b1.addr))[0].requiredSlaveIds.length === 0,
      { timeoutMs: ms(5000), intervalMs: 100, what: 'haStatus to show no slave required once the set shrank' });
  } finally {
    for (const b of [ b2, b3 ]) b.proc.child.kill('SIGCONT');
    stop = true;
    await Promise.all(loops);
  }
  const tally = {};
  for (const c of codes) tally[c] = (tally[c] || 0) + 1;
  t.diagnostic(`answers while stopped: ${JSON.stringify(tally)}; set shrank after ${st.shrinkMs} ms`);
  assert.ok(codes.length > 0);
  assert.ok(codes.every(c => c === FLUSH_SLAVE_TIMEOUT || c === SLAVE_NOT_AVAILABLE),
    `every answer is FLUSH_SLAVE_TIMEOUT or SLAVE_NOT_AVAILABLE: ${JSON.stringify(tally)}`);

  // Back: they rejoin, sends are acknowledged, haStatus shows lag 0.
  await waitFor(async () => { const x = await rs.agreedInfo(); return x && x.syncStateSet.length === 3; },
    { timeoutMs: ms(30000), intervalMs: 100, what: () => `both slaves back in the sync state set (${rs.lastInfos})` });
  await waitFor(async () => (await rs.sendOn(b1, `back-${Date.now()}`)).code === RESP.SUCCESS,
    { timeoutMs: ms(15000), intervalMs: 100, what: 'a SEND_OK once the slaves are back' });
  await idleMasterStatus(b1, [ b2, b3 ]);
  // Replicated now: what was stored during the stall is visible.
  const visibleAfter = await rs.maxOffsets(b1);
  assert.ok(visibleAfter.reduce((a, x) => a + x, 0) > visibleBefore.reduce((a, x) => a + x, 0),
    `the stored messages become visible once replicated (${visibleBefore} -> ${visibleAfter})`);
  const [ h ] = await mqadminJson('haStatus', '-b', b1.addr);
  assert.deepEqual(h.haConnectionInfo.map(x => [ x.brokerId, x.diff, x.inSync, x.ackRequired ]).sort(),
    [ [ 2, 0, true, true ], [ 3, 0, true, true ] ]);
});

step('electMaster moves the master to a designated slave; errors exit non-zero with a message', 60000, async t => {
  const [ b1, b2, b3 ] = rs.brokers;
  await idleMasterStatus(b1, [ b2, b3 ]);
  const leader = await waitFor(() => rs.findLeader(), { timeoutMs: ms(10000), what: 'a Raft leader' });
  const follower = rs.controllers.find(c => c !== leader);

  // Usage and refusals first (nothing changes).
  let err = await mqadminFails(2, 'electMaster', '-a', ctlList(), '-c', CLUSTER, '-b', '2');
  assert.match(err, /option -bn is required/);
  err = await mqadminFails(2, 'electMaster', '-a', ctlList(), '-c', CLUSTER, '-bn', SET, '-b', 'two');
  assert.match(err, /-b must be a broker id/);
  err = await mqadminFails(1, 'electMaster', '-a', ctlList(), '-c', CLUSTER, '-bn', SET, '-b', '9');
  assert.match(err, /electing broker 9 of ha-set failed \(CONTROLLER_BROKER_NOT_ALIVE \(2006\) from 127\.0\.0\.1:\d+: broker 9 of ha-set is not alive\)/);
  err = await mqadminFails(1, 'electMaster', '-a', ctlList(), '-c', CLUSTER, '-bn', SET, '-b', '1');
  assert.match(err, /CONTROLLER_MASTER_STILL_EXIST \(2011\).*already the master/);
  const dead = `127.0.0.1:${await freePort()}`;
  err = await mqadminFails(1, 'electMaster', '-a', dead, '-c', CLUSTER, '-bn', SET, '-b', '2');
  assert.match(err, new RegExp(`no controller leader answered among ${dead} \\(last: .*${dead}`));
  err = await mqadminFails(1, 'getSyncStateSet', '-a', dead, '-b', SET);
  assert.match(err, /no controller answered among/);
  err = await mqadminFails(1, 'getSyncStateSet', '-a', ctlList(), '-b', 'no-such-set');
  assert.match(err, /broker set no-such-set is unknown to the controller/);
  err = await mqadminFails(1, 'haStatus', '-b', dead);
  assert.match(err, new RegExp(`HA status of ${dead}: .*${dead}`));
  err = await mqadminFails(2, 'haStatus', '-b', b1.addr, '-c', CLUSTER);
  assert.match(err, /give exactly one of -b brokerAddr and -c cluster/);
  assert.equal((await rs.agreedInfo()).master, 1, 'the refused requests changed nothing');

  // The switch, through a follower (its NOT_LEADER answer names the leader).
  const tElect = Date.now();
  const el = await mqadminJson('electMaster', '-a', follower.addr, '-c', CLUSTER, '-bn', SET, '-b', '2');
  assert.deepEqual(el, { controllerAddress: leader.addr, clusterName: CLUSTER, brokerName: SET, masterBrokerId: 2,
    masterAddress: b2.addr, masterEpoch: 2, syncStateSetEpoch: el.syncStateSetEpoch, syncStateSet: [ 2 ] });
  await waitFor(async () => (await rs.routeAddrs())['0'] === b2.addr && await rs.agreedInfo(),
    { timeoutMs: ms(15000), what: () => `route id 0 = broker 2 (${rs.roleState()})` });
  const info = await rs.agreedInfo();
  assert.equal(info.master, 2);
  assert.equal(info.masterEpoch, 2);
  await waitFor(async () => (await rs.sendOn(b2, `elected-${Date.now()}`)).code === RESP.SUCCESS,
    { timeoutMs: ms(15000), intervalMs: 100, what: 'a SEND_OK from the new master 2' });
  const switchMs = Date.now() - tElect;
  const r = await rs.sendOn(b1, 'to-old-master');
  assert.notEqual(r.code, RESP.SUCCESS, 'the old master refuses sends');

  // The views follow: broker 2 is master with epoch 2 from where epoch 1 ended; 1 and 3 follow it.
  const [ h2 ] = await mqadminJson('haStatus', '-b', b2.addr);
  assert.equal(h2.master, true);
  assert.equal(h2.role, 'SYNC_MASTER');
  const [ h1 ] = await mqadminJson('haStatus', '-b', b1.addr);
  assert.equal(h1.master, false);
  assert.equal(h1.haClientRuntimeInfo.masterAddr, b2.addr);
  const ep = await mqadminJson('getBrokerEpoch', '-b', SET, '-n', rs.namesrv.addr);
  const e2 = ep.find(x => x.brokerId === 2);
  assert.equal(e2.epochList.length, 2, JSON.stringify(e2));
  assert.deepEqual(e2.epochList.map(x => x.epoch), [ 1, 2 ]);
  assert.equal(e2.epochList[0].endOffset, e2.epochList[1].startOffset, 'epoch 2 starts where epoch 1 ends');
  assert.equal(e2.epochList[1].endOffset, e2.maxOffset);
  await waitFor(async () => {
    const x = await rs.agreedInfo();
    return x && x.syncStateSet.length === 3;
  }, { timeoutMs: ms(20000), what: () => `brokers 1 and 3 in the new master's sync state set (${rs.lastInfos})` });
  await idleMasterStatus(b2, [ b1, b3 ]);
  const epAfter = await mqadminJson('getBrokerEpoch', '-b', SET, '-n', rs.namesrv.addr);
  for (const e of epAfter) {
    assert.deepEqual(e.epochList.map(x => [ x.epoch, x.startOffset ]), e2.epochList.map(x => [ x.epoch, x.startOffset ]),
      `broker ${e.brokerId} has the new master's epochs`);
  }
  t.diagnostic(`electMaster: broker 2 acknowledging ${switchMs} ms after the command`);
});
