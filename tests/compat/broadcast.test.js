'use strict';
// BROADCASTING: every instance of the group receives every message.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { useCluster, waitFor, ms, withLogsOnFailure } = require('./harness');
const { OnsClients, Message, createTopic, assignedQueues, sendAll } = require('./ons');

const TOPIC = 'CompatBroadcastTopic';
const QUEUES = 4;
const COUNT = 600;

const ctx = useCluster({ name: 'broadcast' });

test('broadcasting: two instances each receive every message once', async () => {
  const cluster = ctx.cluster;
  const ons = new OnsClients(cluster);
  ctx.beforeStop.push(() => ons.closeAll());

  await withLogsOnFailure(cluster, async () => {
    const producer = await ons.producer('PID_compat_broadcast');
    await createTopic(producer, cluster, TOPIC, QUEUES);

    const got = { b1: new Map(), b2: new Map() };
    const dups = { b1: 0, b2: 0 };
    const consumers = [];
    for (const name of [ 'b1', 'b2' ]) {
      const c = ons.consumer('GID_compat_broadcast', `broadcast-${name}`, { isBroadcast: true });
      c.subscribe(TOPIC, '*', async msg => {
        if (got[name].has(msg.keys)) dups[name]++;
        got[name].set(msg.keys, msg.msgId);
      });
      consumers.push(c);
    }
    await Promise.all(consumers.map(c => c.ready()));
    await waitFor(() => consumers.every(c => assignedQueues(c, TOPIC).length === QUEUES), {
      timeoutMs: ms(30000), what: `both broadcasting instances to pull all ${QUEUES} queues`,
    });

    const sent = await sendAll(producer, COUNT, 8, i => {
      const m = new Message(TOPIC, i % 3 ? 'TagB' : 'TagA', `broadcast-${i}`);
      m.keys = [ `bk-${i}` ];
      return m;
    });

    await waitFor(() => got.b1.size === COUNT && got.b2.size === COUNT, {
      timeoutMs: ms(60000), intervalMs: 100,
      what: () => `both instances to receive ${COUNT} messages (b1 ${got.b1.size}, b2 ${got.b2.size}); ` +
        `client errors: ${JSON.stringify(ons.errors.slice(-5))}`,
    });
    for (const name of [ 'b1', 'b2' ]) {
      assert.equal(dups[name], 0, `instance ${name} received no message twice`);
      for (let i = 0; i < COUNT; i++) {
        assert.equal(got[name].get(`bk-${i}`), sent[i].msgId, `instance ${name} received bk-${i} with its msgId`);
      }
    }
  });
});
