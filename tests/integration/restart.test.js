'use strict';
// Process-level durability: with flushDiskType=SYNC_FLUSH, a broker stopped cleanly (SIGTERM)
// or killed (kill -9) in the middle of a send stream keeps every message it acknowledged, at
// the queue offset and commit-log offset (msgId) it acknowledged, and every consumer offset it
// acknowledged; after the restart the queues are contiguous and writable.
// Uses the tests' own Java-style remoting client (no npm packages).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { useCluster, waitFor, ms, withLogsOnFailure } = require('../compat/harness');
const remoting = require('../compat/remoting');
const { RESP } = remoting;

const QUEUES = 4;
const SENDERS = 4; // connections
const INFLIGHT = 4; // requests in flight per connection
const KILL_AFTER = 800; // acknowledged sends before the stop
const COMMIT_AT = 300; // acknowledged sends before the first offset commit
const MAX_SENDS = 50000; // bound on the send loop

const ctx = useCluster({ name: 'int-restart', flushDiskType: 'SYNC_FLUSH' });

async function waitRoute(cluster, topic) {
  await waitFor(() => remoting.withConnection(cluster.nsAddr, async conn => {
    const r = await remoting.getRoute(conn, topic);
    const qd = r.route && (r.route.queueDatas || []).find(q => q.brokerName === cluster.brokerName);
    return !!(qd && Number(qd.writeQueueNums) === QUEUES);
  }), { timeoutMs: ms(15000), what: `the name server to route ${topic}` });
}

/** Reads every message of every queue from offset 0 with PULL_MESSAGE. */
async function pullAll(conn, group, topic) {
  const queues = [];
  for (let q = 0; q < QUEUES; q++) {
    const max = await remoting.getMaxOffset(conn, topic, q);
    const msgs = [];
    let offset = 0;
    while (offset < max) {
      const r = await remoting.pullMessages(conn, { group, topic, queueId: q, offset });
      if (r.code !== RESP.SUCCESS) {
        throw new Error(`PULL_MESSAGE ${topic}/${q} at offset ${offset} (max ${max}): code ${r.code} ` +
          `remark=${JSON.stringify(r.remark)} nextBeginOffset=${r.nextBeginOffset}`);
      }
      assert.ok(r.msgs.length > 0, `PULL_MESSAGE ${topic}/${q}@${offset} SUCCESS carries messages`);
      msgs.push(...r.msgs);
      assert.equal(r.nextBeginOffset, r.msgs[r.msgs.length - 1].queueOffset + 1,
        `nextBeginOffset follows the last pulled message (${topic}/${q}@${offset})`);
      offset = r.nextBeginOffset;
    }
    queues.push({ max, msgs });
  }
  return queues;
}

async function scenario(cluster, kill9) {
  const tag = kill9 ? 'kill9' : 'sigterm';
  const topic = `IntRestart_${tag}`;
  const group = `GID_int_restart_${tag}`;
  const conns = [];
  for (let i = 0; i < SENDERS; i++) conns.push(await remoting.RemotingConnection.connect(cluster.brokerAddr));
  const admin = await remoting.RemotingConnection.connect(cluster.brokerAddr);
  try {
    await remoting.createTopic(admin, topic, QUEUES);
    await waitRoute(cluster, topic);

    // Send until stopped; remember what was acknowledged.
    const acked = new Map(); // key -> { queueId, queueOffset, msgId, body }
    const attempted = new Set();
    const failures = [];
    let seq = 0;
    let stopping = false;
    let stopRequested = false;
    const failuresBeforeStop = [];
    let commitsDone = null;
    let commitsFinished = false;
    const committed = new Map(); // queueId -> offset acknowledged by UPDATE_CONSUMER_OFFSET
    // Commit offsets inside what was acknowledged, per queue: `fraction` of the acked count.
    const doCommits = async fraction => {
      for (let q = 0; q < QUEUES; q++) {
        const maxAcked = Math.max(-1, ...[ ...acked.values() ].filter(a => a.queueId === q).map(a => a.queueOffset));
        const off = Math.max(0, Math.floor((maxAcked + 1) * fraction));
        await remoting.updateConsumerOffset(admin, group, topic, q, off);
        committed.set(q, off);
      }
    };
    const sender = async conn => {
      while (!stopping && !conn.isClosed && seq < MAX_SENDS) {
        const i = seq++;
        const key = `${tag}-${i}`;
        const body = Buffer.from(`${key}:${'x'.repeat(100 + (i % 50))}`);
        attempted.add(key);
        let resp;
        try {
          resp = await remoting.sendMessage(conn, { topic, queueId: i % QUEUES, body, tags: 'TagI', keys: key,
            props: { UNIQ_KEY: `UNIQ${String(i).padStart(28, '0')}` }, timeoutMs: ms(10000) });
        } catch (e) {
          (stopRequested ? failures : failuresBeforeStop).push(`${key}: ${e.message}`);
          return;
        }
        if (resp.code !== RESP.SUCCESS) {
          (stopRequested ? failures : failuresBeforeStop).push(`${key}: code ${resp.code} ${resp.remark}`);
          if (resp.code === RESP.FLUSH_DISK_TIMEOUT) continue;
          return;
        }
        acked.set(key, { queueId: Number(resp.extFields.queueId), queueOffset: Number(resp.extFields.queueOffset),
          msgId: resp.extFields.msgId, body });
        if (acked.size >= COMMIT_AT && !commitsDone) commitsDone = doCommits(1 / 3).then(() => { commitsFinished = true; });
      }
    };
    const senders = [];
    for (const conn of conns) for (let k = 0; k < INFLIGHT; k++) senders.push(sender(conn));

    await waitFor(() => acked.size >= KILL_AFTER && commitsFinished, { timeoutMs: ms(60000),
      what: () => `${KILL_AFTER} acknowledged sends (have ${acked.size}; failures ${JSON.stringify(failuresBeforeStop.slice(0, 3))})` });
    await commitsDone;
    // A second round just before the stop: these commits are milliseconds old when the broker
    // dies, and being later they must win over the first round.
    await doCommits(2 / 3);
    const committedBefore = new Map(committed);

    // Stop the broker while the senders are still running.
    assert.deepEqual(failuresBeforeStop.slice(0, 5), [], 'every send before the stop succeeds');
    stopRequested = true;
    const stop = await cluster.stopBroker({ kill9 });
    stopping = true;
    await Promise.all(senders);
    if (!kill9) {
      assert.equal(stop.forced, false, 'the broker exits by itself after SIGTERM');
      assert.equal(stop.code, 0, `the broker exits with status 0 after SIGTERM (code ${stop.code}, signal ${stop.signal})`);
    } else {
      assert.equal(stop.signal, 'SIGKILL');
    }
    const ackedAtStop = new Map(acked); // every response has been read: all senders ended

    await cluster.startBroker();

    await remoting.withConnection(cluster.brokerAddr, async conn => {
      const queues = await pullAll(conn, group, topic);
      const seen = new Map();
      for (let q = 0; q < QUEUES; q++) {
        const { max, msgs } = queues[q];
        assert.deepEqual(msgs.map(m => m.queueOffset), Array.from({ length: max }, (_, i) => i),
          `queue ${q}: offsets 0..${max - 1} are all present, each once, in order`);
        for (const m of msgs) {
          assert.equal(m.topic, topic);
          assert.equal(m.queueId, q);
          assert.ok(attempted.has(m.keys), `queue ${q}@${m.queueOffset} holds a message that was sent (${m.keys})`);
          assert.ok(!seen.has(m.keys), `${m.keys} is stored once (also at ${JSON.stringify(seen.get(m.keys))})`);
          seen.set(m.keys, { q, off: m.queueOffset, msg: m });
        }
      }
      for (const [ key, a ] of ackedAtStop) {
        const s = seen.get(key);
        assert.ok(s, `acknowledged message ${key} (queue ${a.queueId} offset ${a.queueOffset}) survives the ${tag} restart`);
        assert.equal(s.q, a.queueId, `${key} in the acknowledged queue`);
        assert.equal(s.off, a.queueOffset, `${key} at the acknowledged queue offset`);
        assert.equal(s.msg.msgId, a.msgId, `${key} at the acknowledged commit-log offset (msgId)`);
        assert.ok(s.msg.body.equals(a.body), `${key} body intact`);
        assert.equal(s.msg.properties.UNIQ_KEY, `UNIQ${key.split('-')[1].padStart(28, '0')}`, `${key} properties intact`);
      }
      const extra = seen.size - ackedAtStop.size;
      assert.ok(extra <= SENDERS * INFLIGHT,
        `at most the ${SENDERS * INFLIGHT} in-flight, unacknowledged sends are stored besides the acknowledged ones (got ${extra})`);

      // The store is writable after recovery and the queues continue where they ended.
      for (let q = 0; q < QUEUES; q++) {
        const resp = remoting.expectCode(await remoting.sendMessage(conn, { topic, queueId: q,
          body: Buffer.from(`after-${q}`), keys: `${tag}-after-${q}` }), RESP.SUCCESS, `send after the ${tag} restart`);
        assert.equal(Number(resp.extFields.queueOffset), queues[q].max, `queue ${q} continues at offset ${queues[q].max}`);
      }

      const offsAfter = [];
      for (let q = 0; q < QUEUES; q++) offsAfter.push(await remoting.queryConsumerOffset(conn, group, topic, q));
      const offsBefore = Array.from({ length: QUEUES }, (_, q) => committedBefore.get(q));
      assert.deepEqual(offsAfter, offsBefore, `every consumer offset acknowledged by UPDATE_CONSUMER_OFFSET (15) ` +
        `survives the ${tag} restart: QUERY_CONSUMER_OFFSET (14) per queue after the restart vs. committed before`);
    });
  } finally {
    for (const c of conns) await c.close();
    await admin.close();
  }
}

test('SIGTERM restart under load keeps acknowledged messages and offsets (SYNC_FLUSH)', async () => {
  await withLogsOnFailure(ctx.cluster, () => scenario(ctx.cluster, false));
});

test('kill -9 under load keeps acknowledged messages and offsets (SYNC_FLUSH)', async () => {
  await withLogsOnFailure(ctx.cluster, () => scenario(ctx.cluster, true));
});
