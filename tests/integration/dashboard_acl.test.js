'use strict';
// The dashboard's login (docs/DASHBOARD.md "Login") on a broker with aclEnable=true and a
// plain_acl.yml holding an admin account and an application (non-admin) account, in headless
// Chromium (Debian's /usr/bin/chromium, playwright-core) and from Node without a browser:
//   - Node: /api/topicList without a cookie and with a forged cookie is 401, /api/session is 401,
//     a login without X-Ferry-Action is 403, /metrics is not behind the login;
//   - the page shows the login form, and nothing else while not logged in; a wrong secret shows an
//     error and sets no cookie; the non-admin account is refused;
//   - the admin logs in: the cluster and topic views load, their figures equal
//     `mqadmin ... --json --accessKey --secretKey`; create topic works (the in-process commands
//     sign as the account: the broker refuses unsigned requests); the cookie is HttpOnly and
//     SameSite=Strict; the header shows the account;
//   - logout: the API answers 401 again, also to the old cookie sent from Node;
//   - the ACL file edited to drop the admin flag ends the logged-in session (the page's poll
//     shows the login form once the broker reloaded the file); that account is then refused;
//   - 5 failed logins from one address, then 429 with Retry-After, even with the right keys.
// Screenshots go to <build>/tests/artifacts/dashboard_acl/ (FERRY_DASHBOARD_ARTIFACTS overrides).
// ferry-test-requires: mqadmin
// ferry-test-npm: ali-ons

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { useCluster, waitFor, ms, withLogsOnFailure, runMqadmin, aclRulesFile } = require('../compat/harness');
const remoting = require('../compat/remoting');
const { chromium } = require('playwright-core');

const ADMIN = { accessKey: 'dashAdmin01', secretKey: 'dashAdminSecret01' };
const APP = { accessKey: 'dashApp01', secretKey: 'dashAppSecret01' };
const TOPIC = 'DashAclTopic';
const NEW_TOPIC = 'DashAclCreated';
const QUEUES = 4;
const COUNT = 10;
const CHROMIUM = process.env.FERRY_CHROMIUM || '/usr/bin/chromium';

function rules({ adminIsAdmin = true } = {}) {
  return [
    '# written by tests/integration/dashboard_acl.test.js',
    'accounts:',
    `  - accessKey: ${ADMIN.accessKey}`,
    `    secretKey: ${ADMIN.secretKey}`,
    `    admin: ${adminIsAdmin}`,
    ...(adminIsAdmin ? [] : [ '    defaultTopicPerm: PUB|SUB', '    defaultGroupPerm: PUB|SUB' ]),
    `  - accessKey: ${APP.accessKey}`,
    `    secretKey: ${APP.secretKey}`,
    '    admin: false',
    '    defaultTopicPerm: PUB|SUB',
    '    defaultGroupPerm: SUB',
    '',
  ].join('\n');
}

const { file: aclFile, dir: rulesDir, write: writeRules } = aclRulesFile('ferry-dash-acl-', rules());

const ctx = useCluster({ name: 'int-dashboard-acl', brokerConf: { aclEnable: true, aclFile, metricsPort: 0 } });
after(() => fs.rmSync(rulesDir, { recursive: true, force: true }));

function artifactsDir() {
  if (process.env.FERRY_DASHBOARD_ARTIFACTS) return path.join(process.env.FERRY_DASHBOARD_ARTIFACTS, 'acl');
  const build = process.env.FERRY_BUILD_DIR || path.dirname(process.env.FERRY_BIN_DIR || '.');
  return path.join(build, 'tests', 'artifacts', 'dashboard_acl');
}

const keys = k => [ '--accessKey', k.accessKey, '--secretKey', k.secretKey ];

async function mqadminJson(args) {
  const r = await runMqadmin(args.concat(keys(ADMIN), [ '--json' ]));
  assert.equal(r.code, 0, `mqadmin ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** extFields signed as Java's AclClientRPCHook does (values sorted by key, then the body). */
function signed(ext, { accessKey, secretKey }, body) {
  const all = Object.assign({}, ext, { AccessKey: accessKey });
  let content = '';
  for (const k of Object.keys(all).sort()) content += String(all[k]);
  const mac = crypto.createHmac('sha1', secretKey).update(Buffer.from(content, 'utf8'));
  if (body) mac.update(body);
  return Object.assign(all, { Signature: mac.digest('base64') });
}

async function httpPort(cluster) {
  return waitFor(() => {
    const m = /HTTP port \(metrics, dashboard\) at http:\/\/[0-9.]+:(\d+)\//.exec(fs.readFileSync(cluster.broker.logFile, 'utf8'));
    return m && Number(m[1]);
  }, { timeoutMs: ms(10000), what: 'the broker\'s HTTP port log line' });
}

test('the dashboard with aclEnable: login, signed commands, logout, ACL edits, lockout', async () => {
  const cluster = ctx.cluster;
  let browser = null;
  ctx.beforeStop.push(async () => { if (browser) await browser.close(); });

  await withLogsOnFailure(cluster, async () => {
    const ns = [ '-n', cluster.nsAddr ];
    const base = `http://127.0.0.1:${await httpPort(cluster)}`;
    const req = async (p, opts = {}) => {
      const r = await fetch(base + p, opts);
      const text = await r.text();
      let json = null;
      try { json = JSON.parse(text); } catch (_) { /* not JSON */ }
      return { status: r.status, headers: r.headers, text, json };
    };
    const login = (body, headers = { 'X-Ferry-Action': '1' }) => req('/api/login', { method: 'POST',
      headers: Object.assign({ 'Content-Type': 'application/json' }, headers), body: JSON.stringify(body) });

    // ---- a topic with messages, made with the admin's keys ----
    const made = await runMqadmin([ 'updateTopic', ...ns, '-c', cluster.clusterName, '-t', TOPIC, '-r', String(QUEUES),
      '-w', String(QUEUES), ...keys(ADMIN) ]);
    assert.equal(made.code, 0, `mqadmin updateTopic: ${made.stderr}`);
    await remoting.withConnection(cluster.brokerAddr, async conn => {
      for (let i = 0; i < COUNT; i++) {
        const body = Buffer.from(`acl dash ${i}`);
        const fields = signed({ a: 'PID_dash_acl', b: TOPIC, c: 'TBW102', d: QUEUES, e: i % QUEUES, f: 0, g: Date.now(), h: 0,
          i: 'WAIT\u0001true', j: 0, k: false, m: false }, ADMIN, body);
        remoting.expectCode(await conn.invoke(remoting.REQ.SEND_MESSAGE_V2, fields, { body }), remoting.RESP.SUCCESS, `send ${i}`);
      }
    });
    await waitFor(async () => (await mqadminJson([ 'topicStatus', ...ns, '-t', TOPIC ])).reduce((a, e) => a + e.maxOffset, 0) === COUNT,
      { timeoutMs: ms(15000), intervalMs: 200, what: `${COUNT} messages in ${TOPIC}` });

    // ---- without a browser ----
    let r = await req('/api/topicList');
    assert.equal(r.status, 401, `no cookie: ${r.text}`);
    assert.match(r.json.error, /log in/);
    r = await req('/api/topicList', { headers: { Cookie: `ferry_session=${crypto.randomBytes(32).toString('hex')}` } });
    assert.equal(r.status, 401, `a forged cookie: ${r.text}`);
    assert.equal((await req('/api/topicList', { headers: { Cookie: 'ferry_session=../../etc' } })).status, 401, 'a malformed cookie');
    assert.equal((await req('/api/')).status, 401, 'the index needs a login too');
    assert.equal((await req('/api/session')).status, 401, 'no session');
    r = await login(ADMIN, {});
    assert.equal(r.status, 403, `a login without X-Ferry-Action: ${r.text}`);
    assert.equal(r.headers.getSetCookie().length, 0, 'no cookie for a refused login');
    r = await login(ADMIN, { 'X-Ferry-Action': '1', Origin: 'http://evil.example' });
    assert.equal(r.status, 403, `a login from another origin: ${r.text}`);
    assert.equal((await req('/api/login')).status, 405, 'a login by GET');
    assert.equal((await req('/')).status, 200, 'the page itself loads');
    r = await req('/metrics');
    assert.equal(r.status, 200, '/metrics is not behind the login');
    assert.match(r.text, /^# (HELP|TYPE) /m);

    // ---- the browser ----
    const shots = artifactsDir();
    fs.mkdirSync(shots, { recursive: true });
    const saved = [];
    browser = await chromium.launch({ executablePath: CHROMIUM, args: [ '--no-sandbox' ] });
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    const pageErrors = [];
    const consoleErrors = [];
    page.on('pageerror', e => pageErrors.push(e.message));
    page.on('console', m => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    const shot = async name => {
      const file = path.join(shots, `${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      saved.push(file);
    };
    const loginForm = () => page.waitForSelector('[data-testid=login]', { timeout: ms(20000) });
    const fill = async k => {
      await page.fill('[data-testid=login-ak]', k.accessKey);
      await page.fill('[data-testid=login-sk]', k.secretKey);
      await page.click('[data-testid=login-submit]');
    };
    const loginError = async status => {
      const el = await page.waitForSelector(`[data-testid=login-error][data-status="${status}"]`, { timeout: ms(10000) });
      return el.textContent();
    };
    const ready = async view => page.waitForFunction(v => {
      const m = document.getElementById('main');
      return m.dataset.view === v && m.dataset.ready === '1';
    }, view, { timeout: ms(30000) });
    const pageFetch = p => page.evaluate(async u => (await fetch(u)).status, p);
    const sessionCookies = async () => (await context.cookies(base)).filter(c => c.name === 'ferry_session');

    await page.goto(`${base}/#/cluster`);
    await loginForm();
    assert.equal(await page.$('[data-testid=broker-row]'), null, 'no view behind the login form');
    await shot('login');
    await page.evaluate(() => { location.hash = '#/topics'; });
    await loginForm();
    assert.equal(await page.$('[data-testid=topic-row]'), null, 'another view stays behind the login form');

    // a wrong secret: an error that does not say which key was wrong; no cookie
    await fill({ accessKey: ADMIN.accessKey, secretKey: 'notTheSecret' });
    assert.equal(await loginError(401), 'Wrong access key or secret key.');
    assert.deepEqual(await sessionCookies(), [], 'no session cookie after a wrong secret');
    assert.equal(await pageFetch('api/topicList'), 401, 'nothing reachable after a wrong secret');
    await shot('login-wrong-secret');
    // the application account: refused as not an admin
    await fill(APP);
    assert.match(await loginError(403), new RegExp(`${APP.accessKey} is not an admin account`));
    assert.deepEqual(await sessionCookies(), [], 'no session cookie for a non-admin');
    await shot('login-not-admin');

    // the admin: back to the view that was asked for (#/topics), then the cluster and the topic
    await fill(ADMIN);
    await ready('topics');
    assert.equal(await page.textContent('[data-testid=user]'), ADMIN.accessKey, 'the header shows the account');
    const cookies = await sessionCookies();
    assert.equal(cookies.length, 1, 'one session cookie');
    assert.match(cookies[0].value, /^[0-9a-f]{64}$/, 'the token: 32 random bytes in hex');
    assert.equal(cookies[0].httpOnly, true, 'the cookie is HttpOnly');
    assert.equal(cookies[0].sameSite, 'Strict', 'the cookie is SameSite=Strict');
    assert.equal(cookies[0].path, '/');
    assert.equal(await page.evaluate(() => document.cookie), '', 'the page\'s script cannot read the cookie');
    const token = cookies[0].value;
    r = await req('/api/session', { headers: { Cookie: `ferry_session=${token}` } });
    assert.deepEqual(r.json, { acl: true, user: ADMIN.accessKey }, '/api/session names the account');

    await page.evaluate(() => { location.hash = '#/cluster'; });
    await ready('cluster');
    assert.equal(await page.$('[data-testid=error]'), null, 'the cluster view shows no error');
    const clusterInfo = await mqadminJson([ 'clusterList', ...ns ]);
    const addrs = Object.values(clusterInfo.brokerAddrTable).flatMap(b => Object.values(b.brokerAddrs)).sort();
    await page.waitForSelector(`[data-testid=broker-row][data-addr="${cluster.brokerAddr}"]`);
    assert.deepEqual((await page.$$eval('[data-testid=broker-row]', trs => trs.map(tr => tr.dataset.addr))).sort(), addrs,
      'the broker rows are the addresses of mqadmin clusterList --json');
    const brokerRow = await page.textContent(`[data-testid=broker-row][data-addr="${cluster.brokerAddr}"]`);
    assert.match(brokerRow, /ASYNC_MASTER/, 'brokerStatus (a signed broker request) answered');
    await shot('cluster');

    await page.evaluate(t => { location.hash = `#/topic/${t}`; }, TOPIC);
    await ready('topics');
    await page.waitForSelector('[data-testid=queue-row]');
    assert.equal(await page.$('[data-testid=error]'), null, 'the topic view shows no error');
    const status = await mqadminJson([ 'topicStatus', ...ns, '-t', TOPIC ]);
    const cells = field => page.$$eval(`[data-testid=queue-row] td[data-field=${field}]`, tds => tds.map(td => Number(td.dataset.value)));
    const qids = await cells('queueId');
    const maxes = await cells('maxOffset');
    assert.deepEqual(qids.map((q, i) => [ q, maxes[i] ]), status.map(e => [ e.queueId, e.maxOffset ]),
      'per-queue max offsets on the page = mqadmin topicStatus --json --accessKey --secretKey');
    await shot('topic-detail');

    // an action: create topic (UPDATE_AND_CREATE_TOPIC needs an admin account's signature)
    await page.evaluate(() => { location.hash = '#/topics'; });
    await ready('topics');
    await page.click('[data-testid=create-topic-open]');
    await page.fill('[data-testid=new-topic-name]', NEW_TOPIC);
    await page.fill('[data-testid=new-topic-wq]', '2');
    await page.fill('[data-testid=new-topic-rq]', '2');
    await page.click('[data-testid=create-topic-submit]');
    await page.waitForSelector('#confirm[open]');
    await page.click('[data-testid=confirm-ok]');
    await page.waitForSelector('[data-testid=create-topic-ok], [data-testid=error]', { timeout: ms(20000) });
    assert.equal(await page.$('[data-testid=error]'), null, `create topic succeeded: ${await page.textContent('main')}`);
    const created = await waitFor(async () => {
      const rr = await runMqadmin([ 'topicRoute', ...ns, '-t', NEW_TOPIC, '--json' ]);
      return rr.code === 0 && JSON.parse(rr.stdout);
    }, { timeoutMs: ms(15000), what: `mqadmin topicRoute ${NEW_TOPIC}` });
    assert.equal(created.queueDatas[0].writeQueueNums, 2, 'the created topic has the queues given on the page');
    assert.match(fs.readFileSync(cluster.broker.logFile, 'utf8'), new RegExp(`dashboard login of accessKey ${ADMIN.accessKey} from 127\\.0\\.0\\.1`));

    // logout: the login form, 401 for the page and for the old cookie
    await page.click('[data-testid=logout]');
    await loginForm();
    assert.equal(await page.textContent('[data-testid=login-reason]'), 'Logged out.');
    assert.equal(await pageFetch('api/topicList'), 401, 'the API answers 401 after the logout');
    assert.deepEqual(await sessionCookies(), [], 'the logout cleared the cookie');
    r = await req('/api/topicList', { headers: { Cookie: `ferry_session=${token}` } });
    assert.equal(r.status, 401, 'the old cookie no longer works: the session ended on the server');

    // the admin flag dropped from the file: the logged-in session ends at its next request
    await fill(ADMIN);
    await ready('topics');
    await page.evaluate(t => { location.hash = `#/topic/${t}`; }, TOPIC); // polls topicStatus every 3 s
    await ready('topics');
    await page.waitForSelector('[data-testid=queue-row]');
    writeRules(rules({ adminIsAdmin: false }));
    await loginForm(); // the next poll after the reload
    assert.match(await page.textContent('[data-testid=login-reason]'), /session ended/);
    assert.equal(await page.isVisible('[data-testid=user]'), false, 'the header no longer shows the account');
    await shot('session-ended');
    await fill(ADMIN);
    assert.match(await loginError(403), /not an admin account/, 'the account without admin: refused');
    writeRules(rules());
    await waitFor(async () => (await login(ADMIN)).status === 200,
      { timeoutMs: ms(15000), intervalMs: 200, what: 'the admin flag back after the reload' });

    // guessing: 5 failures from one address, then 429 for a minute, even with the right keys
    for (let i = 0; i < 5; i++) {
      r = await login({ accessKey: ADMIN.accessKey, secretKey: `guess${i}xx` });
      assert.equal(r.status, 401, `bad login ${i + 1}: ${r.text}`);
    }
    r = await login({ accessKey: ADMIN.accessKey, secretKey: 'guess5xx' });
    assert.equal(r.status, 429, `the 6th bad login: ${r.text}`);
    assert.ok(Number(r.headers.get('retry-after')) > 0 && Number(r.headers.get('retry-after')) <= 60, 'Retry-After');
    assert.equal((await login(ADMIN)).status, 429, 'the right keys too while locked out');
    await page.fill('[data-testid=login-ak]', ADMIN.accessKey);
    await page.fill('[data-testid=login-sk]', ADMIN.secretKey);
    await page.click('[data-testid=login-submit]');
    assert.match(await loginError(429), /Too many failed logins/);
    await shot('login-locked');
    const log = fs.readFileSync(cluster.broker.logFile, 'utf8');
    assert.match(log, new RegExp(`WARN.*dashboard login refused from 127\\.0\\.0\\.1 for accessKey ${ADMIN.accessKey}`));
    assert.match(log, /dashboard logins from 127\.0\.0\.1 refused for 60 s/);
    assert.ok(!log.includes('notTheSecret') && !log.includes('guess0xx'), 'no secret in the log');

    assert.deepEqual(pageErrors, [], 'no uncaught exception on the page');
    const unexpected = consoleErrors.filter(t => !/Failed to load resource: the server responded with a status of (401|403|429)/.test(t));
    assert.deepEqual(unexpected, [], 'no console error but the refused requests');
    for (const f of saved) process.stdout.write(`# screenshot: ${f}\n`);
  });
});
