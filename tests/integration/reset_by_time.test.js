'use strict';
// Reset by time (issue 5): batch A is sent and consumed, a timestamp T is taken a while after
// A's last acknowledgement, batch B is sent right after T and consumed; then, with the consumer
// online, `mqadmin resetOffsetByTime -g G -t TOPIC -s T` moves every queue of the group to the
// first message stored at or after T: the broker answers with exactly the offsets of B's first
// message in each queue, and the running consumer (libferry, RESET_CONSUMER_CLIENT_OFFSET)
// receives every message of B once more and none of A; the committed offsets end at the
// queues' ends again.
//
// The broker resets to the first message stored at or after T (Java 4.9.8 takes the nearest
// store time, which could replay A's last message): T is taken 50 ms after A and B is sent
// 300 ms after T, so a "nearest" rule would replay A's last message and fail.
// ferry-test-requires: example_consumer example_send_many mqadmin

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { useCluster, waitFor, ms, withLogsOnFailure, runMqadmin } = require('../compat/harness');
const remoting = require('../compat/remoting');
const ex = require('./examples');
const dl = require('./delivery');

const TOPIC = 'IntResetByTime';
const GROUP = 'GID_int_reset_by_time';
const QUEUES = 4;
const COUNT_A = 20;
const COUNT_B = 20;
const GAP_MS = 50; // between A's last acknowledgement and T (the set-up)

const ctx = useCluster({ name: 'int-reset-time' });
ctx.beforeStop.push(ex.stopAll);

const mqadmin = runMqadmin; // tests/compat/harness.js

test('resetOffsetByTime replays exactly the messages stored from T on, to the online consumer', async () => {
  const cluster = ctx.cluster;
  await withLogsOnFailure(cluster, async () => {
    await ex.createTopicOn(remoting, cluster, TOPIC, QUEUES, [ ex.mainBroker(cluster) ]);
    const c = ex.startConsumer(cluster, 'reset_consumer', { group: GROUP, topic: TOPIC, fromFirst: true, threads: 4,
      rebalanceMs: 1000, persistMs: 500 });
    await c.waitStderr(`consuming ${cluster.brokerName}/${TOPIC}/`);
    const consumedCount = () => {
      const n = new Map();
      for (const m of c.parsed) if (m.kind === 'MSG') n.set(m.msgId, (n.get(m.msgId) || 0) + 1);
      return n;
    };
    const waitCounts = async (sent, k, what) => waitFor(() => {
      c.checkAlive();
      const n = consumedCount();
      return sent.every(s => (n.get(s.msgId) || 0) >= k);
    }, { timeoutMs: ms(20000), intervalMs: 100, what: () => `${what}\n${ex.describe([ c ])}` });

    const sentA = await ex.sendAllOk(cluster, TOPIC, { count: COUNT_A, bodyPrefix: 'A-', printTime: true }, 'send_A');
    const lastAckA = Math.max(...sentA.map(s => s.ackMs));
    await waitCounts(sentA, 1, 'batch A to be consumed');
    await waitFor(() => Date.now() >= lastAckA + GAP_MS, { timeoutMs: GAP_MS + ms(5000), what: 'the gap after A' });
    const T = Date.now();
    // B is sent 300 ms after T: T is then nearer to A's last message than to B's first, so a
    // "nearest store time" rule would replay A's last message and fail the exact check below
    await waitFor(() => Date.now() >= T + 300, { timeoutMs: ms(5000), what: 'the gap before B' });
    const sentB = await ex.sendAllOk(cluster, TOPIC, { count: COUNT_B, bodyPrefix: 'B-', printTime: true }, 'send_B');
    await waitCounts(sentB, 1, 'batch B to be consumed');

    // The set-up: per queue, A stored before T, B at or after it.
    const stored = [];
    for (let q = 0; q < QUEUES; q++) stored.push(await dl.pullQueue(cluster.brokerAddr, 'GID_inspect', TOPIC, q));
    const expected = [];
    const setup = [];
    for (let q = 0; q < QUEUES; q++) {
      const a = stored[q].filter(m => m.body.toString().startsWith('A-'));
      const b = stored[q].filter(m => m.body.toString().startsWith('B-'));
      assert.ok(b.length > 0, `queue ${q} holds messages of B`);
      const lastA = a.length ? a[a.length - 1].storeTimestamp : null;
      const firstB = b[0].storeTimestamp;
      setup.push(`queue ${q}: last A stored at T${lastA === null ? ' (none)' : lastA - T}, first B at T+${firstB - T} (offset ${b[0].queueOffset})`);
      assert.ok(a.every(m => m.storeTimestamp < T) && b.every(m => m.storeTimestamp >= T),
        `A is stored before T and B at or after it: ${setup.join('; ')}`);
      expected.push(b[0].queueOffset);
    }
    const before = consumedCount();

    const r = await mqadmin([ 'resetOffsetByTime', '-n', cluster.nsAddr, '-g', GROUP, '-t', TOPIC, '-s', String(T), '--json' ]);
    const out = `mqadmin exit ${r.code} signal ${r.signal}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
    assert.equal(r.code, 0, out);
    let table;
    try {
      table = JSON.parse(r.stdout);
    } catch (e) {
      assert.fail(`mqadmin --json printed no JSON (${e.message}): ${out}`);
    }
    const rows = (Array.isArray(table) ? table : table.offsetTable || table.offsets || []).filter(e => e.topic === TOPIC);
    const got = Array.from({ length: QUEUES }, (_, q) => {
      const e = rows.find(x => Number(x.queueId) === q);
      return e ? Number(e.offset) : null;
    });
    assert.deepEqual(got, expected, `mqadmin reports the offset of B's first message in each queue (${setup.join('; ')})\n${out}`);

    // The online consumer gets exactly B again: every message of B once more, none of A.
    await waitCounts(sentB, 2, 'every message of B to be consumed once more after the reset');
    await waitFor(async () => {
      for (let q = 0; q < QUEUES; q++) {
        const committed = await remoting.withConnection(cluster.brokerAddr,
          conn => remoting.queryConsumerOffset(conn, GROUP, TOPIC, q));
        if (committed !== stored[q].length) return false;
      }
      return true;
    }, { timeoutMs: ms(15000), intervalMs: 100, what: () => `the group's committed offsets to reach the queues' ends ` +
      `(${stored.map(s => s.length)})\n${ex.describe([ c ])}` });
    const after = consumedCount();
    const again = new Map([ ...after ].map(([ id, n ]) => [ id, n - (before.get(id) || 0) ]));
    const replayedA = sentA.filter(s => again.get(s.msgId) > 0).map(s => s.body);
    assert.deepEqual(replayedA, [], `no message of A is delivered again (${setup.join('; ')})`);
    for (const s of sentB) {
      assert.equal(again.get(s.msgId), 1, `${s.body} (B) is delivered exactly once more after the reset`);
    }
    assert.equal([ ...again.values() ].reduce((x, y) => x + y, 0), COUNT_B, 'nothing else is delivered again');
    process.stdout.write(`# reset to T=${T}: ${setup.join('; ')}\n`);
  });
});
