'use strict';
// Orderly consumption keeps per-queue order across a consumer restart. libferry
// (example_send_many --order-key) sends 4 x 200 messages "<key>:<seq>", each key to one queue
// chosen by ferry_select_by_hash. An orderly example_consumer (slowed down, small cache)
// consumes part and is stopped with SIGTERM; a second one, which answers RECONSUME_LATER now and then (the
// queue is suspended and the same message comes again), consumes the rest. Per key: every
// message is in the queue of its key's hash, each process sees strictly consecutive sequence
// numbers, the second continues where the first stopped (it may repeat a suffix, never skips
// and never reorders), and together they cover every acknowledged message.
// ferry-test-requires: example_consumer example_send_many

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { useCluster, waitFor, ms, withLogsOnFailure } = require('../compat/harness');
const remoting = require('../compat/remoting');
const ex = require('./examples');

const TOPIC = 'IntOrderly';
const GROUP = 'GID_int_orderly';
const QUEUES = 8;
const NKEYS = 4;
const PER_KEY = 200;
const TOTAL = NKEYS * PER_KEY;

/** Java's String.hashCode of an ASCII string. */
function javaHash(s) {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(h, 31) + s.charCodeAt(i)) | 0;
  return h;
}
const queueOf = key => Math.abs(javaHash(key) % QUEUES);

/** NKEYS keys that hash to distinct queues. */
function pickKeys() {
  const keys = [];
  const used = new Set();
  for (let i = 0; keys.length < NKEYS; i++) {
    const k = `okey-${i}`;
    if (!used.has(queueOf(k))) {
      used.add(queueOf(k));
      keys.push(k);
    }
  }
  return keys;
}

/** key -> [{ kind, seq, queueId, queueOffset }] in the order `proc` printed them. */
function byKey(proc) {
  const out = new Map();
  for (const m of proc.parsed) {
    const [ key, seq ] = m.body.split(':');
    if (!out.has(key)) out.set(key, []);
    out.get(key).push({ kind: m.kind, seq: Number(seq), queueId: m.queueId, queueOffset: m.queueOffset });
  }
  return out;
}

/** Asserts that `lines` of one process are in order; returns the consumed (MSG) seqs. */
function checkProcessOrder(label, key, lines) {
  const seqs = lines.filter(l => l.kind === 'MSG').map(l => l.seq);
  for (let i = 1; i < seqs.length; i++) {
    assert.equal(seqs[i], seqs[i - 1] + 1, `${label} ${key}: consumed seq ${seqs[i]} follows ${seqs[i - 1]} ` +
      `(all: ${seqs.slice(Math.max(0, i - 5), i + 5)})`);
  }
  // A RECONSUME_LATER answer is followed by the same message again, before anything else.
  for (let i = 0; i + 1 < lines.length; i++) {
    if (lines[i].kind === 'LATER') {
      assert.equal(lines[i + 1].seq, lines[i].seq, `${label} ${key}: after RECONSUME_LATER of seq ${lines[i].seq} ` +
        `the same message comes again (got seq ${lines[i + 1].seq})`);
    }
  }
  return seqs;
}

const ctx = useCluster({ name: 'int-orderly' });
ctx.beforeStop.push(ex.stopAll);

test('orderly: per-key order and completeness across a SIGTERM restart of the consumer', async t => {
  const cluster = ctx.cluster;
  await withLogsOnFailure(cluster, async () => {
    await ex.createTopicOn(remoting, cluster, TOPIC, QUEUES, [ ex.mainBroker(cluster) ]);
    const keys = pickKeys();
    const sent = await ex.sendAllOk(cluster, TOPIC, { count: TOTAL, orderKeys: keys, tag: 'TagO' });

    // The sends: each key in its hash queue, in send order.
    const sentByKey = new Map(keys.map(k => [ k, [] ]));
    for (const s of sent) {
      const [ key, seq ] = s.body.split(':');
      sentByKey.get(key).push({ seq: Number(seq), queueId: s.queueId, queueOffset: s.queueOffset });
    }
    for (const key of keys) {
      const list = sentByKey.get(key);
      assert.deepEqual(list.map(s => s.seq), Array.from({ length: PER_KEY }, (_, i) => i), `${key} sent in order`);
      for (const s of list) assert.equal(s.queueId, queueOf(key), `${key}:${s.seq} in queue hash % ${QUEUES}`);
      for (let i = 1; i < list.length; i++) assert.ok(list[i].queueOffset > list[i - 1].queueOffset);
    }

    const opts = { group: GROUP, topic: TOPIC, orderly: true, fromFirst: true, threads: 4, persistMs: 500,
      rebalanceMs: 1000 };
    // A small cache (pulls of 8, at most 16 cached per queue) so that the first consumer is
    // stopped with most of the messages still on the broker: its shutdown may finish consuming
    // what it fetched.
    const first = ex.startConsumer(cluster, 'orderly1', Object.assign({ sleepMs: 10, pullBatch: 8, pullThreshold: 16 }, opts));
    const mcount = p => p.parsed.filter(m => m.kind === 'MSG').length;
    await waitFor(() => { first.checkAlive(); return mcount(first) >= 300; }, {
      timeoutMs: ms(60000), intervalMs: 20,
      what: () => `the first orderly consumer to consume 300 messages\n${ex.describe([ first ])}`,
    });
    const atSignal = mcount(first);
    const r1 = await first.stop();
    assert.ok(!r1.forced && r1.code === 0, `orderly1 exits 0 after SIGTERM (${JSON.stringify(r1)})\n${first.stderrTail()}`);
    t.diagnostic(`orderly1: ${atSignal} consumed when SIGTERM was sent, ${mcount(first)} when it exited ` +
      `(${mcount(first) - atSignal} consumed during the shutdown)`);

    const second = ex.startConsumer(cluster, 'orderly2', Object.assign({ failEvery: 40 }, opts));
    const done = () => {
      const k1 = byKey(first);
      const k2 = byKey(second);
      return keys.every(k => [ ...(k1.get(k) || []), ...(k2.get(k) || []) ]
        .some(l => l.kind === 'MSG' && l.seq === PER_KEY - 1));
    };
    await waitFor(() => { second.checkAlive(); return done(); }, {
      timeoutMs: ms(60000), intervalMs: 100,
      what: () => `seq ${PER_KEY - 1} of every key to be consumed after the restart ` +
        `(orderly queue locks released by the first consumer at its shutdown?)\n${ex.describe([ first, second ])}`,
    });
    const r2 = await second.stop();
    assert.ok(!r2.forced && r2.code === 0, `orderly2 exits 0 after SIGTERM (${JSON.stringify(r2)})\n${second.stderrTail()}`);

    const k1 = byKey(first);
    const k2 = byKey(second);
    const repeats = [];
    for (const key of keys) {
      const l1 = k1.get(key) || [];
      const l2 = k2.get(key) || [];
      for (const l of [ ...l1, ...l2 ]) assert.equal(l.queueId, queueOf(key), `${key}:${l.seq} consumed from its queue`);
      const s1 = checkProcessOrder('orderly1', key, l1);
      const s2 = checkProcessOrder('orderly2', key, l2);
      if (s1.length) assert.equal(s1[0], 0, `orderly1 ${key} starts at seq 0`);
      const next = s1.length ? s1[s1.length - 1] + 1 : 0;
      let end = next - 1;
      if (s2.length) {
        assert.ok(s2[0] <= next, `orderly2 ${key} continues without a gap: first seq ${s2[0]}, orderly1 ended before ${next}`);
        end = s2[s2.length - 1];
      }
      assert.equal(end, PER_KEY - 1, `${key}: the last seq is consumed`);
      repeats.push(`${key}: orderly1 0..${next - 1}, orderly2 ${s2.length ? `${s2[0]}..${end} (${next - s2[0]} again)` : 'none'}`);
    }
    assert.ok(mcount(second) > 0, 'orderly2 consumed what orderly1 left (the restart was exercised)');
    const later = second.parsed.filter(m => m.kind === 'LATER').length;
    t.diagnostic(`per key: ${repeats.join('; ')}; orderly2 answered RECONSUME_LATER ${later} times`);
    assert.ok(later > 0, 'orderly2 exercised RECONSUME_LATER (--fail-every)');
  });
});
