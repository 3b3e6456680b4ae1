'use strict';
// ali-ons and libferry interoperate through our broker, both ways.
//  1. The unmodified ali-ons producer sends tagged messages with two keys each (a few with
//     8 KiB bodies, which ali-ons compresses); libferry push consumers (example_consumer)
//     consume every one with its body, tags, keys, msg id, queue and offset; a second group
//     subscribed with "TagA || TagC" gets exactly those tags.
//  2. libferry (example_send_many, again with some compressed 8 KiB bodies) sends; an ali-ons
//     push consumer consumes every message with its body, tag, key, UNIQ_KEY, queue and offset.
// ferry-test-requires: example_consumer example_send_many
// ferry-test-npm: ali-ons

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { useCluster, waitFor, ms, withLogsOnFailure } = require('../compat/harness');
const { OnsClients, Message, createTopic, sendAll } = require('../compat/ons');
const remoting = require('../compat/remoting');
const ex = require('./examples');

const QUEUES = 4;
const COUNT = 400;
const BIG = 8192;
const TAGS = [ 'TagA', 'TagB', 'TagC' ];

const ctx = useCluster({ name: 'int-interop' });
ctx.beforeStop.push(ex.stopAll);

test('ali-ons producer -> libferry push consumers (bodies, tags, keys, tag expression)', async t => {
  const cluster = ctx.cluster;
  const ons = new OnsClients(cluster);
  ctx.beforeStop.push(() => ons.closeAll());
  const topic = 'IntInteropOnsToFerry';
  await withLogsOnFailure(cluster, async () => {
    const producer = await ons.producer('PID_int_interop');
    await createTopic(producer, cluster, topic, QUEUES);

    const all = ex.startConsumer(cluster, 'ferry_all', { group: 'GID_int_interop_all', topic, fromFirst: true,
      threads: 4 });
    const tagged = ex.startConsumer(cluster, 'ferry_tagAC', { group: 'GID_int_interop_tagAC', topic,
      expr: 'TagA || TagC', fromFirst: true, threads: 4 });
    await Promise.all([ all.waitStderr('STARTED'), tagged.waitStderr('STARTED') ]);

    const bodyOf = i => (i % 50 === 7 ? `ons-${i}-`.padEnd(BIG, 'y') : `ons-${i}`);
    const sent = await sendAll(producer, COUNT, 8, i => {
      const m = new Message(topic, TAGS[i % 3], bodyOf(i));
      m.keys = [ `ik-${i}`, `ik2-${i}` ];
      return m;
    });
    const byMsgId = new Map(sent.map((r, i) => [ r.msgId, i ]));
    const wantTagged = sent.filter((_, i) => TAGS[i % 3] !== 'TagB').map(r => r.msgId);

    const got = p => new Set(p.parsed.filter(m => m.kind === 'MSG').map(m => m.msgId));
    await waitFor(() => {
      all.checkAlive();
      tagged.checkAlive();
      const a = got(all);
      const b = got(tagged);
      return sent.every(r => a.has(r.msgId)) && wantTagged.every(id => b.has(id));
    }, { timeoutMs: ms(45000), intervalMs: 100, what: () => `libferry consumers to consume the ali-ons messages ` +
      `(all: ${got(all).size}/${COUNT}, TagA||TagC: ${got(tagged).size}/${wantTagged.length})\n` +
      ex.describe([ all, tagged ]) + `\nali-ons log:\n${ons.logTail(20)}` });

    for (const p of [ all, tagged ]) {
      for (const m of p.parsed) {
        const i = byMsgId.get(m.msgId);
        assert.ok(i !== undefined, `${p.label} consumed ${m.msgId}: the msg id (offset msg id, ali-ons sets no ` +
          `UNIQ_KEY) of a message ali-ons sent (body ${m.body.slice(0, 40)})`);
        assert.equal(m.kind, 'MSG');
        assert.equal(m.body, bodyOf(i), `body of message ${i} (${bodyOf(i).length} bytes${bodyOf(i).length >= 4096 ?
          ', compressed by ali-ons' : ''})`);
        assert.equal(m.tags, TAGS[i % 3], `tags of message ${i}`);
        assert.equal(m.keys, `ik-${i} ik2-${i}`, `keys of message ${i}`);
        assert.equal(m.queueId, Number(sent[i].messageQueue.queueId), `queue of message ${i}`);
        assert.equal(m.queueOffset, Number(sent[i].queueOffset), `queue offset of message ${i}`);
      }
    }
    const tagsSeen = new Set(tagged.parsed.map(m => m.tags));
    assert.ok(!tagsSeen.has('TagB'), `the "TagA || TagC" group gets no TagB message (tags seen: ${[ ...tagsSeen ]})`);
    const dupAll = all.parsed.length - got(all).size;
    t.diagnostic(`GID_int_interop_all: ${all.parsed.length} deliveries, ${dupAll} duplicates; TagA||TagC: ` +
      `${tagged.parsed.length} deliveries`);
    assert.equal(dupAll, 0, 'no duplicate without a failure');
    for (const p of [ all, tagged ]) {
      const r = await p.stop();
      assert.ok(!r.forced && r.code === 0, `${p.label} exits 0 after SIGTERM (${JSON.stringify(r)})`);
    }
  });
});

test('libferry producer -> ali-ons push consumer (bodies, tags, keys, UNIQ_KEY)', async t => {
  const cluster = ctx.cluster;
  const ons = new OnsClients(cluster);
  ctx.beforeStop.push(() => ons.closeAll());
  const topic = 'IntInteropFerryToOns';
  await withLogsOnFailure(cluster, async () => {
    await ex.createTopicOn(remoting, cluster, topic, QUEUES, [ ex.mainBroker(cluster) ]);
    const received = new Map(); // body prefix "lib-<i>" -> [msg]
    const consumer = ons.consumer('GID_int_interop_ons', 'interop-ons-1');
    consumer.subscribe(topic, '*', async msg => {
      const body = msg.body.toString();
      const k = body.replace(/x+$/, '');
      if (!received.has(k)) received.set(k, []);
      received.get(k).push({ body, tags: msg.tags, keys: msg.keys, uniq: msg.properties && msg.properties.UNIQ_KEY,
        queueId: msg.queueId, queueOffset: Number(msg.queueOffset) });
    });
    await consumer.ready();

    const small = await ex.sendAllOk(cluster, topic, { count: COUNT, tag: 'TagX', keyPrefix: 'sk-', bodyPrefix: 'lib-' },
      'send_many_small');
    const big = await ex.sendAllOk(cluster, topic, { count: 10, start: COUNT, tag: 'TagX', keyPrefix: 'sk-',
      bodyPrefix: 'lib-', pad: BIG }, 'send_many_big');
    const sent = [ ...small, ...big ];
    const keyOf = s => s.body.replace(/x+$/, '');
    await waitFor(() => sent.every(s => received.has(keyOf(s))), { timeoutMs: ms(45000), intervalMs: 100,
      what: () => `the ali-ons consumer to receive all ${sent.length} libferry messages (got ${received.size}); ` +
        `client errors: ${JSON.stringify(ons.errors.slice(-5))}\nali-ons log:\n${ons.logTail(20)}` });
    for (const s of sent) {
      const k = keyOf(s);
      const list = received.get(k);
      assert.equal(list.length, 1, `${k} received once`);
      const m = list[0];
      assert.equal(m.body, s.body, `${k} body (${s.body.length} bytes${s.body.length >= 4096 ? ', compressed by libferry' : ''})`);
      assert.equal(m.tags, 'TagX', `${k} tags`);
      assert.equal(m.keys, `sk-${k.slice(4)}`, `${k} keys`);
      assert.equal(m.uniq, s.msgId, `${k} UNIQ_KEY is the msg id libferry returned`);
      assert.deepEqual([ m.queueId, m.queueOffset ], [ s.queueId, s.queueOffset ], `${k} queue and offset`);
    }
    t.diagnostic(`ali-ons received all ${sent.length} libferry messages once`);
  });
});
