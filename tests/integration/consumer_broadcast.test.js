'use strict';
// BROADCASTING with libferry push consumers (example_consumer --broadcast): two instances each
// consume every message. One of them is stopped with SIGTERM while more messages are sent and
// restarted with the same instance name and offset directory: it continues from its local
// offset file (everything sent while it was down, at most a few earlier ones again, never
// everything from the start). The same after a kill -9 once its offset file was rewritten by
// the periodic commit. The other instance gets every message exactly once.
// ferry-test-requires: example_consumer example_send_many

const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { useCluster, waitFor, ms, withLogsOnFailure } = require('../compat/harness');
const remoting = require('../compat/remoting');
const ex = require('./examples');

const TOPIC = 'IntBroadcast';
const GROUP = 'GID_int_broadcast';
const QUEUES = 4;
const BATCH = 300;
const FEW = 10; // earlier messages a restarted instance may get again

const ctx = useCluster({ name: 'int-broadcast' });
ctx.beforeStop.push(ex.stopAll);

/** Every regular file under dir with its mtime (ms). */
function filesUnder(dir) {
  const out = [];
  let entries = [];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch (_) {
    return out;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else if (e.isFile()) out.push({ path: p, mtimeMs: fs.statSync(p).mtimeMs });
  }
  return out;
}

/** queueId -> next offset after the highest one `proc` consumed. */
function ends(proc) {
  const out = {};
  for (const m of proc.parsed) if (m.kind === 'MSG') out[m.queueId] = Math.max(out[m.queueId] || 0, m.queueOffset + 1);
  return out;
}

const msgIds = procs => procs.flatMap(p => p.parsed.filter(m => m.kind === 'MSG').map(m => m.msgId));

async function waitConsumed(procs, sent, what) {
  const missing = () => {
    const got = new Set(msgIds(procs));
    return sent.filter(s => !got.has(s.msgId));
  };
  await waitFor(() => {
    procs.forEach(p => p.checkAlive());
    return missing().length === 0;
  }, { timeoutMs: ms(45000), intervalMs: 100, what: () =>
    `${what} (${missing().length} of ${sent.length} missing)\n${ex.describe(procs)}` });
}

test('broadcasting: both instances get everything; a restarted one continues from its offset file', async t => {
  const cluster = ctx.cluster;
  await withLogsOnFailure(cluster, async () => {
    await ex.createTopicOn(remoting, cluster, TOPIC, QUEUES, [ ex.mainBroker(cluster) ]);
    const dirA = path.join(cluster.dir, 'offsets-a');
    const dirB = path.join(cluster.dir, 'offsets-b');
    const opts = { group: GROUP, topic: TOPIC, broadcast: true, fromFirst: true, threads: 4 };
    // persistMs: instance b only commits at shutdown in the SIGTERM round, so that round tests
    // the shutdown commit; instance a commits often.
    const a = ex.startConsumer(cluster, 'bcast-a', Object.assign({ instance: 'bc-a', offsetDir: dirA, persistMs: 500 }, opts));
    const b1 = ex.startConsumer(cluster, 'bcast-b', Object.assign({ instance: 'bc-b', offsetDir: dirB, persistMs: 600000 }, opts));
    await Promise.all([ a.waitStderr('STARTED'), b1.waitStderr('STARTED') ]);

    const send = (start, label) => ex.sendAllOk(cluster, TOPIC, { count: BATCH, start, bodyPrefix: 'bcast-', keyPrefix: 'bk-' }, label);
    const sent1 = await send(0, 'send_many_1');
    await waitConsumed([ a ], sent1, 'instance a to consume batch 1');
    await waitConsumed([ b1 ], sent1, 'instance b to consume batch 1');

    // SIGTERM round.
    const r1 = await b1.stop();
    assert.ok(!r1.forced && r1.code === 0, `bcast-b exits 0 after SIGTERM (${JSON.stringify(r1)})\n${b1.stderrTail()}`);
    assert.ok(filesUnder(dirB).some(f => !/\.(tmp|bak)$/.test(f.path)),
      `the shutdown wrote an offset file under --offset-dir ${dirB}: ${JSON.stringify(filesUnder(dirB))}`);
    const sent2 = await send(BATCH, 'send_many_2');
    const b2 = ex.startConsumer(cluster, 'bcast-b-restarted', Object.assign({ instance: 'bc-b', offsetDir: dirB, persistMs: 500 }, opts));
    await waitConsumed([ b2 ], sent2, 'restarted instance b (after SIGTERM) to consume what was sent while it was down');
    const ids1 = new Set(sent1.map(s => s.msgId));
    const again1 = msgIds([ b2 ]).filter(id => ids1.has(id)).length;
    t.diagnostic(`after the SIGTERM restart instance b got ${again1} of the ${BATCH} earlier messages again`);
    assert.ok(again1 <= FEW, `after a SIGTERM restart, instance b continues from its offset file: it got ${again1} ` +
      `of the ${BATCH} messages consumed before the stop again (at most ${FEW} allowed)`);

    // kill -9 round: wait until the periodic commit rewrote the offset file after the last
    // consumption, then kill. The file is replaced atomically (write <file>.tmp, fsync, rename;
    // the previous version stays as <file>.bak): only a renamed file counts, else the kill
    // could land between the write and the rename and leave the previous version.
    const lastConsumed = Date.now();
    const committedFiles = () => filesUnder(dirB).filter(f => !/\.(tmp|bak)$/.test(f.path));
    await waitFor(() => { b2.checkAlive(); return committedFiles().some(f => f.mtimeMs > lastConsumed); }, {
      timeoutMs: ms(15000), what: () => `instance b's offset file under ${dirB} to be rewritten by the periodic ` +
        `commit (persistConsumerOffsetInterval 500 ms); files: ${JSON.stringify(filesUnder(dirB))}`,
    });
    const filesAtKill = filesUnder(dirB).map(f => `${f.path} (mtime ${new Date(f.mtimeMs).toISOString()}, ` +
      `last consumption ${new Date(lastConsumed).toISOString()}): ${fs.readFileSync(f.path, 'utf8')}`);
    const consumedEnds = ends(b2);
    await b2.kill9();
    const sent3 = await send(2 * BATCH, 'send_many_3');
    const b3 = ex.startConsumer(cluster, 'bcast-b-after-kill9', Object.assign({ instance: 'bc-b', offsetDir: dirB, persistMs: 500 }, opts));
    await waitConsumed([ b3 ], sent3, 'restarted instance b (after kill -9) to consume what was sent while it was down');
    const ids12 = new Set([ ...sent1, ...sent2 ].map(s => s.msgId));
    const again2 = msgIds([ b3 ]).filter(id => ids12.has(id)).length;
    t.diagnostic(`after the kill -9 restart instance b got ${again2} of the ${2 * BATCH} earlier messages again`);
    assert.ok(again2 <= FEW, `after a kill -9 restart, instance b continues from its last committed offsets: it got ` +
      `${again2} of the ${2 * BATCH} earlier messages again (at most ${FEW} allowed); the killed instance had ` +
      `consumed up to (next offset per queue) ${JSON.stringify(consumedEnds)}; its offset file at the kill:\n` +
      `${filesAtKill.join('\n')}\nthe restarted instance:\n${b3.stderrTail(12)}\nthe killed instance:\n${b2.stderrTail(12)}`);

    // Instance a: every message exactly once.
    const all = [ ...sent1, ...sent2, ...sent3 ];
    await waitConsumed([ a ], all, 'instance a to consume every batch');
    const gotA = msgIds([ a ]);
    assert.equal(gotA.length, new Set(gotA).size, 'instance a consumed no message twice');
    const bySent = new Map(all.map(s => [ s.msgId, s ]));
    for (const p of [ a, b1, b2, b3 ]) {
      for (const m of p.parsed) {
        const s = bySent.get(m.msgId);
        assert.ok(s, `${p.label} consumed ${m.msgId}, which send_many acknowledged`);
        assert.equal(m.body, s.body);
        assert.deepEqual([ m.queueId, m.queueOffset ], [ s.queueId, s.queueOffset ], `${m.msgId} queue and offset`);
      }
    }
    for (const p of [ a, b3 ]) {
      const r = await p.stop();
      assert.ok(!r.forced && r.code === 0, `${p.label} exits 0 after SIGTERM (${JSON.stringify(r)})\n${p.stderrTail()}`);
    }
  });
});
