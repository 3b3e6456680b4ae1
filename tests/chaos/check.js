'use strict';
// The chaos suite's history checks (README.md, "What is checked"). Input: the history files of
// every chaos_client process (producers: SEND/ACK/FAIL, consumers: DELIVER/CORRUPT) and the
// fault log; times are CLOCK_MONOTONIC microseconds, comparable between processes.

const EUNKNOWN = -10012;
// A redelivery or an ordering restart is explained by an event (fault or group membership
// change) that started before it and at most this long before the earlier delivery it repeats
// (rebalances run every 20 s, offsets are committed every 5 s, a lock lives 30 s).
const EXPLAIN_WINDOW_US = 60e6;

const locKey = (broker, queue, offset) => `${broker}/${queue}/${offset}`;

/** Parses the histories: { name, role, group, text }[] (role 'producer' or a group key). */
function parse(histories) {
  const msgs = new Map(); // id -> { id, kind, key, kseq, producer, attempts: [] }
  const acked = new Map(); // id -> location key
  const deliveries = [];
  const corrupt = [];
  const bad = [];
  for (const h of histories) {
    const lines = h.text.split('\n');
    let pending = null; // the attempt awaiting its outcome
    lines.forEach((line, i) => {
      if (!line || i === lines.length - 1 && !h.text.endsWith('\n')) return;
      const f = line.split(' ');
      if (h.role === 'producer') {
        if (f[0] === 'SEND' && f.length === 7) {
          if (pending) pending.outcome = 'unknown';
          let m = msgs.get(f[1]);
          if (!m) {
            m = { id: f[1], kind: f[2], key: f[3] === '-' ? null : f[3], kseq: Number(f[4]), producer: h.name, attempts: [] };
            msgs.set(m.id, m);
          }
          pending = { attempt: Number(f[5]), t0: Number(f[6]), t1: null, outcome: null, rc: 0, loc: null };
          m.attempts.push(pending);
        } else if ((f[0] === 'ACK' && f.length === 7) || (f[0] === 'FAIL' && f.length >= 4)) {
          const m = msgs.get(f[1]);
          if (!pending || !m || m.attempts[m.attempts.length - 1] !== pending) {
            bad.push(`${h.name}: outcome without SEND: ${line}`);
            return;
          }
          if (f[0] === 'ACK') {
            pending.outcome = 'ack';
            pending.loc = locKey(f[2], f[3], f[4]);
            pending.t1 = Number(f[6]);
            if (acked.has(m.id)) bad.push(`${h.name}: ${m.id} acknowledged twice`);
            acked.set(m.id, pending.loc);
          } else {
            pending.rc = Number(f[2]);
            pending.outcome = pending.rc === EUNKNOWN ? 'unknown' : 'fail';
            pending.t1 = Number(f[3]);
            pending.reason = f.slice(4).join(' ');
          }
          pending = null;
        } else if (!/^(STARTED|STOPPED) /.test(line)) {
          bad.push(`${h.name}: unparsable line: ${line}`);
        }
      } else if (f[0] === 'DELIVER' && f.length === 8) {
        deliveries.push({ group: h.group, id: f[1], loc: locKey(f[2], f[3], f[4]), broker: f[2],
          reconsume: Number(f[5]), inst: f[6], t: Number(f[7]), file: h.name, line: i });
      } else if (f[0] === 'CORRUPT') {
        corrupt.push(`${h.name}: ${line}`);
      } else if (!/^(STARTED|STOPPED) /.test(line)) {
        bad.push(`${h.name}: unparsable line: ${line}`);
      }
    });
    if (pending) pending.outcome = 'unknown'; // the process died during the call
  }
  deliveries.sort((a, b) => a.t - b.t || (a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line));
  return { msgs, acked, deliveries, corrupt, bad };
}

/** Acknowledged copies not yet delivered to each group: { total, byGroup }. */
function undelivered(p, groups) {
  const seen = new Set(p.deliveries.map(d => `${d.group} ${d.id} ${d.loc}`));
  const byGroup = {};
  let total = 0;
  for (const g of groups) {
    let n = 0;
    for (const [ id, loc ] of p.acked) if (!seen.has(`${g} ${id} ${loc}`)) n++;
    byGroup[g] = n;
    total += n;
  }
  return { total, byGroup };
}

function inc(obj, k, n = 1) {
  obj[k] = (obj[k] || 0) + n;
}

/**
 * The checks. opts: groups [{ name, orderly }], faults [{ type, target, startUs, endUs }],
 * events (membership changes: consumer starts, [{ type, target, startUs }]).
 */
function analyze(p, opts) {
  const faults = opts.faults;
  const events = faults.concat(opts.events || []).sort((a, b) => a.startUs - b.startUs);
  const killed = new Set(faults.filter(f => f.type === 'consumer-kill').map(f => f.target));
  const brokerFaults = faults.filter(f => f.type === 'broker-kill' || f.type === 'broker-stop');
  const lines = [];
  const examples = { lost: [], phantom: [], unexplained: [], reordered: [], notStored: [], copyMissing: [] };
  const ex = (k, s) => { if (examples[k].length < 10) examples[k].push(s); };

  // Redelivery of one stored copy (prev then d): an event that can move a queue or its
  // committed offset, started before d and at most EXPLAIN_WINDOW_US before prev. Producer
  // kills explain nothing here. The label names the latest such event (the likeliest cause, not
  // a proven one).
  const CONSUMER_SIDE = new Set([ 'broker-kill', 'broker-stop', 'namesrv-kill', 'consumer-kill', 'consumer-start',
    'consumer-stop' ]);
  const explainRedelivery = (prev, d) => {
    if (prev.inst !== d.inst && killed.has(prev.inst)) return 'redelivery after its consumer was killed (uncommitted offset)';
    const cands = [];
    for (const e of events) {
      if (e.startUs > d.t) break;
      if (e.startUs >= prev.t - EXPLAIN_WINDOW_US && CONSUMER_SIDE.has(e.type)) cands.push(e);
    }
    if (!cands.length) return null;
    cands.sort((a, b) => b.startUs - a.startUs);
    const e = cands[0];
    const what = e.type.startsWith('broker-') ? `${e.type} of ${e.target}` : e.type;
    return prev.inst !== d.inst ? `redelivery by another member after ${what} (rebalance)` : `redelivery after ${what}`;
  };

  const byGroup = new Map(opts.groups.map(g => [ g.name, new Map() ]));
  let phantom = 0;
  for (const d of p.deliveries) {
    if (!p.msgs.has(d.id)) {
      phantom++;
      ex('phantom', `${d.group} ${d.id} at ${d.loc} by ${d.inst}`);
      continue;
    }
    const m = byGroup.get(d.group);
    if (!m.has(d.id)) m.set(d.id, []);
    m.get(d.id).push(d);
  }

  // Loss: every acknowledged message reaches every group, and from the copy the ACK named.
  let lost = 0;
  let copyMissing = 0;
  for (const [ id, loc ] of p.acked) {
    let isLost = false;
    for (const [ g, m ] of byGroup) {
      const ds = m.get(id);
      if (!ds) {
        isLost = true;
        ex('lost', `${id} (acked at ${loc}) never delivered to ${g}`);
      } else if (!ds.some(d => d.loc === loc)) {
        copyMissing++;
        ex('copyMissing', `${id} acked at ${loc}, delivered to ${g} only from ${[ ...new Set(ds.map(d => d.loc)) ]}`);
      }
    }
    if (isLost) lost++;
  }

  // A send reported as not stored (every attempt FAIL with a definite error) must never be delivered.
  let notStored = 0;
  for (const [ id, msg ] of p.msgs) {
    if (msg.attempts.every(a => a.outcome === 'fail') && [ ...byGroup.values() ].some(m => m.has(id))) {
      notStored++;
      ex('notStored', `${id}: ${msg.attempts.map(a => `rc=${a.rc} ${a.reason}`).join('; ')}`);
    }
  }

  // Duplicates: every delivery of an id to a group after its first, each with a reason.
  let duplicates = 0;
  let unexplained = 0;
  const breakdown = {};
  for (const [ g, m ] of byGroup) {
    for (const [ id, ds ] of m) {
      if (ds.length < 2) continue;
      const msg = p.msgs.get(id);
      const primary = p.acked.get(id) || ds[0].loc;
      const byLoc = new Map();
      for (const d of ds) {
        if (!byLoc.has(d.loc)) byLoc.set(d.loc, []);
        byLoc.get(d.loc).push(d);
      }
      for (const [ loc, lds ] of byLoc) {
        // A second stored copy: its first delivery is a duplicate of the message.
        if (loc !== primary) {
          duplicates++;
          let why = null;
          if (msg.attempts.length > 1) {
            why = `stored twice: an attempt ended ${msg.attempts.filter(a => a.outcome !== 'ack').map(a => a.outcome).join('/')} and the application sent it again`;
          } else {
            const a = msg.attempts[0];
            const t1 = a.t1 || Infinity;
            if (brokerFaults.some(f => f.startUs <= t1 && f.endUs >= a.t0)) {
              why = 'stored twice: the library retried a timed-out/lost send on another broker during a broker fault';
            }
          }
          if (!why) {
            why = 'UNEXPLAINED second stored copy';
            unexplained++;
            ex('unexplained', `${g} ${id}: copies at ${[ ...byLoc.keys() ].join(', ')}, attempts ${JSON.stringify(msg.attempts)}`);
          }
          inc(breakdown, `${why}`);
        }
        for (let i = 1; i < lds.length; i++) {
          duplicates++;
          let why = explainRedelivery(lds[i - 1], lds[i]);
          if (!why) {
            why = 'UNEXPLAINED redelivery of the same copy';
            unexplained++;
            ex('unexplained', `${g} ${id} at ${loc}: by ${lds[i - 1].inst} t=${lds[i - 1].t} then ${lds[i].inst} t=${lds[i].t}`);
          }
          inc(breakdown, why);
        }
      }
    }
  }

  // Order (orderly groups): per sharding key, the deliveries of its acknowledged messages.
  let reordered = 0;
  let rewinds = 0;
  let orderedChecked = 0;
  const keys = new Map(); // key -> sorted kseqs of acknowledged ordered messages
  for (const [ id ] of p.acked) {
    const msg = p.msgs.get(id);
    if (msg.kind !== 'ordered') continue;
    if (!keys.has(msg.key)) keys.set(msg.key, []);
    keys.get(msg.key).push(msg.kseq);
  }
  for (const g of opts.groups.filter(x => x.orderly)) {
    const m = byGroup.get(g.name);
    const perKey = new Map();
    for (const [ id, ds ] of m) {
      const msg = p.msgs.get(id);
      if (msg.kind !== 'ordered' || !p.acked.has(id)) continue;
      if (!perKey.has(msg.key)) perKey.set(msg.key, []);
      for (const d of ds) perKey.get(msg.key).push(Object.assign({ kseq: msg.kseq }, d));
    }
    for (const [ key, ds ] of perKey) {
      ds.sort((a, b) => a.t - b.t || (a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line));
      const delivered = new Set(ds.map(d => d.kseq));
      const seqs = keys.get(key).filter(s => delivered.has(s)).sort((a, b) => a - b);
      const index = new Map(seqs.map((s, i) => [ s, i ]));
      let hi = -1;
      let prev = null;
      for (const d of ds) {
        orderedChecked++;
        const i = index.get(d.kseq);
        if (i === hi + 1) {
          hi = i;
        } else if (i <= hi) {
          const why = explainRedelivery(prev, d);
          if (why) {
            rewinds++;
          } else {
            reordered++;
            ex('reordered', `${g.name} key ${key}: kseq ${d.kseq} by ${d.inst} after kseq ${prev.kseq} by ${prev.inst} ` +
              '(a restart without a fault or membership change)');
          }
          hi = i;
        } else {
          reordered++;
          ex('reordered', `${g.name} key ${key}: kseq ${d.kseq} (${d.id}, ${d.loc}, by ${d.inst}) delivered before kseq ` +
            `${seqs[hi + 1]}${prev ? ` (previous: kseq ${prev.kseq} by ${prev.inst})` : ''}`);
          hi = i;
        }
        prev = d;
      }
    }
  }

  const attempts = [ ...p.msgs.values() ].flatMap(x => x.attempts);
  const unknown = attempts.filter(a => a.outcome === 'unknown').length;
  const failed = attempts.filter(a => a.outcome === 'fail').length;
  lines.push(`CHECK sent_ids=${p.msgs.size} attempts=${attempts.length} acked=${p.acked.size} ` +
    `attempts_unknown=${unknown} attempts_failed=${failed} ` +
    opts.groups.map(g => `deliveries[${g.name}]=${p.deliveries.filter(d => d.group === g.name).length}`).join(' '));
  const reasons = {};
  for (const [ , msg ] of p.msgs) {
    for (const a of msg.attempts) {
      if (a.outcome !== 'ack') inc(reasons, `${msg.kind} ${a.outcome}${a.rc ? ` rc=${a.rc} ${a.reason.split(':')[0]}` : ' (process killed)'}`);
    }
  }
  for (const [ k, v ] of Object.entries(reasons).sort((a, b) => b[1] - a[1])) lines.push(`  not acked: ${v} x ${k}`);
  lines.push(`CHECK lost=${lost} acked_copy_missing=${copyMissing} phantom=${phantom} not_stored_but_delivered=${notStored} ` +
    `corrupt=${p.corrupt.length} bad_lines=${p.bad.length}`);
  lines.push(`CHECK duplicates=${duplicates} unexplained=${unexplained}`);
  for (const [ k, v ] of Object.entries(breakdown).sort((a, b) => b[1] - a[1])) lines.push(`  duplicate ${v} x ${k}`);
  lines.push(`CHECK order: keys=${keys.size} ordered_deliveries_checked=${orderedChecked} explained_restarts=${rewinds} reordered=${reordered}`);
  const faultCounts = {};
  for (const f of faults) inc(faultCounts, f.type);
  lines.push(`CHECK faults=${faults.length} ${JSON.stringify(faultCounts)}`);
  for (const [ k, list ] of Object.entries(examples)) for (const s of list) lines.push(`  ${k}: ${s}`);
  for (const s of p.corrupt.slice(0, 10)) lines.push(`  corrupt: ${s}`);
  for (const s of p.bad.slice(0, 10)) lines.push(`  bad line: ${s}`);

  const ok = lost === 0 && copyMissing === 0 && phantom === 0 && notStored === 0 && unexplained === 0 &&
    reordered === 0 && p.corrupt.length === 0 && p.bad.length === 0 && p.acked.size > 0;
  return { ok, acked: p.acked.size, lost, duplicates, reordered, unexplained, phantom, report: lines.join('\n') + '\n' };
}

/** Every history line and fault, ordered by time: "<t_us> <source> <line>". */
function mergedHistory(histories, faults) {
  const out = [];
  for (const h of histories) {
    let t = 0;
    for (const line of h.text.split('\n')) {
      if (!line) continue;
      const f = line.split(' ');
      const tf = f[0] === 'FAIL' ? Number(f[3]) : Number(f[f.length - 1]);
      if (Number.isFinite(tf) && tf > 1e6) t = tf;
      out.push({ t, s: `${t} ${h.name} ${line}` });
    }
  }
  for (const f of faults) {
    out.push({ t: f.startUs, s: `${f.startUs} FAULT-START ${f.type} ${f.target} ${f.detail || ''}` });
    out.push({ t: f.endUs, s: `${f.endUs} FAULT-END ${f.type} ${f.target}` });
  }
  out.sort((a, b) => a.t - b.t);
  return out.map(x => x.s).join('\n') + '\n';
}

module.exports = { parse, undelivered, analyze, mergedHistory, EUNKNOWN };
