'use strict';
// Helpers for damage.test.js and exhaustion.test.js: a seeded random generator, store
// snapshots, a broker start that may end in a refusal, whole-queue reads, key queries, and
// /proc readings. Node standard library only; builds on tests/compat/harness.js and remoting.js.

const fs = require('node:fs');
const path = require('node:path');
const harness = require('../compat/harness');
const remoting = require('../compat/remoting');
const { RESP } = remoting;

const REQ_GET_ALL_TOPIC_CONFIG = 21;
const REQ_UPDATE_AND_CREATE_SUBSCRIPTIONGROUP = 200;
const REQ_GET_ALL_SUBSCRIPTIONGROUP_CONFIG = 201;

/** mulberry32: a small seeded generator; returns floats in [0, 1). */
function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  next.int = n => Math.floor(next() * n);
  return next;
}

function copyDir(from, to) {
  fs.rmSync(to, { recursive: true, force: true });
  fs.cpSync(from, to, { recursive: true });
}

/** Flips `count` random bits in [lo, hi) of a file; returns the byte positions. */
function flipBits(file, count, rand, lo = 0, hi = fs.statSync(file).size) {
  const fd = fs.openSync(file, 'r+');
  const positions = [];
  try {
    for (let i = 0; i < count; i++) {
      const pos = lo + rand.int(hi - lo);
      const b = Buffer.alloc(1);
      fs.readSync(fd, b, 0, 1, pos);
      b[0] ^= 1 << rand.int(8);
      fs.writeSync(fd, b, 0, 1, pos);
      positions.push(pos);
    }
  } finally {
    fs.closeSync(fd);
  }
  return positions.sort((x, y) => x - y);
}

/** Overwrites [pos, pos+len) with random bytes. */
function scribble(file, pos, len, rand) {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = rand.int(256);
  const fd = fs.openSync(file, 'r+');
  try { fs.writeSync(fd, b, 0, len, pos); } finally { fs.closeSync(fd); }
}

/** Last non-zero byte + 1 of a file (the used part of a preallocated file). */
function usedLength(file) {
  const b = fs.readFileSync(file);
  let n = b.length;
  while (n > 0 && b[n - 1] === 0) n--;
  return n;
}

/**
 * Starts cluster.broker again and waits until it serves (registered at the name server) or
 * exits. Returns { started: true } or { started: false, code, signal, log } with the log text
 * written by this start only.
 */
async function startOrRefuse(cluster, timeoutMs = harness.ms(20000)) {
  const proc = cluster.broker;
  let logStart = 0;
  try { logStart = fs.statSync(proc.logFile).size; } catch (_) { /* none yet */ }
  proc.start();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exit) {
      proc.stopRequested = true; // an expected outcome: no longer an "unexpected exit"
      const log = fs.readFileSync(proc.logFile, 'utf8').slice(logStart);
      return { started: false, code: proc.exit.code, signal: proc.exit.signal, log };
    }
    let ok = false;
    try {
      ok = await cluster.isBrokerRegistered();
    } catch (_) { /* not listening yet */ }
    if (ok && !proc.exit) return { started: true };
    if (Date.now() > deadline) {
      throw new Error(`the broker neither served nor exited within ${timeoutMs} ms; log:\n` +
        harness.tail(proc.logFile, 40));
    }
    await Promise.race([ proc.exited, harness.sleep(50) ]);
  }
}

/** The log text of `proc` from byte `from`. */
function logSince(proc, from) {
  try { return fs.readFileSync(proc.logFile, 'utf8').slice(from); } catch (_) { return ''; }
}

/**
 * Pulls every message of topic/queueId from the queue's min offset to its max offset. Returns
 * { min, max, msgs, errors }: a non-SUCCESS answer is recorded in errors and the read goes on
 * from nextBeginOffset when it moves forward, else stops. decodeMessages throws on any record
 * whose body CRC does not match: a corrupt message served fails the caller.
 */
async function pullQueue(conn, group, topic, queueId) {
  const max = await remoting.getMaxOffset(conn, topic, queueId);
  const minResp = await conn.invoke(remoting.REQ.GET_MIN_OFFSET, { topic, queueId });
  const min = minResp.code === RESP.SUCCESS ? Number(minResp.extFields.offset) : 0;
  const msgs = [];
  const errors = [];
  let offset = min;
  let guard = 0;
  while (offset < max && guard++ < 10000) {
    const r = await remoting.pullMessages(conn, { group, topic, queueId, offset, maxNums: 32 });
    if (r.code === RESP.SUCCESS && r.msgs.length) {
      msgs.push(...r.msgs);
      offset = r.nextBeginOffset;
      continue;
    }
    errors.push(`${topic}/${queueId}@${offset}: code ${r.code} ${r.remark || ''} next=${r.nextBeginOffset}`);
    if (r.nextBeginOffset !== null && r.nextBeginOffset > offset) offset = r.nextBeginOffset;
    else break;
  }
  return { min, max, msgs, errors };
}

/** QUERY_MESSAGE by key: { code, msgs } (msgs decoded strictly: CRCs checked). */
async function queryByKey(conn, topic, key) {
  const resp = await conn.invoke(remoting.REQ.QUERY_MESSAGE, { topic, key, maxNum: 32, beginTimestamp: 0,
    endTimestamp: Date.now() + 3600000 });
  return { code: resp.code, remark: resp.remark, msgs: resp.code === RESP.SUCCESS ? remoting.decodeMessages(resp.body) : [] };
}

async function allTopicConfig(conn) {
  const resp = remoting.expectCode(await conn.invoke(REQ_GET_ALL_TOPIC_CONFIG, {}), RESP.SUCCESS, 'GET_ALL_TOPIC_CONFIG');
  return remoting.parseLenientJson(resp.body).topicConfigTable || {};
}

async function allGroupConfig(conn) {
  const resp = remoting.expectCode(await conn.invoke(REQ_GET_ALL_SUBSCRIPTIONGROUP_CONFIG, {}), RESP.SUCCESS,
    'GET_ALL_SUBSCRIPTIONGROUP_CONFIG');
  return remoting.parseLenientJson(resp.body).subscriptionGroupTable || {};
}

async function createGroup(conn, groupName, extra = {}) {
  const body = JSON.stringify(Object.assign({ groupName, consumeEnable: true, consumeFromMinEnable: true,
    consumeBroadcastEnable: false, retryQueueNums: 1, retryMaxTimes: 16, brokerId: 0, whichBrokerWhenConsumeSlowly: 1,
    notifyConsumerIdsChangedEnable: true }, extra));
  const resp = await conn.invoke(REQ_UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, {}, { body: Buffer.from(body) });
  return remoting.expectCode(resp, RESP.SUCCESS, `UPDATE_AND_CREATE_SUBSCRIPTIONGROUP ${groupName}`);
}

/** Fields of /proc/<pid>/status in kB (VmRSS, VmHWM, ...) and the open descriptor count. */
function procStatus(pid) {
  const out = {};
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  for (const line of text.split('\n')) {
    const m = /^(\w+):\s+(\d+)\s*kB/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  try { out.fds = fs.readdirSync(`/proc/${pid}/fd`).length; } catch (_) { out.fds = -1; }
  return out;
}

/** CPU time (user+system, clock ticks) of a process: /proc/<pid>/stat fields 14 and 15. */
function procCpuTicks(pid) {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

function listFiles(dir) {
  try { return fs.readdirSync(dir).filter(n => !n.endsWith('.tmp')).sort(); } catch (_) { return []; }
}

module.exports = {
  rng,
  copyDir,
  flipBits,
  scribble,
  usedLength,
  startOrRefuse,
  logSince,
  pullQueue,
  queryByKey,
  allTopicConfig,
  allGroupConfig,
  createGroup,
  procStatus,
  procCpuTicks,
  listFiles,
  path,
};
