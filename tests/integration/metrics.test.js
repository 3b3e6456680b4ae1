'use strict';
// Prometheus metrics (issue 9, docs/METRICS.md) on a real name server and a real SYNC_FLUSH
// broker, both with metricsPort=0 (the ports are read from their log lines):
//   - every answer of GET /metrics (broker and name server) is valid Prometheus text, checked by
//     a strict parser below: HELP and TYPE once per family, before its samples, which follow
//     together; every sample line `name{labels} value` with correctly escaped label values, no
//     series twice; counters end in _total; histogram buckets ascend in `le`, are cumulative and
//     end with le="+Inf" equal to _count, with a _sum;
//   - real traffic moves the counters by exactly what happened: N sends (SEND_MESSAGE_V2) make
//     messages_in +N and bytes_in + the bytes of the N stored records, N send latencies, N
//     records through the group commit (flush_batch_messages' sum) and their bytes through the
//     flushes; pulling everything makes messages_out +N and bytes_out + the pull bodies' bytes;
//   - the per-queue max offsets, committed offsets and lags of a group that committed offsets
//     equal what `mqadmin consumerProgress --json` shows, and `mqadmin brokerMetrics --json`
//     (GET_BROKER_METRICS over the client port) shows the same figures as /metrics;
//   - the name server's /metrics counts the brokers, topics and requests it served;
//   - a SYNC_MASTER with a slave: sends that waited for the slave are in the replication="sync"
//     latency series; the master shows the slave's acknowledged offset and a lag of 0, then,
//     with the slave stopped (SIGSTOP), exactly the bytes stored since as lag, and 0 again after
//     SIGCONT; the slave shows its role and its link to the master;
//   - without metricsPort (the default, -1) neither server opens an HTTP port: their listening
//     sockets (/proc) are exactly their client ports.
// ferry-test-requires: mqadmin

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const { useCluster, Cluster, waitFor, ms, withLogsOnFailure, runMqadmin } = require('../compat/harness');
const remoting = require('../compat/remoting');

const TOPIC = 'IntMetricsTopic';
const GROUP = 'GID_int_metrics';
const QUEUES = 4;
const COUNT = 40;

const ctx = useCluster({ name: 'int-metrics', flushDiskType: 'SYNC_FLUSH', brokerConf: { metricsPort: 0 },
  namesrvConf: { metricsPort: 0 } });

// ---- a strict parser of the text format 0.0.4 ------------------------------------------------

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const VALUE = /^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]Inf|NaN)$/;

// The process families every Prometheus client library exports (docs/METRICS.md, Process).
const STANDARD_PROCESS = [ 'process_cpu_seconds_total', 'process_resident_memory_bytes',
  'process_virtual_memory_bytes', 'process_open_fds', 'process_max_fds', 'process_start_time_seconds' ];

function parseValue(s, where) {
  assert.match(s, VALUE, `${where}: value ${JSON.stringify(s)}`);
  return s === '+Inf' ? Infinity : s === '-Inf' ? -Infinity : Number(s);
}

/** `k="v",k2="v2"` (the inside of the braces) into an object; throws on anything malformed. */
function parseLabels(s, where) {
  const labels = {};
  let i = 0;
  while (i < s.length) {
    const eq = s.indexOf('=', i);
    assert.ok(eq > i, `${where}: a label name at ${i}`);
    const name = s.slice(i, eq);
    assert.match(name, LABEL, `${where}: label name ${JSON.stringify(name)}`);
    assert.equal(s[eq + 1], '"', `${where}: label ${name} value must be quoted`);
    let v = '';
    let j = eq + 2;
    for (;; j++) {
      assert.ok(j < s.length, `${where}: unterminated value of label ${name}`);
      const ch = s[j];
      if (ch === '"') break;
      if (ch === '\n') assert.fail(`${where}: raw newline in label ${name}`);
      if (ch === '\\') {
        const e = s[++j];
        assert.ok(e === '\\' || e === '"' || e === 'n', `${where}: bad escape \\${e} in label ${name}`);
        v += e === 'n' ? '\n' : e;
      } else {
        v += ch;
      }
    }
    assert.ok(!(name in labels), `${where}: label ${name} twice`);
    labels[name] = v;
    i = j + 1;
    if (i < s.length) {
      assert.equal(s[i], ',', `${where}: "," between labels`);
      i++;
      assert.ok(i < s.length, `${where}: trailing comma`);
    }
  }
  return labels;
}

/** Splits a sample line into name, raw label text and value, respecting quoted label values. */
function splitSample(line, where) {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
  assert.ok(m, `${where}: a metric name`);
  const name = m[1];
  let i = name.length;
  let labelText = '';
  if (line[i] === '{') {
    let j = i + 1;
    let quoted = false;
    for (; j < line.length; j++) {
      if (quoted && line[j] === '\\') { j++; continue; }
      if (line[j] === '"') quoted = !quoted;
      else if (!quoted && line[j] === '}') break;
    }
    assert.ok(j < line.length, `${where}: unclosed {`);
    labelText = line.slice(i + 1, j);
    i = j + 1;
  }
  assert.equal(line[i], ' ', `${where}: one space before the value`);
  const rest = line.slice(i + 1).split(' ');
  assert.ok(rest.length === 1 || (rest.length === 2 && /^-?\d+$/.test(rest[1])), `${where}: value [timestamp]`);
  return { name, labelText, valueText: rest[0] };
}

const seriesKey = (name, labels) => `${name}{${Object.keys(labels).sort().map(k => `${k}=${JSON.stringify(labels[k])}`).join(',')}}`;

/**
 * Parses and validates an exposition; returns { families: Map(name -> {type, help, samples}),
 * series: Map(key -> value), get(name, labels) }.
 */
function parseExposition(text, what) {
  assert.ok(text.endsWith('\n'), `${what}: the text ends with a newline`);
  const families = new Map();
  const series = new Map();
  const done = new Set(); // families whose samples are over
  let cur = null;
  const lines = text.slice(0, -1).split('\n');
  lines.forEach((line, idx) => {
    const where = `${what} line ${idx + 1} ${JSON.stringify(line.slice(0, 160))}`;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
      if (!m) return; // a comment
      const [ , kind, name, rest ] = m;
      assert.match(name, NAME, `${where}: family name`);
      assert.ok(!done.has(name) && !(cur && cur.name !== name && families.has(name)), `${where}: family ${name} is not contiguous`);
      if (!families.has(name)) {
        if (cur) done.add(cur.name);
        families.set(name, { name, type: null, help: null, samples: [] });
      }
      const f = families.get(name);
      assert.equal(f.samples.length, 0, `${where}: ${kind} after samples of ${name}`);
      if (kind === 'HELP') {
        assert.equal(f.help, null, `${where}: HELP twice`);
        assert.ok(!/\\[^\\n]/.test(rest.replace(/\\\\/g, '')), `${where}: bad escape in HELP`);
        f.help = rest;
      } else {
        assert.equal(f.type, null, `${where}: TYPE twice`);
        assert.ok([ 'counter', 'gauge', 'histogram', 'summary', 'untyped' ].includes(rest), `${where}: type ${rest}`);
        f.type = rest;
      }
      cur = f;
      return;
    }
    assert.ok(line.length > 0, `${where}: empty line`);
    const { name, labelText, valueText } = splitSample(line, where);
    assert.ok(cur, `${where}: a sample before any HELP/TYPE`);
    const suffixOk = name === cur.name ||
      (cur.type === 'histogram' && [ '_bucket', '_sum', '_count' ].some(s => name === cur.name + s));
    assert.ok(suffixOk, `${where}: sample ${name} outside its family (current: ${cur.name})`);
    assert.ok(cur.help !== null && cur.type !== null, `${where}: HELP and TYPE of ${cur.name} before its samples`);
    const labels = parseLabels(labelText, where);
    const value = parseValue(valueText, where);
    const key = seriesKey(name, labels);
    assert.ok(!series.has(key), `${where}: series ${key} twice`);
    series.set(key, value);
    cur.samples.push({ name, labels, value });
  });
  for (const f of families.values()) {
    assert.ok(f.help !== null && f.type !== null, `${what}: family ${f.name} has HELP and TYPE`);
    assert.ok(f.name.startsWith('ferrymq_') || STANDARD_PROCESS.includes(f.name),
      `${what}: ${f.name} has the ferrymq_ prefix or is a standard process family`);
    if (f.type === 'counter') assert.ok(f.name.endsWith('_total'), `${what}: counter ${f.name} ends in _total`);
    if (f.type === 'histogram') checkHistogram(f, what);
  }
  return {
    families,
    series,
    get(name, labels = {}) {
      return series.get(seriesKey(name, labels));
    },
  };
}

function checkHistogram(f, what) {
  const groups = new Map();
  for (const s of f.samples) {
    const rest = Object.assign({}, s.labels);
    delete rest.le;
    const k = seriesKey('', rest);
    if (!groups.has(k)) groups.set(k, { buckets: [], sum: null, count: null });
    const g = groups.get(k);
    if (s.name.endsWith('_bucket')) {
      assert.ok('le' in s.labels, `${what}: ${f.name} bucket without le`);
      g.buckets.push({ le: parseValue(s.labels.le, `${f.name} le`), v: s.value });
    } else if (s.name.endsWith('_sum')) {
      g.sum = s.value;
    } else {
      g.count = s.value;
    }
  }
  for (const [ k, g ] of groups) {
    const where = `${what}: histogram ${f.name}${k}`;
    assert.ok(g.buckets.length > 1, `${where}: buckets`);
    assert.notEqual(g.sum, null, `${where}: _sum`);
    assert.notEqual(g.count, null, `${where}: _count`);
    for (let i = 1; i < g.buckets.length; i++) {
      assert.ok(g.buckets[i].le > g.buckets[i - 1].le, `${where}: le ascends`);
      assert.ok(g.buckets[i].v >= g.buckets[i - 1].v, `${where}: cumulative counts`);
    }
    const last = g.buckets[g.buckets.length - 1];
    assert.equal(last.le, Infinity, `${where}: the last bucket is le="+Inf"`);
    assert.equal(last.v, g.count, `${where}: +Inf bucket equals _count`);
  }
}

// ---- helpers --------------------------------------------------------------------------------

function httpGet(port, path, method = 'GET') {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, timeout: ms(10000), agent: false,
      headers: { Connection: 'close' } }, res => {
      const chunks = [];
      res.on('data', c => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} on ${port}: timeout`)));
    req.on('error', reject);
    req.end();
  });
}

async function logPort(file, re, what) {
  return waitFor(() => {
    const m = re.exec(fs.readFileSync(file, 'utf8'));
    return m && Number(m[1]);
  }, { timeoutMs: ms(10000), what });
}

async function scrape(port, what) {
  const r = await httpGet(port, '/metrics');
  assert.equal(r.status, 200, `${what}: GET /metrics`);
  assert.equal(r.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8', `${what}: Content-Type`);
  return parseExposition(r.body, what);
}

async function mqadminJson(args) {
  const r = await runMqadmin(args.concat([ '--json' ]));
  assert.equal(r.code, 0, `mqadmin ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** TCP ports the process @pid listens on (from /proc: its socket inodes in LISTEN state). */
function listeningPorts(pid) {
  const inodes = new Set();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch (_) { /* closed meanwhile */ }
  }
  const ports = new Set();
  for (const f of [ `/proc/${pid}/net/tcp`, `/proc/${pid}/net/tcp6` ]) {
    let text = '';
    try { text = fs.readFileSync(f, 'utf8'); } catch (_) { continue; }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10 || cols[3] !== '0A' || !inodes.has(cols[9])) continue;
      ports.add(parseInt(cols[1].split(':')[1], 16));
    }
  }
  return [ ...ports ].sort((a, b) => a - b);
}

const topicLabels = { topic: TOPIC };
const delta = (a, b, name, labels) => (b.get(name, labels) || 0) - (a.get(name, labels) || 0);

// ---- the test -------------------------------------------------------------------------------

test('metrics: valid Prometheus text, exact traffic counters, equal to mqadmin, name server, off by default', async () => {
  const cluster = ctx.cluster;
  await withLogsOnFailure(cluster, async () => {
    const bport = await logPort(cluster.broker.logFile, /HTTP port \(metrics, dashboard\) at http:\/\/[0-9.]+:(\d+)\//,
      'the broker\'s HTTP port log line');
    const nport = await logPort(cluster.namesrv.logFile, /HTTP port \(metrics\) at http:\/\/[0-9.]+:(\d+)\/metrics/,
      'the name server\'s HTTP port log line');
    assert.deepEqual(listeningPorts(cluster.broker.pid), [ cluster.brokerPort, bport ].sort((a, b) => a - b),
      'the broker listens on its client port and metricsPort');
    assert.deepEqual(listeningPorts(cluster.namesrv.pid), [ cluster.nsPort, nport ].sort((a, b) => a - b),
      'the name server listens on its port and metricsPort');

    const conn = await remoting.RemotingConnection.connect(cluster.brokerAddr);
    ctx.beforeStop.push(() => conn.close());
    await remoting.createTopic(conn, TOPIC, QUEUES);
    const s0 = await scrape(bport, 'broker /metrics before');
    assert.equal(s0.get('ferrymq_broker_role', { role: 'ASYNC_MASTER' }), 1);
    assert.equal(s0.get('ferrymq_store_write_refused', { reason: 'disk_full' }), 0);
    assert.equal(s0.get('ferrymq_store_write_refused', { reason: 'fenced' }), 0);
    assert.ok(s0.get('process_resident_memory_bytes') > 1 << 20, 'RSS');
    assert.ok(s0.get('process_open_fds') >= 3, 'open descriptors');
    assert.ok(Math.abs(s0.get('process_start_time_seconds') - Date.now() / 1000) < 600, 'start time');

    // ---- N sends, SYNC_FLUSH ----
    const perQueue = new Array(QUEUES).fill(0);
    for (let i = 0; i < COUNT; i++) {
      const q = i % QUEUES;
      remoting.expectCode(await remoting.sendMessage(conn, { topic: TOPIC, queueId: q,
        body: Buffer.from(`metrics body ${i} ${'x'.repeat(i * 7)}`), tags: 'TagM', keys: `key-${i}` }),
      remoting.RESP.SUCCESS, `send ${i}`);
      perQueue[q]++;
    }
    // the answers come after the group commit; the queues see the records once dispatched
    const s1 = await waitFor(async () => {
      const s = await scrape(bport, 'broker /metrics after the sends');
      return s.get('ferrymq_dispatch_lag_bytes') === 0 && s;
    }, { timeoutMs: ms(10000), what: 'dispatch to catch up (ferrymq_dispatch_lag_bytes 0)' });
    const sync = { flush: 'SYNC_FLUSH', replication: 'async' };
    assert.equal(delta(s0, s1, 'ferrymq_messages_in_total', topicLabels), COUNT, 'messages_in');
    assert.equal(delta(s0, s1, 'ferrymq_send_latency_seconds_count', sync), COUNT, 'send latencies');
    assert.equal(delta(s0, s1, 'ferrymq_send_latency_seconds_bucket', Object.assign({ le: '+Inf' }, sync)), COUNT);
    assert.ok(delta(s0, s1, 'ferrymq_send_latency_seconds_sum', sync) > 0, 'send latency sum');
    assert.equal(delta(s0, s1, 'ferrymq_commitlog_appended_messages_total'), COUNT, 'records appended');
    assert.equal(delta(s0, s1, 'ferrymq_flush_batch_messages_sum'), COUNT, 'records through the group commit');
    assert.ok(delta(s0, s1, 'ferrymq_flush_latency_seconds_count') >= 1, 'at least one fdatasync');
    const bytesIn = delta(s0, s1, 'ferrymq_bytes_in_total', topicLabels);
    assert.equal(delta(s0, s1, 'ferrymq_flush_batch_bytes_sum'), bytesIn, 'bytes through the flushes = bytes stored');
    assert.equal(delta(s0, s1, 'ferrymq_commitlog_max_offset_bytes'), bytesIn, 'the CommitLog grew by bytes_in');
    assert.equal(s1.get('ferrymq_group_commit_queue_depth'), 0, 'no append waits for a sync after the answers');
    assert.equal(s1.get('ferrymq_commitlog_flushed_offset_bytes'), s1.get('ferrymq_commitlog_max_offset_bytes'));
    for (let q = 0; q < QUEUES; q++) {
      assert.equal(s1.get('ferrymq_queue_max_offset', { topic: TOPIC, queue: String(q) }), perQueue[q], `queue ${q} max`);
    }

    // ---- pull everything (no commit) ----
    let pulledBytes = 0;
    let recordBytes = 0;
    let pulled = 0;
    for (let q = 0; q < QUEUES; q++) {
      let offset = 0;
      while (offset < perQueue[q]) {
        const resp = await conn.invoke(remoting.REQ.PULL_MESSAGE, { consumerGroup: GROUP, topic: TOPIC, queueId: q,
          queueOffset: offset, maxMsgNums: 3, sysFlag: 4, commitOffset: 0, suspendTimeoutMillis: 0, subscription: '*',
          subVersion: 0 });
        remoting.expectCode(resp, remoting.RESP.SUCCESS, `pull ${q}@${offset}`);
        const msgs = remoting.decodeMessages(resp.body);
        pulledBytes += resp.body.length;
        recordBytes += msgs.reduce((n, m) => n + m.storeSize, 0);
        pulled += msgs.length;
        offset = Number(resp.extFields.nextBeginOffset);
      }
    }
    assert.equal(pulled, COUNT);
    const s2 = await scrape(bport, 'broker /metrics after the pulls');
    assert.equal(delta(s1, s2, 'ferrymq_messages_out_total', topicLabels), COUNT, 'messages_out');
    assert.equal(delta(s1, s2, 'ferrymq_bytes_out_total', topicLabels), pulledBytes, 'bytes_out = pull bodies');
    assert.equal(bytesIn, recordBytes, 'bytes_in = the bytes of the records stored');
    assert.equal(delta(s1, s2, 'ferrymq_messages_in_total', topicLabels), 0, 'pulls store nothing');

    // ---- the group commits offsets; lag as consumerProgress shows it ----
    const committed = perQueue.map((n, q) => (q === 3 ? null : Math.floor(n * (q + 1) / 4)));
    for (let q = 0; q < QUEUES; q++) {
      if (committed[q] !== null) await remoting.updateConsumerOffset(conn, GROUP, TOPIC, q, committed[q]);
    }
    const progress = await mqadminJson([ 'consumerProgress', '-n', cluster.nsAddr, '-g', GROUP ]);
    const s3 = await scrape(bport, 'broker /metrics after the commits');
    const rows = progress.offsetTable.filter(r => r.topic === TOPIC);
    assert.equal(rows.length, QUEUES, 'consumerProgress shows every queue');
    let lagTotal = 0;
    for (const r of rows) {
      const l = { group: GROUP, topic: TOPIC, queue: String(r.queueId) };
      assert.equal(s3.get('ferrymq_queue_max_offset', { topic: TOPIC, queue: String(r.queueId) }), r.brokerOffset,
        `queue ${r.queueId}: max offset = consumerProgress brokerOffset`);
      assert.equal(s3.get('ferrymq_group_committed_offset', l), r.consumerOffset, `queue ${r.queueId}: committed offset`);
      assert.equal(s3.get('ferrymq_group_lag_messages', l), r.diff, `queue ${r.queueId}: lag = diff`);
      assert.equal(r.consumerOffset, committed[r.queueId] === null ? 0 : committed[r.queueId]);
      lagTotal += s3.get('ferrymq_group_lag_messages', l);
    }
    assert.equal(lagTotal, progress.diffTotal, 'total lag = consumerProgress diffTotal');

    // ---- mqadmin brokerMetrics shows the same figures (nothing moves in between) ----
    const am = await mqadminJson([ 'brokerMetrics', '-b', cluster.brokerAddr ]);
    const s4 = await scrape(bport, 'broker /metrics with mqadmin');
    assert.equal(am.broker, cluster.brokerAddr);
    const volatile = /^(process_|ferrymq_(uptime_seconds|connections|pull_held_requests|disk_|replication_slave_idle|transaction_half_oldest))/;
    let compared = 0;
    for (const s of am.samples) {
      const f = s4.families.get(s.name) || s4.families.get(s.name.replace(/_(bucket|sum|count)$/, ''));
      assert.ok(f, `mqadmin's ${s.name} is on /metrics`);
      assert.equal(s.type, f.type, `${s.name}: type`);
      if (volatile.test(s.name)) continue;
      const v = s4.get(s.name, s.labels);
      const want = typeof s.value !== 'string' ? v : v === Infinity ? '+Inf' : v === -Infinity ? '-Inf' : String(v);
      assert.equal(s.value, want, `${seriesKey(s.name, s.labels)}: mqadmin = /metrics`);
      compared++;
    }
    assert.equal(am.samples.length, s4.series.size, 'mqadmin shows every sample');
    assert.ok(compared > 100, `compared ${compared} samples`);
    const table = await runMqadmin([ 'brokerMetrics', '-b', cluster.brokerAddr ]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, new RegExp(`^ferrymq_messages_in_total\\s+topic=${TOPIC}\\s+${COUNT}$`, 'm'));

    // ---- methods and paths ----
    assert.equal((await httpGet(bport, '/metrics', 'POST')).status, 405, 'POST /metrics');
    assert.equal((await httpGet(nport, '/metrics', 'DELETE')).status, 405, 'DELETE on the name server');
    assert.equal((await httpGet(nport, '/other')).status, 404, 'the name server serves /metrics only');

    // ---- the name server ----
    const n0 = await scrape(nport, 'name server /metrics');
    assert.equal(n0.get('ferrymq_namesrv_brokers'), 1);
    assert.equal(n0.get('ferrymq_namesrv_broker_names'), 1);
    assert.equal(n0.get('ferrymq_namesrv_clusters'), 1);
    assert.ok(n0.get('ferrymq_namesrv_requests_total', { code: '103', request: 'REGISTER_BROKER' }) >= 1, 'registrations');
    assert.ok(n0.get('ferrymq_namesrv_connections') >= 1, 'the broker\'s connection');
    assert.ok(n0.get('process_resident_memory_bytes') > 1 << 20);
    await waitFor(async () => {
      const n = await scrape(nport, 'name server /metrics');
      return n.get('ferrymq_namesrv_topics') >= 1 && (await remoting.withConnection(cluster.nsAddr,
        c => remoting.getRoute(c, TOPIC))).route !== null;
    }, { timeoutMs: ms(40000), intervalMs: 500, what: `${TOPIC} registered at the name server` });
    const n1 = await scrape(nport, 'name server /metrics');
    await remoting.withConnection(cluster.nsAddr, c => remoting.getRoute(c, TOPIC));
    const n2 = await scrape(nport, 'name server /metrics');
    const route = { code: '105', request: 'GET_ROUTEINFO_BY_TOPIC' };
    assert.equal(n2.get('ferrymq_namesrv_requests_total', route) - n1.get('ferrymq_namesrv_requests_total', route), 1,
      'one route lookup counted once');
  });
});

test('replication: per-slave lag on the master, send latency of SYNC_MASTER sends, the slave\'s view', async () => {
  const SECRET = 'metrics-ha-secret';
  const repl = new Cluster({ name: 'int-metrics-repl', flushDiskType: 'SYNC_FLUSH', brokerConf: {
    brokerRole: 'SYNC_MASTER', haSecret: SECRET, haSendHeartbeatInterval: 500, metricsPort: 0 } });
  let slave = null;
  try {
    await repl.start();
    await withLogsOnFailure(repl, async () => {
      const mport = await logPort(repl.broker.logFile, /HTTP port \(metrics, dashboard\) at http:\/\/[0-9.]+:(\d+)\//,
        'the master\'s HTTP port log line');
      const conn = await remoting.RemotingConnection.connect(repl.brokerAddr);
      try {
        await remoting.createTopic(conn, TOPIC, 2);
        slave = await repl.addBroker({ brokerName: repl.brokerName, brokerConf: { brokerRole: 'SLAVE', brokerId: 1,
          haMasterAddress: `127.0.0.1:${repl.brokerPort + 1}` } });
        const sport = await logPort(slave.proc.logFile, /HTTP port \(metrics, dashboard\) at http:\/\/[0-9.]+:(\d+)\//,
          'the slave\'s HTTP port log line');
        // the first SEND_OK: the slave is in sync
        await waitFor(async () => (await remoting.sendMessage(conn, { topic: TOPIC, queueId: 0, body: Buffer.from('warm') }))
          .code === remoting.RESP.SUCCESS, { timeoutMs: ms(20000), intervalMs: 100, what: 'a SEND_OK from the SYNC_MASTER' });
        const m0 = await scrape(mport, 'master /metrics');
        const SENDS = 10;
        for (let i = 0; i < SENDS; i++) {
          remoting.expectCode(await remoting.sendMessage(conn, { topic: TOPIC, queueId: i % 2, body: Buffer.from(`r${i}`) }),
            remoting.RESP.SUCCESS, `replicated send ${i}`);
        }
        const m1 = await scrape(mport, 'master /metrics');
        const waited = { flush: 'SYNC_FLUSH', replication: 'sync' };
        assert.equal(delta(m0, m1, 'ferrymq_send_latency_seconds_count', waited), SENDS, 'sends that waited for the slave');
        assert.equal(m1.get('ferrymq_broker_role', { role: 'SYNC_MASTER' }), 1);
        assert.equal(m1.get('ferrymq_replication_slaves'), 1);
        const fam = m1.families.get('ferrymq_replication_lag_bytes');
        assert.equal(fam.samples.length, 1, 'one slave');
        const sl = fam.samples[0].labels;
        assert.equal(sl.slave_id, '1');
        const end = m1.get('ferrymq_commitlog_max_offset_bytes');
        assert.equal(m1.get('ferrymq_replication_slave_acked_offset_bytes', sl), end, 'the slave acknowledged everything');
        assert.equal(m1.get('ferrymq_replication_lag_bytes', sl), 0);

        // the slave stops: sends that do not wait (WAIT=false) make exactly their bytes of lag
        slave.proc.child.kill('SIGSTOP');
        try {
          for (let i = 0; i < 3; i++) {
            remoting.expectCode(await remoting.sendMessage(conn, { topic: TOPIC, queueId: 1, body: Buffer.from(`nw${i}`),
              props: { WAIT: 'false' } }), remoting.RESP.SUCCESS, `unreplicated send ${i}`);
          }
          const m2 = await scrape(mport, 'master /metrics, slave stopped');
          assert.equal(m2.get('ferrymq_replication_lag_bytes', sl), delta(m1, m2, 'ferrymq_bytes_in_total', topicLabels),
            'lag = the bytes stored since the slave stopped');
          assert.equal(delta(m1, m2, 'ferrymq_send_latency_seconds_count', { flush: 'SYNC_FLUSH', replication: 'async' }), 3);
        } finally {
          slave.proc.child.kill('SIGCONT');
        }
        await waitFor(async () => (await scrape(mport, 'master /metrics')).get('ferrymq_replication_lag_bytes', sl) === 0,
          { timeoutMs: ms(20000), intervalMs: 200, what: 'the slave to catch up (lag 0)' });

        const s = await scrape(sport, 'slave /metrics');
        assert.equal(s.get('ferrymq_broker_role', { role: 'SLAVE' }), 1);
        assert.equal(s.get('ferrymq_replication_master_connected'), 1);
        assert.equal(s.get('ferrymq_replication_slaves'), 0);
        assert.equal(s.get('ferrymq_commitlog_max_offset_bytes'),
          (await scrape(mport, 'master /metrics')).get('ferrymq_commitlog_max_offset_bytes'), 'the slave has the whole log');
      } finally {
        conn.close();
      }
    });
  } finally {
    if (slave && slave.proc.running) slave.proc.child.kill('SIGCONT');
    const problems = await repl.stop();
    assert.deepEqual(problems, []);
  }
});

test('metricsPort defaults to -1: no HTTP port on the broker or the name server', async () => {
  const off = new Cluster({ name: 'int-metrics-off' });
  try {
    await off.start();
    await withLogsOnFailure(off, async () => {
      assert.deepEqual(listeningPorts(off.broker.pid), [ off.brokerPort ], 'the broker listens on its client port only');
      assert.deepEqual(listeningPorts(off.namesrv.pid), [ off.nsPort ], 'the name server listens on its port only');
      assert.doesNotMatch(fs.readFileSync(off.broker.logFile, 'utf8'), /HTTP port/);
      assert.doesNotMatch(fs.readFileSync(off.namesrv.logFile, 'utf8'), /HTTP port/);
      // mqadmin still reads the figures over the client port
      const am = await mqadminJson([ 'brokerMetrics', '-b', off.brokerAddr ]);
      assert.ok(am.samples.some(s => s.name === 'ferrymq_broker_role' && s.labels.role === 'ASYNC_MASTER' && s.value === 1));
    });
  } finally {
    const problems = await off.stop();
    assert.deepEqual(problems, []);
  }
});

test('metricsBindAddress puts the HTTP port on its own address', async () => {
  // The client port on 127.0.0.1 (the harness's bindAddress), the HTTP port on 127.0.0.2 (all of
  // 127/8 is loopback on Linux): reachable there, refused on the client port's address.
  const own = new Cluster({ name: 'int-metrics-bind', brokerConf: { metricsPort: 0, metricsBindAddress: '127.0.0.2' } });
  try {
    await own.start();
    await withLogsOnFailure(own, async () => {
      const port = await logPort(own.broker.logFile, /HTTP port \(metrics, dashboard\) at http:\/\/127\.0\.0\.2:(\d+)\//,
        'the broker\'s HTTP port on 127.0.0.2');
      const ok = await new Promise((resolve, reject) => {
        const req = http.request({ host: '127.0.0.2', port, path: '/metrics', agent: false }, res => {
          res.resume();
          res.on('end', () => resolve(res.statusCode));
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(ok, 200, '/metrics on 127.0.0.2');
      await assert.rejects(httpGet(port, '/metrics'), /ECONNREFUSED/, 'nothing on 127.0.0.1 at that port');
    });
  } finally {
    const problems = await own.stop();
    assert.deepEqual(problems, []);
  }
});
