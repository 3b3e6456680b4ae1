'use strict';
// ferry-test-requires: mqcontroller
// A network partition of the master of a controller-mode broker set (docs/CONTROLLER.md, issue
// 8), on real hosts: each mqbroker runs in its own network namespace (netns.js), the three
// mqcontrollers, the mqnamesrv and the test on the bridge that links them. Where the test may
// not make namespaces (not root, no CAP_NET_ADMIN) it is skipped with the reason:
// failover.test.js covers the same set with kill -9 and SIGSTOP-free faults on loopback.
//  1. the set comes up (broker 1 master, sync state set >= 2);
//  2. while three loops send to the master the route names, and a probe on the master's own
//     host sends to it too, the master's link goes down: nothing reaches it, it reaches
//     nothing. A new master acknowledges within the bound; the cut-off master acknowledges no
//     send that started after the cut (it cannot replicate it and it loses its lease);
//  3. the link comes back: the old master learns the new epoch, cuts what it alone stored
//     (the probe's unreplicated sends) and follows as a slave; once the three replicas reach
//     the same ends they hold the same message at every (queue, offset), every acknowledged
//     message (the loops' and the probe's) is on each of them where its SEND_OK put it, and
//     the controllers take the old master back into the sync state set.
// Every process is stopped, the namespaces and the bridge removed (also on failure).

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { ServerProcess, waitFor, ms } = require('../compat/harness');
const { NetHosts } = require('./netns');
const { ReplicaSet, SendLoops, assertConsistent, assertAckedIn } = require('./replica_set');
const { RESP } = require('../compat/remoting');

const LEASE = 3000;
const FAILOVER_BOUND = ms(20000);
const ACKS_BEFORE_CUT = 300;
const ACKS_AFTER_FAILOVER = 100;

const why = NetHosts.unavailable();
if (why) {
  test('network partition of the master (ip netns hosts)', t => t.skip(why));
  return;
}

const hosts = new NetHosts(3);
hosts.setup();
const rs = new ReplicaSet({ name: 'partition', cluster: 'FerryPtCluster', set: 'pt-set', secret: 'partition-test-secret',
  topic: 'PartitionTopic', queues: 4, group: 'CID_partition_check', lease: LEASE, scan: 500, net: hosts });
// A send in flight at the cut gets no answer at all: the loops give up after the Java client's
// default sendMsgTimeout (3 s) and look the master up again.
const traffic = new SendLoops(rs, { prefix: 'pt', loops: 3, timeoutMs: 3000 });
const step = rs.stepper();
const st = { master: null, newMaster: null, probe: null, tCut: 0 };

after(async () => {
  await traffic.stop().catch(() => {});
  if (st.probe && st.probe.running) await st.probe.stop();
  const problems = await rs.stopAll();
  hosts.teardown();
  if (problems.length) throw new Error(`processes did not stop cleanly with SIGTERM: ${problems.join('; ')}`);
});

// A sender on the master's own host: still connected to it when the rest of the network is
// gone. One line per send on stdout (its log): PROBE {"key","t0","t","code",...}.
const PROBE = `
const remoting = require(${JSON.stringify(path.join(__dirname, '..', 'compat', 'remoting.js'))});
let stop = false;
process.on('SIGTERM', () => { stop = true; });
(async () => {
  let conn = null;
  for (let i = 0; !stop; i++) {
    const rec = { key: 'iso-' + i, t0: Date.now(), queueId: i % 4 };
    rec.body = rec.key + '|probe';
    try {
      if (!conn || conn.isClosed) conn = await remoting.RemotingConnection.connect(process.env.PROBE_ADDR, 1000);
      const r = await remoting.sendMessage(conn, { topic: process.env.PROBE_TOPIC, queueId: rec.queueId,
        keys: rec.key, body: Buffer.from(rec.body), timeoutMs: 6000 });
      rec.code = r.code;
      rec.remark = r.remark;
      if (r.code === 0) {
        rec.queueId = Number(r.extFields.queueId);
        rec.queueOffset = Number(r.extFields.queueOffset);
        rec.phys = Number(remoting.decodeMessageId(r.extFields.msgId).offset);
      }
    } catch (e) {
      rec.code = 'error';
      rec.remark = e.message;
      conn = null;
    }
    rec.t = Date.now();
    console.log('PROBE ' + JSON.stringify(rec));
    await new Promise(r => setTimeout(r, 100));
  }
  process.exit(0);
})();
`;

function probeSends() {
  if (!st.probe) return [];
  return fs.readFileSync(st.probe.logFile, 'utf8').split('\n').filter(l => l.startsWith('PROBE '))
    .map(l => JSON.parse(l.slice(6)));
}

step('a controller-mode set on three network hosts: broker 1 master, sync state set >= 2', 90000, async t => {
  const info = await rs.bringUp({ minSet: 2 });
  st.master = rs.brokers[0];
  assert.equal(info.master, 1, 'the first registered broker is master');
  await rs.createTopic(st.master);
  await waitFor(async () => (await rs.sendOn(st.master, `warm-${Date.now()}`)).code === RESP.SUCCESS,
    { timeoutMs: ms(15000), intervalMs: 100, what: 'a SEND_OK from the master' });
  t.diagnostic(`hosts ${hosts.hosts.map(h => h.ip).join(', ')} on bridge ${hosts.bridgeIp}; master ${st.master.addr}`);
});

step('the master cut off from the network: a new master acknowledges, the cut-off one acknowledges nothing new',
  90000, async t => {
    const m = st.master;
    traffic.start();
    st.probe = new ServerProcess('probe', [ ...hosts.exec(m.host), process.execPath, '-e', PROBE ],
      { cwd: rs.dir, env: Object.assign({}, rs.env, { PROBE_ADDR: m.addr, PROBE_TOPIC: rs.topic }),
        logFile: path.join(rs.dir, 'probe.log') }).start();
    await waitFor(() => traffic.acked().length >= ACKS_BEFORE_CUT &&
      probeSends().filter(p => p.code === RESP.SUCCESS).length >= 5, { timeoutMs: ms(30000), intervalMs: 50,
      what: () => `${ACKS_BEFORE_CUT} acknowledged sends and 5 from the probe before the cut (${traffic.tally()}; ` +
        `probe ${probeSends().length})` });

    hosts.cut(m.host);
    const tCut = st.tCut = Date.now();
    const first = await waitFor(() => traffic.sends.find(s => s.code === RESP.SUCCESS && s.addr !== m.addr && s.t >= tCut),
      { timeoutMs: FAILOVER_BOUND + ms(5000), intervalMs: 20,
        what: () => `a SEND_OK from another broker after the cut (${traffic.tally(traffic.sends.filter(s => s.t >= tCut))}; ` +
          `${rs.roleState()})` });
    const ms_ = first.t - tCut;
    process.stdout.write(`# partition failover ms=${ms_}\n`);
    assert.ok(ms_ < FAILOVER_BOUND, `failover after the cut took ${ms_} ms (bound ${FAILOVER_BOUND} ms)`);
    st.newMaster = rs.brokerByAddr(first.addr);
    assert.ok(st.newMaster && st.newMaster !== m, `the first SEND_OK after the cut came from ${first.addr}`);
    await waitFor(() => traffic.acked().filter(s => s.addr === st.newMaster.addr).length >= ACKS_AFTER_FAILOVER,
      { timeoutMs: ms(20000), intervalMs: 20, what: () => `${ACKS_AFTER_FAILOVER} SEND_OK from the new master` });
    // The probe went on sending to the cut-off master for the lease and more: every send of
    // it that started after the cut was refused or timed out, none acknowledged.
    await waitFor(() => probeSends().filter(p => p.t0 > tCut && p.t !== undefined).length >= 3 &&
      Date.now() - tCut > 2 * LEASE, { timeoutMs: ms(30000), intervalMs: 100,
      what: () => `three probe sends after the cut to complete (${JSON.stringify(probeSends().slice(-3))})` });
    await traffic.stop();
    const late = probeSends().filter(p => p.t0 > tCut);
    const wrongly = late.filter(p => p.code === RESP.SUCCESS);
    assert.equal(wrongly.length, 0, `the cut-off master acknowledged sends that started after the cut: ` +
      JSON.stringify(wrongly.slice(0, 3)));
    t.diagnostic(`failover ${ms_} ms; loops ${traffic.tally()}; probe after the cut: ` +
      `${JSON.stringify(late.map(p => p.code))}`);
    const info = await waitFor(async () => (await rs.routeAddrs())['0'] === st.newMaster.addr && await rs.agreedInfo(),
      { timeoutMs: ms(10000), what: () => `route id 0 = ${st.newMaster.addr} (${rs.roleState()})` });
    assert.equal(info.master, st.newMaster.id);
    assert.ok(info.masterEpoch >= 2, `a new epoch: ${info.masterEpoch}`);
  });

step('the link comes back: the old master cuts its unreplicated tail and follows; replicas agree', 90000, async t => {
  const { master: m, newMaster: nm } = st;
  await st.probe.stop();
  hosts.heal(m.host);
  await waitFor(async () => {
    const a = await rs.routeAddrs();
    const x = await rs.agreedInfo();
    return a['0'] === nm.addr && a[String(m.id)] === m.addr && x && x.master === nm.id && x.syncStateSet.includes(m.id);
  }, { timeoutMs: ms(40000), intervalMs: 200, what: () => `broker ${m.id} back as a slave of broker ${nm.id} and in ` +
    `the sync state set (${rs.roleState()})` });
  const r = await rs.sendOn(m, 'to-old-master-after-heal');
  assert.notEqual(r.code, RESP.SUCCESS, 'the old master must not answer SEND_OK once it is back');
  let ends = [];
  await waitFor(async () => {
    ends = [];
    for (const b of rs.brokers) ends.push(JSON.stringify(await rs.maxOffsets(b)));
    return ends.every(e => e === ends[0]);
  }, { timeoutMs: ms(30000), intervalMs: 200, what: () => `the three replicas to reach the same ends (${ends.join(' / ')})` });
  const reads = [];
  for (const b of rs.brokers) reads.push([ `broker ${b.id}`, await rs.readAll(b) ]);
  assertConsistent(reads);
  const probeAcked = probeSends().filter(p => p.code === RESP.SUCCESS).map(p => Object.assign({ broker: m.id }, p));
  const acked = traffic.acked().concat(probeAcked);
  for (const [ who, msgs ] of reads) assertAckedIn(who, msgs, acked);
  const stray = [ ...reads[0][1].values() ].filter(x => x.key && x.key.startsWith('iso-') &&
    !probeAcked.some(p => p.key === x.key));
  t.diagnostic(`${acked.length} acknowledged messages on all three replicas (ends ${ends[0]}); ` +
    `${stray.length} unacknowledged probe sends were replicated before the cut and kept everywhere`);
});
