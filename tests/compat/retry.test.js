'use strict';
// Consume failure: an ali-ons handler that returns Consumer.ACTION_RETRY makes the client send
// the message back with CONSUMER_SEND_MSG_BACK (36, delayLevel 0). The broker must accept it and
// re-deliver the message through %RETRY%<group> after delay level 3 + reconsumeTimes
// (REMOTING.md §2.4.7, §5.5; the test's broker.conf makes level 3 two seconds), with
// reconsumeTimes 1 and the original body, keys and topic. ali-ons falls back to re-sending the
// message itself when the send-back fails (at once, without the delay); the test records every
// failed send-back and checks the delay, so a pass means the broker did the work.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { useCluster, waitFor, ms, withLogsOnFailure } = require('./harness');
const { OnsClients, Message, Consumer, createTopic, sendAll, assignedQueues } = require('./ons');

const TOPIC = 'CompatRetryTopic';
const GROUP = 'GID_compat_retry';
const COUNT = 40;
const FAIL_EVERY = 4; // messages i % 4 == 0 fail once
// Short delay levels so that the test runs in seconds: level 3 (the first retry) is 2 s.
const DELAY_LEVELS = '1s 1s 2s 2s 2s 2s';
const FIRST_RETRY_DELAY_MS = 2000; // delay level 3
const EARLY_MS = 100; // clock granularity: a retry never comes earlier than its delay minus this
const LATE_MS = ms(3000); // ali-ons pulls the retry queue with long polling: it comes soon after

const ctx = useCluster({ name: 'retry', brokerConf: { messageDelayLevel: DELAY_LEVELS, flushDelayOffsetInterval: 200 } });

test('a failed message is sent back and re-delivered through the retry topic', async () => {
  const cluster = ctx.cluster;
  const ons = new OnsClients(cluster);
  ctx.beforeStop.push(() => ons.closeAll());

  await withLogsOnFailure(cluster, async () => {
    const producer = await ons.producer('PID_compat_retry');
    await createTopic(producer, cluster, TOPIC, 4);

    const deliveries = new Map(); // key -> [{ at, reconsumeTimes, topic, body, msgId }]
    const consumer = ons.consumer(GROUP, 'retry-c1');
    const sendBackFailures = [];
    const origSendBack = consumer._mqClient.consumerSendMessageBack;
    consumer._mqClient.consumerSendMessageBack = async function(...args) {
      try {
        return await origSendBack.apply(this, args);
      } catch (e) {
        sendBackFailures.push(`${e.name} code=${e.code}: ${e.message}`);
        throw e;
      }
    };
    consumer.subscribe(TOPIC, '*', async msg => {
      const list = deliveries.get(msg.keys) || [];
      list.push({ at: Date.now(), reconsumeTimes: msg.reconsumeTimes, topic: msg.topic, body: msg.body.toString(),
        msgId: msg.msgId, originMessageId: msg.originMessageId });
      deliveries.set(msg.keys, list);
      const i = Number(msg.keys.slice(3));
      if (i % FAIL_EVERY === 0 && list.length === 1) return Consumer.ACTION_RETRY;
      return undefined;
    });
    await consumer.ready();
    // ali-ons subscribes %RETRY%<group> itself; wait until it pulls that queue, so that the
    // measured delay is the broker's and not ali-ons' name-server polling.
    await waitFor(() => assignedQueues(consumer, `%RETRY%${GROUP}`).length > 0, {
      timeoutMs: ms(20000), what: `ali-ons to pull %RETRY%${GROUP}`,
    });

    const sent = await sendAll(producer, COUNT, 4, i => {
      const m = new Message(TOPIC, 'TagR', `retry-body-${i}`);
      m.keys = [ `rt-${i}` ];
      return m;
    });

    const failing = sent.map((_, i) => i).filter(i => i % FAIL_EVERY === 0);
    const pending = () => failing.filter(i => (deliveries.get(`rt-${i}`) || []).length < 2);
    await waitFor(() => pending().length === 0 && deliveries.size === COUNT, {
      timeoutMs: ms(FIRST_RETRY_DELAY_MS + 20000), intervalMs: 100,
      what: () => `every message once and the ${failing.length} failed ones again (not re-delivered yet: ` +
        `${pending().slice(0, 5).map(i => `rt-${i}`)}; send-back failures: ${JSON.stringify(sendBackFailures.slice(0, 3))})`,
    });

    assert.deepEqual(sendBackFailures, [], 'the broker accepts every CONSUMER_SEND_MSG_BACK (no client-side fallback)');
    const delays = [];
    for (let i = 0; i < COUNT; i++) {
      const list = deliveries.get(`rt-${i}`);
      assert.equal(list[0].reconsumeTimes, 0, `rt-${i}: first delivery has reconsumeTimes 0`);
      assert.equal(list[0].msgId, sent[i].msgId, `rt-${i}: first delivery has the msgId the send returned`);
      if (i % FAIL_EVERY !== 0) {
        assert.equal(list.length, 1, `rt-${i} (consumed fine) is delivered once`);
        continue;
      }
      assert.equal(list.length, 2, `rt-${i} (failed once) is delivered exactly twice`);
      const again = list[1];
      assert.equal(again.reconsumeTimes, 1, `rt-${i}: the re-delivery has reconsumeTimes 1`);
      assert.equal(again.topic, TOPIC, `rt-${i}: ali-ons restores the original topic from RETRY_TOPIC`);
      assert.equal(again.body, `retry-body-${i}`, `rt-${i}: body intact`);
      assert.equal(again.originMessageId, sent[i].msgId,
        `rt-${i}: the re-delivery's ORIGIN_MESSAGE_ID is the msgId of the first delivery`);
      const delay = again.at - list[0].at;
      delays.push(delay);
      assert.ok(delay >= FIRST_RETRY_DELAY_MS - EARLY_MS,
        `rt-${i}: re-delivered after delay level 3 (${FIRST_RETRY_DELAY_MS} ms), not after ${delay} ms`);
      assert.ok(delay <= FIRST_RETRY_DELAY_MS + LATE_MS,
        `rt-${i}: re-delivered within ${LATE_MS} ms of delay level 3 (${FIRST_RETRY_DELAY_MS} ms), not after ${delay} ms`);
    }
    process.stdout.write(`# first retry: configured ${FIRST_RETRY_DELAY_MS} ms, measured ${delays.join(' ')} ms\n`);
  });
});
