'use strict';
// The broker restarted cleanly (SIGTERM) in the middle of a produce/consume run keeps every
// acknowledged message and every committed offset: the same ali-ons producer goes on sending
// after the restart and a consumer of the same group gets everything not consumed before.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { useCluster, waitFor, ms, sleep, withLogsOnFailure } = require('./harness');
const { OnsClients, Message, createTopic, waitTopicRoute, sendAll } = require('./ons');
const remoting = require('./remoting');

const TOPIC = 'CompatRestartTopic';
const GROUP = 'GID_compat_restart';
const QUEUES = 4;
const BEFORE = 1000;
const AFTER = 1000;
const CONSUME_BEFORE = 400;

const ctx = useCluster({ name: 'restart' });

async function brokerState(cluster) {
  return remoting.withConnection(cluster.brokerAddr, async conn => {
    const max = [];
    const committed = [];
    for (let q = 0; q < QUEUES; q++) {
      max.push(await remoting.getMaxOffset(conn, TOPIC, q));
      committed.push(await remoting.queryConsumerOffset(conn, GROUP, TOPIC, q));
    }
    return { max, committed };
  });
}

test('a clean broker restart keeps acknowledged messages and committed offsets', async () => {
  const cluster = ctx.cluster;
  const ons = new OnsClients(cluster);
  ctx.beforeStop.push(() => ons.closeAll());

  await withLogsOnFailure(cluster, async () => {
    const producer = await ons.producer('PID_compat_restart');
    await createTopic(producer, cluster, TOPIC, QUEUES);
    const make = base => i => {
      const m = new Message(TOPIC, 'TagR', `restart-${base + i}`);
      m.keys = [ `xk-${base + i}` ];
      return m;
    };
    const sentBefore = await sendAll(producer, BEFORE, 8, make(0));

    // Consume part of it, then stop the consumer (its close commits the offsets).
    const run1 = new Map();
    let closing = null;
    const c1 = ons.consumer(GROUP, 'restart-run1');
    c1.subscribe(TOPIC, '*', async msg => {
      await sleep(2);
      run1.set(msg.keys, msg.msgId);
      if (run1.size >= CONSUME_BEFORE && !closing) closing = ons.close(c1);
    });
    await c1.ready();
    await waitFor(() => closing !== null, { timeoutMs: ms(60000), what: () => `run 1 to consume ${CONSUME_BEFORE} (got ${run1.size})` });
    await closing;

    const before = await brokerState(cluster);
    assert.deepEqual(before.max.reduce((a, b) => a + b, 0), BEFORE, `queue max offsets add up to ${BEFORE} before the restart`);
    assert.ok(before.committed.some(o => o > 0), `run 1 committed offsets before the restart: ${before.committed}`);

    const stop = await cluster.stopBroker();
    assert.equal(stop.forced, false, 'the broker exits by itself within the grace period after SIGTERM');
    assert.equal(stop.signal, null, `the broker exits normally after SIGTERM (signal ${stop.signal})`);
    assert.equal(stop.code, 0, 'the broker exits with status 0 after SIGTERM');
    await cluster.startBroker();
    // The broker must remember the topic it created (and re-register it with the name server).
    await waitTopicRoute(cluster, TOPIC, QUEUES);

    const after = await brokerState(cluster);
    assert.deepEqual(after.max, before.max, 'GET_MAX_OFFSET per queue is unchanged by the restart');
    assert.deepEqual(after.committed, before.committed, 'QUERY_CONSUMER_OFFSET per queue is unchanged by the restart');

    // The same producer keeps working (it reconnects) and the rest is delivered.
    const sentAfter = await sendAll(producer, AFTER, 8, make(BEFORE));
    const all = sentBefore.concat(sentAfter);

    const run2 = new Map();
    const c2 = ons.consumer(GROUP, 'restart-run2');
    c2.subscribe(TOPIC, '*', async msg => { run2.set(msg.keys, msg.msgId); });
    await c2.ready();
    const missing = () => all.map((_, i) => `xk-${i}`).filter(k => !run1.has(k) && !run2.has(k));
    await waitFor(() => missing().length === 0, { timeoutMs: ms(60000), intervalMs: 100,
      what: () => `every message after the restart (missing ${missing().length}, e.g. ${missing().slice(0, 5)})` });
    for (let i = 0; i < all.length; i++) {
      const k = `xk-${i}`;
      assert.equal(run1.get(k) || run2.get(k), all[i].msgId, `${k} is delivered with the msgId its send returned`);
    }
    // Run 2 starts at the committed offsets: it re-delivers nothing that was committed.
    const committedBefore = before.committed.reduce((a, b) => a + Math.max(b, 0), 0);
    const redelivered = [ ...run2.keys() ].filter(k => run1.has(k)).length;
    assert.ok(redelivered <= run1.size - committedBefore + 1,
      `run 2 re-delivers only the uncommitted tail (${redelivered} re-delivered, ${run1.size} consumed, ${committedBefore} committed)`);
  });
});
