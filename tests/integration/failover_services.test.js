'use strict';
// ferry-test-requires: mqcontroller
// The broker's own writers follow a failover (controller mode, docs/CONTROLLER.md): the schedule
// service (delayed messages) and the transaction check-back run on whichever broker is master,
// so a delayed message or an unresolved half message acknowledged by a master that then dies
// is still delivered or checked back by the master elected after it. Real processes on free
// loopback ports (replica_set.js): three mqcontrollers, one mqnamesrv, three mqbrokers of one
// set (SYNC_MASTER flavour, SYNC_FLUSH, messageDelayLevel "1s 6s", transactionTimeOut 1 s).
//  1. the set comes up, broker 1 master, the test topic on every broker;
//  2. broker 1 acknowledges a delayed message (level 2: 6 s) and a half message (TRAN_MSG, no
//     commit) and is killed with kill -9 at once, before the delay is due and before any
//     producer could be asked about the half;
//  3. a producer of the half's group heartbeats to the new master and answers its
//     CHECK_TRANSACTION_STATE with a commit: the half's message and the delayed message (not
//     before its due time) show up in the topic on the new master;
//  4. broker 1 restarts as a slave and ends up holding the same messages at the same places.
// Before the services followed the role, the new master never delivered the delayed message
// and never checked the half back (their threads ran only on a broker started as master).

const { after } = require('node:test');
const assert = require('node:assert/strict');
const { waitFor, ms } = require('../compat/harness');
const remoting = require('../compat/remoting');
const { ReplicaSet, assertConsistent } = require('./replica_set');

const { RESP } = remoting;
const TOPIC = 'FoServicesTopic';
const PGROUP = 'PG_fo_services';
const DELAY_MS = 6000; // level 2 of messageDelayLevel below
const END_TRANSACTION = 37;
const CHECK_TRANSACTION_STATE = 39;

const rs = new ReplicaSet({ name: 'fo-services', cluster: 'FerryFoSvcCluster', set: 'fo-svc-set',
  secret: 'fo-services-secret', topic: TOPIC, queues: 2, group: 'CID_fo_services_check',
  brokerConf: { messageDelayLevel: '1s 6s', transactionTimeOut: 1000, transactionCheckInterval: 500 } });
const { brokers } = rs;
const step = rs.stepper();
const st = { delayed: null, half: null, newMaster: null, checks: [] };

after(async () => {
  const problems = await rs.stopAll();
  if (problems.length) {
    process.stderr.write(`${rs.logs.logsText(40)}\n`);
    throw new Error(`processes did not stop cleanly with SIGTERM: ${problems.join('; ')}`);
  }
});

/** The messages of the test topic on broker b whose key is k. */
async function withKey(b, k) {
  return [ ...(await rs.readAll(b)).values() ].filter(m => m.key === k);
}

step('a controller-mode broker set, broker 1 master, the test topic on every broker', 90000, async () => {
  await rs.bringUp();
  await rs.createTopic(brokers[0]);
});

step('the master acknowledges a delayed and a half message and is killed at once', 60000, async () => {
  const [ b1 ] = brokers;
  const conn = await b1.link.connection();
  const t0 = Date.now();
  const d = await remoting.sendMessage(conn, { topic: TOPIC, queueId: 0, keys: 'delayed-1',
    body: Buffer.from('delayed body'), props: { DELAY: '2' }, timeoutMs: ms(6000) });
  assert.equal(d.code, RESP.SUCCESS, `delayed send: ${d.code} ${d.remark}`);
  const h = await remoting.sendMessage(conn, { group: PGROUP, topic: TOPIC, queueId: 1, keys: 'half-1',
    body: Buffer.from('half body'), props: { TRAN_MSG: 'true', PGROUP }, timeoutMs: ms(6000) });
  assert.equal(h.code, RESP.SUCCESS, `half send: ${h.code} ${h.remark}`);
  await b1.proc.stop({ signal: 'SIGKILL' });
  await b1.link.close();
  assert.ok(Date.now() - t0 < DELAY_MS, 'killed before the delayed message was due');
  st.delayed = { t0 };
  // Neither is in the topic yet on the surviving replicas (SYNC_MASTER: they hold both records).
  for (const b of brokers.slice(1)) {
    assert.deepEqual(await withKey(b, 'delayed-1'), [], `broker ${b.id}: the delayed message is not visible yet`);
    assert.deepEqual(await withKey(b, 'half-1'), [], `broker ${b.id}: the half message is not visible`);
  }
});

step('the new master delivers the delayed message and checks the half back', 90000, async t => {
  const [ b1 ] = brokers;
  const nm = await waitFor(async () => {
    const id0 = (await rs.routeAddrs())['0'];
    return id0 && id0 !== b1.addr && rs.brokerByAddr(id0);
  }, { timeoutMs: ms(30000), intervalMs: 100, what: () => `a new master in the route (${rs.roleState()})` });
  st.newMaster = nm;
  t.diagnostic(`new master: broker ${nm.id}`);

  // A producer of the half's group on the new master: heartbeat, then commit what it is asked.
  const producer = await remoting.RemotingConnection.connect(nm.addr);
  try {
    producer.on('request', req => {
      if (req.code !== CHECK_TRANSACTION_STATE) return;
      const f = req.extFields;
      st.checks.push(f);
      producer.oneway(END_TRANSACTION, { producerGroup: PGROUP, tranStateTableOffset: f.tranStateTableOffset,
        commitLogOffset: f.commitLogOffset, commitOrRollback: 8, fromTransactionCheck: true, msgId: f.msgId,
        transactionId: f.transactionId });
    });
    const hb = await producer.invoke(remoting.REQ.HEART_BEAT, {}, { body: Buffer.from(JSON.stringify({
      clientID: '127.0.0.1@fo-services', producerDataSet: [ { groupName: PGROUP } ], consumerDataSet: [] })) });
    assert.equal(hb.code, RESP.SUCCESS, `HEART_BEAT: ${hb.code} ${hb.remark}`);

    const found = await waitFor(async () => {
      const dm = await withKey(nm, 'delayed-1');
      const hm = await withKey(nm, 'half-1');
      return dm.length && hm.length && { dm, hm };
    }, { timeoutMs: ms(40000), intervalMs: 250, what: () => `the delayed and the committed half message in ` +
      `${TOPIC} on the new master (checks received: ${st.checks.length})` });
    assert.ok(st.checks.length >= 1, 'the new master asked the producer about the half');
    assert.equal(found.hm[0].body, 'half body');
    assert.equal(found.dm[0].body, 'delayed body');
    assert.ok(found.dm[0].storeTs >= st.delayed.t0 + DELAY_MS - 50,
      `the delayed message was delivered ${found.dm[0].storeTs - st.delayed.t0} ms after the send (due ${DELAY_MS})`);
    t.diagnostic(`delayed message delivered ${found.dm[0].storeTs - st.delayed.t0} ms after its send; ` +
      `${st.checks.length} check(s)`);
  } finally {
    await producer.close();
  }
});

step('the old master restarts as a slave and holds the same messages', 90000, async () => {
  const [ b1 ] = brokers;
  const nm = st.newMaster;
  rs.startBroker(b1);
  await rs.waitListening(b1, 'broker 1 again');
  await waitFor(async () => {
    const [ a, b ] = [ await rs.maxOffsets(nm), await rs.maxOffsets(b1).catch(() => null) ];
    return b && a.every((v, i) => v === b[i]);
  }, { timeoutMs: ms(30000), intervalMs: 200, what: 'broker 1 to catch up with the new master' });
  const reads = [ [ `broker ${nm.id} (master)`, await rs.readAll(nm) ], [ 'broker 1', await rs.readAll(b1) ] ];
  assertConsistent(reads); // also: no key twice on a replica (each delivered once)
  for (const k of [ 'delayed-1', 'half-1' ]) {
    assert.equal([ ...reads[1][1].values() ].filter(m => m.key === k).length, 1, `broker 1 holds ${k}`);
  }
});
