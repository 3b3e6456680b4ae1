'use strict';
// Producer failover across two brokers of one cluster: libferry (example_send_many) sends a
// paced stream to a topic that lives on broker-a and broker-b; one broker is stopped in the
// middle (kill -9, then in a second case SIGTERM). Every send still completes: at most the one
// request in flight at the stop has an unknown outcome, none fails, and the sends after the
// stop land on the surviving broker. After the stopped broker is back, every acknowledged
// message is stored on the broker, queue and offset its SENT line names, with its msg id and
// body, the lite pull consumer (example_pull_consumer) polls exactly those and commits the
// queues' ends, and a libferry push consumer (example_consumer) consumes all of them.
// ferry-test-requires: example_send_many

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { useCluster, waitFor, ms, withLogsOnFailure } = require('../compat/harness');
const remoting = require('../compat/remoting');
const ex = require('./examples');

const QUEUES = 4;
const COUNT = 1500;
const INTERVAL_MS = 4;
const STOP_AFTER = 300; // SENT lines before the stop
const READ_LAG = 50; // SENT lines that may still be in the pipe when the stop returns

const ctx = useCluster({ name: 'int-failover', extraBrokers: [ 'broker-b' ] });
ctx.beforeStop.push(ex.stopAll);
const brokerB = () => ctx.cluster.extraBrokers[0];

/** Every message of one queue of the broker at addr, by queue offset. */
async function pullQueue(addr, topic, queueId) {
  return remoting.withConnection(addr, async conn => {
    const max = await remoting.getMaxOffset(conn, topic, queueId);
    const byOffset = new Map();
    let offset = 0;
    while (offset < max) {
      const r = await remoting.pullMessages(conn, { group: 'GID_int_failover_check', topic, queueId, offset });
      if (r.code !== remoting.RESP.SUCCESS || !r.msgs.length) {
        throw new Error(`PULL_MESSAGE ${addr} ${topic}/${queueId}@${offset} (max ${max}): code ${r.code} ${r.remark}`);
      }
      for (const m of r.msgs) byOffset.set(m.queueOffset, m);
      offset = r.nextBeginOffset;
    }
    return byOffset;
  });
}

/**
 * The lite pull consumer (example_pull_consumer) takes every queue of both brokers and polls
 * exactly the acknowledged messages (a new group, from the first offset), then commits: the
 * group's offsets are the queues' ends.
 */
async function pullAll(t, cluster, topic, tag, sent, brokers) {
  if (!ex.hasExample('example_pull_consumer')) {
    t.diagnostic('example_pull_consumer not built: lite pull check skipped');
    return;
  }
  const group = `GID_int_failover_pull_${tag}`;
  const puller = ex.startPullConsumer(cluster, `pull_consumer_${tag}`, { group, topic, fromFirst: true,
    max: sent.length });
  await waitFor(() => puller.exit, { timeoutMs: ms(60000), intervalMs: 100,
    what: () => `example_pull_consumer to poll ${sent.length} messages (has ${puller.parsed.length})\n` +
      ex.describe([ puller ]) });
  assert.equal(puller.exit.code, 0, `example_pull_consumer exits 0\n${puller.stderrTail()}`);
  const got = puller.parsed.map(m => m.msgId).sort();
  assert.deepEqual(got, sent.map(s => s.msgId).sort(), 'the lite pull consumer polls every acknowledged message once');
  for (const b of brokers) {
    await remoting.withConnection(b.addr, async conn => {
      for (let q = 0; q < QUEUES; q++) {
        const max = await remoting.getMaxOffset(conn, topic, q);
        const off = await remoting.queryConsumerOffset(conn, group, topic, q);
        assert.equal(off, max, `${group} committed the end of ${b.brokerName} ${topic}/${q}`);
      }
    });
  }
}

async function scenario(t, { victim, survivor, restartVictim, kill9 }) {
  const cluster = ctx.cluster;
  const tag = kill9 ? 'kill9' : 'sigterm';
  const topic = `IntFailover_${tag}`;
  const brokers = [ ex.mainBroker(cluster), { brokerName: brokerB().brokerName, addr: brokerB().addr } ];
  await ex.createTopicOn(remoting, cluster, topic, QUEUES, brokers);

  const sender = ex.sendMany(cluster, topic, { count: COUNT, intervalMs: INTERVAL_MS, keyPrefix: `fk-${tag}-`,
    bodyPrefix: `${tag}-` }, `send_many_${tag}`);
  const diag = () => ex.describe([ sender ]);
  await waitFor(() => {
    sender.checkAlive();
    const names = new Set(sender.parsed.map(s => s.broker));
    return sender.parsed.length >= STOP_AFTER && names.has(victim.brokerName) && names.has(survivor.brokerName);
  }, { timeoutMs: ms(30000), what: () => `${STOP_AFTER} SENT lines on both brokers (have ${sender.parsed.length})\n${diag()}` });

  const stop = await victim.stop(kill9);
  const atStop = sender.parsed.length;
  t.diagnostic(`${victim.brokerName} stopped (${tag}: code=${stop.code} signal=${stop.signal}) after ${atStop} SENT lines`);
  if (!kill9) assert.equal(stop.code, 0, `${victim.brokerName} exits with status 0 after SIGTERM`);

  await waitFor(() => sender.exit, { timeoutMs: ms(60000) + COUNT * (INTERVAL_MS + 10), intervalMs: 100,
    what: () => `send_many to finish (${sender.parsed.length} SENT)\n${diag()}` });
  const sent = sender.parsed;
  const failures = ex.sendFailures(sender);
  t.diagnostic(`SENT ${sent.length}/${COUNT}; not acknowledged: ${JSON.stringify(failures)}`);
  assert.deepEqual(failures.filter(l => l.startsWith('FAILED')), [],
    `no send fails while ${survivor.brokerName} is up (stderr:\n${sender.stderrTail(10)})`);
  assert.ok(failures.length <= 1, `at most the one send in flight at the stop has an unknown outcome: ${failures}`);
  assert.equal(sent.length + failures.length, COUNT, 'every send printed SENT or a failure line');
  assert.equal(new Set(sent.map(s => s.msgId)).size, sent.length, 'distinct msg ids');

  const late = sent.slice(atStop + READ_LAG);
  const lateOnVictim = late.filter(s => s.broker !== survivor.brokerName);
  assert.ok(late.length >= COUNT - atStop - READ_LAG - 1, `the stream continued after the stop (${late.length} late sends)`);
  assert.deepEqual(lateOnVictim.slice(0, 5), [], `sends after the stop land on ${survivor.brokerName}`);

  // Every acknowledged message is where its SENT line says, once the victim is back.
  await restartVictim();
  const addrOf = new Map(brokers.map(b => [ b.brokerName, b.addr ]));
  const queues = new Map();
  for (const s of sent) {
    const k = `${s.broker}/${s.queueId}`;
    if (!queues.has(k)) queues.set(k, await pullQueue(addrOf.get(s.broker), topic, s.queueId));
    const m = queues.get(k).get(s.queueOffset);
    assert.ok(m, `${s.body} (${s.msgId}) stored at ${k}@${s.queueOffset}`);
    assert.equal(m.properties.UNIQ_KEY, s.msgId, `${k}@${s.queueOffset} holds msg id ${s.msgId}`);
    assert.equal(m.body.toString(), s.body, `${k}@${s.queueOffset} body`);
  }

  await pullAll(t, cluster, topic, tag, sent, brokers);
  if (!ex.hasExample('example_consumer')) {
    t.diagnostic('example_consumer not built: consumption check skipped');
    return;
  }
  const consumer = ex.startConsumer(cluster, `consumer_${tag}`, { group: `GID_int_failover_${tag}`, topic,
    fromFirst: true, threads: 4, persistMs: 1000 });
  const want = new Set(sent.map(s => s.msgId));
  const missing = () => {
    const got = new Set(consumer.parsed.filter(m => m.kind === 'MSG').map(m => m.msgId));
    return [ ...want ].filter(id => !got.has(id));
  };
  await waitFor(() => { consumer.checkAlive(); return missing().length === 0; }, {
    timeoutMs: ms(60000), intervalMs: 200,
    what: () => `example_consumer to consume all ${want.size} acknowledged messages (missing ${missing().length}, ` +
      `e.g. ${missing().slice(0, 3)})\n${ex.describe([ consumer ])}`,
  });
  const r = await consumer.stop();
  assert.equal(r.code, 0, `example_consumer exits 0 after SIGTERM (${JSON.stringify(r)})\n${consumer.stderrTail()}`);
}

test('kill -9 of one broker: sends continue on the other, nothing acknowledged is lost', async t => {
  const cluster = ctx.cluster;
  await withLogsOnFailure(cluster, () => scenario(t, {
    victim: { brokerName: cluster.brokerName, stop: () => cluster.stopBroker({ kill9: true }) },
    survivor: { brokerName: brokerB().brokerName },
    restartVictim: () => cluster.startBroker(),
    kill9: true,
  }));
});

test('SIGTERM of one broker: sends continue on the other, nothing acknowledged is lost', async t => {
  const cluster = ctx.cluster;
  await withLogsOnFailure(cluster, () => scenario(t, {
    victim: { brokerName: brokerB().brokerName, stop: () => brokerB().stop() },
    survivor: { brokerName: cluster.brokerName },
    restartVictim: () => brokerB().start(),
    kill9: false,
  }));
});
