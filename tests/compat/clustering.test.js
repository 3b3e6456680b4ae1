'use strict';
// ali-ons producer + clustering push consumers: 3000 tagged, keyed messages; two instances of
// one group share the queues and see every message exactly once; a second group subscribed to
// TagA gets exactly the TagA messages (filtered by the broker, not only by the client).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { useCluster, waitFor, ms, withLogsOnFailure } = require('./harness');
const { OnsClients, Message, createTopic, assignedQueues, sendAll } = require('./ons');

const TOPIC = 'CompatClusterTopic';
const QUEUES = 8;
const COUNT = 3000;

const ctx = useCluster({ name: 'clustering' });

test('clustering: two instances split the queues, every message exactly once, tag subscription', async () => {
  const cluster = ctx.cluster;
  const ons = new OnsClients(cluster);
  ctx.beforeStop.push(() => ons.closeAll());

  await withLogsOnFailure(cluster, async () => {
    const producer = await ons.producer('PID_compat_cluster');
    await createTopic(producer, cluster, TOPIC, QUEUES);

    // Group 1: two instances, every tag.
    const got1 = new Map(); // key -> [{ instance, msg }]
    const dup1 = [];
    const makeHandler = instance => async msg => {
      const k = msg.keys;
      const list = got1.get(k) || [];
      list.push({ instance, msgId: msg.msgId, queueId: msg.queueId, queueOffset: msg.queueOffset,
        tags: msg.tags, body: msg.body.toString() });
      if (list.length > 1) dup1.push(k);
      got1.set(k, list);
    };
    const c1 = ons.consumer('GID_compat_cluster', 'cluster-c1');
    const c2 = ons.consumer('GID_compat_cluster', 'cluster-c2');
    c1.subscribe(TOPIC, '*', makeHandler('c1'));
    c2.subscribe(TOPIC, '*', makeHandler('c2'));

    // Group 2: TagA only. Record what the broker returns to its pulls, before the client's own
    // tag check, to see whether the broker filters by tag hash.
    const got2 = new Map();
    const dup2 = [];
    const pulledTags2 = new Map();
    const c3 = ons.consumer('GID_compat_tagA', 'cluster-c3');
    const origPull = c3._mqClient.pullMessage;
    c3._mqClient.pullMessage = async function(...args) {
      const r = await origPull.apply(this, args);
      for (const m of r.msgFoundList) pulledTags2.set(m.tags, (pulledTags2.get(m.tags) || 0) + 1);
      return r;
    };
    c3.subscribe(TOPIC, 'TagA', async msg => {
      const k = msg.keys;
      if (got2.has(k)) dup2.push(k);
      got2.set(k, { tags: msg.tags, msgId: msg.msgId });
    });
    await Promise.all([ c1.ready(), c2.ready(), c3.ready() ]);

    // Wait until the rebalance settled: disjoint, non-empty halves covering every queue.
    await waitFor(() => {
      const a = assignedQueues(c1, TOPIC);
      const b = assignedQueues(c2, TOPIC);
      const all = new Set([ ...a, ...b ]);
      return a.length > 0 && b.length > 0 && all.size === QUEUES && a.length + b.length === QUEUES &&
        assignedQueues(c3, TOPIC).length === QUEUES;
    }, { timeoutMs: ms(30000), what: `both instances of GID_compat_cluster to own disjoint halves of the ${QUEUES} queues ` +
      '(GET_CONSUMER_LIST_BY_GROUP must list both client ids after their HEART_BEATs)' });
    const q1 = assignedQueues(c1, TOPIC);
    const q2 = assignedQueues(c2, TOPIC);

    // Send.
    const sent = await sendAll(producer, COUNT, 16, i => {
      const m = new Message(TOPIC, i % 2 === 0 ? 'TagA' : 'TagB', `body-${i}`);
      m.keys = [ `ck-${i}` ];
      return m;
    });
    const usedQueues = new Set(sent.map(r => Number(r.messageQueue.queueId)));
    assert.equal(usedQueues.size, QUEUES, 'the producer spreads messages over every queue');
    const msgIds = new Set(sent.map(r => r.msgId));
    assert.equal(msgIds.size, COUNT, 'every send returned a distinct msgId');

    // Receive.
    const tagACount = COUNT / 2;
    await waitFor(() => got1.size === COUNT && got2.size === tagACount, {
      timeoutMs: ms(90000), intervalMs: 100,
      what: () => `every message: GID_compat_cluster got ${got1.size}/${COUNT}, GID_compat_tagA got ` +
        `${got2.size}/${tagACount}; last client errors: ${JSON.stringify(ons.errors.slice(-5))}`,
    });

    // Group 1: exactly once, on the queue and with the msgId the send reported.
    assert.deepEqual(dup1, [], 'no message is delivered twice to GID_compat_cluster');
    const byInstance = { c1: new Set(), c2: new Set() };
    for (let i = 0; i < COUNT; i++) {
      const list = got1.get(`ck-${i}`);
      assert.ok(list && list.length === 1, `message ck-${i} received exactly once (got ${list ? list.length : 0})`);
      const r = list[0];
      assert.equal(r.msgId, sent[i].msgId, `msgId of ck-${i} as returned by the send`);
      assert.equal(r.queueId, Number(sent[i].messageQueue.queueId), `queueId of ck-${i}`);
      assert.equal(r.queueOffset, sent[i].queueOffset, `queueOffset of ck-${i}`);
      assert.equal(r.tags, i % 2 === 0 ? 'TagA' : 'TagB', `tag of ck-${i}`);
      assert.equal(r.body, `body-${i}`, `body of ck-${i}`);
      byInstance[r.instance].add(r.queueId);
    }
    for (const q of byInstance.c1) assert.ok(q1.includes(q), `c1 received from queue ${q}, assigned ${q1}`);
    for (const q of byInstance.c2) assert.ok(q2.includes(q), `c2 received from queue ${q}, assigned ${q2}`);
    assert.ok(byInstance.c1.size > 0 && byInstance.c2.size > 0, 'both instances received messages');

    // Group 2: all TagA messages, nothing else.
    assert.deepEqual(dup2, [], 'no message is delivered twice to GID_compat_tagA');
    for (let i = 0; i < COUNT; i += 2) {
      const r = got2.get(`ck-${i}`);
      assert.ok(r, `TagA message ck-${i} received by GID_compat_tagA`);
      assert.equal(r.tags, 'TagA');
      assert.equal(r.msgId, sent[i].msgId);
    }
    for (const k of got2.keys()) assert.equal(Number(k.slice(3)) % 2, 0, `${k} is a TagA message`);
    assert.equal(pulledTags2.get('TagB') || 0, 0,
      `the broker filters PULL_MESSAGE results by the subscription's tag hash (subscription "TagA"); pulled tags: ` +
      JSON.stringify(Object.fromEntries(pulledTags2)));
  });
});
