'use strict';
// A clustering group of three libferry push consumers (example_consumer processes) consumes a
// paced stream from libferry (example_send_many) while one consumer is killed with kill -9 and
// a replacement started: every acknowledged message is consumed (at least once: duplicates
// from the kill are counted and reported, never a loss), with the body, queue and offset its
// SENT line names. One consumer answers RECONSUME_LATER now and then: each such message must
// come back, with reconsume_times >= 1 (a redelivery through %RETRY%<group>, or libferry's
// local retry after 5 s when the broker refuses CONSUMER_SEND_MSG_BACK), or from its queue
// again at another consumer when a rebalance moved the queue first. Then every consumer stops
// with SIGTERM: each exits 0 and the group's committed offset of every queue reaches the
// queue's end. Messages sent while the group is down are all consumed by a restarted group,
// which gets none of the earlier ones again.
// ferry-test-requires: example_consumer example_send_many

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { useCluster, waitFor, ms, withLogsOnFailure } = require('../compat/harness');
const remoting = require('../compat/remoting');
const ex = require('./examples');

const TOPIC = 'IntConsumerGroup';
const GROUP = 'GID_int_consumer_group';
const QUEUES = 8;
const COUNT = 2000;
const COUNT2 = 300; // sent while the group is down
const INTERVAL_MS = 5;
const KILL_AT = 600; // SENT lines before kill -9 of one consumer
const RESTART_AT = 1200; // SENT lines before its replacement starts
const FAIL_EVERY = 50;

const ctx = useCluster({ name: 'int-group' });
ctx.beforeStop.push(ex.stopAll);

function consumerOpts(extra = {}) {
  return Object.assign({ group: GROUP, topic: TOPIC, fromFirst: true, threads: 4, rebalanceMs: 1000,
    persistMs: 500 }, extra);
}

/** msgId -> number of MSG lines (successful consumptions) over `procs`. */
function consumed(procs) {
  const n = new Map();
  for (const p of procs) {
    for (const m of p.parsed) if (m.kind === 'MSG') n.set(m.msgId, (n.get(m.msgId) || 0) + 1);
  }
  return n;
}

async function waitAllConsumed(procs, sent, what) {
  const missing = () => {
    const got = consumed(procs);
    return sent.filter(s => !got.has(s.msgId));
  };
  await waitFor(() => {
    for (const p of procs) p.checkAlive();
    return missing().length === 0;
  }, { timeoutMs: ms(60000), intervalMs: 200, what: () => {
    const m = missing();
    return `${what}: ${m.length} of ${sent.length} not consumed yet, e.g. ${JSON.stringify(m.slice(0, 3))}\n` +
      ex.describe(procs);
  } });
}

async function stopCleanly(procs) {
  const results = await Promise.all(procs.map(p => p.stop()));
  procs.forEach((p, i) => {
    const r = results[i];
    assert.ok(!r.forced && r.code === 0, `${p.label} exits 0 by itself after SIGTERM ` +
      `(${JSON.stringify(r)}); stderr tail:\n${p.stderrTail()}`);
    assert.match(p.stderr, /STOPPED/, `${p.label} printed STOPPED after ferry_push_consumer_shutdown`);
  });
}

test('clustering group of three: kill -9 of one consumer loses nothing; clean stop commits offsets', async t => {
  const cluster = ctx.cluster;
  await withLogsOnFailure(cluster, async () => {
    await ex.createTopicOn(remoting, cluster, TOPIC, QUEUES, [ ex.mainBroker(cluster) ]);

    // Phase 1: three consumers, one of them killed and replaced while the stream runs.
    const c = [ 1, 2, 3 ].map(i => ex.startConsumer(cluster, `consumer${i}`,
      consumerOpts({ instance: `cg-${i}`, failEvery: i === 2 ? FAIL_EVERY : undefined })));
    const all = [ ...c ];
    await Promise.all(c.map(p => p.waitStderr('STARTED')));
    await waitFor(async () => (await ex.consumerIds(remoting, cluster.brokerAddr, GROUP)).length === 3,
      { timeoutMs: ms(20000), what: `the broker to list 3 consumers of ${GROUP}\n${ex.describe(all)}` });

    const sender = ex.sendMany(cluster, TOPIC, { count: COUNT, intervalMs: INTERVAL_MS, keyPrefix: 'gk-',
      bodyPrefix: 'group-' });
    const progress = () => `SENT ${sender.parsed.length}, consumed ${consumed(all).size}\n` +
      ex.describe([ sender, ...all ]);
    await waitFor(() => {
      sender.checkAlive();
      return sender.parsed.length >= KILL_AT && c[0].parsed.some(m => m.kind === 'MSG');
    }, { timeoutMs: ms(40000), what: () => `${KILL_AT} SENT lines and consumer1 consuming; ${progress()}` });
    const killed = await c[0].kill9();
    assert.equal(killed.signal, 'SIGKILL');
    t.diagnostic(`consumer1 killed with kill -9 after ${sender.parsed.length} SENT, ${c[0].parsed.length} lines`);

    await waitFor(() => { sender.checkAlive(); return sender.parsed.length >= RESTART_AT; },
      { timeoutMs: ms(40000), what: () => `${RESTART_AT} SENT lines; ${progress()}` });
    const replacement = ex.startConsumer(cluster, 'consumer1-restarted', consumerOpts({ instance: 'cg-1r' }));
    all.push(replacement);
    await replacement.waitStderr('STARTED');

    await waitFor(() => sender.exit, { timeoutMs: ms(60000) + COUNT * (INTERVAL_MS + 10), intervalMs: 100,
      what: () => `send_many to finish; ${progress()}` });
    assert.equal(sender.exit.code, 0, `every send is acknowledged; stderr:\n${sender.stderrTail(10)}`);
    const sent = sender.parsed;
    assert.equal(sent.length, COUNT);

    await waitAllConsumed(all, sent, 'every acknowledged message consumed by the group');
    const got = consumed(all);
    const dups = [ ...got.values() ].reduce((a, n) => a + n - 1, 0);
    const later = all.flatMap(p => p.parsed.filter(m => m.kind === 'LATER'));
    t.diagnostic(`consumed ${got.size} distinct of ${COUNT} sent; ${dups} duplicate deliveries (kill -9 replays); ` +
      `${later.length} RECONSUME_LATER answers; per consumer: ` +
      all.map(p => `${p.label}=${p.parsed.length}`).join(' '));

    // What was consumed is what was sent.
    const bySent = new Map(sent.map(s => [ s.msgId, s ]));
    for (const p of all) {
      for (const m of p.parsed) {
        const s = bySent.get(m.msgId);
        assert.ok(s, `${p.label} consumed ${m.msgId} (${m.body}), which send_many acknowledged`);
        assert.equal(m.body, s.body, `${m.msgId} body`);
        assert.equal(m.keys, `gk-${s.body.slice('group-'.length)}`, `${m.msgId} keys`);
        assert.equal(m.tags, 'TagA', `${m.msgId} tags`);
        if (m.reconsumeTimes === 0) {
          assert.deepEqual([ m.queueId, m.queueOffset ], [ s.queueId, s.queueOffset ], `${m.msgId} queue and offset`);
        }
      }
    }
    // Every message answered RECONSUME_LATER comes back: with reconsume_times >= 1 (through
    // the retry topic after the broker's delay, or retried locally after 5 s when the broker
    // refuses the send-back), or, when its queue moved to another consumer before that, from
    // its queue again there (the committed offset never passed it).
    assert.ok(later.length > 0, `consumer2 (--fail-every ${FAIL_EVERY}) answered RECONSUME_LATER at least once`);
    const comeBack = l => all.some(p => p.parsed.some(m => m.kind === 'MSG' && m.msgId === l.msgId &&
      (m.reconsumeTimes >= 1 || p !== c[1])));
    const notBack = () => later.filter(l => !comeBack(l)).map(l => ({ later: `${l.body} ${l.queueId}@${l.queueOffset}`,
      consumed: all.flatMap(p => p.parsed.filter(m => m.kind === 'MSG' && m.msgId === l.msgId)
        .map(m => `${p.label}: ${m.queueId}@${m.queueOffset} reconsume_times=${m.reconsumeTimes}`)) }));
    await waitFor(() => notBack().length === 0, { timeoutMs: ms(60000), intervalMs: 200,
      what: () => `every message answered RECONSUME_LATER to be consumed again: ${JSON.stringify(notBack().slice(0, 5))}` });
    const retried = all.flatMap(p => p.parsed).filter(m => m.kind === 'MSG' && m.reconsumeTimes >= 1);
    t.diagnostic(`${later.length} RECONSUME_LATER answers; ${retried.length} consumptions with reconsume_times >= 1; ` +
      `came back only from another consumer: ${JSON.stringify(later.filter(l => !retried.some(m => m.msgId === l.msgId))
        .map(l => `${l.body} ${l.queueId}@${l.queueOffset}`))}`);
    assert.ok(retried.length > 0, 'messages answered RECONSUME_LATER came back with reconsume_times >= 1');

    // A clean stop of the whole group commits every queue's end.
    const live = all.filter(p => p.running);
    await stopCleanly(live);
    await remoting.withConnection(cluster.brokerAddr, async conn => {
      for (let q = 0; q < QUEUES; q++) {
        const max = await remoting.getMaxOffset(conn, TOPIC, q);
        const off = await remoting.queryConsumerOffset(conn, GROUP, TOPIC, q);
        assert.equal(off, max, `committed offset of ${TOPIC}/${q} after the clean stop is the queue's end`);
      }
    });

    // Phase 2: sent while the group is down, consumed by a restarted group; nothing again.
    const sent2 = await ex.sendAllOk(cluster, TOPIC, { count: COUNT2, start: COUNT, keyPrefix: 'gk-',
      bodyPrefix: 'group-' }, 'send_many_2');
    const c2 = [ 4, 5, 6 ].map(i => ex.startConsumer(cluster, `consumer${i}`, consumerOpts({ instance: `cg-${i}` })));
    await waitAllConsumed(c2, sent2, 'messages sent while the group was down consumed after its restart');
    const replayed = c2.flatMap(p => p.parsed).filter(m => bySent.has(m.msgId));
    assert.deepEqual(replayed.slice(0, 5), [], 'the restarted group gets no message consumed before the clean stop');
    await stopCleanly(c2);
  });
});
