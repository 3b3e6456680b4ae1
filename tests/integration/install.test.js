'use strict';
// `make install` and what it installs (cmake/install.cmake, dist/, conf/, docs/OPERATIONS.md):
//  1. `cmake --install` of this build tree into a temp prefix installs every binary, libferry
//     (archive, header, ferry.pc), the sample configs, the systemd units and the docs, and the
//     installed binaries run;
//  2. the installed units name <prefix>/bin in ExecStart (substituted at install time), keep
//     the settings OPERATIONS.md promises and pass `systemd-analyze verify` without a warning
//     (that one check is skipped, saying so, when systemd-analyze is not installed);
//  3. every sample config loads in its launcher's check mode (-p) without a warning;
//  4. readiness (sd_notify, Type=notify): the installed mqnamesrv and mqbroker, started from the
//     samples rewritten to free ports and a temp store, with NOTIFY_SOCKET at notify_listen
//     (notify_listen.c), which SIGSTOPs the server the moment READY=1 arrives: at that moment
//     the port accepts connections and the broker is registered with the name server; a
//     producer built against the installed libferry (pkg-config) and a topic made by the
//     installed mqadmin work; SIGTERM brings STOPPING=1 and exit status 0;
//  5. the same for ferrymq (standalone.conf) and the three sample controllers
//     (controller-n*.conf), which then elect a leader.
// ferry-test-requires: notify_listen mqcontroller ferrymq mqadmin mqbench

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const net = require('node:net');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const harness = require('../compat/harness');
const remoting = require('../compat/remoting');

const { ms, waitFor, freePort, freeBrokerPort, ServerProcess, tail, trackChild, pdeathsigPrefix } = harness;

const SRC = path.resolve(__dirname, '..', '..');
const BUILD = process.env.FERRY_BUILD_DIR ||
  (process.env.FERRY_BIN_DIR && path.dirname(process.env.FERRY_BIN_DIR));
const CMAKE = process.env.FERRY_CMAKE || 'cmake';
const NOTIFY_LISTEN = process.env.FERRY_NOTIFY_LISTEN_BIN;
const BINARIES = [ 'mqnamesrv', 'mqbroker', 'mqcontroller', 'mqadmin', 'mqbench', 'ferrymq' ];
const UNITS = [ 'mqnamesrv.service', 'mqbroker.service', 'mqbroker@.service', 'mqcontroller.service',
  'mqcontroller@.service', 'ferrymq.service' ];
// A test-sized store: the samples' 1 GiB segments and default index would write gigabytes.
const SMALL_STORE = { mappedFileSizeCommitLog: 64 * 1024 * 1024, maxHashSlotNum: 50000, maxIndexNum: 200000 };

let dir; // temp dir: prefix/, configs, stores, logs
let prefix;
const running = new Set(); // ServerProcess and helper children to stop at the end

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, Object.assign({ encoding: 'utf8', timeout: ms(180000) }, opts));
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  return r;
}

function which(name) {
  for (const d of (process.env.PATH || '').split(':')) {
    const f = path.join(d || '.', name);
    try {
      fs.accessSync(f, fs.constants.X_OK);
      return f;
    } catch (_) { /* next */ }
  }
  return null;
}

const inst = (...p) => path.join(prefix, ...p);
const sampleNames = () => fs.readdirSync(path.join(SRC, 'conf')).filter(f => f.endsWith('.conf')).sort();
/** Every file of conf/ that is installed: the configs and the ACL rules (plain_acl.yml). */
const installedSamples = () => fs.readdirSync(path.join(SRC, 'conf'))
  .filter(f => f.endsWith('.conf') || f.endsWith('.yml')).sort();

/** The launcher that reads a sample config (by its name; a new kind of sample must be added). */
function launcherOf(file) {
  if (/^namesrv.*\.conf$/.test(file)) return 'mqnamesrv';
  if (/^controller.*\.conf$/.test(file)) return 'mqcontroller';
  if (file === 'standalone.conf') return 'ferrymq';
  if (/^broker.*\.conf$/.test(file)) return 'mqbroker';
  throw new Error(`conf/${file}: no launcher known for this sample; add it to launcherOf()`);
}

/** @text with the values of @over replaced (keys not in it appended); every line else kept. */
function rewriteConf(text, over) {
  const left = new Map(Object.entries(over).map(([ k, v ]) => [ k, String(v) ]));
  const lines = text.split('\n').map(line => {
    const m = /^\s*([A-Za-z0-9_.]+)\s*=/.exec(line);
    if (!m || !left.has(m[1])) return line;
    const v = left.get(m[1]);
    left.delete(m[1]);
    return `${m[1]}=${v}`;
  });
  for (const [ k, v ] of left) lines.push(`${k}=${v}`);
  return lines.join('\n') + '\n';
}

/** The installed sample @name rewritten with @over into the temp dir; its path. */
function sampleConf(name, over, as = name) {
  const file = path.join(dir, as);
  fs.writeFileSync(file, rewriteConf(fs.readFileSync(inst('share', 'ferrymq', 'conf', name), 'utf8'), over));
  return file;
}

function canConnect(port) {
  return new Promise(resolve => {
    const s = net.connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => { s.destroy(); resolve(false); }, ms(3000));
    s.once('connect', () => { clearTimeout(timer); s.destroy(); resolve(true); });
    s.once('error', () => { clearTimeout(timer); resolve(false); });
  });
}

/**
 * notify_listen on a fresh socket: { path, msgs: [{ pid, fields: [..] }], stopped: pid|null,
 * close() }. Waits until it is bound.
 */
async function startListener(name) {
  const sock = path.join(dir, `${name}.notify`);
  const argv = pdeathsigPrefix().concat([ NOTIFY_LISTEN, sock, '--stop-on-ready' ]);
  const child = trackChild(spawn(argv[0], argv.slice(1), { stdio: [ 'ignore', 'pipe', 'pipe' ] }));
  const l = { path: sock, msgs: [], stopped: null, listening: false, err: '', child };
  let buf = '';
  child.stdout.on('data', d => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let m;
      if (line === 'LISTENING') l.listening = true;
      else if ((m = /^MSG (\d+) (.*)$/.exec(line))) l.msgs.push({ pid: Number(m[1]), fields: m[2].split('\t').filter(Boolean) });
      else if ((m = /^STOPPED (\d+)$/.exec(line))) l.stopped = Number(m[1]);
    }
  });
  child.stderr.on('data', d => { l.err += d; });
  const exited = new Promise(resolve => child.once('exit', resolve));
  l.close = async () => {
    child.kill('SIGKILL');
    await exited;
    running.delete(l);
  };
  running.add(l);
  await waitFor(() => {
    if (child.exitCode !== null) throw new Error(`notify_listen exited ${child.exitCode}: ${l.err}`);
    return l.listening;
  }, { timeoutMs: ms(10000), what: 'notify_listen to bind its socket' });
  return l;
}

const has = (l, field) => l.msgs.findIndex(m => m.fields.includes(field));

/**
 * Starts @argv with NOTIFY_SOCKET, waits for READY=1 (the server is SIGSTOPped then), runs
 * @atReady() while it is stopped, then SIGCONT. Returns { srv, listener, readyMs }.
 */
async function startNotified(name, argv, { ports, atReady }) {
  const l = await startListener(name);
  const env = Object.assign({}, process.env, { NOTIFY_SOCKET: l.path, HOME: dir });
  const srv = new ServerProcess(name, argv, { cwd: dir, env, logFile: path.join(dir, `${name}.log`) });
  const t0 = Date.now();
  srv.start();
  running.add(srv);
  await waitFor(() => l.stopped, { timeoutMs: ms(60000), what: `READY=1 from ${name}` }).catch(e => {
    throw new Error(`${e.message}; notifications: ${JSON.stringify(l.msgs)}; log:\n${tail(srv.logFile, 30)}`);
  });
  const readyMs = Date.now() - t0;
  try {
    assert.equal(l.stopped, srv.pid, `${name}: READY=1 comes from the main process (NotifyAccess=main)`);
    for (const p of ports) {
      assert.ok(await canConnect(p), `${name}: port ${p} accepts connections when READY=1 arrives`);
    }
    if (atReady) await atReady();
  } finally {
    process.kill(srv.pid, 'SIGCONT');
  }
  const ready = l.msgs.filter(m => m.fields.includes('READY=1'));
  assert.equal(ready.length, 1, `${name}: one READY=1: ${JSON.stringify(l.msgs)}`);
  assert.ok(ready[0].fields.some(f => f.startsWith('STATUS=')), `${name}: READY=1 comes with a STATUS`);
  assert.ok(l.msgs.every(m => m.pid === srv.pid), `${name}: every notification from the main pid`);
  return { srv, listener: l, readyMs };
}

/** SIGTERM: STOPPING=1 arrives, the server exits 0 by itself. Returns the stop time in ms. */
async function stopNotified({ srv, listener: l }) {
  const t0 = Date.now();
  const r = await srv.stop({ graceMs: ms(60000) });
  const stopMs = Date.now() - t0;
  running.delete(srv);
  assert.deepEqual([ r.code, r.signal, r.forced ], [ 0, null, false ],
    `${srv.name} exits 0 by itself after SIGTERM; log:\n${tail(srv.logFile, 30)}`);
  await waitFor(() => has(l, 'STOPPING=1') >= 0, { timeoutMs: ms(5000), what: `STOPPING=1 from ${srv.name}` });
  assert.ok(has(l, 'STOPPING=1') > has(l, 'READY=1'), `${srv.name}: STOPPING=1 after READY=1`);
  const stopping = l.msgs[has(l, 'STOPPING=1')];
  assert.ok(stopping.fields.includes('STATUS=SIGTERM received, shutting down cleanly'), JSON.stringify(stopping));
  // Installed from a sanitizer build (FERRY_SANITIZE), a report in the log is a failure.
  const san = /(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:)[^]*/.exec(fs.readFileSync(srv.logFile, 'utf8'));
  assert.equal(san && san[0].split('\n').slice(0, 30).join('\n'), null, `${srv.name}: sanitizer report`);
  await l.close();
  return stopMs;
}

async function registered(nsAddr, brokerName, brokerAddr) {
  return remoting.withConnection(nsAddr, async conn => {
    const info = await remoting.getClusterInfo(conn);
    const bd = info.brokerAddrTable && info.brokerAddrTable[brokerName];
    return !!(bd && Object.values(bd.brokerAddrs || {}).includes(brokerAddr));
  });
}

before(() => {
  assert.ok(BUILD, 'FERRY_BUILD_DIR (or FERRY_BIN_DIR) names the build tree: run through CTest');
  assert.ok(NOTIFY_LISTEN, 'FERRY_NOTIFY_LISTEN_BIN is set by CTest');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-install-'));
  prefix = path.join(dir, 'prefix');
  const r = run(CMAKE, [ '--install', BUILD, '--prefix', prefix ]);
  assert.equal(r.status, 0, `cmake --install ${BUILD} --prefix ${prefix}:\n${r.stdout}\n${r.stderr}`);
});

after(async () => {
  for (const x of [ ...running ]) {
    if (x instanceof ServerProcess) await x.stop({ signal: 'SIGKILL' });
    else await x.close();
  }
  if (dir && !process.env.FERRY_KEEP_TMP) fs.rmSync(dir, { recursive: true, force: true });
});

test('cmake --install puts every part in the prefix, and the binaries run', () => {
  for (const b of BINARIES) fs.accessSync(inst('bin', b), fs.constants.X_OK);
  for (const f of [ [ 'lib', 'libferry.a' ], [ 'lib', 'pkgconfig', 'ferry.pc' ], [ 'include', 'ferry', 'ferry.h' ],
    [ 'lib', 'sysusers.d', 'ferrymq.conf' ], [ 'share', 'doc', 'ferrymq', 'OPERATIONS.md' ],
    [ 'share', 'doc', 'ferrymq', 'README.md' ], [ 'share', 'doc', 'ferrymq', 'examples', 'producer.c' ] ]) {
    assert.ok(fs.statSync(inst(...f)).size > 0, `${f.join('/')} installed`);
  }
  assert.deepEqual(fs.readdirSync(inst('share', 'ferrymq', 'conf')).sort(), installedSamples(), 'every sample file');
  for (const f of sampleNames()) {
    assert.equal(fs.readFileSync(inst('share', 'ferrymq', 'conf', f), 'utf8'),
      fs.readFileSync(path.join(SRC, 'conf', f), 'utf8'), `${f} copied as is`);
  }
  assert.deepEqual(fs.readdirSync(inst('lib', 'systemd', 'system')).sort(), [ ...UNITS ].sort());
  assert.ok(!fs.existsSync(inst('etc')), 'nothing under <prefix>/etc: an upgrade never overwrites a config');

  for (const b of [ 'mqnamesrv', 'mqbroker', 'mqcontroller', 'ferrymq' ]) {
    const r = run(inst('bin', b), [ '--doc-config' ]);
    assert.equal(r.status, 0, `${b} --doc-config: ${r.stderr}`);
    assert.match(r.stdout, /\| key \| default \|/, `${b} prints its key table`);
  }
  const admin = run(inst('bin', 'mqadmin'), [ '-h' ]);
  assert.equal(admin.status, 0, admin.stderr);
  assert.match(admin.stdout + admin.stderr, /usage: mqadmin <command>/);
  const bench = run(inst('bin', 'mqbench'), []);
  assert.equal(bench.status, 2, 'mqbench without arguments: a usage error');
  assert.match(bench.stderr, /usage: mqbench producer/);
});

test('the installed units name the prefix in ExecStart and keep their settings', () => {
  const unitDir = inst('lib', 'systemd', 'system');
  for (const u of UNITS) {
    const text = fs.readFileSync(path.join(unitDir, u), 'utf8');
    assert.doesNotMatch(text, /@[A-Z_]+@/, `${u}: every placeholder substituted`);
    const exec = /^ExecStart=(\S+) -c (\S+)$/m.exec(text);
    assert.ok(exec, `${u}: one ExecStart with -c`);
    assert.equal(path.dirname(exec[1]), inst('bin'), `${u}: ExecStart runs the installed binary`);
    fs.accessSync(exec[1], fs.constants.X_OK);
    assert.match(exec[2], u.includes('@') ? /^\/etc\/ferrymq\/%i\.conf$/ : /^\/etc\/ferrymq\/\w+\.conf$/);
    for (const line of [ 'Type=notify', 'NotifyAccess=main', 'Restart=on-failure', 'LimitNOFILE=1048576',
      'KillSignal=SIGTERM', 'User=ferrymq', 'StateDirectory=ferrymq', 'ReadWritePaths=/var/lib/ferrymq',
      'NoNewPrivileges=yes', 'ProtectSystem=full', 'ProtectHome=yes', 'PrivateTmp=yes' ]) {
      assert.ok(text.split('\n').includes(line), `${u}: ${line}`);
    }
    assert.match(text, /^TimeoutStopSec=\S+$/m, `${u}: TimeoutStopSec`);
    assert.match(text, new RegExp(`Documentation=file://${inst('share', 'doc', 'ferrymq')}/OPERATIONS.md`));
  }
  const sysusers = fs.readFileSync(inst('lib', 'sysusers.d', 'ferrymq.conf'), 'utf8');
  assert.match(sysusers, /^u ferrymq - /m, 'the ferrymq system user for systemd-sysusers');
});

test('the installed units pass systemd-analyze verify', t => {
  const unitDir = inst('lib', 'systemd', 'system');
  const analyze = which('systemd-analyze');
  if (!analyze) {
    t.skip('systemd-analyze is not installed: `systemd-analyze verify` not run');
    return;
  }
  // Templates are verified as an instance (verify refuses a bare template name).
  const vdir = path.join(dir, 'verify');
  fs.mkdirSync(vdir);
  for (const u of UNITS) {
    const name = u.replace('@.service', '@sample.service');
    fs.copyFileSync(path.join(unitDir, u), path.join(vdir, name));
    const r = run(analyze, [ 'verify', path.join(vdir, name) ], { env: Object.assign({}, process.env, { SYSTEMD_LOG_COLOR: '0' }) });
    // Lines about other units (the host's own) are not ours to judge.
    const ours = `${r.stdout}${r.stderr}`.split('\n').filter(l => l.includes(name) || l.includes(u));
    assert.equal(r.status, 0, `systemd-analyze verify ${name}: ${r.stdout}${r.stderr}`);
    assert.deepEqual(ours, [], `systemd-analyze verify ${name}: no warning about it`);
  }
});

test('every sample config loads in its launcher\'s check mode (-p)', () => {
  const seen = new Set();
  for (const f of sampleNames()) {
    const b = launcherOf(f);
    seen.add(b);
    const r = run(inst('bin', b), [ '-c', inst('share', 'ferrymq', 'conf', f), '-p' ], { cwd: dir });
    assert.equal(r.status, 0, `${b} -c ${f} -p: ${r.stderr}`);
    assert.equal(r.stderr.trim(), '', `${b} -c ${f} -p: no warning (unknown key?)`);
    assert.match(r.stdout, /^\w[\w.]*=/m, `${b} -c ${f} -p prints the effective config`);
  }
  assert.deepEqual([ ...seen ].sort(), [ 'ferrymq', 'mqbroker', 'mqcontroller', 'mqnamesrv' ], 'a sample for every launcher');
  // The check mode really checks: a controller naming itself outside its group is refused.
  const bad = sampleConf('controller-n0.conf', { controllerSelfId: 'n9' }, 'bad-controller.conf');
  const r = run(inst('bin', 'mqcontroller'), [ '-c', bad, '-p' ]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /controllerSelfId 'n9' is not one of the names in controllerPeers/);
});

test('installed mqnamesrv and mqbroker: READY=1 once serving, a send through the installed libferry, STOPPING=1 and exit 0',
  async t => {
    const nsPort = await freePort();
    const nsConf = sampleConf('namesrv.conf', { listenAddress: '127.0.0.1', listenPort: nsPort,
      kvConfigPath: path.join(dir, 'namesrv', 'kvConfig.json') });
    const ns = await startNotified('mqnamesrv', [ inst('bin', 'mqnamesrv'), '-c', nsConf ], { ports: [ nsPort ] });
    t.diagnostic(`mqnamesrv ready ms=${ns.readyMs}`);

    const port = await freeBrokerPort();
    const store = path.join(dir, 'store-broker');
    const nsAddr = `127.0.0.1:${nsPort}`;
    const addr = `127.0.0.1:${port}`;
    const brokerConf = sampleConf('broker.conf', Object.assign({ listenPort: port, bindAddress: '127.0.0.1',
      namesrvAddr: nsAddr, storePathRootDir: store, metricsPort: 0 }, SMALL_STORE));
    const broker = await startNotified('mqbroker', [ inst('bin', 'mqbroker'), '-c', brokerConf ], {
      ports: [ port ],
      atReady: async () => assert.ok(await registered(nsAddr, 'broker-a', addr),
        'the broker is registered with the name server when READY=1 arrives'),
    });
    t.diagnostic(`mqbroker ready ms=${broker.readyMs}`);
    const status = broker.listener.msgs.map(m => m.fields.find(f => f.startsWith('STATUS='))).filter(Boolean);
    assert.ok(status.some(s => s.includes(`opening the store in ${store}`)), `a STATUS before READY: ${status}`);
    assert.ok(status.some(s => s.includes(`serving at ${addr}`)), `the READY STATUS names the address: ${status}`);

    // A topic through the installed mqadmin, messages through a producer built on the
    // installed libferry (its header and ferry.pc).
    const topic = 'InstallTest';
    const up = run(inst('bin', 'mqadmin'), [ 'updateTopic', '-n', nsAddr, '-b', addr, '-t', topic, '-r', '2', '-w', '2' ]);
    assert.equal(up.status, 0, `mqadmin updateTopic: ${up.stdout}${up.stderr}`);
    const cc = which('cc');
    if (!cc || !which('pkg-config')) {
      t.diagnostic('no cc or pkg-config: the installed libferry is not linked');
    } else {
      const pc = run('pkg-config', [ '--static', '--cflags', '--libs', 'ferry' ],
        { env: Object.assign({}, process.env, { PKG_CONFIG_PATH: inst('lib', 'pkgconfig') }) });
      assert.equal(pc.status, 0, `pkg-config ferry: ${pc.stderr}`);
      assert.ok(pc.stdout.includes(`-I${inst('include')}`) || pc.stdout.includes('/include'), pc.stdout);
      const exe = path.join(dir, 'producer');
      const ccr = run(cc, [ '-std=c11', '-o', exe, inst('share', 'doc', 'ferrymq', 'examples', 'producer.c'),
        ...pc.stdout.trim().split(/\s+/) ]);
      assert.equal(ccr.status, 0, `cc producer.c against the installed libferry:\n${ccr.stderr}`);
      const pr = run(exe, [ nsAddr, topic, '3' ], { timeout: ms(60000) });
      assert.equal(pr.status, 0, `producer: ${pr.stdout}${pr.stderr}`);
      assert.equal(pr.stdout.split('\n').filter(l => /^\d OK status=0 /.test(l)).length, 3, pr.stdout);
    }

    const brokerStopMs = await stopNotified(broker);
    assert.ok(!fs.existsSync(path.join(store, 'abort')), 'a clean shutdown removes the abort file');
    const nsStopMs = await stopNotified(ns);
    t.diagnostic(`mqbroker stop ms=${brokerStopMs} mqnamesrv stop ms=${nsStopMs}`);
  });

test('installed ferrymq (standalone.conf): READY=1 once both serve, STOPPING=1 and exit 0', async t => {
  const nsPort = await freePort();
  const port = await freeBrokerPort();
  const store = path.join(dir, 'store-standalone');
  const conf = sampleConf('standalone.conf', Object.assign({ listenPort: port, 'namesrv.listenPort': nsPort,
    storePathRootDir: store, metricsPort: 0 }, SMALL_STORE));
  const nsAddr = `127.0.0.1:${nsPort}`;
  const s = await startNotified('ferrymq', [ inst('bin', 'ferrymq'), '-c', conf ], { ports: [ nsPort, port ] });
  // Its name server is in the process held by SIGSTOP at READY=1, so the registration is
  // checked once it runs again (mqbroker's test above checks it at READY=1; same code).
  assert.ok(await registered(nsAddr, 'broker-a', `127.0.0.1:${port}`), 'the broker is registered with its own name server');
  const stopMs = await stopNotified(s);
  assert.ok(!fs.existsSync(path.join(store, 'abort')));
  t.diagnostic(`ferrymq ready ms=${s.readyMs} stop ms=${stopMs}`);
});

test('the three installed sample controllers: READY=1 each, a leader elected, STOPPING=1 and exit 0', async t => {
  const raft = [ await freePort(), await freePort(), await freePort() ];
  const listen = [ await freePort(), await freePort(), await freePort() ];
  const peers = raft.map((p, i) => `n${i}-127.0.0.1:${p}`).join(';');
  const ctls = [];
  for (let i = 0; i < 3; i++) {
    const conf = sampleConf(`controller-n${i}.conf`, { controllerPeers: peers, listenPort: listen[i],
      controllerStorePath: path.join(dir, `controller-n${i}`) });
    ctls.push(await startNotified(`mqcontroller-n${i}`, [ inst('bin', 'mqcontroller'), '-c', conf ],
      { ports: [ listen[i] ] }));
  }
  t.diagnostic(`mqcontroller ready ms=${ctls.map(c => c.readyMs).join(',')}`);
  const addrs = listen.map(p => `127.0.0.1:${p}`).join(';');
  const meta = await waitFor(() => {
    const r = run(inst('bin', 'mqadmin'), [ 'getControllerMetaData', '-a', addrs, '--json' ], { timeout: ms(20000) });
    if (r.status !== 0) return null;
    const m = JSON.parse(r.stdout);
    return m.controllerLeaderAddress ? m : null;
  }, { timeoutMs: ms(30000), intervalMs: 200, what: 'the sample controllers to elect a leader' });
  assert.ok(listen.some(p => meta.controllerLeaderAddress === `127.0.0.1:${p}`), JSON.stringify(meta));
  for (const c of ctls) await stopNotified(c);
});
