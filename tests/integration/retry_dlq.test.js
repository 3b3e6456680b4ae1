'use strict';
// Retries and dead letters on a real broker, driven by libferry example programs (issue 5):
//  1. A listener that always fails (example_consumer --always-fail --fail-tag Fail
//     --max-reconsume 3): each failing message is redelivered through %RETRY%<group> at the
//     configured delay of level 3 + reconsume times (the gaps between deliveries are measured),
//     exactly maxReconsumeTimes + 1 deliveries with reconsume_times 0..3, then it lands in
//     %DLQ%<group> with reconsume times 4, RETRY_TOPIC and DLQ_ORIGIN_TOPIC = the original topic,
//     its body, tag and UNIQ_KEY (read with PULL_MESSAGE); the DLQ is also routed and readable
//     by a client, example_pull_consumer.
//     Messages sent at the same time that succeed are all consumed promptly while the failing
//     ones are still retrying.
//  2. A listener that fails twice, then succeeds (--fail-times 2): 3 deliveries, reconsume_times
//     0, 1, 2, at the level 3 and level 4 delays; nothing after the success (checked for longer
//     than the next retry would take); the group's DLQ stays empty.
// Short delay levels in the test's broker.conf keep it fast.
// ferry-test-requires: example_consumer example_send_many example_pull_consumer

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { useCluster, waitFor, ms, sleep, withLogsOnFailure } = require('../compat/harness');
const remoting = require('../compat/remoting');
const ex = require('./examples');
const dl = require('./delivery');

const LEVELS_TEXT = '1s 1s 1s 2s 2s 2s 3s 3s';
const LEVELS = dl.levelDelays(LEVELS_TEXT);
const QUEUES = 4;
const DLQ_GROUP = 'GID_int_retry_dlq';
const DLQ_MAX = 3; // maxReconsumeTimes of the always-failing consumer
const DLQ_FAILING = 2;
let dlqFirstStored = 0; // store time of the first dead letter (set by the first test)

const ctx = useCluster({ name: 'int-retry-dlq',
  brokerConf: { messageDelayLevel: LEVELS_TEXT, flushDelayOffsetInterval: 200 } });
ctx.beforeStop.push(ex.stopAll);

function consumerOpts(extra) {
  return Object.assign({ fromFirst: true, threads: 4, rebalanceMs: 1000, persistMs: 500, printTime: true }, extra);
}

async function startAndWait(cluster, label, opts) {
  const c = ex.startConsumer(cluster, label, consumerOpts(opts));
  await c.waitStderr('STARTED');
  // The consumer is a member once the broker lists it; its first rebalance follows at once.
  await waitFor(async () => (await ex.consumerIds(remoting, cluster.brokerAddr, opts.group)).length === 1,
    { timeoutMs: ms(15000), what: `${label} to be listed in ${opts.group}` });
  // Retries come back through %RETRY%<group>: wait until the consumer pulls it (its route is
  // looked up at a rebalance after the heartbeat created the topic), so that the measured
  // delays are the broker's and not the consumer's route refresh.
  await c.waitStderr(`consuming ${cluster.brokerName}/%RETRY%${opts.group}/`, ms(15000));
  return c;
}

function report(lines) {
  process.stdout.write(`# timing (configured vs measured):\n${lines.map(l => `#   ${l}`).join('\n')}\n`);
}

test('always failing: redelivered at the level delays, then %DLQ% after maxReconsumeTimes; others not held up', async () => {
  const cluster = ctx.cluster;
  const TOPIC = 'IntRetryDlq';
  const GROUP = DLQ_GROUP;
  const MAX = DLQ_MAX;
  const FAILING = DLQ_FAILING;
  const GOOD = 40;
  await withLogsOnFailure(cluster, async () => {
    await ex.createTopicOn(remoting, cluster, TOPIC, QUEUES, [ ex.mainBroker(cluster) ]);
    const c = await startAndWait(cluster, 'always_fail', { group: GROUP, topic: TOPIC, alwaysFail: true,
      failTag: 'Fail', maxReconsume: MAX });
    const procs = [ c ];
    const what = () => ex.describe(procs);

    // The failing messages and the good ones at the same time.
    const [ failSent, goodSent ] = await Promise.all([
      ex.sendAllOk(cluster, TOPIC, { count: FAILING, tag: 'Fail', bodyPrefix: 'fail-', printTime: true }, 'send_fail'),
      ex.sendAllOk(cluster, TOPIC, { count: GOOD, tag: 'TagA', bodyPrefix: 'good-', printTime: true }, 'send_good'),
    ]);
    const lastAck = Math.max(...goodSent.map(s => s.ackMs));

    // Every good message is consumed promptly, once, while the failing ones still retry.
    await waitFor(() => {
      c.checkAlive();
      const d = dl.deliveries(procs);
      return goodSent.every(s => d.has(s.msgId));
    }, { timeoutMs: ms(10000), what: () => `the ${GOOD} good messages to be consumed\n${what()}` });
    let d = dl.deliveries(procs);
    const goodDone = Math.max(...goodSent.map(s => d.get(s.msgId)[0].atMs));
    const lines = [ `the ${GOOD} good messages: the last was consumed ${goodDone - lastAck} ms after the last send was acknowledged` ];
    for (const s of goodSent) {
      const list = d.get(s.msgId);
      assert.equal(list.length, 1, `${s.body} (never failed) is delivered once: ${JSON.stringify(list)}`);
      assert.equal(list[0].kind, 'MSG');
      assert.equal(list[0].reconsumeTimes, 0);
    }
    assert.ok(goodDone - lastAck <= ms(3000), `the good messages are consumed within 3 s of their sends ` +
      `(the last one after ${goodDone - lastAck} ms): the failing ones do not hold the group up`);
    for (const s of failSent) {
      const list = d.get(s.msgId) || [];
      assert.ok(list.length < MAX + 1, `${s.body} is still retrying when the last good message is consumed ` +
        `(it has ${list.length} deliveries already)`);
    }

    // The failing ones: MAX + 1 deliveries, then the dead-letter queue.
    const dlq = `%DLQ%${GROUP}`;
    await waitFor(async () => {
      c.checkAlive();
      d = dl.deliveries(procs);
      if (!failSent.every(s => (d.get(s.msgId) || []).length >= MAX + 1)) return false;
      return await dl.maxOffsetOrZero(cluster.brokerAddr, dlq, 0) >= FAILING;
    }, { timeoutMs: ms(20000), intervalMs: 100, what: () => `each failing message to be delivered ${MAX + 1} times ` +
      `and to reach ${dlq} (deliveries: ${JSON.stringify(failSent.map(s => (dl.deliveries(procs).get(s.msgId) || [])
        .map(x => `${x.kind}/${x.reconsumeTimes}@${x.atMs}`)))})\n${what()}` });

    for (const s of failSent) {
      const list = d.get(s.msgId);
      assert.deepEqual(list.map(x => [ x.kind, x.reconsumeTimes ]),
        Array.from({ length: MAX + 1 }, (_, k) => [ 'LATER', k ]),
        `${s.body}: deliveries LATER with reconsume_times 0..${MAX}, in order`);
      for (const x of list) {
        assert.equal(x.body, s.body, `${s.body}: body intact on every delivery`);
        assert.equal(x.tags, 'Fail', `${s.body}: tag intact on every delivery`);
      }
      for (let k = 0; k < MAX; k++) {
        lines.push(dl.checkDelay(list[k + 1].atMs - list[k].atMs, dl.levelMs(LEVELS, 3 + k),
          `${s.body}: retry ${k + 1} (level ${3 + k})`));
      }
    }

    // The dead letters, read with PULL_MESSAGE ...
    const dead = await dl.pullQueue(cluster.brokerAddr, 'GID_dlq_inspect', dlq, 0);
    assert.equal(dead.length, FAILING, `${dlq} holds exactly the ${FAILING} failing messages: ` +
      JSON.stringify(dead.map(m => m.body.toString())));
    for (const s of failSent) {
      const m = dead.find(x => x.body.toString() === s.body);
      assert.ok(m, `${s.body} is in ${dlq}`);
      assert.equal(m.topic, dlq);
      assert.equal(m.reconsumeTimes, MAX + 1, `${s.body}: reconsume times in the DLQ = maxReconsumeTimes + 1`);
      assert.equal(m.properties.RETRY_TOPIC, TOPIC, `${s.body}: RETRY_TOPIC is the original topic`);
      assert.equal(m.properties.DLQ_ORIGIN_TOPIC, TOPIC, `${s.body}: DLQ_ORIGIN_TOPIC is the original topic`);
      assert.equal(m.properties.UNIQ_KEY, s.msgId, `${s.body}: UNIQ_KEY kept`);
      assert.equal(m.properties.DLQ_ORIGIN_MESSAGE_ID, s.msgId, `${s.body}: DLQ_ORIGIN_MESSAGE_ID is its msgId`);
      assert.equal(m.tags, 'Fail', `${s.body}: tag kept`);
      assert.equal(m.properties.DELAY, undefined, `${s.body}: no DELAY on a dead letter`);
    }
    // Nothing after the dead letter: still MAX + 1 deliveries each.
    d = dl.deliveries([ c ]);
    for (const s of failSent) assert.equal(d.get(s.msgId).length, MAX + 1, `${s.body}: no delivery after the DLQ`);
    report(lines);
    dlqFirstStored = Math.min(...dead.map(m => m.storeTimestamp));
  });
});

// sendback.c registers a %DLQ% topic it creates with the name servers at once (it used to wait
// for the next periodic REGISTER_BROKER round, up to 30 s).
test('the dead-letter topic is routed at once and readable with example_pull_consumer', async () => {
  const cluster = ctx.cluster;
  const dlq = `%DLQ%${DLQ_GROUP}`;
  assert.ok(dlqFirstStored, 'the first test filled the DLQ');
  {
    await waitFor(() => remoting.withConnection(cluster.nsAddr, async conn => {
      const r = await remoting.getRoute(conn, dlq);
      return !!(r.route && (r.route.queueDatas || []).some(q => q.brokerName === cluster.brokerName));
    }), { timeoutMs: Math.max(0, dlqFirstStored + ms(3000) - Date.now()), what: `the name server to route ${dlq} ` +
      'within 3 s of its creation' });
    const reader = ex.startPullConsumer(cluster, 'dlq_reader', { group: 'GID_dlq_reader', topic: dlq,
      fromFirst: true, max: DLQ_FAILING });
    await waitFor(() => reader.exit, { timeoutMs: ms(20000), what: () => `the DLQ reader to read ${DLQ_FAILING}\n` +
      ex.describe([ reader ]) });
    assert.equal(reader.exit.code, 0, `example_pull_consumer on ${dlq} exits 0\n${ex.describe([ reader ])}`);
    assert.equal(reader.parsed.length, DLQ_FAILING, 'example_pull_consumer reads every dead letter');
    assert.ok(reader.parsed.every(m => m.body.startsWith('fail-') && m.reconsumeTimes === DLQ_MAX + 1),
      JSON.stringify(reader.parsed));
  }
});

test('failing twice then succeeding: consumed on the second retry, exactly once, DLQ empty', async () => {
  const cluster = ctx.cluster;
  const TOPIC = 'IntRetryTwice';
  const GROUP = 'GID_int_retry_twice';
  const COUNT = 3;
  await withLogsOnFailure(cluster, async () => {
    await ex.createTopicOn(remoting, cluster, TOPIC, QUEUES, [ ex.mainBroker(cluster) ]);
    const c = await startAndWait(cluster, 'fail_twice', { group: GROUP, topic: TOPIC, failTimes: 2, maxReconsume: 3 });
    const what = () => ex.describe([ c ]);
    const sent = await ex.sendAllOk(cluster, TOPIC, { count: COUNT, tag: 'TagT', bodyPrefix: 'twice-' }, 'send_twice');

    let d;
    await waitFor(() => {
      c.checkAlive();
      d = dl.deliveries([ c ]);
      return sent.every(s => (d.get(s.msgId) || []).some(x => x.kind === 'MSG'));
    }, { timeoutMs: ms(15000), intervalMs: 100, what: () => `every message to be consumed on its second retry\n${what()}` });
    const lastMsg = Math.max(...sent.map(s => d.get(s.msgId).find(x => x.kind === 'MSG').atMs));

    // A third retry would come after level 5's delay: wait longer than that, then count.
    const quiet = dl.levelMs(LEVELS, 5) + dl.LATE_MS;
    await sleep(Math.max(0, lastMsg + quiet - Date.now()));
    c.checkAlive();
    d = dl.deliveries([ c ]);
    const lines = [];
    for (const s of sent) {
      const list = d.get(s.msgId);
      assert.deepEqual(list.map(x => [ x.kind, x.reconsumeTimes ]), [ [ 'LATER', 0 ], [ 'LATER', 1 ], [ 'MSG', 2 ] ],
        `${s.body}: three deliveries (reconsume_times 0, 1, 2), consumed once, nothing after it within ${quiet} ms`);
      assert.ok(list.every(x => x.body === s.body && x.tags === 'TagT'), `${s.body}: body and tag intact`);
      lines.push(dl.checkDelay(list[1].atMs - list[0].atMs, dl.levelMs(LEVELS, 3), `${s.body}: retry 1 (level 3)`));
      lines.push(dl.checkDelay(list[2].atMs - list[1].atMs, dl.levelMs(LEVELS, 4), `${s.body}: retry 2 (level 4)`));
    }
    assert.equal(await dl.maxOffsetOrZero(cluster.brokerAddr, `%DLQ%${GROUP}`, 0), 0, `%DLQ%${GROUP} stays empty`);
    report(lines);
  });
});
