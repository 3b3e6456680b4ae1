'use strict';
// Slaves that serve reads and follow their master's metadata (docs/REPLICATION.md, "Slaves:
// reads and metadata"). Replication of the CommitLog is not used here: the slave is built from a
// copy (cp -r) of the stopped master's store and started with brokerRole=SLAVE, brokerId=1 and
// the master's brokerName. Real mqnamesrv / mqbroker processes and the libferry examples:
//  - the name server routes the topic to {0: master, 1: slave}, and tells the slave its master;
//  - topics, subscription groups and consumer offsets created / committed on the master after
//    the copy appear on the slave within a sync interval (10 s);
//  - the slave refuses sends; its pull answers suggest the master while the master is up;
//  - with the master killed (kill -9), a push consumer group (example_consumer) consumes every
//    message of the slave starting exactly at the group's committed offsets (not 0, not the
//    end), and the slave then suggests itself;
//  - when the master is back, consumption goes back to it: messages sent to the restarted master
//    (which the slave does not have) are consumed;
//  - a master with slaveReadEnable suggests brokerId 1 for data beyond its memory budget
//    (accessMessageInMemoryMaxRatio=0 makes every read "cold").
// ferry-test-requires: example_send_many example_consumer

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { useCluster, waitFor, ms, withLogsOnFailure } = require('../compat/harness');
const remoting = require('../compat/remoting');
const ex = require('./examples');

const QUEUES = 4;
const COUNT = 200; // messages before the copy
const LATE = 20; // messages sent to the master after it comes back
const TOPIC = 'SlaveReadTopic';
const GROUP = 'GID_slave_read';
const SYNC_MS = 10000; // the slave's sync interval

const ctx = useCluster({ name: 'int-slave-read' });
ctx.beforeStop.push(ex.stopAll);

const GET_ALL_TOPIC_CONFIG = 21;
const GET_ALL_CONSUMER_OFFSET = 43;
const GET_ALL_SUBSCRIPTIONGROUP_CONFIG = 201;
const UPDATE_AND_CREATE_SUBSCRIPTIONGROUP = 200;

async function allTables(addr) {
  return remoting.withConnection(addr, async conn => {
    const t = remoting.expectCode(await conn.invoke(GET_ALL_TOPIC_CONFIG, {}), remoting.RESP.SUCCESS, 'GET_ALL_TOPIC_CONFIG');
    const g = remoting.expectCode(await conn.invoke(GET_ALL_SUBSCRIPTIONGROUP_CONFIG, {}), remoting.RESP.SUCCESS,
      'GET_ALL_SUBSCRIPTIONGROUP_CONFIG');
    return { topics: remoting.parseLenientJson(t.body).topicConfigTable,
      groups: remoting.parseLenientJson(g.body).subscriptionGroupTable };
  });
}

async function offsetsOf(addr) {
  return remoting.withConnection(addr, async conn => {
    const r = [];
    for (let q = 0; q < QUEUES; q++) r.push(await remoting.queryConsumerOffset(conn, GROUP, TOPIC, q));
    return r;
  });
}

async function maxOffsets(addr) {
  return remoting.withConnection(addr, async conn => {
    const r = [];
    for (let q = 0; q < QUEUES; q++) r.push(await remoting.getMaxOffset(conn, TOPIC, q));
    return r;
  });
}

async function commitAll(addr, offs) {
  await remoting.withConnection(addr, async conn => {
    for (let q = 0; q < QUEUES; q++) await remoting.updateConsumerOffset(conn, GROUP, TOPIC, q, offs[q]);
  });
}

/** suggestWhichBrokerId of a one-message pull of queue 0 at offset 0 from addr. */
async function suggestOf(addr) {
  return remoting.withConnection(addr, async conn => {
    const resp = await conn.invoke(remoting.REQ.PULL_MESSAGE, {
      consumerGroup: GROUP, topic: TOPIC, queueId: 0, queueOffset: 0, maxMsgNums: 1, sysFlag: 4,
      commitOffset: 0, suspendTimeoutMillis: 0, subscription: '*', subVersion: 0,
    });
    assert.equal(resp.code, remoting.RESP.SUCCESS, `pull from ${addr}: ${resp.remark}`);
    return Number(resp.extFields.suggestWhichBrokerId);
  });
}

async function brokerAddrs(cluster, topic) {
  return remoting.withConnection(cluster.nsAddr, async conn => {
    const r = await remoting.getRoute(conn, topic);
    const bd = r.route && (r.route.brokerDatas || []).find(d => d.brokerName === cluster.brokerName);
    return bd ? bd.brokerAddrs : {};
  });
}

test('a slave from a copy of the master: route, metadata sync, reads from the committed offset, back to the master',
  { timeout: ms(300000) }, async t => {
    const cluster = ctx.cluster;
    await withLogsOnFailure(cluster, async () => {
      const master = ex.mainBroker(cluster);
      await ex.createTopicOn(remoting, cluster, TOPIC, QUEUES, [ master ]);
      const sent = await ex.sendAllOk(cluster, TOPIC, { count: COUNT, bodyPrefix: 'before-' }, 'send_before');
      let max = [];
      await waitFor(async () => {
        max = await maxOffsets(master.addr);
        return max.reduce((a, b) => a + b, 0) === COUNT;
      }, { timeoutMs: ms(10000), what: () => `the queues to hold the ${COUNT} messages (max ${max})` });
      // The group's first commit: a quarter of every queue.
      const first = max.map(m => Math.floor(m / 4));
      await commitAll(master.addr, first);

      // The slave: a copy of the stopped master's store.
      const stop = await cluster.stopBroker();
      assert.equal(stop.code, 0, 'the master stops cleanly');
      const slaveStore = path.join(cluster.dir, 'store-slave');
      fs.cpSync(path.join(cluster.dir, 'store'), slaveStore, { recursive: true });
      await cluster.startBroker();
      const slave = await cluster.addBroker({ brokerName: cluster.brokerName, brokerConf: {
        brokerRole: 'SLAVE', brokerId: 1, storePathRootDir: slaveStore } });
      t.diagnostic(`master ${master.addr}, slave ${slave.addr}`);

      await waitFor(async () => {
        const a = await brokerAddrs(cluster, TOPIC);
        return a['0'] === master.addr && a['1'] === slave.addr;
      }, { timeoutMs: ms(20000), what: `the route of ${TOPIC} to list {0: ${master.addr}, 1: ${slave.addr}}` });

      // Metadata created on the master after the copy reaches the slave.
      const t0 = Date.now();
      const newTopic = 'SlaveReadTopic2';
      const newGroup = 'GID_slave_read_new';
      await remoting.withConnection(master.addr, async conn => {
        await remoting.createTopic(conn, newTopic, 2);
        remoting.expectCode(await conn.invoke(UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, {},
          { body: Buffer.from(JSON.stringify({ groupName: newGroup, retryMaxTimes: 3, consumeBroadcastEnable: false })) }),
        remoting.RESP.SUCCESS, 'UPDATE_AND_CREATE_SUBSCRIPTIONGROUP');
      });
      const second = max.map(m => Math.floor(m / 2));
      await commitAll(master.addr, second);
      const has43 = await remoting.withConnection(master.addr, async conn =>
        (await conn.invoke(GET_ALL_CONSUMER_OFFSET, {})).code === remoting.RESP.SUCCESS);
      if (!has43) {
        t.diagnostic('the master does not answer GET_ALL_CONSUMER_OFFSET (43): its handler is not in ' +
          'src/broker/broker.c\'s table; offsets sync is checked against the copied offsets only');
      }
      const want = has43 ? second : first;
      let seen = null;
      await waitFor(async () => {
        const { topics, groups } = await allTables(slave.addr);
        const offs = await offsetsOf(slave.addr);
        seen = { topic: topics[newTopic] || null, group: !!groups[newGroup], offs };
        return topics[newTopic] && Number(topics[newTopic].writeQueueNums) === 2 && groups[newGroup] &&
          Number(groups[newGroup].retryMaxTimes) === 3 && offs.every((o, q) => o === want[q]);
      }, { timeoutMs: ms(SYNC_MS + 10000), intervalMs: 200,
        what: () => `the slave to copy ${newTopic}, ${newGroup} and offsets ${want} (has ${JSON.stringify(seen)})` });
      t.diagnostic(`metadata on the slave after ${Date.now() - t0} ms; offsets ${want}`);
      // ... and again at the next periodic round (the first one above may be the start-up round).
      const t1 = Date.now();
      await remoting.withConnection(master.addr, conn => remoting.createTopic(conn, 'SlaveReadTopic3', 3));
      await waitFor(async () => {
        const { topics } = await allTables(slave.addr);
        return topics.SlaveReadTopic3 && Number(topics.SlaveReadTopic3.readQueueNums) === 3;
      }, { timeoutMs: ms(SYNC_MS + 10000), intervalMs: 200, what: 'the slave to copy SlaveReadTopic3' });
      t.diagnostic(`a later topic on the slave after ${Date.now() - t1} ms`);

      // The slave refuses sends, and suggests the master while it is up.
      const refused = await remoting.withConnection(slave.addr, conn =>
        remoting.sendMessage(conn, { topic: TOPIC, queueId: 0, body: Buffer.from('to-slave') }));
      assert.notEqual(refused.code, remoting.RESP.SUCCESS, 'the slave refuses a send');
      assert.match(String(refused.remark), /slave/i);
      assert.equal(await suggestOf(slave.addr), 0, 'the slave suggests its master while it is reachable');

      // The master dies: the group consumes from the slave, from its committed offsets.
      const killed = await cluster.stopBroker({ kill9: true });
      assert.equal(killed.signal, 'SIGKILL');
      await waitFor(async () => {
        const a = await brokerAddrs(cluster, TOPIC);
        return !a['0'] && a['1'] === slave.addr;
      }, { timeoutMs: ms(20000), what: 'the name server to drop the killed master from the route' });
      const consumer = ex.startConsumer(cluster, 'consumer_slave', { group: GROUP, topic: TOPIC, persistMs: 500 });
      const expected = new Set(sent.filter(s => s.queueOffset >= want[s.queueId]).map(s => s.msgId));
      await waitFor(() => {
        consumer.checkAlive();
        return new Set(consumer.parsed.map(m => m.msgId)).size >= expected.size;
      }, { timeoutMs: ms(60000), intervalMs: 100,
        what: () => `the consumer to get ${expected.size} messages from the slave (has ${consumer.parsed.length})\n` +
          ex.describe([ consumer ]) });
      const below = consumer.parsed.filter(m => m.queueOffset < want[m.queueId]);
      assert.deepEqual(below.slice(0, 5), [], 'nothing below the committed offsets is consumed again');
      const got = new Set(consumer.parsed.map(m => m.msgId));
      assert.deepEqual([ ...expected ].filter(id => !got.has(id)), [], 'every message from the committed offsets on');
      assert.equal(got.size, expected.size, 'no message beyond the expected ones');
      await waitFor(async () => await suggestOf(slave.addr) === 1, { timeoutMs: ms(15000),
        what: 'the slave to suggest itself while the master is gone' });

      // The master comes back: new messages, which only the master has, are consumed.
      await cluster.startBroker();
      await waitFor(async () => await suggestOf(slave.addr) === 0, { timeoutMs: ms(SYNC_MS + 10000),
        what: 'the slave to suggest the master again' });
      const late = await ex.sendAllOk(cluster, TOPIC, { count: LATE, bodyPrefix: 'after-' }, 'send_after');
      assert.ok(late.every(s => s.queueOffset >= max[s.queueId]), 'late messages are stored on the master only');
      await waitFor(() => {
        consumer.checkAlive();
        const ids = new Set(consumer.parsed.map(m => m.msgId));
        return late.every(s => ids.has(s.msgId));
      }, { timeoutMs: ms(60000), intervalMs: 100,
        what: () => `the consumer to get the ${LATE} messages sent to the restarted master\n${ex.describe([ consumer ])}` });
      await consumer.stop();
      // Its commits went to the master: the group's offsets there are the queues' ends.
      await waitFor(async () => {
        const offs = await offsetsOf(master.addr);
        const ends = await maxOffsets(master.addr);
        return offs.every((o, q) => o === ends[q]);
      }, { timeoutMs: ms(15000), what: 'the group to have committed the queue ends to the master' });

      // A master with slaveReadEnable suggests the slave for data out of memory.
      assert.equal(await suggestOf(master.addr), 0, 'without slaveReadEnable the master suggests itself');
      await cluster.stopBroker();
      fs.appendFileSync(path.join(cluster.dir, 'broker.conf'), 'slaveReadEnable=true\naccessMessageInMemoryMaxRatio=0\n');
      await cluster.startBroker();
      assert.equal(await suggestOf(master.addr), 1, 'slaveReadEnable: cold data suggests brokerId 1');
    });
  });
