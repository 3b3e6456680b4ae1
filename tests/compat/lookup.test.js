'use strict';
// Message lookup: the msgId returned to ali-ons by a send names the broker (store host) and the
// commit-log offset (REMOTING.md §3.5); VIEW_MESSAGE_BY_ID (33) at that address returns the
// stored record (§3.1), and QUERY_MESSAGE (12) by any of the message's keys finds it (§2.4.11).
// ali-ons has no API for either, so the requests are sent with the test's own remoting client;
// the returned records are decoded both by the test's strict decoder and by ali-ons' decoder.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
// ali-ons' own buffer class, from ali-ons' dependency tree.
const ByteBuffer = require(require.resolve('byte', { paths: [ path.dirname(require.resolve('ali-ons')) ] }));
const MessageDecoder = require('ali-ons/lib/message/message_decoder');
const { useCluster, waitFor, ms, withLogsOnFailure } = require('./harness');
const { OnsClients, Message, createTopic } = require('./ons');
const remoting = require('./remoting');
const { REQ, RESP } = remoting;

const TOPIC = 'CompatLookupTopic';
const COUNT = 20;

const ctx = useCluster({ name: 'lookup' });

test('lookup: VIEW_MESSAGE_BY_ID and QUERY_MESSAGE return the sent messages', async () => {
  const cluster = ctx.cluster;
  const ons = new OnsClients(cluster);
  ctx.beforeStop.push(() => ons.closeAll());

  await withLogsOnFailure(cluster, async () => {
    const producer = await ons.producer('PID_compat_lookup');
    await createTopic(producer, cluster, TOPIC, 4);
    const startedAt = Date.now();
    const sent = [];
    for (let i = 0; i < COUNT; i++) {
      const body = i === COUNT - 1 ? Buffer.alloc(8192, 'z') : Buffer.from(`lookup body ${i} \u00e9\u4e2d`); // last one is compressed by ali-ons
      const m = new Message(TOPIC, `Tag${i % 3}`, body);
      m.keys = [ `lk-${i}`, `shared-${i % 2}` ];
      m.properties.userProp = `value-${i}`;
      const r = await producer.send(m);
      assert.equal(r.sendStatus, 'SEND_OK');
      sent.push({ i, r, body, tags: `Tag${i % 3}` });
    }

    await remoting.withConnection(cluster.brokerAddr, async conn => {
      // VIEW_MESSAGE_BY_ID
      for (const { i, r, body, tags } of sent) {
        const id = remoting.decodeMessageId(r.msgId);
        assert.equal(id.address, cluster.brokerAddr,
          `msgId ${r.msgId} of message ${i} names the broker's address (store host = brokerIP1:listenPort)`);
        const resp = await conn.invoke(REQ.VIEW_MESSAGE_BY_ID, { offset: id.offset.toString() });
        remoting.expectCode(resp, RESP.SUCCESS, `VIEW_MESSAGE_BY_ID offset ${id.offset} (message ${i})`);
        const msgs = remoting.decodeMessages(resp.body);
        assert.equal(msgs.length, 1, 'the body is exactly one stored record');
        const m = msgs[0];
        assert.equal(m.msgId, r.msgId, 'record host + PHYSICALOFFSET give the same msgId');
        assert.equal(m.commitLogOffset, id.offset);
        assert.equal(m.topic, TOPIC);
        assert.equal(m.queueId, Number(r.messageQueue.queueId));
        assert.equal(m.queueOffset, r.queueOffset);
        assert.ok(m.body.equals(body), `body of message ${i}`);
        assert.equal(m.tags, tags);
        assert.equal(m.keys, `lk-${i} shared-${i % 2}`);
        assert.equal(m.properties.userProp, `value-${i}`);
        assert.equal(m.storeHost, cluster.brokerAddr);
        assert.match(m.bornHost, /^127\.0\.0\.1:\d+$/, 'born host is the IPv4 peer address');
        assert.ok(m.storeTimestamp >= startedAt - 1000 && m.storeTimestamp <= Date.now() + 1000, 'store timestamp is now');

        // ali-ons decodes the same record to the same message.
        const bb = ByteBuffer.wrap(Buffer.from(resp.body));
        const am = MessageDecoder.decode(bb);
        assert.ok(am, 'ali-ons decodes the record');
        assert.equal(am.msgId, r.msgId);
        assert.equal(am.topic, TOPIC);
        assert.ok(Buffer.from(am.body).equals(body));
        assert.equal(am.tags, tags);
      }

      // A commit-log offset that holds no message: an error answer, and the connection stays usable.
      const bogus = await conn.invoke(REQ.VIEW_MESSAGE_BY_ID, { offset: String(2 ** 40) });
      assert.notEqual(bogus.code, RESP.SUCCESS, 'VIEW_MESSAGE_BY_ID of an offset beyond the commit log fails');
      assert.equal(bogus.code, RESP.SYSTEM_ERROR, `SYSTEM_ERROR as Java answers (remark ${JSON.stringify(bogus.remark)})`);

      // QUERY_MESSAGE by key: the index is built asynchronously, so wait for each key.
      const query = async (key, maxNum = 32) => conn.invoke(REQ.QUERY_MESSAGE, {
        topic: TOPIC, key, maxNum, beginTimestamp: 0, endTimestamp: Date.now() + 60000,
      });
      for (const { i, r } of sent) {
        const resp = await waitFor(async () => {
          const x = await query(`lk-${i}`);
          return x.code === RESP.SUCCESS ? x : (x.code === RESP.QUERY_NOT_FOUND ? null :
            remoting.expectCode(x, [ RESP.SUCCESS, RESP.QUERY_NOT_FOUND ], `QUERY_MESSAGE lk-${i}`));
        }, { timeoutMs: ms(10000), what: `QUERY_MESSAGE topic=${TOPIC} key=lk-${i} to find the message` });
        assert.ok(resp.extFields.indexLastUpdateTimestamp !== undefined, 'response carries indexLastUpdateTimestamp');
        assert.ok(resp.extFields.indexLastUpdatePhyoffset !== undefined, 'response carries indexLastUpdatePhyoffset');
        const found = remoting.decodeMessages(resp.body).filter(m => m.topic === TOPIC &&
          (m.keys || '').split(' ').includes(`lk-${i}`));
        assert.equal(found.length, 1, `exactly one message with key lk-${i}`);
        assert.equal(found[0].msgId, r.msgId);
      }

      // The second key of each message is indexed too: shared-0 / shared-1 each name COUNT/2 messages.
      for (const k of [ 0, 1 ]) {
        const expected = new Set(sent.filter(s => s.i % 2 === k).map(s => s.r.msgId));
        const resp = remoting.expectCode(await query(`shared-${k}`), RESP.SUCCESS, `QUERY_MESSAGE shared-${k}`);
        const ids = new Set(remoting.decodeMessages(resp.body)
          .filter(m => (m.keys || '').split(' ').includes(`shared-${k}`)).map(m => m.msgId));
        assert.deepEqual([ ...ids ].sort(), [ ...expected ].sort(), `every message with key shared-${k}`);
      }

      // maxNum caps the answer.
      const capped = remoting.expectCode(await query('shared-0', 3), RESP.SUCCESS, 'QUERY_MESSAGE maxNum=3');
      const n = remoting.decodeMessages(capped.body).length;
      assert.ok(n >= 1 && n <= 3, `maxNum=3 returns 1..3 records (got ${n})`);

      // An unknown key: QUERY_NOT_FOUND.
      const none = await query('no-such-key');
      assert.equal(none.code, RESP.QUERY_NOT_FOUND, `unknown key gives QUERY_NOT_FOUND (22), got ${none.code} ${none.remark}`);
    });
  });
});
