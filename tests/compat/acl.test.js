'use strict';
// Access control (docs/ACL.md) with the unmodified ali-ons client: a broker with aclEnable=true
// and a plain_acl.yml in a temp dir. ali-ons signs every request when given accessKey/secretKey
// (HMAC-SHA1, lib/channel.js); the broker must accept its signatures, refuse wrong keys, unsigned
// requests, denied topics and non-admin topic creation with NO_PERMISSION and a clear remark,
// let whitelisted addresses pass unsigned, and pick up an edited file without a restart.
// Whitelists are tested from 127.0.0.2 and 127.0.0.3 (loopback aliases) against the broker on
// 127.0.0.1.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const { useCluster, waitFor, ms, tail, withLogsOnFailure, aclRulesFile } = require('./harness');
const { OnsClients, Message, createTopic, waitTopicRoute } = require('./ons');
const remoting = require('./remoting');

const NO_PERMISSION = 16;
const APP = { accessKey: 'appKey01', secretKey: 'appSecret01' };
const ADMIN = { accessKey: 'adminKey01', secretKey: 'adminSecret01' };
const TOPIC = 'AclTopic';
const DENIED = 'AclDenied';
const LATER = 'AclLater';
const GROUP = 'GID_acl';
const COUNT = 20;

function rules({ laterPerm = null } = {}) {
  return [
    '# written by tests/compat/acl.test.js',
    'globalWhiteRemoteAddresses:',
    '  - 127.0.0.2',
    'accounts:',
    `  - accessKey: ${APP.accessKey}`,
    `    secretKey: ${APP.secretKey}`,
    '    whiteRemoteAddress: 127.0.0.3',
    '    admin: false',
    '    defaultTopicPerm: DENY',
    '    defaultGroupPerm: DENY',
    '    topicPerms:',
    `      - ${TOPIC}=PUB|SUB`,
    `      - ${DENIED}=DENY`,
    ...(laterPerm ? [ `      - ${LATER}=${laterPerm}` ] : []),
    '    groupPerms:',
    `      - ${GROUP}=SUB`,
    `  - accessKey: ${ADMIN.accessKey}`,
    `    secretKey: ${ADMIN.secretKey}`,
    '    admin: true',
    '',
  ].join('\n');
}

const { file: aclFile, dir: rulesDir, write: writeRules } = aclRulesFile('ferry-acl-rules-', rules());

const ctx = useCluster({ name: 'acl', brokerConf: { aclEnable: true, aclFile, metricsPort: 0 } });
after(() => fs.rmSync(rulesDir, { recursive: true, force: true }));

/** extFields signed as Java's AclClientRPCHook / ali-ons do: values sorted by key, then the body. */
function signed(ext, { accessKey, secretKey }, body) {
  const all = Object.assign({}, ext, { AccessKey: accessKey });
  let content = '';
  for (const k of Object.keys(all).sort()) content += String(all[k]);
  const mac = crypto.createHmac('sha1', secretKey).update(Buffer.from(content, 'utf8'));
  if (body) mac.update(body);
  return Object.assign(all, { Signature: mac.digest('base64') });
}

/** A remoting connection to the broker from a given loopback address. */
function connectFrom(localAddress, addr) {
  const [ host, port ] = addr.split(':');
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port: Number(port), localAddress });
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.removeAllListeners('error');
      resolve(new remoting.RemotingConnection(socket, addr));
    });
  });
}

function sendV2(conn, topic, ext = {}, keys = null) {
  const body = Buffer.from(`raw to ${topic}`);
  let fields = Object.assign({
    a: 'PID_acl_raw', b: topic, c: 'TBW102', d: 4, e: 0, f: 0, g: Date.now(), h: 0,
    i: 'WAIT\u0001true', j: 0, k: false, m: false,
  }, ext);
  if (keys) fields = signed(fields, keys, body);
  return conn.invoke(remoting.REQ.SEND_MESSAGE_V2, fields, { body });
}

/** Messages stored in `topic` (sum of the queues' max offsets), asked with the admin's keys. */
async function storedCount(cluster, topic, queues = 4) {
  return remoting.withConnection(cluster.brokerAddr, async conn => {
    let n = 0;
    for (let q = 0; q < queues; q++) {
      const resp = await conn.invoke(remoting.REQ.GET_MAX_OFFSET, signed({ topic, queueId: q }, ADMIN));
      remoting.expectCode(resp, remoting.RESP.SUCCESS, `GET_MAX_OFFSET ${topic}/${q}`);
      n += Number(resp.extFields.offset);
    }
    return n;
  });
}

/** ali-ons' own send of one message to one queue, so the broker's code and remark come back. */
async function onsSendOnce(producer, topic) {
  const info = await producer.tryToFindTopicPublishInfo(topic);
  assert.ok(info && info.messageQueueList.length, `ali-ons has a route for ${topic}`);
  return producer.sendKernelImpl(new Message(topic, 'TagA', `to ${topic}`), info.messageQueueList[0]);
}

async function expectRefused(promise, remark, what) {
  await assert.rejects(promise, err => {
    assert.equal(err.name, 'MQClientException', `${what}: ${err.stack}`);
    assert.equal(err.code, NO_PERMISSION, `${what}: code`);
    assert.ok(err.message.includes(remark), `${what}: remark "${err.message}" lacks "${remark}"`);
    return true;
  });
}

let ons;
let admin;
let app;

test('an admin account creates topics; an application account may not', async () => {
  const cluster = ctx.cluster;
  ons = new OnsClients(cluster);
  ctx.beforeStop.push(() => ons.closeAll());
  await withLogsOnFailure(cluster, async () => {
    admin = await ons.producer('PID_acl_admin', Object.assign({ instanceName: 'acl-admin' }, ADMIN));
    for (const t of [ TOPIC, DENIED, LATER ]) await createTopic(admin, cluster, t, 4);
    app = await ons.producer('PID_acl_app', Object.assign({ instanceName: 'acl-app' }, APP));
    const route = await app._mqClient.getTopicRouteInfoFromNameServer('TBW102', 3000);
    await expectRefused(app._mqClient.createTopic(route.brokerDatas[0].brokerAddrs['0'], 'TBW102', {
      topicName: 'AclNope', readQueueNums: 4, writeQueueNums: 4, perm: 6,
      topicFilterType: 'SINGLE_TAG', topicSysFlag: 0, order: false,
    }, 3000), `admin request 17 needs an admin account; accessKey ${APP.accessKey} is not one`,
    'UPDATE_AND_CREATE_TOPIC by the application account');
  });
});

test('the right keys produce and consume', async () => {
  const cluster = ctx.cluster;
  await withLogsOnFailure(cluster, async () => {
    const got = new Map();
    const consumer = ons.consumer(GROUP, 'acl-consumer', APP);
    consumer.subscribe(TOPIC, '*', async msg => { got.set(msg.keys, msg.body.toString()); });
    await consumer.ready();
    for (let i = 0; i < COUNT; i++) {
      const m = new Message(TOPIC, 'TagA', `acl-${i}`);
      m.keys = [ `ak-${i}` ];
      const r = await app.send(m);
      assert.equal(r.sendStatus, 'SEND_OK');
    }
    await waitFor(() => got.size === COUNT, {
      timeoutMs: ms(60000), intervalMs: 100,
      what: () => `the signed consumer to receive ${COUNT} messages (has ${got.size}); client errors: ` +
        `${JSON.stringify(ons.errors.slice(-5))}; ali-ons log:\n${ons.logTail(20)}`,
    });
    for (let i = 0; i < COUNT; i++) assert.equal(got.get(`ak-${i}`), `acl-${i}`);
    assert.equal(await storedCount(cluster, TOPIC), COUNT);
  });
});

test('a wrong secret key is refused and nothing is stored', async () => {
  const cluster = ctx.cluster;
  await withLogsOnFailure(cluster, async () => {
    const before = await storedCount(cluster, TOPIC);
    const wrong = await ons.producer('PID_acl_wrong', {
      instanceName: 'acl-wrong', accessKey: APP.accessKey, secretKey: 'notTheSecret',
    });
    await expectRefused(onsSendOnce(wrong, TOPIC), `signature mismatch for accessKey ${APP.accessKey}`,
      'a send signed with the wrong secret key');
    await assert.rejects(wrong.send(new Message(TOPIC, 'TagA', 'never stored')), /still failed/);
    assert.equal(await storedCount(cluster, TOPIC), before, 'nothing was stored');
  });
});

test('unsigned requests are refused with the reason', async () => {
  const cluster = ctx.cluster;
  await withLogsOnFailure(cluster, async () => {
    await remoting.withConnection(cluster.brokerAddr, async conn => {
      const resp = await sendV2(conn, TOPIC);
      assert.equal(resp.code, NO_PERMISSION);
      assert.match(resp.remark, /No accessKey is configured: request code 310 is not signed/);
      const pull = await remoting.pullMessages(conn, { group: GROUP, topic: TOPIC, queueId: 0, offset: 0 });
      assert.equal(pull.code, NO_PERMISSION);
    });
    const nokeys = await ons.producer('PID_acl_nokeys', { instanceName: 'acl-nokeys' });
    await expectRefused(onsSendOnce(nokeys, TOPIC), 'No accessKey is configured', 'an unsigned ali-ons send');
  });
});

test('a DENY topic is refused', async () => {
  await withLogsOnFailure(ctx.cluster, async () => {
    await expectRefused(onsSendOnce(app, DENIED),
      `accessKey ${APP.accessKey} has no PUB permission on topic ${DENIED} (DENY)`, 'a send to a DENY topic');
  });
});

test('whitelisted addresses pass unsigned', async t => {
  const cluster = ctx.cluster;
  let conn2;
  try {
    conn2 = await connectFrom('127.0.0.2', cluster.brokerAddr);
  } catch (e) {
    t.skip(`cannot connect from 127.0.0.2: ${e.message}`);
    return;
  }
  await withLogsOnFailure(cluster, async () => {
    const before = await storedCount(cluster, DENIED);
    try {
      // globalWhiteRemoteAddresses: no account at all, even a topic the account may not use.
      const resp = await sendV2(conn2, DENIED);
      remoting.expectCode(resp, remoting.RESP.SUCCESS, 'unsigned send from 127.0.0.2');
    } finally {
      await conn2.close();
    }
    // (the queue's max offset moves once the store has dispatched the message)
    await waitFor(async () => await storedCount(cluster, DENIED) === before + 1,
      { timeoutMs: ms(10000), what: `the whitelisted send to be stored in ${DENIED}` });
    // The account's whiteRemoteAddress: its AccessKey without a signature.
    const conn3 = await connectFrom('127.0.0.3', cluster.brokerAddr);
    try {
      remoting.expectCode(await sendV2(conn3, TOPIC, { AccessKey: APP.accessKey }), remoting.RESP.SUCCESS,
        'send with the AccessKey from 127.0.0.3');
      const resp = await sendV2(conn3, TOPIC);
      assert.equal(resp.code, NO_PERMISSION, 'without an AccessKey 127.0.0.3 is nobody');
    } finally {
      await conn3.close();
    }
    // From 127.0.0.1 the same AccessKey needs its signature.
    await remoting.withConnection(cluster.brokerAddr, async conn => {
      const resp = await sendV2(conn, TOPIC, { AccessKey: APP.accessKey });
      assert.equal(resp.code, NO_PERMISSION);
      assert.match(resp.remark, /signature mismatch for accessKey appKey01/);
      remoting.expectCode(await sendV2(conn, TOPIC, {}, APP), remoting.RESP.SUCCESS, 'a signed raw send');
    });
  });
});

test('an edited file takes effect without a restart; a broken one is refused', async () => {
  const cluster = ctx.cluster;
  await withLogsOnFailure(cluster, async () => {
    await waitTopicRoute(cluster, LATER, 4);
    await expectRefused(onsSendOnce(app, LATER), `no PUB permission on topic ${LATER}`, 'before the edit');
    writeRules(rules({ laterPerm: 'PUB' }));
    await waitFor(async () => {
      try {
        const r = await onsSendOnce(app, LATER);
        return r.sendStatus === 'SEND_OK';
      } catch (e) {
        if (e.code !== NO_PERMISSION) throw e;
        return false;
      }
    }, { timeoutMs: ms(15000), intervalMs: 200, what: 'the broker to reload the edited ACL file' });

    writeRules('accounts:\n  - accessKey: appKey01\n    secretKey: short\n');
    await waitFor(() => /ACL file not reloaded, the previous rules stay in force: .*secretKey/.test(
      tail(cluster.broker.logFile, 50)), { timeoutMs: ms(15000), what: 'the broker to log the broken file' });
    const r = await onsSendOnce(app, LATER);
    assert.equal(r.sendStatus, 'SEND_OK', 'the previous rules stay in force');
    writeRules(rules({ laterPerm: 'PUB' }));
  });
});

test('with aclEnable the dashboard API needs a login of an admin account (401 without)', async () => {
  await withLogsOnFailure(ctx.cluster, async () => {
    const port = await waitFor(() => {
      const m = /HTTP port \(metrics, dashboard\) at http:\/\/[0-9.]+:(\d+)\//
        .exec(fs.readFileSync(ctx.cluster.broker.logFile, 'utf8'));
      return m && Number(m[1]);
    }, { timeoutMs: ms(10000), what: 'the broker\'s HTTP port log line' });
    const base = `http://127.0.0.1:${port}`;
    const api = await fetch(`${base}/api/topicList`);
    assert.equal(api.status, 401, 'the API needs a session while the client port is access-controlled');
    assert.match((await api.json()).error, /log in/);
    const page = await fetch(`${base}/`);
    assert.equal(page.status, 200);
    const login = k => fetch(`${base}/api/login`, { method: 'POST', body: JSON.stringify(k),
      headers: { 'Content-Type': 'application/json', 'X-Ferry-Action': '1' } });
    assert.equal((await login(APP)).status, 403, 'an application account may not log in');
    const r = await login(ADMIN);
    assert.equal(r.status, 200, 'the admin account logs in');
    const cookie = r.headers.getSetCookie()[0].split(';')[0];
    const list = await fetch(`${base}/api/topicList`, { headers: { Cookie: cookie } });
    assert.equal(list.status, 200, 'with the session the API answers');
    assert.ok((await list.json()).topicList.includes(TOPIC), `topicList has ${TOPIC}`);
    // (tests/integration/dashboard_acl.test.js covers the login in a browser)
  });
});
