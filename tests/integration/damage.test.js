'use strict';
// Broker-level storage damage (issue 7, part 3). A real mqbroker is filled with known messages
// (keys, 3 topics / 9 queues, a subscription group with committed offsets, a delayed message
// pending), stopped with SIGTERM (snapshot "clean") and, after more sends, with kill -9
// (snapshot "kill9"). Each case restores one snapshot, damages ONE kind of file, restarts the
// broker and holds it to this:
//   - it starts, or it exits non-zero with a message naming the damaged file (log/stderr);
//   - when it starts: every message pulled back passes its body CRC, its whole-record CRC
//     (__CRC32#) and equals what was sent (topic, queue, body); every message stored before
//     the damaged point is there; QUERY_MESSAGE by key returns only the right message (and
//     finds every sampled key unless the case damaged the index); consumer offsets, topics and
//     subscription groups equal the file (or its .bak when the file is damaged); the pending
//     delayed message is delivered; the broker takes a new message and stops cleanly.
// Store-level damage (CommitLog tail, ConsumeQueue, checkpoint at the store API) is in
// tests/unit/test_store_fault.c; this adds the process, the config files and the index.
// Random damage is seeded: FERRY_DAMAGE_SEED=<n> replays a run (the seed is printed).
//
// Behaviour found (clean = SIGTERM snapshot, kill9 = kill -9 snapshot; "kept" = every message
// before the damaged point served intact; query = sampled keys found by QUERY_MESSAGE):
//
// | case (snapshot)                      | damage                                   | behaviour found                                                      |
// | ------------------------------------ | ---------------------------------------- | -------------------------------------------------------------------- |
// | cl-flip-middle (clean)               | 3 bit flips in segment 2 of 3+           | starts; the damaged records are not served (CRC checked on pull:     |
// |                                      |                                          | FIXED, they were served corrupt), all others kept; query 8/8         |
// | cl-flip-last (clean), -k9 (kill9)    | 3 bit flips in the last data segment     | starts; recovery cuts at the first bad record: all before it kept,   |
// |                                      |                                          | the rest of that segment lost (e.g. 48/300); query 8/8               |
// | cl-truncate-last (clean), -k9        | last data segment cut to 1/2..3/4        | refused, exit 1: "<segment>: size N, expected 131072"                |
// | cl-delete-middle (clean)             | segment 2 deleted                        | refused, exit 1: "CommitLog segment <next> does not follow ..."      |
// | cl-delete-last (clean), -k9          | last data segment deleted                | refused the same way (the preallocated next segment is left)         |
// | cq-flip (clean)                      | bit flips in every file of DmgA/1        | starts; bad entries cut at recovery, a mismatch found at run time    |
// |                                      |                                          | answers SYSTEM_ERROR "being repaired" until rebuilt; all kept        |
// | cq-truncate-k9 (kill9)               | a ConsumeQueue file cut to 100 bytes     | starts; file dropped ("wrong size"), queue rebuilt; all kept         |
// | cq-delete-first (clean)              | first ConsumeQueue file of DmgB/0 gone   | starts; queue rebuilt from the CommitLog; all kept (FIXED: entries   |
// |                                      |                                          | 0..39 were never served, the queue looked expired)                   |
// | index-flip (clean)                   | 40 flips per IndexFile                   | starts; query finds ~7/8 keys, never a wrong message                 |
// | index-header / index-truncate        | header scribbled / file cut              | starts; the file is dropped, not rebuilt: its keys are QUERY_NOT_FOUND|
// | index-delete-k9 (kill9)              | every IndexFile deleted                  | starts; only keys re-indexed since the checkpoint are found (3/8)    |
// | checkpoint garbage / truncated (k9) / deleted (k9) | -                          | starts; full scan; all kept; query 8/8                               |
// | abort-garbage (clean)                | abort file created, random bytes         | starts (abnormal recovery); all kept                                 |
// | abort-delete-k9 (kill9)              | abort removed after kill -9              | starts; all kept                                                     |
// | queues-garbage (clean)               | FerryMQ queue table scribbled            | starts; all kept                                                     |
// | <cfg>-bak, for consumerOffset,       | file garbage, .bak intact                | starts with the .bak (the previous version: DmgC created after it    |
// | topics, subscriptionGroup, delayOffset|                                         | is missing from topics.json.bak; re-created by hand, messages kept)  |
// | <cfg>-nobak / <cfg>-both             | file cut, no .bak / both garbage         | refused, exit 1: "<path>: not valid JSON (and no usable .bak)"       |
// | topics-digit-bak                     | garbage starting with a digit            | .bak used (FIXED: loaded as an empty topic table, no fallback)       |
// | consumerOffset-empty-bak / -nobak    | file emptied, .bak kept / removed        | .bak used / refused "empty (and no usable .bak)" (FIXED: started     |
// |                                      |                                          | with no offsets, against BROKER.md)                                  |
// Every started case: CRCs and contents of all pulled messages checked, offsets, topics and
// groups equal the file used, D1/D1b/D2 delayed messages delivered, a new send + pull works,
// SIGTERM exits 0. Lost counts depend on the seed.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { Cluster, waitFor, ms, sleep } = require('../compat/harness');
const remoting = require('../compat/remoting');
const lib = require('./damage_lib');
const { RESP } = remoting;

const SEED = Number(process.env.FERRY_DAMAGE_SEED) || (Date.now() % 2147483647);
process.stdout.write(`# damage seed ${SEED} (replay: FERRY_DAMAGE_SEED=${SEED})\n`);

const SEG = 131072; // mappedFileSizeCommitLog: small (maxMessageSize + 65544 must fit), so the log has several segments
const TOPICS = { DmgA: 4, DmgB: 2, DmgC: 3 }; // DmgC is created in phase 2
const DELAY_TOPIC = 'DmgDelay';
const GROUP = 'GID_dmg';
const GROUP2 = 'GID_dmg2'; // created in phase 2
const CFG = [ 'consumerOffset.json', 'topics.json', 'subscriptionGroup.json', 'delayOffset.json' ];

const sent = new Map(); // key -> { topic, queueId, body }
const results = [];
let cluster;
let storeDir;
let snapDir;
const snaps = {}; // name -> { dir, keys: Set }
let baseline = null; // the clean snapshot as served: key -> commitLogOffset, size

function bodyFor(key, rand) {
  const n = 300 + rand.int(1300);
  let s = `${key}|`;
  while (s.length < n) s += String.fromCharCode(97 + rand.int(26));
  return Buffer.from(s);
}

async function sendMany(conn, topics, count, prefix, rand) {
  const names = Object.keys(topics);
  for (let i = 0; i < count; i++) {
    const topic = names[i % names.length];
    const queueId = rand.int(topics[topic]);
    const key = `${prefix}-${i}`;
    const body = bodyFor(key, rand);
    const resp = await remoting.sendMessage(conn, { topic, queueId, body, keys: key, tags: 'T' + (i % 3) });
    remoting.expectCode(resp, RESP.SUCCESS, `send ${key}`);
    sent.set(key, { topic, queueId: Number(resp.extFields.queueId), body });
  }
}

async function commitAll(conn, group, fraction) {
  for (const [ topic, n ] of Object.entries(TOPICS)) {
    for (let q = 0; q < n; q++) {
      const max = await remoting.getMaxOffset(conn, topic, q);
      if (max > 0) await remoting.updateConsumerOffset(conn, group, topic, q, Math.floor(max * fraction));
    }
  }
}

const delayedPhys = {}; // key -> CommitLog offset of its SCHEDULE_TOPIC_XXXX record
let delivered = null; // key -> { phys, size } of its delivered copy in DELAY_TOPIC (baseline)

async function sendDelayed(conn, key, level) {
  const resp = await remoting.sendMessage(conn, { topic: DELAY_TOPIC, queueId: 0, body: Buffer.from(`${key}|delayed`),
    keys: key, props: { DELAY: String(level) } });
  remoting.expectCode(resp, RESP.SUCCESS, `send delayed ${key}`);
  delayedPhys[key] = Number(remoting.decodeMessageId(resp.extFields.msgId).offset);
}

async function delayTopicMsgs(conn) {
  return (await lib.pullQueue(conn, 'GID_dmg_probe', DELAY_TOPIC, 0)).msgs;
}

async function delayTopicKeys(conn) {
  return (await delayTopicMsgs(conn)).map(m => m.keys);
}

function readJson(file) {
  try { return JSON.parse(fs.readFileSync(file, 'utf8')); } catch (_) { return null; }
}

// ---------------------------------------------------------------------------------------------

before(async () => {
  cluster = new Cluster({ name: 'int-damage', brokerConf: {
    mappedFileSizeCommitLog: SEG,
    maxMessageSize: 8192,
    mappedFileSizeConsumeQueue: 40 * 20, // 40 entries per ConsumeQueue file
    maxHashSlotNum: 256,
    maxIndexNum: 300, // ~150 messages per IndexFile (UNIQ_KEY + KEYS)
    messageDelayLevel: '1s 8s 10s',
    flushDelayOffsetInterval: 200,
    flushConsumerOffsetInterval: 200,
  } });
  await cluster.start();
  storeDir = path.join(cluster.dir, 'store');
  snapDir = path.join(cluster.dir, 'snapshots');
  fs.mkdirSync(snapDir);
  const rand = lib.rng(SEED);
  await remoting.withConnection(cluster.brokerAddr, async conn => {
    await remoting.createTopic(conn, 'DmgA', TOPICS.DmgA);
    await remoting.createTopic(conn, 'DmgB', TOPICS.DmgB);
    await remoting.createTopic(conn, DELAY_TOPIC, 1);
    await lib.createGroup(conn, GROUP, { retryMaxTimes: 7 });
    await sendMany(conn, { DmgA: 4, DmgB: 2 }, 150, 'p1', rand);
    await commitAll(conn, GROUP, 1 / 3);
    await sendDelayed(conn, 'D1', 1);
    await waitFor(async () => (await delayTopicKeys(conn)).includes('D1'), { timeoutMs: ms(10000), what: 'D1 delivered' });
  });
  // Version 1 of every config file is written at this stop; version 2 at the next one.
  await cluster.restartBroker();
  await remoting.withConnection(cluster.brokerAddr, async conn => {
    await remoting.createTopic(conn, 'DmgC', TOPICS.DmgC);
    await lib.createGroup(conn, GROUP2, { retryMaxTimes: 3 });
    await sendMany(conn, TOPICS, 150, 'p2', rand);
    await commitAll(conn, GROUP, 2 / 3);
    await commitAll(conn, GROUP2, 1 / 2);
    await sendDelayed(conn, 'D1b', 1); // delivered before the stop: delayOffset.json gets a .bak
    await waitFor(async () => (await delayTopicKeys(conn)).includes('D1b'), { timeoutMs: ms(10000), what: 'D1b delivered' });
    await sleep(400); // two flushDelayOffsetInterval periods: the moved offset is written
    await sendDelayed(conn, 'D2', 2); // 8 s: still pending at the stop
  });
  const st = await cluster.stopBroker();
  assert.equal(st.code, 0, 'clean stop');
  snaps.clean = { dir: path.join(snapDir, 'clean'), keys: new Set(sent.keys()) };
  lib.copyDir(storeDir, snaps.clean.dir);
  // kill9: more messages and commits, then kill -9 (abort file left, checkpoint old).
  await cluster.startBroker();
  await remoting.withConnection(cluster.brokerAddr, async conn => {
    await sendMany(conn, { DmgA: 4 }, 60, 'p3', rand);
    await commitAll(conn, GROUP, 0.9);
  });
  await cluster.stopBroker({ kill9: true });
  snaps.kill9 = { dir: path.join(snapDir, 'kill9'), keys: new Set(sent.keys()) };
  lib.copyDir(storeDir, snaps.kill9.dir);
});

after(async () => {
  if (results.length) {
    const w = Math.max(...results.map(r => r.name.length));
    process.stdout.write('# damage results\n' + results.map(r =>
      `# ${r.name.padEnd(w)} | ${r.snap.padEnd(5)} | ${r.outcome}`).join('\n') + '\n');
  }
  if (cluster) {
    const problems = await cluster.stop();
    if (problems.length) throw new Error(`server shutdown: ${problems.join('\n')}`);
  }
});

// ---------------------------------------------------------------------------------------------
// Checks

/** Whole-record CRC (__CRC32#, STORAGE.md §2) of each record in a pull body; throws on a mismatch. */
function checkRecordCrcs(buf) {
  let pos = 0;
  let n = 0;
  while (pos + 4 <= buf.length) {
    const total = buf.readInt32BE(pos);
    const r = buf.subarray(pos, pos + total);
    const tail = r.subarray(total - 20).toString('latin1');
    if (!tail.startsWith('__CRC32#\u0001') || !tail.endsWith('\u0002')) {
      throw new Error(`record #${n}: no __CRC32# property at its end (${JSON.stringify(tail)})`);
    }
    const want = Number(tail.slice(9, 19).split('').reverse().join(''));
    const got = remoting.crc32(r.subarray(0, total - 20)) & 0x7fffffff;
    if (want !== got) throw new Error(`record #${n} at phys ${r.readBigInt64BE(28)}: whole-record CRC ${want} != ${got}`);
    pos += total;
    n++;
  }
}

async function pullRaw(conn, topic, queueId, offset) {
  const resp = await conn.invoke(remoting.REQ.PULL_MESSAGE, { consumerGroup: 'GID_dmg_probe', topic, queueId,
    queueOffset: offset, maxMsgNums: 32, sysFlag: 4, commitOffset: 0, suspendTimeoutMillis: 0, subscription: '*',
    subVersion: 0 });
  const r = { code: resp.code, remark: resp.remark, next: Number(resp.extFields.nextBeginOffset), msgs: [] };
  if (resp.code === RESP.SUCCESS) {
    r.msgs = remoting.decodeMessages(resp.body); // structure + body CRC
    checkRecordCrcs(resp.body);
  }
  return r;
}

/** Every message of every topic, checked against what was sent. */
async function readEverything(conn) {
  const served = new Map(); // key -> { phys, size, topic, queueId, queueOffset }
  const errors = [];
  for (const [ topic, n ] of Object.entries(TOPICS)) {
    for (let q = 0; q < n; q++) {
      const max = await remoting.getMaxOffset(conn, topic, q);
      const minR = await conn.invoke(remoting.REQ.GET_MIN_OFFSET, { topic, queueId: q });
      let off = minR.code === RESP.SUCCESS ? Number(minR.extFields.offset) : 0;
      let guard = 0;
      let repairDeadline = 0;
      while (off < max && guard++ < 2000) {
        let r;
        try {
          r = await pullRaw(conn, topic, q, off);
        } catch (e) {
          throw new Error(`${topic}/${q}@${off}: the broker served a corrupt record: ${e.message}`);
        }
        if (r.code === RESP.SYSTEM_ERROR && /being repaired/.test(r.remark || '')) {
          // The broker found a damaged queue entry and rebuilds the queue: pull again, as a
          // consumer would, within a deadline.
          if (!repairDeadline) repairDeadline = Date.now() + ms(10000);
          if (Date.now() < repairDeadline) {
            await sleep(100);
            continue;
          }
        }
        repairDeadline = 0;
        if (r.code !== RESP.SUCCESS || !r.msgs.length) {
          errors.push(`${topic}/${q}@${off}: code ${r.code} ${r.remark || ''}`);
          if (r.next > off) { off = r.next; continue; }
          break;
        }
        for (const m of r.msgs) {
          const s = sent.get(m.keys);
          assert.ok(s, `${topic}/${q}@${m.queueOffset} holds a message that was sent (keys ${m.keys})`);
          assert.equal(m.topic, s.topic, `${m.keys}: topic`);
          assert.equal(m.queueId, s.queueId, `${m.keys}: queue`);
          assert.ok(m.body.equals(s.body), `${m.keys}: body equals what was sent`);
          assert.ok(!served.has(m.keys), `${m.keys} served once (also at ${JSON.stringify(served.get(m.keys))})`);
          served.set(m.keys, { phys: Number(m.commitLogOffset), size: m.storeSize, topic, queueId: q,
            queueOffset: m.queueOffset });
        }
        off = r.next;
      }
    }
  }
  return { served, errors };
}

function offsetsOf(doc) {
  const out = {};
  for (const [ k, v ] of Object.entries((doc && doc.offsetTable) || {})) {
    if (k.endsWith(`@${GROUP}`) || k.endsWith(`@${GROUP2}`)) {
      for (const [ q, off ] of Object.entries(v)) out[`${k}/${q}`] = Number(off);
    }
  }
  return out;
}

async function servedOffsets(conn, expected) {
  const out = {};
  for (const k of Object.keys(expected)) {
    const [ tg, q ] = k.split('/');
    const [ topic, group ] = tg.split('@');
    out[k] = await remoting.queryConsumerOffset(conn, group, topic, Number(q));
  }
  return out;
}

/**
 * Restores `snap`, runs damage(store) (returns { file, desc, lostFrom, indexLossy, cfgFrom }),
 * starts the broker and checks it. expectRefusal: the case must be refused.
 */
async function runCase(name, snapName, damage, { expectRefusal = false, allowRefusal = false } = {}) {
  const snap = snaps[snapName];
  lib.copyDir(snap.dir, storeDir);
  const rand = lib.rng(SEED ^ [ ...name ].reduce((h, c) => (h * 31 + c.charCodeAt(0)) | 0, 7));
  const d = damage(storeDir, rand) || {};
  const cfgDir = path.join(storeDir, 'config');
  // Expected config state: the files as they are after the damage (main, else .bak).
  const cfgExpect = {};
  for (const f of CFG) {
    cfgExpect[f] = readJson(path.join(cfgDir, f));
    if (!cfgExpect[f]) cfgExpect[f] = readJson(path.join(cfgDir, f + '.bak'));
  }
  const res = await lib.startOrRefuse(cluster);
  const row = { name, snap: snapName, outcome: '' };
  results.push(row);
  if (!res.started) {
    const line = (res.log.split('\n').find(l => /cannot start|error|damaged|corrupt/i.test(l)) || res.log.trim().split('\n').pop() || '').trim();
    row.outcome = `REFUSED (exit ${res.code}): ${line.replace(/^.*?mqbroker: /, '').slice(0, 150)}`;
    assert.ok(expectRefusal || allowRefusal, `${name}: the broker refused to start but should have started:\n${res.log}`);
    assert.notEqual(res.code, 0, `${name}: a refusal exits non-zero`);
    assert.equal(res.signal, null, `${name}: a refusal is an exit, not a crash (signal ${res.signal})`);
    assert.ok([].concat(d.file).some(f => res.log.includes(f)),
      `${name}: the refusal names the damaged file ${d.file}:\n${res.log}`);
    return row;
  }
  try {
    if (expectRefusal) {
      row.outcome = 'FAILED: started although it must refuse';
      assert.fail(`${name}: the broker started although it must refuse (${d.desc})`);
    }
    await remoting.withConnection(cluster.brokerAddr, async conn => {
      // A topic the config fallback does not know is re-created with its queue count, as an
      // operator would; its messages must then be served.
      const known = await lib.allTopicConfig(conn);
      const recreated = [];
      for (const [ t, n ] of Object.entries(TOPICS)) {
        if (known[t]) continue;
        assert.ok(d.cfgFrom === 'topics.json.bak' && !cfgExpect['topics.json'].topicConfigTable[t],
          `${name}: topic ${t} exists after the restart`);
        await remoting.createTopic(conn, t, n);
        recreated.push(t);
      }
      const { served, errors } = await readEverything(conn);
      // Every message stored before the damaged point is served.
      const missing = [];
      for (const key of snap.keys) {
        const b = baseline && baseline.get(key);
        const before = b ? (d.lostFrom === undefined || b.phys + b.size <= d.lostFrom) : true;
        if (before && !served.has(key)) missing.push(key);
      }
      let lost = 0;
      for (const key of snap.keys) if (!served.has(key)) lost++;
      assert.deepEqual(missing.slice(0, 10), [], `${name}: messages stored before the damaged point ` +
        `(${d.lostFrom === undefined ? 'none damaged' : 'phys < ' + d.lostFrom}) are served; missing ` +
        `${missing.length}; pull errors: ${JSON.stringify(errors.slice(0, 5))}`);
      // Query by key: a sample spread over the log.
      const keys = [ ...served.keys() ].sort((a, b) => served.get(a).phys - served.get(b).phys);
      const sample = [];
      for (let i = 0; i < 8 && keys.length; i++) sample.push(keys[Math.floor(i * (keys.length - 1) / 7)]);
      let found = 0;
      const notFound = [];
      for (const key of sample) {
        const s = sent.get(key);
        const q = await lib.queryByKey(conn, s.topic, key);
        assert.ok(q.code === RESP.SUCCESS || q.code === RESP.QUERY_NOT_FOUND,
          `${name}: QUERY_MESSAGE ${key}: SUCCESS or QUERY_NOT_FOUND, got ${q.code} ${q.remark}`);
        for (const m of q.msgs) {
          assert.ok((m.keys || '').split(' ').includes(key), `${name}: QUERY_MESSAGE ${key} returned ${m.keys}`);
          assert.ok(m.body.equals(s.body), `${name}: QUERY_MESSAGE ${key} returns the body that was sent`);
        }
        if (q.msgs.length) found++;
        else notFound.push(key);
      }
      if (!d.indexLossy) {
        assert.deepEqual(notFound, [], `${name}: every sampled key is found by QUERY_MESSAGE`);
      }
      // Config state.
      const expOff = offsetsOf(cfgExpect['consumerOffset.json']);
      assert.ok(Object.keys(expOff).length > 0, `${name}: the snapshot has committed offsets`);
      assert.deepEqual(await servedOffsets(conn, expOff), expOff, `${name}: consumer offsets equal ${d.cfgFrom || 'the file'}`);
      const topics = await lib.allTopicConfig(conn);
      for (const [ t, tc ] of Object.entries(cfgExpect['topics.json'].topicConfigTable)) {
        assert.ok(topics[t], `${name}: topic ${t} exists`);
        assert.equal(Number(topics[t].writeQueueNums), Number(tc.writeQueueNums), `${name}: ${t} writeQueueNums`);
        assert.equal(Number(topics[t].readQueueNums), Number(tc.readQueueNums), `${name}: ${t} readQueueNums`);
      }
      const groups = await lib.allGroupConfig(conn);
      for (const [ g, gc ] of Object.entries(cfgExpect['subscriptionGroup.json'].subscriptionGroupTable)) {
        assert.ok(groups[g], `${name}: group ${g} exists`);
        assert.equal(Number(groups[g].retryMaxTimes), Number(gc.retryMaxTimes), `${name}: ${g} retryMaxTimes`);
      }
      // The delayed messages are delivered (at least once): D1 and D1b were delivered before
      // the stop, D2 was pending; each is required when its records lie before the damage.
      const kept = (phys, size) => d.lostFrom === undefined || phys + size <= d.lostFrom;
      const want = [ 'D1', 'D1b', 'D2' ].filter(k => (k === 'D2' || !delivered) ? kept(delayedPhys[k], 1000)
        : delivered[k] && kept(delivered[k].phys, delivered[k].size));
      const dmsgs = await waitFor(async () => {
        const m = await delayTopicMsgs(conn);
        return want.every(k => m.some(x => x.keys === k)) ? m : null;
      }, { timeoutMs: ms(15000), what: `${name}: delayed ${want} in ${DELAY_TOPIC}` });
      if (name === 'baseline') {
        delivered = {};
        for (const m of dmsgs) delivered[m.keys] = { phys: Number(m.commitLogOffset), size: m.storeSize };
      }
      // Still writable and readable.
      const key = `after-${name}`;
      const body = Buffer.from(`${key}|new`);
      const resp = remoting.expectCode(await remoting.sendMessage(conn, { topic: 'DmgA', queueId: 0, body, keys: key }),
        RESP.SUCCESS, `${name}: send after restart`);
      // ASYNC_FLUSH: the queue entry is added by the dispatcher just after the answer.
      const r = await waitFor(async () => {
        const x = await pullRaw(conn, 'DmgA', 0, Number(resp.extFields.queueOffset));
        return x.code === RESP.SUCCESS ? x : null;
      }, { timeoutMs: ms(5000), what: `${name}: the new message pulled back` });
      assert.ok(r.msgs[0].body.equals(body));
      row.outcome = `starts; kept ${served.size}/${snap.keys.size}` + (lost ? ` (lost ${lost} from phys ${d.lostFrom})` : '') +
        `; query ${found}/${sample.length}` + (d.cfgFrom ? `; config from ${d.cfgFrom}` : '') +
        (errors.length ? `; pull errors ${errors.length}` : '') +
        (recreated.length ? `; topic ${recreated} not in the .bak, re-created by hand` : '');
      if (name === 'baseline' || name === 'baseline-kill9') {
        if (name === 'baseline') baseline = new Map();
        for (const [ k, v ] of served) if (!baseline.has(k)) baseline.set(k, v);
        assert.equal(served.size, snap.keys.size, `${name}: every acknowledged message is served`);
      }
    });
  } catch (e) {
    row.outcome = `FAILED: ${e.message.split('\n')[0].slice(0, 160)}`;
    process.stderr.write(`\n===== ${name}: broker log =====\n${lib.logSince(cluster.broker, 0).split('\n').slice(-60).join('\n')}\n`);
    throw e;
  } finally {
    const st = await cluster.stopBroker();
    if (!row.outcome.startsWith('FAILED')) {
      assert.equal(st.code, 0, `${name}: the broker stops cleanly after SIGTERM (code ${st.code} signal ${st.signal})`);
    }
  }
  return row;
}

// ---------------------------------------------------------------------------------------------
// Damage

const clDir = s => path.join(s, 'commitlog');
// Segments holding records (the store preallocates the next one, all zeros).
const segs = s => lib.listFiles(clDir(s)).filter(n => lib.usedLength(path.join(clDir(s), n)) > 0);
const segBase = name => Number(name);

/** Bit flips in the used part of a CommitLog segment; returns the damage description. */
function flipSegment(which) {
  return (s, rand) => {
    const list = segs(s);
    const name = which === 'last' ? list[list.length - 1] : list[1];
    const file = path.join(clDir(s), name);
    const used = lib.usedLength(file);
    const pos = lib.flipBits(file, 3, rand, 0, used);
    return { file: name, desc: `flips at ${pos}`, lostFrom: segBase(name) + pos[0] };
  };
}

function truncateLastSegment(s, rand) {
  const list = segs(s);
  const name = list[list.length - 1];
  const file = path.join(clDir(s), name);
  const used = lib.usedLength(file);
  const cut = Math.floor(used / 2) + rand.int(Math.max(1, Math.floor(used / 4)));
  fs.truncateSync(file, cut);
  return { file: name, desc: `cut to ${cut}`, lostFrom: segBase(name) + cut };
}

function deleteSegment(which) {
  return s => {
    const list = segs(s);
    const name = which === 'last' ? list[list.length - 1] : list[1];
    const all = lib.listFiles(clDir(s));
    const successor = all[all.indexOf(name) + 1];
    fs.rmSync(path.join(clDir(s), name));
    // A refusal may name the deleted segment or the one that no longer follows its predecessor.
    return { file: [ name, successor ].filter(Boolean), desc: `deleted ${name}`, lostFrom: segBase(name) };
  };
}

function cqFiles(s) {
  const out = [];
  const root = path.join(s, 'consumequeue');
  for (const t of lib.listFiles(root)) {
    for (const q of lib.listFiles(path.join(root, t))) {
      for (const f of lib.listFiles(path.join(root, t, q))) out.push(path.join(root, t, q, f));
    }
  }
  return out.filter(f => f.includes(`${path.sep}Dmg`));
}

const idxFiles = s => lib.listFiles(path.join(s, 'index')).map(f => path.join(s, 'index', f));

function cfgDamage(file, how, bak) {
  return s => {
    const dir = path.join(s, 'config');
    const main = path.join(dir, file);
    const bakFile = main + '.bak';
    assert.ok(fs.existsSync(main), `${file} exists in the snapshot`);
    assert.ok(fs.existsSync(bakFile), `${file}.bak exists in the snapshot`);
    const spoil = (f, r) => {
      if (how === 'truncate') {
        const len = fs.statSync(f).size;
        fs.truncateSync(f, Math.max(1, Math.floor(len / 2)));
      } else if (how === 'empty') {
        fs.truncateSync(f, 0);
      } else {
        const b = Buffer.alloc(64);
        for (let i = 0; i < b.length; i++) b[i] = r.int(256);
        fs.writeFileSync(f, b);
      }
    };
    const rand = lib.rng(SEED + file.length);
    if (how === 'digit') {
      // Garbage that starts like a JSON number (a cJSON_Parse prefix match once loaded it).
      fs.writeFileSync(main, `7${'\u00ff'.repeat(8)}${rand.int(1e6)}garbage`);
    } else {
      spoil(main, rand);
    }
    if (bak === 'gone') fs.rmSync(bakFile);
    if (bak === 'damaged') spoil(bakFile, rand);
    return { file, desc: `${file} ${how}, .bak ${bak}`, cfgFrom: bak === 'kept' ? `${file}.bak` : undefined };
  };
}

// ---------------------------------------------------------------------------------------------
// Cases. Each restarts the broker once.

test('baseline: the undamaged clean snapshot serves everything', () => runCase('baseline', 'clean', () => ({})));
test('baseline: the undamaged kill -9 snapshot serves everything', () => runCase('baseline-kill9', 'kill9', () => ({})));

test('CommitLog: bit flips in a middle segment (clean stop)', () => runCase('cl-flip-middle', 'clean', flipSegment('middle')));
test('CommitLog: bit flips in the last segment (clean stop)', () => runCase('cl-flip-last', 'clean', flipSegment('last')));
test('CommitLog: bit flips in the last segment (kill -9)', () => runCase('cl-flip-last-k9', 'kill9', flipSegment('last')));
test('CommitLog: last segment truncated (clean stop)', () =>
  runCase('cl-truncate-last', 'clean', truncateLastSegment, { allowRefusal: true }));
test('CommitLog: last segment truncated (kill -9)', () =>
  runCase('cl-truncate-last-k9', 'kill9', truncateLastSegment, { allowRefusal: true }));
test('CommitLog: middle segment deleted', () =>
  runCase('cl-delete-middle', 'clean', deleteSegment('middle'), { allowRefusal: true }));
test('CommitLog: last segment deleted (clean stop)', () =>
  runCase('cl-delete-last', 'clean', deleteSegment('last'), { allowRefusal: true }));
test('CommitLog: last segment deleted (kill -9)', () =>
  runCase('cl-delete-last-k9', 'kill9', deleteSegment('last'), { allowRefusal: true }));

test('ConsumeQueue: bit flips in every file of one queue', () => runCase('cq-flip', 'clean', (s, rand) => {
  const files = cqFiles(s).filter(f => f.includes(`DmgA${path.sep}1${path.sep}`));
  for (const f of files) lib.flipBits(f, 4, rand, 0, Math.max(20, lib.usedLength(f)));
  return { file: 'DmgA/1', desc: 'flips' };
}));
test('ConsumeQueue: a file truncated (kill -9)', () => runCase('cq-truncate-k9', 'kill9', (s, rand) => {
  const files = cqFiles(s);
  const f = files[rand.int(files.length)];
  fs.truncateSync(f, 100);
  return { file: path.basename(f), desc: `truncated ${f}` };
}, { allowRefusal: true }));
test('ConsumeQueue: the first file of a queue deleted', () => runCase('cq-delete-first', 'clean', s => {
  const f = cqFiles(s).find(x => x.includes(`DmgB${path.sep}0${path.sep}`));
  fs.rmSync(f);
  return { file: path.basename(f), desc: `deleted ${f}` };
}, { allowRefusal: true }));

test('IndexFile: bit flips in slots and entries', () => runCase('index-flip', 'clean', (s, rand) => {
  for (const f of idxFiles(s)) lib.flipBits(f, 40, rand, 40, fs.statSync(f).size);
  return { file: 'index', desc: 'flips', indexLossy: true };
}));
test('IndexFile: garbage header', () => runCase('index-header', 'clean', (s, rand) => {
  const f = idxFiles(s)[0];
  lib.scribble(f, 0, 40, rand);
  return { file: path.basename(f), desc: 'header scribbled', indexLossy: true };
}));
test('IndexFile: a file truncated', () => runCase('index-truncate', 'clean', s => {
  const f = idxFiles(s)[0];
  fs.truncateSync(f, 1000);
  return { file: path.basename(f), desc: 'truncated', indexLossy: true };
}));
test('IndexFile: all deleted (kill -9)', () => runCase('index-delete-k9', 'kill9', s => {
  for (const f of idxFiles(s)) fs.rmSync(f);
  return { file: 'index', desc: 'deleted', indexLossy: true };
}));

test('checkpoint: garbage', () => runCase('checkpoint-garbage', 'clean', (s, rand) => {
  lib.scribble(path.join(s, 'checkpoint'), 0, 4096, rand);
  return { file: 'checkpoint' };
}));
test('checkpoint: truncated (kill -9)', () => runCase('checkpoint-truncate-k9', 'kill9', s => {
  fs.truncateSync(path.join(s, 'checkpoint'), 30);
  return { file: 'checkpoint' };
}, { allowRefusal: true }));
test('checkpoint: deleted (kill -9)', () => runCase('checkpoint-delete-k9', 'kill9', s => {
  fs.rmSync(path.join(s, 'checkpoint'));
  return { file: 'checkpoint' };
}));
test('abort: created with garbage after a clean stop', () => runCase('abort-garbage', 'clean', (s, rand) => {
  const b = Buffer.alloc(16);
  for (let i = 0; i < b.length; i++) b[i] = rand.int(256);
  fs.writeFileSync(path.join(s, 'abort'), b);
  return { file: 'abort' };
}));
test('abort: deleted after kill -9', () => runCase('abort-delete-k9', 'kill9', s => {
  fs.rmSync(path.join(s, 'abort'));
  return { file: 'abort' };
}));
test('queues table: garbage', () => runCase('queues-garbage', 'clean', (s, rand) => {
  lib.scribble(path.join(s, 'queues'), 0, 200, rand);
  return { file: 'queues' };
}, { allowRefusal: true }));

for (const file of CFG) {
  const short = file.replace('.json', '');
  test(`${file}: damaged, .bak kept -> the .bak`, () => runCase(`${short}-bak`, 'clean', cfgDamage(file, 'garbage', 'kept')));
  test(`${file}: damaged, no .bak -> refused`, () =>
    runCase(`${short}-nobak`, 'clean', cfgDamage(file, 'truncate', 'gone'), { expectRefusal: true }));
  test(`${file}: damaged and .bak damaged -> refused`, () =>
    runCase(`${short}-both`, 'clean', cfgDamage(file, 'garbage', 'damaged'), { expectRefusal: true }));
}
test('topics.json: garbage starting with a digit, .bak kept -> the .bak', () =>
  runCase('topics-digit-bak', 'clean', cfgDamage('topics.json', 'digit', 'kept')));
test('consumerOffset.json: empty, .bak kept -> the .bak', () =>
  runCase('consumerOffset-empty-bak', 'clean', cfgDamage('consumerOffset.json', 'empty', 'kept')));
test('consumerOffset.json: empty, no .bak -> refused (BROKER.md: never an empty table)', () =>
  runCase('consumerOffset-empty-nobak', 'clean', cfgDamage('consumerOffset.json', 'empty', 'gone'), { expectRefusal: true }));
