'use strict';
// A push consumer stopped mid-stream and started again resumes from the offsets it committed
// (UPDATE_CONSUMER_OFFSET / commitOffset in PULL_MESSAGE, read back with QUERY_CONSUMER_OFFSET):
// nothing is lost, and the only duplicates are the uncommitted tail.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { useCluster, waitFor, ms, sleep, withLogsOnFailure } = require('./harness');
const { OnsClients, Message, createTopic, sendAll } = require('./ons');
const remoting = require('./remoting');

const TOPIC = 'CompatResumeTopic';
const GROUP = 'GID_compat_resume';
const QUEUES = 4;
const COUNT = 2000;
const STOP_AFTER = 700;
const COMMIT_INTERVAL_MS = 1000; // persistConsumerOffsetInterval set by OnsClients

const ctx = useCluster({ name: 'offsets' });

test('a restarted consumer resumes from its committed offsets', async () => {
  const cluster = ctx.cluster;
  const ons = new OnsClients(cluster);
  ctx.beforeStop.push(() => ons.closeAll());

  await withLogsOnFailure(cluster, async () => {
    const producer = await ons.producer('PID_compat_resume');
    await createTopic(producer, cluster, TOPIC, QUEUES);
    const sent = await sendAll(producer, COUNT, 16, i => {
      const m = new Message(TOPIC, 'TagA', `resume-${i}`);
      m.keys = [ `rk-${i}` ];
      return m;
    });

    // Run 1: a slow consumer (each message takes ~3 ms of "work"), stopped after STOP_AFTER.
    const run1 = new Map(); // key -> { queueId, queueOffset, at }
    let closeStartedAt = 0;
    let closing = null;
    const c1 = ons.consumer(GROUP, 'resume-run1');
    c1.subscribe(TOPIC, '*', async msg => {
      await sleep(3);
      run1.set(msg.keys, { queueId: msg.queueId, queueOffset: msg.queueOffset, at: Date.now() });
      if (run1.size >= STOP_AFTER && !closing) {
        closeStartedAt = Date.now();
        closing = ons.close(c1);
      }
    });
    await c1.ready();
    await waitFor(() => closing !== null, { timeoutMs: ms(60000), what: () => `run 1 to consume ${STOP_AFTER} messages (got ${run1.size})` });
    await closing;
    assert.ok(run1.size < COUNT, `run 1 stopped mid-stream (${run1.size} of ${COUNT})`);

    // What the broker committed for the group, queue by queue.
    const committed = await remoting.withConnection(cluster.brokerAddr, async conn => {
      const out = [];
      for (let q = 0; q < QUEUES; q++) out.push(await remoting.queryConsumerOffset(conn, GROUP, TOPIC, q));
      return out;
    });
    const maxHandled = new Array(QUEUES).fill(-1);
    for (const r of run1.values()) maxHandled[r.queueId] = Math.max(maxHandled[r.queueId], r.queueOffset);
    // ali-ons consumes its queues one after the other and commits `offset || -1` (REMOTING.md
    // §7.4): a queue it has not consumed from yet has no committed offset (QUERY_NOT_FOUND, -1).
    for (let q = 0; q < QUEUES; q++) {
      if (maxHandled[q] >= 1) {
        assert.ok(committed[q] >= 0, `QUERY_CONSUMER_OFFSET returns the committed offset of queue ${q} ` +
          `(run 1 consumed up to offset ${maxHandled[q]}; got ${committed[q]})`);
      }
      assert.ok(committed[q] <= maxHandled[q] + 1,
        `queue ${q}: committed offset ${committed[q]} is not beyond what run 1 consumed (last handled ${maxHandled[q]})`);
    }

    // Run 2: a new instance of the same group takes over and must start at the committed offsets.
    const run2 = new Map();
    const firstOffset2 = new Array(QUEUES).fill(null);
    const c2 = ons.consumer(GROUP, 'resume-run2');
    c2.subscribe(TOPIC, '*', async msg => {
      if (firstOffset2[msg.queueId] === null) firstOffset2[msg.queueId] = msg.queueOffset;
      run2.set(msg.keys, { queueId: msg.queueId, queueOffset: msg.queueOffset });
    });
    await c2.ready();
    const missing = () => sent.map((_, i) => `rk-${i}`).filter(k => !run1.has(k) && !run2.has(k));
    await waitFor(() => missing().length === 0, { timeoutMs: ms(60000), intervalMs: 100,
      what: () => `run 2 to receive the rest (still missing ${missing().length}, e.g. ${missing().slice(0, 5)})` });

    assert.ok(committed.some(o => o > 0), `run 1 committed something: ${committed}`);
    for (let q = 0; q < QUEUES; q++) {
      if (committed[q] >= 0 && committed[q] < Math.max(...sent.filter(r => Number(r.messageQueue.queueId) === q).map(r => r.queueOffset)) + 1) {
        assert.equal(firstOffset2[q], committed[q], `run 2 starts queue ${q} at the committed offset`);
      }
    }
    const dups = [ ...run2.keys() ].filter(k => run1.has(k));
    const inLastInterval = [ ...run1.values() ].filter(r => r.at >= closeStartedAt - COMMIT_INTERVAL_MS).length;
    const bound = inLastInterval + 1; // + the one message in flight (parallelConsumeLimit 1)
    assert.ok(dups.length <= bound,
      `duplicates (${dups.length}) only from the uncommitted tail: at most ${bound} ` +
      `(${inLastInterval} handled in the last commit interval + 1 in flight)`);
  });
});
