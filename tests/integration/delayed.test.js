'use strict';
// Delayed and timed messages on a real broker (issue 5), sent with example_send_many and
// consumed by example_consumer --print-time (wall-clock delivery times, born times):
//  1. DELAY levels and the timer properties TIMER_DELIVER_MS (absolute, and send time + D),
//     TIMER_DELAY_SEC and __STARTDELIVERTIME: none is in its topic right after the send (the
//     topic's max offsets count only the plain messages sent with them), each is delivered once,
//     never before its time (-100 ms), at most 1.5 s after it, and the delivered copy carries
//     no DELAY / TIMER_* / __STARTDELIVERTIME property.
//  2. The same kinds, due a few seconds later, survive a kill -9 of the broker (SYNC_FLUSH) that
//     happens before they are due (and after a level-1 message was delivered): after the
//     restart every one is delivered at least once, never before its time; the consumer keeps
//     running across the restart.
//  3. kill -9 while retries (CONSUMER_SEND_MSG_BACK copies waiting in SCHEDULE_TOPIC_XXXX) and
//     delayed/timed messages are pending: after the restart every message is still delivered,
//     the failing ones consumed on their second retry, and no retry comes before its level's
//     delay.
// ferry-test-requires: example_consumer example_send_many

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { useCluster, waitFor, ms, withLogsOnFailure } = require('../compat/harness');
const remoting = require('../compat/remoting');
const ex = require('./examples');
const dl = require('./delivery');

const LEVELS_TEXT = '1s 2s 3s 3s 3s 6s';
const LEVELS = dl.levelDelays(LEVELS_TEXT);
const QUEUES = 4;
const SCHEDULE_TOPIC = 'SCHEDULE_TOPIC_XXXX';

const ctx = useCluster({ name: 'int-delayed', flushDiskType: 'SYNC_FLUSH',
  brokerConf: { messageDelayLevel: LEVELS_TEXT, flushDelayOffsetInterval: 200 } });
ctx.beforeStop.push(ex.stopAll);

async function startConsumer(cluster, label, opts) {
  const c = ex.startConsumer(cluster, label, Object.assign({ fromFirst: true, threads: 4, rebalanceMs: 1000,
    persistMs: 500, printTime: true }, opts));
  await c.waitStderr('STARTED');
  await waitFor(async () => (await ex.consumerIds(remoting, cluster.brokerAddr, opts.group)).length === 1,
    { timeoutMs: ms(15000), what: `${label} to be listed in ${opts.group}` });
  // Retries come back through %RETRY%<group>: wait until the consumer pulls it (its route is
  // looked up at a rebalance after the heartbeat created the topic), so that the measured
  // delays are the broker's and not the consumer's route refresh.
  await c.waitStderr(`consuming ${cluster.brokerName}/%RETRY%${opts.group}/`, ms(15000));
  return c;
}

/**
 * Sends every kind in `kinds` at once ({ tag: { count, send options } }); returns the SENT
 * records, each with `tag` and its due window [lo, hi] (ms since the epoch): `due(sent)` of the
 * kind, or for DELAY levels [born, ack] + delay (born comes from the delivery).
 */
async function sendKinds(cluster, topic, kinds) {
  const all = await Promise.all(Object.entries(kinds).map(async ([ tag, k ]) => {
    const sent = await ex.sendAllOk(cluster, topic, Object.assign({ tag, bodyPrefix: `${tag}-`, printTime: true },
      k.send), `send_${tag}`);
    return sent.map(s => Object.assign(s, { tag, window: k.window }));
  }));
  return all.flat();
}

/** The due window of a delivery `d` of the sent message `s`. */
function dueWindow(s, d) {
  return s.window(s, d);
}

const WINDOWS = {
  now: () => null,
  level: n => (s, d) => [ d.bornMs + dl.levelMs(LEVELS, n), s.ackMs + dl.levelMs(LEVELS, n) ],
  at: t => () => [ t, t ],
  after: () => s => [ s.deliverMs, s.deliverMs ],
  relative: delayMs => s => [ s.sendStartMs + delayMs, s.ackMs + delayMs ],
};

/**
 * Checks every delivery of every timed message against its window: never before lo - 100 ms;
 * the first delivery at most `lateMs` after hi. Returns report lines.
 */
function checkWindows(sent, d, lateMs) {
  const lines = [];
  for (const s of sent) {
    const list = d.get(s.msgId) || [];
    assert.ok(list.length >= 1, `${s.body} is delivered`);
    for (const x of list) {
      assert.equal(x.body, s.body, `${s.body}: body intact`);
      assert.equal(x.tags, s.tag, `${s.body}: tag intact`);
      assert.equal(x.reconsumeTimes, 0, `${s.body}: reconsume_times 0`);
    }
    const w = s.window && dueWindow(s, list[0]);
    if (!w) continue;
    for (const x of list) {
      assert.ok(x.atMs >= w[0] - dl.EARLY_MS, `${s.body} (${s.tag}) delivered at ${x.atMs}, ` +
        `${w[0] - x.atMs} ms before its due time ${w[0]}`);
    }
    if (lateMs !== null) {
      assert.ok(list[0].atMs <= w[1] + lateMs, `${s.body} (${s.tag}) delivered at ${list[0].atMs}, ` +
        `${list[0].atMs - w[1]} ms after its due time ${w[1]} (tolerance ${lateMs} ms)`);
    }
    lines.push(`${s.body}: due ${w[0] === w[1] ? w[0] : `${w[0]}..${w[1]}`}, delivered ${list[0].atMs - w[0] >= 0 ? '+' : ''}` +
      `${list[0].atMs - w[0]} ms after the earliest due time${list.length > 1 ? ` (${list.length} deliveries)` : ''}`);
  }
  return lines;
}

function report(title, lines) {
  process.stdout.write(`# ${title}:\n${lines.map(l => `#   ${l}`).join('\n')}\n`);
}

async function waitDelivered(procs, sent, timeoutMs, pred = list => list.length >= 1) {
  await waitFor(() => {
    for (const p of procs) p.checkAlive();
    const d = dl.deliveries(procs);
    return sent.every(s => pred(d.get(s.msgId) || []));
  }, { timeoutMs, intervalMs: 50, what: () => {
    const d = dl.deliveries(procs);
    const missing = sent.filter(s => !pred(d.get(s.msgId) || []));
    return `${missing.length} of ${sent.length} messages to be delivered (e.g. ${missing.slice(0, 4).map(s => s.body)})\n` +
      ex.describe(procs);
  } });
  return dl.deliveries(procs);
}

test('delayed and timed messages: invisible before their time, delivered once at it', async () => {
  const cluster = ctx.cluster;
  const TOPIC = 'IntDelayed';
  await withLogsOnFailure(cluster, async () => {
    await ex.createTopicOn(remoting, cluster, TOPIC, QUEUES, [ ex.mainBroker(cluster) ]);
    const c = await startConsumer(cluster, 'delayed', { group: 'GID_int_delayed', topic: TOPIC });
    const abs = Date.now() + 2500;
    const ons = Date.now() + 2500;
    const sent = await sendKinds(cluster, TOPIC, {
      Now: { send: { count: 3 }, window: null },
      Lvl: { send: { count: 4, delayLevel: 2 }, window: WINDOWS.level(2) },
      Abs: { send: { count: 3, deliverAtMs: abs }, window: WINDOWS.at(abs) },
      After: { send: { count: 3, deliverAfterMs: 2000 }, window: WINDOWS.after() },
      Sec: { send: { count: 3, props: { TIMER_DELAY_SEC: 2 } }, window: WINDOWS.relative(2000) },
      Ons: { send: { count: 3, props: { __STARTDELIVERTIME: ons } }, window: WINDOWS.at(ons) },
    });
    const timed = sent.filter(s => s.tag !== 'Now');
    const earliestDue = Math.min(...timed.map(s => s.tag === 'Lvl' ? s.sendStartMs + 2000 : dueWindow(s, { bornMs: 0 })[0]));

    // Not visible before their time: only the plain messages are in the topic. A queue's max
    // offset counts what the dispatch thread has indexed, which may trail the SEND_OK by a few
    // ms (as RocketMQ's ReputMessageService): wait for the plain ones, then count.
    let count = 0;
    await waitFor(async () => (count = await dl.topicMessageCount(cluster.brokerAddr, TOPIC, QUEUES)) >= 3,
      { timeoutMs: ms(2000), intervalMs: 10, what: () => `the 3 plain messages in the queues (${count})` });
    count = await dl.topicMessageCount(cluster.brokerAddr, TOPIC, QUEUES);
    const checkedAt = Date.now();
    assert.ok(checkedAt < earliestDue - dl.EARLY_MS, `the visibility check ran before the first due time ` +
      `(${earliestDue - checkedAt} ms left); the sends took too long`);
    assert.equal(count, 3, `right after the sends the topic holds only the 3 plain messages (max offsets sum ${count})`);

    const d = await waitDelivered([ c ], sent, ms(15000));
    const lines = checkWindows(timed, d, dl.LATE_MS);
    for (const s of sent) assert.equal(d.get(s.msgId).length, 1, `${s.body} is delivered exactly once (no crash)`);
    const nowMsgs = sent.filter(s => s.tag === 'Now');
    for (const s of nowMsgs) {
      assert.ok(d.get(s.msgId)[0].atMs - s.ackMs <= ms(1500), `${s.body} (plain) is consumed at once`);
    }

    // The delivered copies: in their topic and queue, without the scheduling properties.
    const stored = [];
    for (let q = 0; q < QUEUES; q++) stored.push(...await dl.pullQueue(cluster.brokerAddr, 'GID_inspect', TOPIC, q));
    assert.equal(stored.length, sent.length, 'each message is stored in its topic once');
    for (const m of stored) {
      const p = m.properties;
      const what = `${m.body.toString()}: stored copy properties ${JSON.stringify(p)}`;
      assert.equal(p.DELAY, undefined, what);
      assert.equal(p.__STARTDELIVERTIME, undefined, what);
      assert.ok(!Object.keys(p).some(k => k.startsWith('TIMER_')), what);
      assert.ok(sent.some(s => s.msgId === p.UNIQ_KEY && s.body === m.body.toString()), `${what}: UNIQ_KEY kept`);
    }
    report('delayed/timed, configured vs measured', lines);
  });
});

test('delayed and timed messages survive a kill -9 of the broker before their time', async () => {
  const cluster = ctx.cluster;
  const TOPIC = 'IntDelayedKill';
  await withLogsOnFailure(cluster, async () => {
    await ex.createTopicOn(remoting, cluster, TOPIC, QUEUES, [ ex.mainBroker(cluster) ]);
    const c = await startConsumer(cluster, 'delayed_kill', { group: 'GID_int_delayed_kill', topic: TOPIC });
    const ons = Date.now() + 5000;
    const sent = await sendKinds(cluster, TOPIC, {
      Early: { send: { count: 3, delayLevel: 1 }, window: WINDOWS.level(1) },
      Lvl: { send: { count: 4, delayLevel: 6 }, window: WINDOWS.level(6) },
      After: { send: { count: 3, deliverAfterMs: 4500 }, window: WINDOWS.after() },
      Sec: { send: { count: 3, props: { TIMER_DELAY_SEC: 5 } }, window: WINDOWS.relative(5000) },
      Ons: { send: { count: 3, props: { __STARTDELIVERTIME: ons } }, window: WINDOWS.at(ons) },
    });
    const early = sent.filter(s => s.tag === 'Early');
    const late = sent.filter(s => s.tag !== 'Early');
    const count = await dl.topicMessageCount(cluster.brokerAddr, TOPIC, QUEUES);
    assert.ok(count <= early.length, `right after the sends at most the level-1 messages are in the topic (${count})`);

    // The level-1 ones are delivered (and the delivery offsets persisted or not), then kill -9.
    await waitDelivered([ c ], early, ms(10000));
    const killAt = Date.now();
    const minLateDue = Math.min(...late.map(s => s.tag === 'Lvl' ? s.sendStartMs + 6000 : dueWindow(s, {})[0]));
    assert.ok(killAt < minLateDue - dl.EARLY_MS, `the kill comes before the others are due (${minLateDue - killAt} ms left)`);
    let d = dl.deliveries([ c ]);
    assert.ok(late.every(s => !d.has(s.msgId)), 'none of the others was delivered before the kill');
    const stop = await cluster.stopBroker({ kill9: true });
    assert.equal(stop.signal, 'SIGKILL');
    await cluster.startBroker();
    const upAt = Date.now();

    d = await waitDelivered([ c ], sent, ms(40000));
    const lines = [ `kill -9 ${minLateDue - killAt} ms before the first due time; the broker was registered again ` +
      `${upAt - killAt} ms later` ];
    // Lateness after a restart is bounded by the consumer's reconnection (pull retry after 3 s).
    lines.push(...checkWindows(sent, d, null));
    for (const s of late) {
      const w = dueWindow(s, d.get(s.msgId)[0]);
      assert.ok(d.get(s.msgId)[0].atMs <= Math.max(w[1], upAt) + ms(8000),
        `${s.body}: delivered within 8 s of max(due time, restart) (at ${d.get(s.msgId)[0].atMs}, due ${w[1]}, up ${upAt})`);
    }
    // A duplicate is the consumer reading the same stored copy again (its offset commit was lost
    // with the broker) or the broker storing another copy (delayOffset.json older than the copy).
    const dups = sent.filter(s => d.get(s.msgId).length > 1).map(s => {
      const copies = new Set(d.get(s.msgId).map(x => `${x.queueId}@${x.queueOffset}`));
      return `${s.body}x${d.get(s.msgId).length} (${copies.size} stored ${copies.size > 1 ? 'copies' : 'copy'})`;
    });
    lines.push(`delivered more than once (allowed after kill -9): ${dups.length ? dups.join(' ') : 'none'}`);
    report('delayed/timed across kill -9', lines);
  });
});

test('kill -9 while retries and delayed messages are pending: everything is still delivered', async () => {
  const cluster = ctx.cluster;
  const TOPIC = 'IntPendingKill';
  const RETRY_LEVEL = 3; // first retry: level 3 + 0
  await withLogsOnFailure(cluster, async () => {
    await ex.createTopicOn(remoting, cluster, TOPIC, QUEUES, [ ex.mainBroker(cluster) ]);
    const c = await startConsumer(cluster, 'pending_kill', { group: 'GID_int_pending_kill', topic: TOPIC,
      failTimes: 2, failTag: 'Retry' });
    const base = await dl.maxOffsetOrZero(cluster.brokerAddr, SCHEDULE_TOPIC, RETRY_LEVEL - 1);
    const sent = await sendKinds(cluster, TOPIC, {
      Retry: { send: { count: 4 }, window: null },
      Lvl: { send: { count: 3, delayLevel: 6 }, window: WINDOWS.level(6) },
      After: { send: { count: 3, deliverAfterMs: 5000 }, window: WINDOWS.after() },
    });
    const retry = sent.filter(s => s.tag === 'Retry');
    const delayed = sent.filter(s => s.tag !== 'Retry');

    // Every failing message was handed back and its retry copy waits in the schedule queue.
    await waitFor(async () => {
      c.checkAlive();
      const d = dl.deliveries([ c ]);
      if (!retry.every(s => (d.get(s.msgId) || []).some(x => x.kind === 'LATER'))) return false;
      return await dl.maxOffsetOrZero(cluster.brokerAddr, SCHEDULE_TOPIC, RETRY_LEVEL - 1) >= base + retry.length;
    }, { timeoutMs: ms(10000), what: () => `the ${retry.length} failing messages to be sent back (${SCHEDULE_TOPIC} ` +
      `queue ${RETRY_LEVEL - 1})\n${ex.describe([ c ])}` });
    const killAt = Date.now();
    let d = dl.deliveries([ c ]);
    assert.ok(retry.every(s => d.get(s.msgId).length === 1), 'no retry was delivered before the kill');
    assert.ok(delayed.every(s => !d.has(s.msgId)), 'no delayed message was delivered before the kill');
    await cluster.stopBroker({ kill9: true });
    await cluster.startBroker();
    const upAt = Date.now();

    d = await waitDelivered([ c ], sent, ms(40000),
      list => list.some(x => x.kind === 'MSG'));
    const lines = [ `kill -9 with ${retry.length} retries and ${delayed.length} delayed messages pending; ` +
      `registered again after ${upAt - killAt} ms` ];
    for (const s of retry) {
      const list = d.get(s.msgId);
      assert.ok(list.some(x => x.kind === 'MSG' && x.reconsumeTimes === 2), `${s.body}: consumed on its second retry ` +
        `(reconsume_times 2): ${JSON.stringify(list.map(x => `${x.kind}/${x.reconsumeTimes}`))}`);
      for (const x of list) {
        assert.equal(x.body, s.body, `${s.body}: body intact`);
        if (x.reconsumeTimes === 0) continue;
        const prev = list.find(y => y.kind === 'LATER' && y.reconsumeTimes === x.reconsumeTimes - 1);
        assert.ok(prev, `${s.body}: a delivery with reconsume_times ${x.reconsumeTimes} follows one with ` +
          `${x.reconsumeTimes - 1}`);
        const delay = dl.levelMs(LEVELS, RETRY_LEVEL + x.reconsumeTimes - 1);
        assert.ok(x.atMs - prev.atMs >= delay - dl.EARLY_MS, `${s.body}: retry ${x.reconsumeTimes} came ` +
          `${x.atMs - prev.atMs} ms after the failed delivery, before its level delay ${delay} ms`);
        lines.push(`${s.body}: retry ${x.reconsumeTimes} configured ${delay} ms, measured ${x.atMs - prev.atMs} ms ` +
          `(the retry copy was stored ${x.storeMs - prev.atMs} ms after the failed delivery)`);
      }
    }
    lines.push(...checkWindows(delayed, d, null));
    report('pending retries and delays across kill -9', lines);
  });
});
