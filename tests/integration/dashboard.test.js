'use strict';
// The broker's web dashboard (issue 9, docs/DASHBOARD.md) in a real browser: headless Chromium
// (Debian's /usr/bin/chromium) driven by playwright-core, against a real name server + broker
// whose HTTP port is metricsPort=0 (the port is read from the broker's log line), a second
// broker (broker-b) in the same cluster, with real traffic:
//   - TOPIC (4 queues): batch A (keys key-A-<i>), a time T, batch B (keys key-B-<i>), sent with
//     SEND_MESSAGE_V2 round robin over the queues;
//   - GID_dash_online: an ali-ons push consumer that consumes everything and stays online;
//   - GID_dash_part: committed offsets past A and half of B in each queue (a group that consumed
//     part of the topic), offline;
//   - one message sent back with delay level -1, so %DLQ%GID_dash_online holds a dead letter;
//   - TOPIC_B on broker-b only: COUNT_C messages sent to broker-b.
// The cluster view draws one throughput chart per broker, and each broker's putTotal on the page
// equals `mqadmin brokerThroughput -c <cluster> --json` and the messages the test sent to it; a
// broker that does not answer is an entry with an error in /api/brokerThroughput (200).
// Every page loads without a console error or an uncaught exception (the one expected failed
// request: consumerConnection of the offline group, shown as "no member online"); the figures on
// the pages equal `mqadmin ... --json` for the same thing (per-queue max offsets, per-queue and
// total lag); a search by key, by id and by time finds the sent messages and the detail shows
// body, properties and the delivery track; an offset reset by time from the page takes effect
// once confirmed (mqadmin consumerProgress shows the offsets of B's first messages) and changes
// nothing when cancelled; create topic and DLQ resend from the page work. The JSON API refuses
// foreign actions (no X-Ferry-Action header: 403; GET on an action: 405) and the assets have
// their Content-Type. Screenshots of every page go to <build>/tests/artifacts/dashboard/
// (FERRY_DASHBOARD_ARTIFACTS overrides), their paths printed.
// ferry-test-requires: mqadmin
// ferry-test-npm: ali-ons

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const crypto = require('node:crypto');
const { useCluster, waitFor, ms, withLogsOnFailure, runMqadmin, freePort } = require('../compat/harness');
const remoting = require('../compat/remoting');
const { OnsClients } = require('../compat/ons');
const { chromium } = require('playwright-core');

const TOPIC = 'DashTopic';
const QUEUES = 4;
const COUNT_A = 16;
const COUNT_B = 12;
const ONLINE = 'GID_dash_online';
const PART = 'GID_dash_part';
const NEW_TOPIC = 'DashCreated';
const TOPIC_B = 'DashTopicB';
const COUNT_C = 9;
const CHROMIUM = process.env.FERRY_CHROMIUM || '/usr/bin/chromium';

const ctx = useCluster({ name: 'int-dashboard', brokerConf: { metricsPort: 0 }, extraBrokers: [ 'broker-b' ] });

function artifactsDir() {
  if (process.env.FERRY_DASHBOARD_ARTIFACTS) return process.env.FERRY_DASHBOARD_ARTIFACTS;
  const build = process.env.FERRY_BUILD_DIR || path.dirname(process.env.FERRY_BIN_DIR || '.');
  return path.join(build, 'tests', 'artifacts', 'dashboard');
}

async function mqadminJson(args) {
  const r = await runMqadmin(args.concat([ '--json' ]));
  assert.equal(r.code, 0, `mqadmin ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

async function httpPort(cluster) {
  return waitFor(() => {
    const m = /HTTP port \(metrics, dashboard\) at http:\/\/[0-9.]+:(\d+)\//.exec(fs.readFileSync(cluster.broker.logFile, 'utf8'));
    return m && Number(m[1]);
  }, { timeoutMs: ms(10000), what: 'the broker\'s HTTP port log line' });
}

/** SEND_MESSAGE_V2 of one message with keys and a UNIQ_KEY; returns what the test needs of it. */
async function send(conn, queueId, body, keys) {
  const uniq = crypto.randomBytes(16).toString('hex').toUpperCase();
  const resp = remoting.expectCode(await remoting.sendMessage(conn, { topic: TOPIC, queueId, body: Buffer.from(body), keys,
    tags: 'TagD', props: { UNIQ_KEY: uniq } }), remoting.RESP.SUCCESS, `send ${body}`);
  return { body, keys, uniq, offsetMsgId: resp.extFields.msgId, queueId, queueOffset: Number(resp.extFields.queueOffset),
    storeMs: Date.now() };
}

test('the dashboard in headless Chromium: pages, figures equal to mqadmin, search, reset, create, DLQ', async () => {
  const cluster = ctx.cluster;
  const ons = new OnsClients(cluster);
  ctx.beforeStop.push(() => ons.closeAll());
  let browser = null;
  ctx.beforeStop.push(async () => { if (browser) await browser.close(); });

  await withLogsOnFailure(cluster, async () => {
    const ns = [ '-n', cluster.nsAddr ];
    const port = await httpPort(cluster);
    const base = `http://127.0.0.1:${port}`;

    // ---- traffic ----
    const conn = await remoting.RemotingConnection.connect(cluster.brokerAddr);
    ctx.beforeStop.push(() => conn.close());
    await remoting.createTopic(conn, TOPIC, QUEUES);
    const sentA = [];
    for (let i = 0; i < COUNT_A; i++) sentA.push(await send(conn, i % QUEUES, `body A ${i}`, `key-A-${i}`));
    await waitFor(() => Date.now() > sentA[sentA.length - 1].storeMs + 300, { timeoutMs: ms(5000), what: 'a gap after A' });
    const T = Date.now();
    await waitFor(() => Date.now() > T + 300, { timeoutMs: ms(5000), what: 'a gap before B' });
    const sentB = [];
    for (let i = 0; i < COUNT_B; i++) sentB.push(await send(conn, i % QUEUES, `body B ${i} ünïcode`, `key-B-${i}`));
    // broker-b: COUNT_C messages of its own topic
    const brokerB = cluster.extraBrokers[0];
    const connB = await remoting.RemotingConnection.connect(brokerB.addr);
    ctx.beforeStop.push(() => connB.close());
    await remoting.createTopic(connB, TOPIC_B, 2);
    for (let i = 0; i < COUNT_C; i++) {
      remoting.expectCode(await remoting.sendMessage(connB, { topic: TOPIC_B, queueId: i % 2, body: Buffer.from(`body C ${i}`) }),
        remoting.RESP.SUCCESS, `send C ${i}`);
    }
    const aPerQueue = Array.from({ length: QUEUES }, (_, q) => sentA.filter(s => s.queueId === q).length);
    const bPerQueue = Array.from({ length: QUEUES }, (_, q) => sentB.filter(s => s.queueId === q).length);

    // the partial group: past A and half of B in every queue
    for (let q = 0; q < QUEUES; q++) {
      await remoting.updateConsumerOffset(conn, PART, TOPIC, q, aPerQueue[q] + Math.floor(bPerQueue[q] / 2));
    }
    // the online group consumes everything
    const consumer = ons.consumer(ONLINE, 'dash-online');
    let consumed = 0;
    consumer.subscribe(TOPIC, '*', async () => { consumed++; });
    await consumer.ready();
    const total = COUNT_A + COUNT_B;
    await waitFor(async () => {
      for (let q = 0; q < QUEUES; q++) {
        if (await remoting.queryConsumerOffset(conn, ONLINE, TOPIC, q) !== aPerQueue[q] + bPerQueue[q]) return false;
      }
      return true;
    }, { timeoutMs: ms(30000), intervalMs: 200, what: () => `${ONLINE} to commit the ends of the queues (consumed ${consumed}/${total})` });
    // a dead letter: CONSUMER_SEND_MSG_BACK with delay level -1
    const dead = sentA[0];
    const { offset } = remoting.decodeMessageId(dead.offsetMsgId);
    remoting.expectCode(await conn.invoke(36, { offset: offset.toString(), group: ONLINE, delayLevel: -1, originMsgId: dead.uniq,
      originTopic: TOPIC, unitMode: false, maxReconsumeTimes: 16 }), remoting.RESP.SUCCESS, 'send back to the DLQ');

    // ---- the JSON API without a browser ----
    const get = async (p, opts) => {
      const r = await fetch(base + p, opts);
      return { status: r.status, type: r.headers.get('content-type'), text: await r.text() };
    };
    const assets = { '/': 'text/html; charset=utf-8', '/index.html': 'text/html; charset=utf-8',
      '/app.js': 'text/javascript; charset=utf-8', '/app.css': 'text/css; charset=utf-8', '/favicon.svg': 'image/svg+xml' };
    for (const [p, type] of Object.entries(assets)) {
      const r = await get(p);
      assert.equal(r.status, 200, `GET ${p}`);
      assert.equal(r.type, type, `Content-Type of ${p}`);
      assert.ok(r.text.length > 100, `${p} has content`);
    }
    assert.equal((await get('/nope.js')).status, 404, 'an unknown asset is 404');
    assert.equal((await get('/api/nope')).status, 404, 'an unknown API is 404');
    assert.equal((await get(`/api/topicStatus`)).status, 400, 'a missing parameter is 400');
    const jbody = JSON.stringify({ t: 'DashForeign', c: cluster.clusterName });
    let r = await get('/api/updateTopic', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: jbody });
    assert.equal(r.status, 403, `an action without X-Ferry-Action is refused: ${r.text}`);
    r = await get('/api/updateTopic', { method: 'POST', body: jbody,
      headers: { 'Content-Type': 'application/json', 'X-Ferry-Action': '1', Origin: 'http://evil.example' } });
    assert.equal(r.status, 403, `an action from another origin is refused: ${r.text}`);
    assert.equal((await get(`/api/updateTopic?t=DashForeign&c=${cluster.clusterName}`)).status, 405, 'an action by GET is 405');
    const routeForeign = await runMqadmin([ 'topicRoute', ...ns, '-t', 'DashForeign' ]);
    assert.notEqual(routeForeign.code, 0, 'the refused actions created nothing');
    const deadAddr = `127.0.0.1:${await freePort()}`;
    r = await get(`/api/brokerThroughput?b=${deadAddr}`);
    assert.equal(r.status, 200, `a broker that does not answer is an entry of the answer: ${r.text}`);
    assert.match(JSON.parse(r.text)[0].error, /no answer from/, 'the entry says the broker did not answer');
    // The API connects to the name servers and the cluster's brokers only: an address given as
    // a parameter (b=, or inside an offset message id) cannot make the broker connect elsewhere.
    assert.match(JSON.parse(r.text)[0].error, /is not a name server or a broker of this cluster/,
      'an unknown address is refused before connecting');
    r = await get(`/api/brokerStatus?b=${deadAddr}`);
    assert.equal(r.status, 500, r.text);
    assert.match(JSON.parse(r.text).error, /is not a name server or a broker of this cluster/, r.text);
    assert.equal((await get('/api/brokerThroughput?s=0')).status, 400, 's=0 is a bad parameter');
    // DNS rebinding: the API answers under an IP address or localhost only (httpAllowedHosts
    // is empty here); the page itself may load under any name.
    const underHost = (p, host) => new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path: p, headers: { Host: host } }, res => {
        let text = '';
        res.on('data', c => { text += c; });
        res.on('end', () => resolve({ status: res.statusCode, text }));
      });
      req.on('error', reject);
      req.end();
    });
    r = await underHost('/api/topicList', `evil.example:${port}`);
    assert.equal(r.status, 403, `the API under a foreign Host name is refused: ${r.text}`);
    assert.match(JSON.parse(r.text).error, /httpAllowedHosts/, 'the refusal names the key');
    assert.equal((await underHost('/api/topicList', `localhost:${port}`)).status, 200, 'localhost is allowed');
    assert.equal((await underHost('/api/topicList', `[::1]:${port}`)).status, 200, 'an IPv6 literal is allowed');
    assert.equal((await underHost('/', `evil.example:${port}`)).status, 200, 'the page itself is served');
    r = await get(`/api/topicStatus?t=${TOPIC}`);
    assert.deepEqual(JSON.parse(r.text), await mqadminJson([ 'topicStatus', ...ns, '-t', TOPIC ]),
      '/api/topicStatus is mqadmin topicStatus --json');

    // ---- the browser ----
    const shots = artifactsDir();
    fs.mkdirSync(shots, { recursive: true });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: [ '--no-sandbox' ] });
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const consoleErrors = [];
    const failed = []; // API answers >= 400: { url, status, text }
    page.on('console', m => { if (m.type() === 'error') consoleErrors.push({ text: m.text(), url: m.location().url }); });
    page.on('pageerror', e => consoleErrors.push({ text: `uncaught: ${e.message}`, url: '' }));
    page.on('response', async resp => {
      if (resp.status() >= 400) failed.push({ url: resp.url(), status: resp.status(), text: await resp.text().catch(() => '') });
    });
    const saved = [];
    const shot = async name => {
      const file = path.join(shots, `${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      saved.push(file);
    };
    const show = async hash => {
      if (page.url().startsWith(base)) {
        await page.evaluate(() => { document.getElementById('main').dataset.ready = 'x'; });
        await page.evaluate(h => { location.hash = h; }, hash);
      } else {
        await page.goto(`${base}/${hash}`);
      }
      await page.waitForFunction(() => document.getElementById('main').dataset.ready === '1', null, { timeout: ms(30000) });
      const err = await page.$('[data-testid=error]');
      assert.equal(err, null, `page ${hash} shows no error: ${err && await err.textContent()}`);
    };
    const cells = (rowSel, field) => page.$$eval(`${rowSel} td[data-field=${field}]`, tds => tds.map(td => Number(td.dataset.value)));

    // Cluster
    await show('#/cluster');
    await page.waitForSelector(`[data-testid=broker-row][data-addr="${cluster.brokerAddr}"]`);
    await page.waitForSelector(`[data-testid=broker-row][data-addr="${brokerB.addr}"]`);
    // one chart per broker, each with its lines (two seconds of rates at least)
    await page.waitForFunction(addrs => addrs.every(a =>
      document.querySelector(`[data-testid=throughput-broker][data-addr="${a}"] [data-testid=throughput-chart] path`)),
    [ cluster.brokerAddr, brokerB.addr ], { timeout: ms(20000) });
    assert.equal((await page.$$('[data-testid=throughput-chart]')).length, 2, 'two throughput charts, one per broker');
    assert.equal(await page.$('[data-testid=throughput-no-answer]'), null, 'every broker answered');
    const pagePut = Object.fromEntries(await page.$$eval('[data-testid=throughput-broker]', ds => ds.map(d =>
      [ d.dataset.addr, Number(d.dataset.putTotal) ])));
    const tput = await mqadminJson([ 'brokerThroughput', ...ns, '-c', cluster.clusterName ]);
    const cliPut = Object.fromEntries(tput.map(t => [ t.brokerAddr, t.putTotal ]));
    assert.deepEqual(pagePut, cliPut, 'each broker\'s putTotal on the page = mqadmin brokerThroughput --json');
    assert.deepEqual(pagePut, { [cluster.brokerAddr]: total, [brokerB.addr]: COUNT_C },
      'each broker\'s putTotal is the number of messages the test sent to it');
    // the brokers are younger than 10 minutes: the chart's put line adds up to the total
    await waitFor(async () => (await mqadminJson([ 'brokerThroughput', ...ns, '-c', cluster.clusterName ]))
      .every(t => t.put.reduce((a, v) => a + v, 0) === t.putTotal), { timeoutMs: ms(10000), what: 'the put rates to add up to putTotal' });
    const brokerRow = await page.textContent(`[data-testid=broker-row][data-addr="${cluster.brokerAddr}"]`);
    assert.match(brokerRow, /ASYNC_MASTER/, 'the broker row shows the role');
    assert.match(brokerRow, /V4_9_8/, 'the broker row shows the version');
    await shot('cluster');

    // Topics list: the sum of max offsets equals mqadmin topicStatus
    const status = await mqadminJson([ 'topicStatus', ...ns, '-t', TOPIC ]);
    const sumMax = status.reduce((a, e) => a + e.maxOffset, 0);
    assert.equal(sumMax, total, 'every message is in the topic');
    await show('#/topics');
    await page.waitForFunction(t => {
      const x = document.querySelector(`[data-testid=topic-row][data-topic="${t}"] .x`);
      return x && x.textContent !== '';
    }, TOPIC, { timeout: ms(20000) });
    assert.equal(Number(await page.textContent(`[data-testid=topic-row][data-topic="${TOPIC}"] .x`)), sumMax,
      'the topic list shows the sum of the max offsets of mqadmin topicStatus');
    await shot('topics');

    // Topic detail: per-queue max offsets equal mqadmin topicStatus
    await show(`#/topic/${TOPIC}`);
    await page.waitForSelector('[data-testid=queue-row]');
    const pageMax = await cells('[data-testid=queue-row]', 'maxOffset');
    const pageQid = await cells('[data-testid=queue-row]', 'queueId');
    assert.deepEqual(pageQid.map((q, i) => [ q, pageMax[i] ]), status.map(e => [ e.queueId, e.maxOffset ]),
      'per-queue max offsets on the page = mqadmin topicStatus --json');
    await page.waitForFunction(() => /msg\/s now/.test(document.querySelector('[data-testid=topic-rate]').textContent), null,
      { timeout: ms(15000) });
    await shot('topic-detail');

    // Groups
    await show('#/groups');
    for (const g of [ ONLINE, PART ]) await page.waitForSelector(`[data-testid=group-row][data-group="${g}"]`);
    await shot('groups');

    // Group detail: lag per queue and total equal mqadmin consumerProgress
    const progress = async g => mqadminJson([ 'consumerProgress', ...ns, '-g', g, '-t', TOPIC ]);
    const before = await progress(PART);
    await show(`#/group/${PART}`);
    await page.waitForSelector('[data-testid=lag-row]');
    await page.waitForSelector('[data-testid=members-offline]');
    const rows = async () => ({
      qid: await cells('[data-testid=lag-row]', 'queueId'),
      broker: await cells('[data-testid=lag-row]', 'brokerOffset'),
      consumer: await cells('[data-testid=lag-row]', 'consumerOffset'),
      diff: await cells('[data-testid=lag-row]', 'diff'),
      total: Number(await page.getAttribute('[data-testid=lag-total]', 'data-value')),
    });
    const fromMqadmin = p => ({
      qid: p.offsetTable.map(e => e.queueId), broker: p.offsetTable.map(e => e.brokerOffset),
      consumer: p.offsetTable.map(e => e.consumerOffset), diff: p.offsetTable.map(e => e.diff), total: p.diffTotal,
    });
    assert.deepEqual(await rows(), fromMqadmin(before), 'lag per queue and total on the page = mqadmin consumerProgress --json');
    assert.deepEqual(before.offsetTable.map(e => e.consumerOffset), aPerQueue.map((a, q) => a + Math.floor(bPerQueue[q] / 2)),
      'the partial group\'s offsets as committed');
    await page.waitForSelector('[data-testid=lag-chart] path', { state: 'attached', timeout: ms(15000) });
    await shot('group-detail');

    // Reset by time: cancelled changes nothing, confirmed moves every queue to B's first message
    await page.selectOption('[data-testid=reset-topic]', TOPIC);
    await page.fill('[data-testid=reset-time]', String(T));
    await page.click('[data-testid=reset-submit]');
    await page.waitForSelector('#confirm[open]');
    await shot('reset-confirm');
    await page.click('[data-testid=confirm-cancel]');
    await page.waitForSelector('#confirm[open]', { state: 'detached' });
    assert.deepEqual(fromMqadmin(await progress(PART)), fromMqadmin(before), 'a cancelled reset changes nothing');
    await page.click('[data-testid=reset-submit]');
    await page.waitForSelector('#confirm[open]');
    await page.click('[data-testid=confirm-ok]');
    await page.waitForSelector('[data-testid=reset-ok], [data-testid=error]', { timeout: ms(20000) });
    assert.equal(await page.$('[data-testid=error]'), null, `the reset succeeded: ${await page.textContent('main')}`);
    const after = await progress(PART);
    assert.deepEqual(after.offsetTable.map(e => e.consumerOffset), aPerQueue,
      'after the confirmed reset mqadmin consumerProgress shows the offset of B\'s first message in every queue');
    await page.waitForFunction(n => Number(document.querySelector('[data-testid=lag-total]').dataset.value) === n, after.diffTotal,
      { timeout: ms(15000) });
    assert.deepEqual(await rows(), fromMqadmin(after), 'the page follows the reset');
    await shot('group-after-reset');

    // Messages: by key, detail with body, properties and delivery track
    const target = sentB[1];
    await show('#/messages');
    await page.fill('[data-testid=search-key-topic]', TOPIC);
    await page.fill('[data-testid=search-key-input]', target.keys);
    await page.click('[data-testid=search-key] button');
    await page.waitForSelector(`[data-testid=msg-row][data-msgid="${target.uniq}"]`, { timeout: ms(15000) });
    await shot('search-by-key');
    await page.evaluate(() => { document.getElementById('main').dataset.ready = 'x'; });
    await page.click(`[data-testid=msg-row][data-msgid="${target.uniq}"] [data-testid=msg-link]`);
    await page.waitForFunction(() => document.getElementById('main').dataset.ready === '1');
    assert.equal(await page.textContent('[data-testid=body]'), target.body, 'the detail shows the body');
    assert.equal(await page.textContent('[data-testid=props] tr[data-prop=KEYS] td:nth-child(2)'), target.keys,
      'the detail shows the KEYS property');
    assert.equal(await page.textContent('[data-testid=props] tr[data-prop=UNIQ_KEY] td:nth-child(2)'), target.uniq);
    const track = Object.fromEntries(await page.$$eval('[data-testid=track-row]', trs => trs.map(tr =>
      [ tr.dataset.group, tr.children[1].textContent ])));
    assert.equal(track[ONLINE], 'CONSUMED', `the delivery track: ${ONLINE} consumed it`);
    assert.equal(track[PART], 'NOT_CONSUME_YET', `the delivery track: ${PART} (reset before B) did not`);
    await shot('message-detail');

    // by id (the offset msgId) and by time (from T: exactly batch B)
    await show(`#/messages?by=id&i=${sentA[3].offsetMsgId}`);
    await page.waitForSelector(`[data-testid=msg-row][data-msgid="${sentA[3].uniq}"]`);
    await shot('search-by-id');
    await show(`#/messages?by=time&t=${TOPIC}&s=${T}&e=${Date.now()}&c=100`);
    const found = await page.$$eval('[data-testid=msg-row]', trs => trs.map(tr => tr.dataset.msgid).sort());
    assert.deepEqual(found, sentB.map(s => s.uniq).sort(), 'the search by time from T finds exactly batch B');
    const byTime = await mqadminJson([ 'consumeMessage', ...ns, '-t', TOPIC, '-s', String(T), '-c', '100' ]);
    assert.equal(found.length, byTime.length, 'as many as mqadmin consumeMessage -s T');
    await shot('search-by-time');

    // Create topic
    await show('#/topics');
    await page.click('[data-testid=create-topic-open]');
    await page.fill('[data-testid=new-topic-name]', NEW_TOPIC);
    await page.fill('[data-testid=new-topic-wq]', '3');
    await page.fill('[data-testid=new-topic-rq]', '3');
    await page.click('[data-testid=create-topic-submit]');
    await page.waitForSelector('#confirm[open]');
    await page.click('[data-testid=confirm-ok]');
    await page.waitForSelector('[data-testid=create-topic-ok], [data-testid=error]', { timeout: ms(20000) });
    assert.equal(await page.$('[data-testid=error]'), null, 'create topic succeeded');
    await shot('topic-created');
    const created = await waitFor(async () => {
      const rr = await runMqadmin([ 'topicRoute', ...ns, '-t', NEW_TOPIC, '--json' ]);
      return rr.code === 0 && JSON.parse(rr.stdout);
    }, { timeoutMs: ms(15000), what: `mqadmin topicRoute ${NEW_TOPIC}` });
    assert.equal(created.queueDatas[0].writeQueueNums, 3, 'the created topic has the queues given on the page');

    // Dead letters: list, view, resend one
    await show('#/dlq');
    await page.waitForSelector(`[data-testid=dlq-row][data-group="${ONLINE}"]`);
    await shot('dlq');
    await show(`#/dlq/${ONLINE}`);
    await page.waitForSelector('[data-testid=dead-row]');
    assert.equal((await page.$$('[data-testid=dead-row]')).length, 1, 'one dead letter');
    await page.click('[data-testid=dead-view]');
    await page.waitForSelector('[data-testid=props] tr[data-prop=DLQ_ORIGIN_TOPIC]');
    assert.equal(await page.textContent('[data-testid=props] tr[data-prop=DLQ_ORIGIN_TOPIC] td:nth-child(2)'), TOPIC);
    await page.click('[data-testid=dead-resend]');
    await page.waitForSelector('#confirm[open]');
    await page.click('[data-testid=confirm-ok]');
    await page.waitForSelector('[data-testid=resend-ok], [data-testid=error]', { timeout: ms(20000) });
    assert.equal(await page.$('[data-testid=error]'), null, 'the resend succeeded');
    await shot('dlq-resent');
    const statusAfter = await mqadminJson([ 'topicStatus', ...ns, '-t', TOPIC ]);
    assert.equal(statusAfter.reduce((a, e) => a + e.maxOffset, 0), sumMax + 1, 'the resent dead letter is in the topic again');

    // A body over 64 KiB: the API gives its first 64 KiB, marked, and the whole length.
    const bigBody = 'x'.repeat(100 * 1024);
    const big = remoting.expectCode(await remoting.sendMessage(conn, { topic: NEW_TOPIC, queueId: 0,
      body: Buffer.from(bigBody), keys: 'big-1' }), remoting.RESP.SUCCESS, 'send a 100 KiB message');
    const bigView = JSON.parse((await get(`/api/queryMsgById?i=${big.extFields.msgId}`)).text);
    const bigMsg = Array.isArray(bigView) ? bigView[0] : bigView;
    assert.equal(bigMsg.bodyLength, bigBody.length, 'bodyLength is the whole length');
    assert.equal(bigMsg.bodyTruncated, true, 'the body is marked as cut');
    assert.equal(bigMsg.body, bigBody.slice(0, 64 * 1024), 'the first 64 KiB of the body');

    // No console error but the expected one: consumerConnection of the offline group.
    const unexpected = consoleErrors.filter(e => !(/Failed to load resource/.test(e.text) && /\/api\/consumerConnection\?g=/.test(e.url) &&
      failed.some(f => f.url === e.url && /no broker knows it|CONSUMER_NOT_ONLINE|not online/i.test(f.text))));
    assert.deepEqual(unexpected, [], `console errors on the pages (failed API answers: ${JSON.stringify(failed)})`);
    for (const f of saved) process.stdout.write(`# screenshot: ${f}\n`);
  });
});
