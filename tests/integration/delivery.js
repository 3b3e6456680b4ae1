'use strict';
// Helpers for the delivery-guarantee tests (retry_dlq, delayed, reset_by_time): delay levels,
// the deliveries of example_consumer --print-time grouped by message, timing checks against
// configured delays, and small broker queries. Node standard library only.

const assert = require('node:assert/strict');
const remoting = require('../compat/remoting');
const { ms } = require('../compat/harness');

/** Milliseconds of each level of a messageDelayLevel string ("1s 2s 1m"); index 0 = level 1. */
function levelDelays(text) {
  const unit = { s: 1000, m: 60000, h: 3600000, d: 86400000 };
  return text.trim().split(/\s+/).map(t => {
    const m = /^(\d+)([smhd])$/.exec(t);
    if (!m) throw new Error(`bad delay level ${t}`);
    return Number(m[1]) * unit[m[2]];
  });
}

/** The delay of level `n` (1-based; above the highest level, the highest, as the broker). */
function levelMs(levels, n) {
  return levels[Math.min(n, levels.length) - 1];
}

/**
 * Deliveries (MSG and LATER lines with the --print-time field) of `procs`, grouped by message
 * id and sorted by delivery time.
 */
function deliveries(procs) {
  const by = new Map();
  for (const p of procs) {
    for (const d of p.parsed) {
      if (!by.has(d.msgId)) by.set(d.msgId, []);
      by.get(d.msgId).push(Object.assign({ proc: p.label }, d));
    }
  }
  for (const list of by.values()) list.sort((a, b) => a.atMs - b.atMs);
  return by;
}

/** Tolerance above a configured delay: 1.5 s, scaled by FERRY_TEST_TIMEOUT_MULTIPLIER. */
const LATE_MS = ms(1500);
/** A delivery may come at most this much before its due time (clock reading granularity). */
const EARLY_MS = 100;

/**
 * Asserts `actual` ms (measured) against `delay` ms (configured): never earlier than
 * delay - EARLY_MS, at most delay + lateMs. Returns a line for the timing report.
 */
function checkDelay(actual, delay, what, lateMs = LATE_MS) {
  assert.ok(actual >= delay - EARLY_MS,
    `${what}: came after ${actual} ms, earlier than the configured ${delay} ms (- ${EARLY_MS} ms)`);
  assert.ok(actual <= delay + lateMs,
    `${what}: came after ${actual} ms, later than the configured ${delay} ms + ${lateMs} ms`);
  return `${what}: configured ${delay} ms, measured ${actual} ms (${actual - delay >= 0 ? '+' : ''}${actual - delay})`;
}

/** GET_MAX_OFFSET of topic/queue, 0 when the broker does not know the queue (not SUCCESS). */
async function maxOffsetOrZero(addr, topic, queueId) {
  return remoting.withConnection(addr, async conn => {
    const resp = await conn.invoke(remoting.REQ.GET_MAX_OFFSET, { topic, queueId });
    return resp.code === remoting.RESP.SUCCESS ? Number(resp.extFields.offset) : 0;
  });
}

/** Every stored message of topic/queue from offset 0 (PULL_MESSAGE, no filter). */
async function pullQueue(addr, group, topic, queueId) {
  return remoting.withConnection(addr, async conn => {
    const max = await remoting.getMaxOffset(conn, topic, queueId);
    const out = [];
    let offset = 0;
    while (offset < max) {
      const r = await remoting.pullMessages(conn, { group, topic, queueId, offset });
      if (r.code !== remoting.RESP.SUCCESS || !r.msgs.length) {
        throw new Error(`PULL_MESSAGE ${topic}/${queueId}@${offset} (max ${max}): code ${r.code} ` +
          `remark=${JSON.stringify(r.remark)} nextBeginOffset=${r.nextBeginOffset}`);
      }
      out.push(...r.msgs);
      offset = r.nextBeginOffset;
    }
    return out;
  });
}

/** Sum of the max offsets of a topic's queues 0..queues-1. */
async function topicMessageCount(addr, topic, queues) {
  let n = 0;
  for (let q = 0; q < queues; q++) n += await maxOffsetOrZero(addr, topic, q);
  return n;
}

module.exports = {
  levelDelays,
  levelMs,
  deliveries,
  LATE_MS,
  EARLY_MS,
  checkDelay,
  maxOffsetOrZero,
  pullQueue,
  topicMessageCount,
};
