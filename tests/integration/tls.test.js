'use strict';
// ferry-test-requires: example_send_many example_consumer mqadmin
// TLS on the remoting and HA ports (docs/TLS.md) with real mqnamesrv / mqbroker processes and
// certificates made here with the openssl command line (a CA, a server certificate for
// IP 127.0.0.1, a client certificate):
//  - enforcing (name server and broker; the broker requires client certificates, its key is an
//    encrypted PKCS#8 file): libferry's example programs with TLS send and consume; a plain
//    client and a TLS client without a certificate are refused and store nothing; openssl
//    s_client completes a handshake and verifies the configured certificate; mqadmin --tls
//    works, mqadmin without it does not;
//  - permissive (test mode: a self-signed certificate made at start): a plain client and a TLS
//    client on the same port; a SYNC_MASTER whose slave (tlsEnable=true) replicates over TLS,
//    so sends are acknowledged SEND_OK; the slave's own port (tlsMode=disabled) refuses a TLS
//    handshake.
// The harness's own checks (is the broker registered?) go through TLS while the enforcing
// cluster runs: RemotingConnection.connect is wrapped below.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const tls = require('node:tls');
const { spawnSync } = require('node:child_process');
const { Cluster, waitFor, ms, withLogsOnFailure, runMqadmin } = require('../compat/harness');
const remoting = require('../compat/remoting');
const ex = require('./examples');

const TOPIC = 'TlsTopic';
const QUEUES = 4;
const KEY_PASSWORD = 'k3y-pass';

const certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-tls-certs-'));
const clusters = [];
after(async () => {
  await ex.stopAll();
  const problems = [];
  for (const c of clusters.reverse()) problems.push(...await c.stop());
  fs.rmSync(certDir, { recursive: true, force: true });
  if (problems.length) throw new Error(`server shutdown: ${problems.join('\n')}`);
});

function openssl(args, input) {
  const r = spawnSync('openssl', args, { cwd: certDir, input: input || '', encoding: 'utf8', timeout: ms(20000) });
  if (r.error) throw new Error(`openssl ${args.join(' ')}: ${r.error.message} (is the openssl command installed?)`);
  return r;
}

function mustOpenssl(args) {
  const r = openssl(args);
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
  return r;
}

/** CA, server (IP 127.0.0.1, key also as encrypted PKCS#8) and client certificates. */
function makeCerts() {
  const f = name => path.join(certDir, name);
  const ec = [ '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes' ];
  mustOpenssl([ 'req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2',
    '-subj', '/CN=FerryMQ TLS test CA' ]);
  fs.writeFileSync(f('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  for (const who of [ 'server', 'client' ]) {
    mustOpenssl([ 'req', ...ec, '-keyout', `${who}.key`, '-out', `${who}.csr`, '-subj', `/CN=ferry-tls-${who}` ]);
    mustOpenssl([ 'x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
      '-out', `${who}.crt`, '-days', '2', ...(who === 'server' ? [ '-extfile', 'server.ext' ] : []) ]);
  }
  mustOpenssl([ 'pkcs8', '-topk8', '-in', 'server.key', '-out', 'server.p8', '-v2', 'aes-256-cbc',
    '-passout', `pass:${KEY_PASSWORD}` ]);
  // libferry's and mqadmin's client side: RocketMQ's tls.properties names.
  fs.writeFileSync(f('client-tls.properties'), [
    'tls.client.authServer=true', `tls.client.trustCertPath=${f('ca.crt')}`,
    `tls.client.certPath=${f('client.crt')}`, `tls.client.keyPath=${f('client.key')}`, '' ].join('\n'));
  return { ca: f('ca.crt'), serverCert: f('server.crt'), serverKey: f('server.key'), serverP8: f('server.p8'),
    clientCert: f('client.crt'), clientKey: f('client.key'), clientProps: f('client-tls.properties') };
}

/** A RemotingConnection over TLS. opts: ca (verify the server), cert/key (client certificate). */
function tlsConnect(addr, opts = {}, timeoutMs = 5000) {
  const i = addr.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      host: addr.slice(0, i), port: Number(addr.slice(i + 1)),
      rejectUnauthorized: !!opts.ca,
      ca: opts.ca ? fs.readFileSync(opts.ca) : undefined,
      cert: opts.cert ? fs.readFileSync(opts.cert) : undefined,
      key: opts.key ? fs.readFileSync(opts.key) : undefined,
    });
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`TLS connect to ${addr} timed out`)); }, timeoutMs);
    s.once('error', e => { clearTimeout(timer); reject(e); });
    s.once('secureConnect', () => {
      clearTimeout(timer);
      s.removeAllListeners('error');
      s.setNoDelay(true);
      resolve(new remoting.RemotingConnection(s, addr));
    });
  });
}

async function withTls(addr, opts, fn) {
  const conn = await tlsConnect(addr, opts);
  try {
    return await fn(conn);
  } finally {
    await conn.close();
  }
}

// While set, every RemotingConnection the harness opens (registration checks) uses TLS.
const plainConnect = remoting.RemotingConnection.connect;
let harnessTls = null;
remoting.RemotingConnection.connect = function (addr, timeoutMs) {
  return harnessTls ? tlsConnect(addr, harnessTls, timeoutMs) : plainConnect.call(this, addr, timeoutMs);
};

function send(conn, body, queueId = 0) {
  return remoting.sendMessage(conn, { topic: TOPIC, queueId, body: Buffer.from(body), timeoutMs: ms(10000) });
}

async function storedCount(conn) {
  let n = 0;
  for (let q = 0; q < QUEUES; q++) n += await remoting.getMaxOffset(conn, TOPIC, q);
  return n;
}

function logOf(file) {
  return fs.readFileSync(file, 'utf8');
}

test('tlsMode=enforcing with client certificates: TLS clients work, plain and certless ones are refused',
  { timeout: ms(180000) }, async () => {
    const c = makeCerts();
    const mutual = { ca: c.ca, cert: c.clientCert, key: c.clientKey };
    harnessTls = mutual;
    const cluster = new Cluster({
      name: 'int-tls-enforcing',
      namesrvConf: { tlsMode: 'enforcing', tlsServerCertPath: c.serverCert, tlsServerKeyPath: c.serverKey },
      brokerConf: {
        tlsMode: 'enforcing', tlsServerCertPath: c.serverCert, tlsServerKeyPath: c.serverP8,
        tlsServerKeyPassword: KEY_PASSWORD, tlsServerNeedClientAuth: 'require', tlsServerAuthClient: true,
        tlsServerTrustCertPath: c.ca,
        // The broker's own connections to the name server: TLS, verifying its certificate.
        tlsEnable: true, tlsClientAuthServer: true, tlsClientTrustCertPath: c.ca,
      },
    });
    clusters.push(cluster);
    try {
      await cluster.start();
    } finally {
      harnessTls = null;
    }
    await withLogsOnFailure(cluster, async () => {
      const brokerLog = cluster.broker.logFile;
      await withTls(cluster.brokerAddr, mutual, conn => remoting.createTopic(conn, TOPIC, QUEUES));
      assert.match(logOf(brokerLog), /listening on 127\.0\.0\.1:\d+ with \d+ I\/O threads, tlsMode=enforcing/);

      // libferry with TLS (FERRY_TLS_ENABLE + a tls.properties with the client certificate).
      const tlsEnv = { FERRY_TLS_ENABLE: 'true', FERRY_TLS_CONFIG_FILE: c.clientProps };
      const count = 20;
      const sender = new ex.ExampleProcess('send_tls', ex.exampleBin('example_send_many'),
        [ '-n', cluster.nsAddr, '-t', TOPIC, '-c', String(count) ],
        { logDir: cluster.dir, parse: ex.parseSent, env: tlsEnv });
      await waitFor(() => sender.exit, { timeoutMs: ms(60000), what: 'send_many over TLS to finish' });
      assert.equal(sender.exit.code, 0, `send_many over TLS failed:\n${sender.stderrTail()}`);
      assert.equal(sender.parsed.length, count);
      const consumer = new ex.ExampleProcess('consume_tls', ex.exampleBin('example_consumer'),
        [ '-n', cluster.nsAddr, '-g', 'CG_TLS', '-t', TOPIC, '--from-first' ],
        { logDir: cluster.dir, parse: ex.parseMsg, env: tlsEnv });
      await waitFor(() => { consumer.checkAlive(); return consumer.parsed.length >= count; },
        { timeoutMs: ms(60000), what: () => `the TLS consumer to get ${count} messages (has ${consumer.parsed.length})` });
      assert.deepEqual(consumer.parsed.map(m => m.body).sort(), sender.parsed.map(s => s.body).sort());
      await consumer.stop();
      const stored = await withTls(cluster.brokerAddr, mutual, storedCount);
      assert.equal(stored, count);

      // A plain client: refused at its first bytes, nothing stored.
      const plain = await plainConnect.call(remoting.RemotingConnection, cluster.brokerAddr);
      await assert.rejects(send(plain, 'plain-should-fail'), /closed/);
      await plain.close();
      await waitFor(() => /not a TLS handshake: this port has tlsMode=enforcing/.test(logOf(brokerLog)),
        { timeoutMs: ms(10000), what: 'the broker to log the refused plain client' });
      // The same on the name server.
      const plainNs = await plainConnect.call(remoting.RemotingConnection, cluster.nsAddr);
      await assert.rejects(remoting.getRoute(plainNs, TOPIC), /closed/);
      await plainNs.close();

      // TLS without a client certificate: the broker requires one.
      await assert.rejects(async () => {
        const conn = await tlsConnect(cluster.brokerAddr, { ca: c.ca });
        try {
          await send(conn, 'no-cert-should-fail');
        } finally {
          await conn.close();
        }
      });
      await waitFor(() => /TLS handshake failed: .*peer did not return a certificate/.test(logOf(brokerLog)),
        { timeoutMs: ms(10000), what: 'the broker to log the client without a certificate' });
      assert.equal(await withTls(cluster.brokerAddr, mutual, storedCount), count, 'refused clients stored nothing');

      // openssl s_client: a complete handshake that verifies the configured certificate.
      const s = openssl([ 's_client', '-connect', cluster.brokerAddr, '-CAfile', c.ca, '-cert', c.clientCert,
        '-key', c.clientKey, '-verify_return_error', '-verify_ip', '127.0.0.1' ]);
      const out = s.stdout + s.stderr;
      assert.match(out, /subject=\s*CN\s*=\s*ferry-tls-server/, out);
      assert.match(out, /Verify return code: 0 \(ok\)/, out);
      assert.match(out, /TLSv1\.[23]/, out);

      // mqadmin: --tls (client certificate from FERRY_TLS_CONFIG_FILE); without it, refused.
      const env = Object.assign({}, process.env, { FERRY_TLS_CONFIG_FILE: c.clientProps });
      const ok = await runMqadmin([ 'topicStatus', '-n', cluster.nsAddr, '-t', TOPIC, '--tls' ], { env });
      assert.equal(ok.code, 0, `mqadmin --tls: ${ok.stdout}\n${ok.stderr}`);
      assert.match(ok.stdout, /broker-a/);
      const bad = await runMqadmin([ 'topicStatus', '-n', cluster.nsAddr, '-t', TOPIC ], { env });
      assert.notEqual(bad.code, 0, 'mqadmin without --tls must fail against enforcing servers');
    });
  });

test('tlsMode=permissive: plain and TLS clients on one port; a slave replicates over TLS; disabled refuses TLS',
  { timeout: ms(180000) }, async () => {
    const secret = 'tls-test-ha-secret';
    const cluster = new Cluster({
      name: 'int-tls-permissive',
      flushDiskType: 'SYNC_FLUSH',
      namesrvConf: { tlsMode: 'permissive', tlsTestModeEnable: true },
      brokerConf: { tlsMode: 'permissive', tlsTestModeEnable: true, brokerRole: 'SYNC_MASTER', haSecret: secret,
        haSendHeartbeatInterval: 500 },
    });
    clusters.push(cluster);
    await cluster.start();
    await withLogsOnFailure(cluster, async () => {
      const masterLog = cluster.broker.logFile;
      // The slave: its own port plain only (tlsMode=disabled), everything it opens with TLS.
      const slave = await cluster.addBroker({ brokerName: cluster.brokerName, brokerConf: {
        brokerId: 1, brokerRole: 'SLAVE', tlsMode: 'disabled', tlsEnable: true,
        haMasterAddress: `127.0.0.1:${cluster.brokerPort + 1}` } });
      await waitFor(() => /HA: slave \S+: TLS established/.test(logOf(masterLog)) &&
        /HA: slave \S+ authenticated; streaming/.test(logOf(masterLog)),
      { timeoutMs: ms(30000), what: 'the slave to replicate over TLS' });

      // Plain and TLS on the master's port; SEND_OK needs the slave's acknowledgement.
      await remoting.withConnection(cluster.brokerAddr, conn => remoting.createTopic(conn, TOPIC, QUEUES));
      await waitFor(async () => (await remoting.withConnection(cluster.brokerAddr, conn => send(conn, 'warm')))
        .code === remoting.RESP.SUCCESS, { timeoutMs: ms(20000), what: 'a SYNC_MASTER send to be acknowledged' });
      const r1 = await remoting.withConnection(cluster.brokerAddr, conn => send(conn, 'plain-1', 1));
      assert.equal(r1.code, remoting.RESP.SUCCESS, `plain send: ${r1.code} ${r1.remark}`);
      const r2 = await withTls(cluster.brokerAddr, {}, conn => send(conn, 'tls-1', 2));
      assert.equal(r2.code, remoting.RESP.SUCCESS, `TLS send: ${r2.code} ${r2.remark}`);
      // libferry with TLS, test mode (no verification): name server and broker are permissive.
      const sent = await new Promise((resolve, reject) => {
        const p = new ex.ExampleProcess('send_tls_permissive', ex.exampleBin('example_send_many'),
          [ '-n', cluster.nsAddr, '-t', TOPIC, '-c', '5' ],
          { logDir: cluster.dir, parse: ex.parseSent, env: { FERRY_TLS_ENABLE: 'true' } });
        waitFor(() => p.exit, { timeoutMs: ms(60000), what: 'send_many to finish' })
          .then(() => resolve(p), reject);
      });
      assert.equal(sent.exit.code, 0, sent.stderrTail());
      assert.equal(sent.parsed.length, 5);
      // Every acknowledged message is on the slave too.
      await waitFor(async () => (await remoting.withConnection(slave.addr, storedCount)) === 8,
        { timeoutMs: ms(20000), what: 'the slave to hold the 8 messages' });

      // tlsMode=disabled (the slave's port): a TLS handshake is refused.
      await assert.rejects(tlsConnect(slave.addr, {}));
      await waitFor(() => /a TLS handshake, but this port has tlsMode=disabled/.test(logOf(slave.proc.logFile)),
        { timeoutMs: ms(10000), what: 'the slave to log the refused TLS client' });
    });
  });
