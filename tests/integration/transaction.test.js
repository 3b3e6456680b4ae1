'use strict';
// Transactional messages with real processes: libferry transaction producers
// (example_tx_producer) against mqbroker with a short transactionTimeOut (500 ms) and
// transactionCheckInterval (300 ms), consumed by libferry push consumers (example_consumer):
//   a) a committed transaction is consumed exactly once, a rolled-back one never;
//   b) a producer killed between its half message and END_TRANSACTION (--crash-after): another
//      producer of the group answers the check-back, COMMIT (consumed once) or ROLLBACK (never);
//   c) UNKNOWN answered twice, then COMMIT: three checks, at least a check interval apart, and
//      one delivery;
//   d) the broker killed with kill -9 while three producers run transactions in every state
//      (committed, rolled back, unknown, END_TRANSACTION in flight): after the restart each
//      stored half ends as its producer decides (the producers stay up and answer checks by the
//      rule), compared exactly with what the topic holds and what a consumer gets;
//   e) 300 concurrent committed transactions get no check-back; 50 unknown ones get one check
//      per round each (no storm), and none once they are answered;
//   f) a half with its committed copy but no op marker (a crash between the two, made by hand)
//      is resolved after a restart without a check-back (a second copy).
// "Never visible" is asserted once the broker reports the half resolved (GET_BROKER_RUNTIME_INFO
// transactionPendingSample) and several check rounds passed; "exactly once" from the consumer's
// MSG lines and from the topic's stored messages (PULL_MESSAGE from offset 0).
// ferry-test-requires: example_tx_producer example_consumer

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { useCluster, waitFor, ms, sleep, withLogsOnFailure } = require('../compat/harness');
const remoting = require('../compat/remoting');
const ex = require('./examples');

const TX_TIMEOUT_MS = 500;
const CHECK_INTERVAL_MS = 300;
const EUNKNOWN = -10012;
const HALF_TOPIC = 'RMQ_SYS_TRANS_HALF_TOPIC';

const ctx = useCluster({
  name: 'int-tx',
  brokerConf: {
    transactionTimeOut: TX_TIMEOUT_MS,
    transactionCheckInterval: CHECK_INTERVAL_MS,
    flushDelayOffsetInterval: 200,
    flushConsumerOffsetInterval: 500,
  },
});
ctx.beforeStop.push(ex.stopAll);

// ---------------------------------------------------------------------------------------------
// Helpers

function consumerOpts(topic, group) {
  return { group, topic, fromFirst: true, rebalanceMs: 1000, persistMs: 500 };
}

async function startConsumer(cluster, label, topic, group) {
  const c = ex.startConsumer(cluster, label, consumerOpts(topic, group));
  await c.waitStderr('STARTED');
  return c;
}

/** body -> number of MSG lines of `procs`. */
function consumedBodies(procs) {
  const n = new Map();
  for (const p of procs) for (const m of p.parsed) if (m.kind === 'MSG') n.set(m.body, (n.get(m.body) || 0) + 1);
  return n;
}

function lines(p, kind) {
  return p.parsed.filter(l => l.kind === kind);
}

function fmtMap(m, max = 20) {
  const e = [ ...m.entries() ].sort();
  return `${JSON.stringify(e.slice(0, max))}${e.length > max ? ` ... (${e.length} entries)` : ''}`;
}

/** Waits until `procs` consumed every body of `bodies` (each at least once). */
async function waitConsumed(procs, bodies, others = [], timeoutMs = ms(30000)) {
  await waitFor(() => {
    for (const p of [ ...procs, ...others ]) p.checkAlive();
    const got = consumedBodies(procs);
    return bodies.every(b => got.has(b));
  }, { timeoutMs, intervalMs: 100, what: () => {
    const got = consumedBodies(procs);
    return `consumers to get ${bodies.length} bodies; missing ${JSON.stringify(bodies.filter(b => !got.has(b)).slice(0, 10))}` +
      `; got ${fmtMap(got)}\n${ex.describe([ ...procs, ...others ])}`;
  } });
}

/** Waits until the producer process exits by itself (not --stay) or prints DONE (--stay). */
async function waitDone(p, timeoutMs = ms(30000)) {
  await waitFor(() => {
    if (p.stderr.includes('DONE ')) return true;
    p.checkAlive();
    return false;
  }, { timeoutMs, intervalMs: 50, what: () => `${p.label} to print DONE (${p.parsed.length} lines)\n${ex.describe([ p ])}` });
}

/** GET_BROKER_RUNTIME_INFO: { count, sample: [{ halfOffset, storeTs, group, topic, txId }] }. */
async function txPending(cluster) {
  return remoting.withConnection(cluster.brokerAddr, async conn => {
    const resp = await conn.invoke(28 /* GET_BROKER_RUNTIME_INFO */, {});
    if (resp.code !== remoting.RESP.SUCCESS) throw new Error(`GET_BROKER_RUNTIME_INFO: code ${resp.code} ${resp.remark}`);
    const t = remoting.parseLenientJson(resp.body).table || {};
    const sample = String(t.transactionPendingSample || '').split(';').filter(Boolean).map(e => {
      const f = e.split('@');
      return { halfOffset: Number(f[0]), storeTs: Number(f[1]), group: f[2], topic: f[3], txId: f[4] || '' };
    });
    return { count: Number(t.transactionPendingCount || 0), sample };
  });
}

/** Waits until the broker has no unresolved half of `group` (the sample lists every pending half). */
async function waitResolved(cluster, group, procs = [], timeoutMs = ms(30000)) {
  let last = null;
  await waitFor(async () => {
    for (const p of procs) p.checkAlive();
    last = await txPending(cluster);
    return last.count <= 32 && !last.sample.some(s => s.group === group);
  }, { timeoutMs, intervalMs: 100, what: () => `the broker to resolve every half of ${group} ` +
    `(pending ${JSON.stringify(last)})\n${ex.describe(procs)}` });
}

/** Every message stored in `topic` (all `queues` queues, PULL_MESSAGE from offset 0). */
async function storedMessages(cluster, topic, queues, group = 'CID_tx_inspect') {
  return remoting.withConnection(cluster.brokerAddr, async conn => {
    const out = [];
    for (let q = 0; q < queues; q++) {
      const max = await remoting.getMaxOffset(conn, topic, q);
      let offset = 0;
      while (offset < max) {
        const r = await remoting.pullMessages(conn, { group, topic, queueId: q, offset });
        if (r.code !== remoting.RESP.SUCCESS || !r.msgs.length) {
          throw new Error(`PULL_MESSAGE ${topic}/${q}@${offset} (max ${max}): code ${r.code} ` +
            `remark=${JSON.stringify(r.remark)} nextBeginOffset=${r.nextBeginOffset}`);
        }
        out.push(...r.msgs);
        offset = r.nextBeginOffset;
      }
    }
    return out;
  });
}

/** body -> count of the messages stored in `topic`. */
async function storedBodies(cluster, topic, queues) {
  const n = new Map();
  for (const m of await storedMessages(cluster, topic, queues)) {
    const b = m.body.toString('utf8');
    n.set(b, (n.get(b) || 0) + 1);
  }
  return n;
}

/** Asserts that `got` (body -> count) is exactly `want` (body -> count). */
function assertExactly(got, want, what) {
  const extra = [ ...got.entries() ].filter(([ b, n ]) => n !== (want.get(b) || 0));
  const missing = [ ...want.entries() ].filter(([ b ]) => !got.has(b));
  assert.ok(extra.length === 0 && missing.length === 0,
    `${what}: wrong or duplicated ${JSON.stringify(extra.slice(0, 20))} (body, count; expected counts: ` +
    `${JSON.stringify(extra.slice(0, 20).map(([ b ]) => want.get(b) || 0))}), missing ${JSON.stringify(missing.slice(0, 20))}; ` +
    `expected ${want.size} bodies, got ${got.size}`);
}

function onceEach(bodies) {
  return new Map(bodies.map(b => [ b, 1 ]));
}

function range(from, n) {
  return Array.from({ length: n }, (_, k) => from + k);
}

/** The rule of --decide/--check rule: the final outcome of message i. */
function ruleCommits(i) {
  return i % 3 !== 1;
}

async function createTopic(cluster, topic, queues) {
  await ex.createTopicOn(remoting, cluster, topic, queues, [ ex.mainBroker(cluster) ]);
}

async function stopClean(procs) {
  for (const p of procs) {
    const r = await p.stop();
    assert.ok(!r.forced && r.code === 0, `${p.label} exits 0 by itself after SIGTERM (${JSON.stringify(r)}); ` +
      `stderr tail:\n${p.stderrTail()}`);
    assert.match(p.stderr, /STOPPED/, `${p.label} printed STOPPED`);
  }
}

/** Bounded wait that several check rounds pass (used only before asserting an absence). */
function severalRounds(n = 4) {
  return sleep(ms(n * CHECK_INTERVAL_MS + 200));
}

// ---------------------------------------------------------------------------------------------

test('a) commit is consumed exactly once, rollback never', async t => {
  const cluster = ctx.cluster;
  await withLogsOnFailure(cluster, async () => {
    const topic = 'TxCommitRollback';
    await createTopic(cluster, topic, 4);
    const consumer = await startConsumer(cluster, 'a-consumer', topic, 'CID_tx_a');
    const commit = ex.startTxProducer(cluster, 'a-commit', topic,
      { group: 'PID_tx_a_commit', count: 5, start: 0, decide: 'commit', check: 'commit' });
    const rollback = ex.startTxProducer(cluster, 'a-rollback', topic,
      { group: 'PID_tx_a_rollback', count: 5, start: 100, decide: 'rollback', check: 'rollback' });
    const procs = [ consumer, commit, rollback ];
    for (const p of [ commit, rollback ]) {
      await waitFor(() => p.exit, { timeoutMs: ms(30000), what: () => `${p.label} to finish\n${ex.describe(procs)}` });
      assert.equal(p.exit.code, 0, `${p.label} exits 0\n${ex.describe([ p ])}`);
    }
    assert.deepEqual(lines(commit, 'TX').map(l => `${l.i} ${l.state}`), range(0, 5).map(i => `${i} COMMIT`));
    assert.deepEqual(lines(rollback, 'TX').map(l => `${l.i} ${l.state}`), range(100, 5).map(i => `${i} ROLLBACK`));

    const committed = range(0, 5).map(i => `tx-${i}`);
    await waitConsumed([ consumer ], committed);
    await waitResolved(cluster, 'PID_tx_a_commit', [ consumer ]);
    await waitResolved(cluster, 'PID_tx_a_rollback', [ consumer ]);
    await severalRounds();
    assertExactly(consumedBodies([ consumer ]), onceEach(committed), 'consumed');
    assertExactly(await storedBodies(cluster, topic, 4), onceEach(committed), `stored in ${topic}`);
    const checks = [ ...lines(commit, 'CHECK'), ...lines(rollback, 'CHECK') ];
    t.diagnostic(`check-backs: ${checks.length} (producers exit right after their END_TRANSACTION)`);
    await stopClean([ consumer ]);
  });
});

/** A producer dies between half and END; a second one of the group answers the check. */
async function crashThenCheck(t, cluster, { topic, group, start, answer, consumer }) {
  const crashed = ex.startTxProducer(cluster, `b-crash-${answer}`, topic,
    { group, count: 1, start, crashAfter: start, decide: 'commit' });
  await waitFor(() => crashed.exit, { timeoutMs: ms(30000), what: () => `${crashed.label} to crash\n${ex.describe([ crashed ])}` });
  assert.equal(crashed.exit.signal, 'SIGKILL', `${crashed.label} killed itself (${JSON.stringify(crashed.exit)})`);
  const crash = lines(crashed, 'CRASH');
  assert.equal(crash.length, 1, `${crashed.label} printed one CRASH line: ${JSON.stringify(crashed.lines)}`);
  assert.equal(lines(crashed, 'TX').length, 0);
  const txId = crash[0].txId;
  // The half is stored and pending at the broker (once its check thread read the half queue).
  let pending = null;
  await waitFor(async () => {
    pending = await txPending(cluster);
    return pending.sample.some(s => s.group === group && s.txId === txId && s.topic === topic);
  }, { timeoutMs: ms(10000), what: () => `the broker to list the half ${txId} of ${group} as pending: ${JSON.stringify(pending)}` });

  const rescuer = ex.startTxProducer(cluster, `b-rescuer-${answer}`, topic,
    { group, count: 1, start: start + 1, decide: 'commit', check: answer, stay: true });
  await waitFor(() => {
    rescuer.checkAlive();
    return lines(rescuer, 'CHECK').some(l => l.txId === txId);
  }, { timeoutMs: ms(20000), what: () => `${rescuer.label} to get the check of ${txId}\n${ex.describe([ rescuer, consumer ])}` });
  await waitResolved(cluster, group, [ rescuer, consumer ]);
  const checks = lines(rescuer, 'CHECK');
  // One check-back, about the crashed transaction, answered as told (a second one only when a
  // round came before the oneway answer was processed).
  assert.ok(checks.length >= 1 && checks.length <= 2 &&
    checks.every(l => `${l.i} ${l.txId} ${l.state}` === `${start} ${txId} ${answer.toUpperCase()}`),
  `one check-back of ${start} ${txId}, answered ${answer.toUpperCase()}: ${JSON.stringify(checks)}`);
  assert.deepEqual(lines(rescuer, 'TX').map(l => `${l.i} ${l.state}`), [ `${start + 1} COMMIT` ]);
  t.diagnostic(`${answer}: crashed ${txId}; check ${checks[0].atMs - crash[0].atMs} ms after the crash`);
  return rescuer;
}

test('b) a producer killed between half and END_TRANSACTION: another of its group decides', async t => {
  const cluster = ctx.cluster;
  await withLogsOnFailure(cluster, async () => {
    const topic = 'TxCrash';
    await createTopic(cluster, topic, 4);
    const consumer = await startConsumer(cluster, 'b-consumer', topic, 'CID_tx_b');

    const r1 = await crashThenCheck(t, cluster, { topic, group: 'PID_tx_b_commit', start: 0, answer: 'commit', consumer });
    await waitConsumed([ consumer ], [ 'tx-0', 'tx-1' ], [ r1 ]);

    const r2 = await crashThenCheck(t, cluster, { topic, group: 'PID_tx_b_rollback', start: 10, answer: 'rollback', consumer });
    await waitConsumed([ consumer ], [ 'tx-11' ], [ r2 ]);

    await severalRounds();
    const want = onceEach([ 'tx-0', 'tx-1', 'tx-11' ]);
    assertExactly(consumedBodies([ consumer ]), want, 'consumed (tx-10 was rolled back by the check)');
    assertExactly(await storedBodies(cluster, topic, 4), want, `stored in ${topic}`);
    assert.ok(lines(r1, 'CHECK').length <= 2, 'no further check after the COMMIT answer');
    assert.ok(lines(r2, 'CHECK').length <= 2, 'no further check after the ROLLBACK answer');
    await stopClean([ r1, r2, consumer ]);
  });
});

test('c) UNKNOWN answered twice, then COMMIT: three checks, one delivery', async t => {
  const cluster = ctx.cluster;
  await withLogsOnFailure(cluster, async () => {
    const topic = 'TxUnknown';
    const group = 'PID_tx_c';
    await createTopic(cluster, topic, 4);
    const consumer = await startConsumer(cluster, 'c-consumer', topic, 'CID_tx_c');
    const p = ex.startTxProducer(cluster, 'c-producer', topic,
      { group, count: 1, start: 0, decide: 'unknown', check: 'commit', unknownChecks: 2, stay: true });
    await waitDone(p);
    const tx = lines(p, 'TX');
    assert.deepEqual(tx.map(l => `${l.i} ${l.state}`), [ '0 UNKNOWN' ]);
    await waitConsumed([ consumer ], [ 'tx-0' ], [ p ]);
    await waitResolved(cluster, group, [ p, consumer ]);
    await severalRounds();
    const checks = lines(p, 'CHECK');
    // Checked three times: UNKNOWN, UNKNOWN, COMMIT; then never again (one more COMMIT only
    // when a round came before the oneway answer was processed).
    const want = [ 'UNKNOWN', 'UNKNOWN', 'COMMIT', 'COMMIT' ].map(s => `0 ${tx[0].txId} ${s}`);
    assert.ok(checks.length >= 3 && checks.length <= 4, `3 checks: ${JSON.stringify(checks)}`);
    assert.deepEqual(checks.map(l => `${l.i} ${l.txId} ${l.state}`), want.slice(0, checks.length));
    const gaps = checks.map((c, k) => c.atMs - (k ? checks[k - 1].atMs : tx[0].atMs));
    t.diagnostic(`ms from the TX line to the first check, then between checks: ${gaps.join(', ')}`);
    // The first check waits for transactionTimeOut after the half was stored (before the TX
    // line), later ones for a check interval; slack for the time this process takes to read
    // the lines.
    const slack = Math.min(ms(150), CHECK_INTERVAL_MS - 10);
    assert.ok(gaps[0] >= TX_TIMEOUT_MS - slack, `first check not long before transactionTimeOut: ${gaps}`);
    for (const g of gaps.slice(1, 3)) assert.ok(g >= CHECK_INTERVAL_MS - slack, `checks at least an interval apart: ${gaps}`);
    assertExactly(consumedBodies([ consumer ]), onceEach([ 'tx-0' ]), 'consumed');
    assertExactly(await storedBodies(cluster, topic, 4), onceEach([ 'tx-0' ]), `stored in ${topic}`);
    await stopClean([ p, consumer ]);
  });
});

test('d) kill -9 of the broker with transactions in every state: each ends as decided, once', async t => {
  const cluster = ctx.cluster;
  await withLogsOnFailure(cluster, async () => {
    const topic = 'TxBrokerCrash';
    const group = 'PID_tx_d';
    const QUEUES = 4;
    const PER = 2000;
    const KILLS = 3;
    await createTopic(cluster, topic, QUEUES);
    const SLOW_EXEC_MS = 150;
    const producers = [ 0, 10000, 20000 ].map((start, k) => ex.startTxProducer(cluster, `d-producer${k + 1}`, topic,
      { group, count: PER, start, decide: 'rule', check: 'rule', stay: true, intervalMs: 1, timeoutMs: 2000 }));
    // The slow producer spends SLOW_EXEC_MS in each local transaction: at each kill it holds a
    // stored half whose END_TRANSACTION goes to the dead broker (lost: the check decides) or to
    // the restarted one (an END for a half stored before the crash).
    const slow = ex.startTxProducer(cluster, 'd-slow', topic, { group, count: 60, start: 30000, decide: 'rule',
      check: 'rule', stay: true, execMs: SLOW_EXEC_MS, intervalMs: 50, timeoutMs: 2000 });
    producers.push(slow);
    const kills = [];
    // The first kill comes once every producer answered a check (the broker has its heartbeat
    // and check rounds run); the next ones after 20 more transactions per fast producer. With
    // 1 ms between transactions a fast producer may also be inside a send or END_TRANSACTION.
    let restartedAt = 0;
    for (let k = 1; k <= KILLS; k++) {
      const base = new Map(producers.map(p => [ p, lines(p, 'TX').length ]));
      await waitFor(() => {
        for (const p of producers) p.checkAlive();
        return producers.every(p => p.stderr.includes('DONE ') ||
          (lines(p, 'TX').length >= base.get(p) + (p === slow ? 1 : 20) && (k > 1 || lines(p, 'CHECK').length >= 1)));
      }, { timeoutMs: ms(30000), what: () => `20 more transactions per producer${k === 1 ? ' and a check each' : ''}\n` +
        ex.describe(producers) });
      const sending = producers.filter(p => !p.stderr.includes('DONE ')).length;
      const atKill = producers.flatMap(p => p.parsed);
      const stateCount = s => atKill.filter(l => l.kind === 'TX' && l.state === s).length;
      const slowTxAtKill = lines(slow, 'TX').length;
      const stop = await cluster.stopBroker({ kill9: true });
      assert.equal(stop.signal, 'SIGKILL');
      const killedAt = Date.now();
      await cluster.startBroker();
      restartedAt = Date.now();
      kills.push({ killedAt, restartedAt, slowTx: slowTxAtKill });
      t.diagnostic(`kill ${k}: ${sending} producers sending, ${atKill.filter(l => l.kind === 'TX').length} transactions ` +
        `(COMMIT ${stateCount('COMMIT')}, ROLLBACK ${stateCount('ROLLBACK')}, UNKNOWN ${stateCount('UNKNOWN')}; ` +
        `${atKill.filter(l => l.kind === 'CHECK').length} checks answered so far); back after ${restartedAt - killedAt} ms`);
    }

    for (const p of producers) await waitDone(p, ms(60000));
    // The producers heartbeat every 30 s, and only a heartbeat tells the restarted broker where
    // to send the checks: the pending halves are resolved within about 30 s.
    await waitResolved(cluster, group, producers, ms(60000));
    const resolvedAt = Date.now();

    // Every half the broker holds for this group (after its recovery), by body.
    const halves = (await storedMessages(cluster, HALF_TOPIC, 1))
      .filter(m => m.properties.PGROUP === group && m.properties.REAL_TOPIC === topic);
    const halfCount = new Map();
    for (const h of halves) {
      const b = h.body.toString('utf8');
      halfCount.set(b, (halfCount.get(b) || 0) + 1);
    }
    const all = producers.flatMap(p => p.parsed);
    const tx = all.filter(l => l.kind === 'TX');
    const failed = all.filter(l => l.kind === 'FAILED');
    const checks = all.filter(l => l.kind === 'CHECK');
    const checksAfter = checks.filter(l => l.atMs >= restartedAt);
    const endLost = producers.reduce((a, p) => a + (p.stderr.match(/END_TRANSACTION for .*(check back|unreachable)/g) || []).length, 0);
    const reasons = [ ...new Set(failed.map(l => `${l.rc} ${l.reason}`)) ];
    // The slow producer's transaction that was inside its local transaction at each kill: its
    // TX line is the first one after the kill.
    const slowTx = lines(slow, 'TX');
    const acrossKill = kills.map(k => slowTx[k.slowTx]).filter(Boolean);
    const endAfterRestart = acrossKill.filter(l => !slow.stderr.includes(`END_TRANSACTION for ${l.txId}`));
    t.diagnostic(`${tx.length} TX, ${failed.length} FAILED (${failed.filter(l => l.rc === EUNKNOWN).length} unknown: ${JSON.stringify(reasons)}), ` +
      `${halves.length} halves stored, ${endLost} END_TRANSACTION not answered (left to the check), ` +
      `${acrossKill.length} slow transactions across a kill (${endAfterRestart.length} with the END answered by the ` +
      `restarted broker: ${acrossKill.map(l => `${l.i} ${l.state}`).join(', ')}), ` +
      `${checks.length} checks (${checksAfter.length} after the restart, the first ` +
      `${checksAfter.length ? checksAfter[0].atMs - restartedAt : '-'} ms after it); resolved ${resolvedAt - restartedAt} ms after the restart`);

    // What the producers report is consistent with what the broker holds.
    for (const l of tx) {
      assert.equal(l.state, [ 'COMMIT', 'ROLLBACK', 'UNKNOWN' ][l.i % 3], `TX ${l.i} decided by the rule`);
      assert.ok(halfCount.has(`tx-${l.i}`), `the half of TX ${l.i} (${l.txId}) is stored`);
    }
    for (const l of failed) {
      assert.ok(l.rc === EUNKNOWN || !halfCount.has(`tx-${l.i}`),
        `FAILED ${l.i} (rc ${l.rc} ${l.reason}) is not "unknown", yet its half is stored`);
    }
    for (const l of checks) {
      assert.equal(l.state, ruleCommits(l.i) ? 'COMMIT' : 'ROLLBACK', `CHECK ${l.i} answered by the rule`);
    }
    const byI = new Map(tx.map(l => [ l.i, l ]));
    for (const b of halfCount.keys()) {
      const i = Number(b.slice(3));
      assert.ok(byI.has(i) || failed.some(l => l.i === i), `half ${b} belongs to a transaction a producer attempted`);
    }

    // Expected: every stored half whose transaction the rule commits, as often as it is stored.
    const want = new Map([ ...halfCount.entries() ].filter(([ b ]) => ruleCommits(Number(b.slice(3)))));
    assert.ok(want.size >= tx.length / 2, `at least the committed TX lines are expected (${want.size})`);
    assert.ok([ ...want.values() ].every(n => n === 1),
      `one half per transaction (a resent half would be two transactions): ${fmtMap(new Map([ ...halfCount ].filter(([, n]) => n > 1)))}`);
    const stored = await storedMessages(cluster, topic, QUEUES);
    const storedCount = new Map();
    for (const m of stored) storedCount.set(m.body.toString('utf8'), (storedCount.get(m.body.toString('utf8')) || 0) + 1);
    const odd = [ ...storedCount.entries() ].filter(([ b, n ]) => n !== (want.get(b) || 0)).map(([ b ]) => b);
    if (odd.length) {
      // Everything about the first few: stored copies, halves, producer lines, kill times.
      const show = m => ({ topic: m.topic, queueId: m.queueId, queueOffset: m.queueOffset,
        commitLogOffset: String(m.commitLogOffset), sysFlag: m.sysFlag, bornTimestamp: m.bornTimestamp,
        storeTimestamp: m.storeTimestamp, preparedTransactionOffset: String(m.preparedTransactionOffset),
        properties: m.propertiesString.replace(/[\x01\x02]/g, c => (c === '\x01' ? '=' : ';')) });
      for (const b of odd.slice(0, 3)) {
        const i = Number(b.slice(3));
        t.diagnostic(`${b}: stored ${JSON.stringify(stored.filter(m => m.body.toString('utf8') === b).map(show))}; ` +
          `halves ${JSON.stringify(halves.filter(h => h.body.toString('utf8') === b).map(show))}; ` +
          `lines ${JSON.stringify(all.filter(l => l.i === i))}; kills ${JSON.stringify(kills)}`);
      }
    }
    assertExactly(storedCount, want, `stored in ${topic} after the restart`);

    const consumer = await startConsumer(cluster, 'd-consumer', topic, 'CID_tx_d');
    await waitConsumed([ consumer ], [ ...want.keys() ], producers);
    await severalRounds(2);
    assertExactly(consumedBodies([ consumer ]), want, 'consumed after the restart');
    await stopClean([ ...producers, consumer ]);
  });
});

test('e) 300 concurrent commits get no check; 50 unknown get one check per round, then none', async t => {
  const cluster = ctx.cluster;
  await withLogsOnFailure(cluster, async () => {
    const topic = 'TxMany';
    const QUEUES = 8;
    const K = 5; // UNKNOWN answers per transaction before COMMIT
    const UNKNOWN = 50;
    await createTopic(cluster, topic, QUEUES);
    const consumer = await startConsumer(cluster, 'e-consumer', topic, 'CID_tx_e');
    const unknown = ex.startTxProducer(cluster, 'e-unknown', topic, { group: 'PID_tx_e_unknown', count: UNKNOWN,
      start: 1000, decide: 'unknown', check: 'commit', unknownChecks: K, stay: true });
    const committers = [ 0, 100, 200 ].map((start, k) => ex.startTxProducer(cluster, `e-commit${k + 1}`, topic,
      { group: 'PID_tx_e_commit', count: 100, start, decide: 'commit', check: 'commit', stay: true }));
    const procs = [ consumer, unknown, ...committers ];
    for (const p of [ unknown, ...committers ]) await waitDone(p, ms(60000));
    for (const p of committers) {
      assert.equal(lines(p, 'TX').filter(l => l.state === 'COMMIT').length, 100, `${p.label}: 100 committed\n${ex.describe([ p ])}`);
    }
    assert.equal(lines(unknown, 'TX').filter(l => l.state === 'UNKNOWN').length, UNKNOWN);

    // Every unknown transaction is checked K times (UNKNOWN), then once more (COMMIT).
    const txIds = new Set(lines(unknown, 'TX').map(l => l.txId));
    await waitFor(() => {
      for (const p of procs) p.checkAlive();
      return lines(unknown, 'CHECK').filter(l => l.state === 'COMMIT').length >= UNKNOWN;
    }, { timeoutMs: ms(40000), intervalMs: 100, what: () => `${UNKNOWN} COMMIT answers (have ` +
      `${lines(unknown, 'CHECK').filter(l => l.state === 'COMMIT').length}, ${lines(unknown, 'CHECK').length} checks)\n${ex.describe(procs)}` });
    const want = onceEach([ ...range(0, 300), ...range(1000, UNKNOWN) ].map(i => `tx-${i}`));
    await waitConsumed([ consumer ], [ ...want.keys() ], procs, ms(40000));
    await waitResolved(cluster, 'PID_tx_e_unknown', procs);
    await waitResolved(cluster, 'PID_tx_e_commit', procs);
    const checksAtResolve = lines(unknown, 'CHECK').length;
    await severalRounds(5);

    const checks = lines(unknown, 'CHECK');
    assert.equal(checks.length, checksAtResolve, 'no check once every transaction is answered');
    const perTx = new Map();
    for (const c of checks) {
      assert.ok(txIds.has(c.txId), `check of a transaction of this producer: ${c.txId}`);
      perTx.set(c.txId, (perTx.get(c.txId) || 0) + 1);
    }
    const counts = [ ...perTx.values() ];
    // Rounds as seen here (for the report): bursts of lines a third of an interval apart.
    const bursts = [];
    for (const c of checks) {
      if (!bursts.length || c.atMs - bursts[bursts.length - 1].last > CHECK_INTERVAL_MS / 3) bursts.push({ first: c.atMs, last: c.atMs, n: 0 });
      bursts[bursts.length - 1].last = c.atMs;
      bursts[bursts.length - 1].n++;
    }
    const windowMs = checks[checks.length - 1].atMs - checks[0].atMs;
    const maxRounds = Math.floor(windowMs / CHECK_INTERVAL_MS) + 1;
    const commitChecks = committers.flatMap(p => lines(p, 'CHECK'));
    t.diagnostic(`unknown: ${checks.length} checks in ${windowMs} ms (at most ${maxRounds} rounds of ${CHECK_INTERVAL_MS} ms); ` +
      `per transaction min ${Math.min(...counts)} max ${Math.max(...counts)}; bursts ${bursts.map(b => b.n).join(' ')}; ` +
      `committed: ${commitChecks.length} checks`);
    assert.equal(perTx.size, UNKNOWN, 'every unknown transaction was checked');
    assert.ok(counts.every(n => n >= K + 1 && n <= K + 2),
      `each unknown transaction is checked ${K + 1} times (K UNKNOWN + COMMIT, one more at most): ${JSON.stringify(counts)}`);
    assert.ok(checks.length <= UNKNOWN * maxRounds + 10,
      `no storm: ${checks.length} checks in ${windowMs} ms > ${UNKNOWN} x ${maxRounds} rounds + 10`);
    // The committers were online through all those rounds.
    assert.ok(commitChecks.length <= 5, `committed transactions get no check (a handful racing with their ` +
      `END_TRANSACTION at most): ${JSON.stringify(commitChecks)}`);

    assertExactly(consumedBodies([ consumer ]), want, 'consumed');
    assertExactly(await storedBodies(cluster, topic, QUEUES), want, `stored in ${topic}`);
    await stopClean([ unknown, ...committers, consumer ]);
  });
});

// committed_copy() in src/broker/transaction.c once queried the index from the half's exact
// store time; index times are whole seconds from the file's first entry, so the copy was
// filtered out and the producer asked again (a second copy on COMMIT). Found by (d).
test('f) a commit cut by a crash between its copy and its op marker is not delivered twice', {
}, async t => {
  // The state such a crash leaves, made by hand: a half message and, a few ms later, its
  // committed copy in the real topic (same UNIQ_KEY, body and born time, sysFlag
  // TRANSACTION_COMMIT_TYPE), no op marker. After a restart the broker must find the copy
  // (docs/BROKER.md "Transactions": "only its marker is written: no second delivery") instead
  // of asking the producer, whose COMMIT answer would store the message a second time.
  const cluster = ctx.cluster;
  await withLogsOnFailure(cluster, async () => {
    const topic = 'TxCopyNoMarker';
    const group = 'PID_tx_f';
    await createTopic(cluster, topic, 1);
    // The index keeps store times in whole seconds from its file's first entry (RocketMQ's
    // format). Send the half and the copy in the middle of such a second, so that the copy's
    // indexed time is rounded down below the half's store time: the first stored message of
    // the store (a warm-up message, or the first half of an earlier test) starts the file.
    await remoting.withConnection(cluster.brokerAddr, conn => remoting.sendMessage(conn,
      { topic, queueId: 0, body: Buffer.from('warm-up'), keys: 'warm-up' }));
    const first = async t0 => {
      const h = await remoting.withConnection(cluster.brokerAddr, conn => remoting.pullMessages(conn,
        { group: 'CID_tx_inspect', topic: HALF_TOPIC, queueId: 0, offset: 0, maxNums: 1 }));
      return Math.min(t0, ...(h.msgs || []).map(m => m.storeTimestamp));
    };
    let warm = [];
    await waitFor(async () => (warm = await storedMessages(cluster, topic, 1)).length >= 1,
      { timeoutMs: ms(10000), what: `the warm-up message in ${topic}` });
    const fileBegin = await first(warm[0].storeTimestamp);
    await waitFor(() => { const r = (Date.now() - fileBegin) % 1000; return r >= 300 && r <= 600; },
      { timeoutMs: 2000, intervalMs: 5, what: 'the middle of an index second' });
    const born = Date.now();
    const uniq = `C0A8000100002A9F0000${String(born % 1e12).padStart(12, '0')}`;
    const props = extra => Object.entries(Object.assign({ KEYS: 'tx-7', UNIQ_KEY: uniq, WAIT: 'true' }, extra))
      .map(([ k, v ]) => `${k}\u0001${v}`).join('\u0002');
    const send = (conn, sysFlag, extra) => conn.invoke(remoting.REQ.SEND_MESSAGE_V2, {
      a: group, b: topic, c: 'TBW102', d: 4, e: 0, f: sysFlag, g: born, h: 0, i: props(extra), j: 0, k: false, m: false,
    }, { body: Buffer.from('tx-7') });
    await remoting.withConnection(cluster.brokerAddr, async conn => {
      const half = await send(conn, 0, { TRAN_MSG: 'true', PGROUP: group });
      assert.equal(half.code, remoting.RESP.SUCCESS, `half stored: ${half.code} ${half.remark}`);
      const copy = await send(conn, 8 /* TRANSACTION_COMMIT_TYPE */, { PGROUP: group });
      assert.equal(copy.code, remoting.RESP.SUCCESS, `copy stored: ${copy.code} ${copy.remark}`);
    });
    let stored = [];
    await waitFor(async () => (stored = (await storedMessages(cluster, topic, 1)).slice(1)).length >= 1,
      { timeoutMs: ms(10000), what: `the copy in ${topic}` });
    assert.deepEqual(stored.map(m => [ m.body.toString(), m.sysFlag & 0xc, m.properties.UNIQ_KEY, m.bornTimestamp ]),
      [ [ 'tx-7', 8, uniq, born ] ], 'the hand-made committed copy');
    t.diagnostic(`copy stored at ${stored[0].storeTimestamp} (born ${born}), ${(stored[0].storeTimestamp - fileBegin) % 1000} ms ` +
      `into a second of the index file begun at ${fileBegin}`);

    const stop = await cluster.restartBroker({ kill9: true });
    assert.equal(stop.signal, 'SIGKILL');
    const p = ex.startTxProducer(cluster, 'f-producer', topic,
      { group, count: 1, start: 8, decide: 'commit', check: 'commit', stay: true });
    await waitDone(p);
    await waitResolved(cluster, group, [ p ]);
    await severalRounds();
    assert.deepEqual(lines(p, 'CHECK'), [], 'no check-back: the broker found the committed copy');
    assertExactly(await storedBodies(cluster, topic, 1), onceEach([ 'warm-up', 'tx-7', 'tx-8' ]), `stored in ${topic}`);
    await stopClean([ p ]);
  });
});
