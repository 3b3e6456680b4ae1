'use strict';
// The chaos checks (check.js) on hand-written histories: each violation the suite promises to
// find (loss, a lost acknowledged copy, phantom delivery, a "not stored" send delivered,
// unexplained duplicates, per-key reordering, two consumers on one ordered queue) is found, and
// the explained cases (redelivery after a consumer kill, a resend after an unknown outcome, an
// ordering restart by a new queue owner) are accepted.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const check = require('./check');

const GROUPS = [ { name: 'C', orderly: false }, { name: 'O', orderly: true } ];

/** Histories from compact specs: producer lines and per-consumer lines (group C or O). */
function run({ producer, consumers, faults = [], events = [] }) {
  const hist = [ { name: 'p1', role: 'producer', group: null, text: producer.join('\n') + '\n' } ];
  for (const [ name, c ] of Object.entries(consumers)) {
    hist.push({ name, role: c.group, group: c.group, text: c.lines.join('\n') + '\n' });
  }
  return check.analyze(check.parse(hist), { groups: GROUPS, faults, events });
}

// Three ordered messages of key k (kseq 1..3) in broker-a queue 0, one plain in queue 1.
const PRODUCER = [
  'SEND p1-1 ordered k 1 1 100', 'ACK p1-1 broker-a 0 0 X 110',
  'SEND p1-2 ordered k 2 1 120', 'ACK p1-2 broker-a 0 1 X 130',
  'SEND p1-3 ordered k 3 1 140', 'ACK p1-3 broker-a 0 2 X 150',
  'SEND p1-4 plain - 0 1 160', 'ACK p1-4 broker-a 1 0 X 170',
];
const dl = (id, q, off, inst, t) => `DELIVER ${id} broker-a ${q} ${off} 0 ${inst} ${t}`;
const ALL = inst => [ dl('p1-1', 0, 0, inst, 1000), dl('p1-2', 0, 1, inst, 1001), dl('p1-3', 0, 2, inst, 1002),
  dl('p1-4', 1, 0, inst, 1003) ];

test('a clean history passes', () => {
  const r = run({ producer: PRODUCER, consumers: { c1: { group: 'C', lines: ALL('c1') }, o1: { group: 'O', lines: ALL('o1') } } });
  assert.equal(r.ok, true, r.report);
  assert.deepEqual([ r.acked, r.lost, r.duplicates, r.reordered ], [ 4, 0, 0, 0 ]);
});

test('an acknowledged message missing from one group is lost', () => {
  const r = run({ producer: PRODUCER, consumers: { c1: { group: 'C', lines: ALL('c1').slice(1) }, o1: { group: 'O', lines: ALL('o1') } } });
  assert.equal(r.ok, false);
  assert.equal(r.lost, 1);
});

test('delivered only from another copy than the acknowledged one fails', () => {
  const c = ALL('c1');
  c[3] = dl('p1-4', 1, 7, 'c1', 1003);
  const r = run({ producer: PRODUCER, consumers: { c1: { group: 'C', lines: c }, o1: { group: 'O', lines: ALL('o1') } } });
  assert.equal(r.ok, false);
  assert.match(r.report, /acked_copy_missing=1/);
});

test('a delivery of an id never sent is a phantom', () => {
  const r = run({ producer: PRODUCER, consumers: { c1: { group: 'C', lines: ALL('c1').concat([ dl('zz-9', 1, 5, 'c1', 2000) ]) },
    o1: { group: 'O', lines: ALL('o1') } } });
  assert.equal(r.ok, false);
  assert.equal(r.phantom, 1);
});

test('a send reported as not stored must not be delivered', () => {
  const prod = PRODUCER.concat([ 'SEND p1-5 plain - 0 1 180', 'FAIL p1-5 -10013 190 not stored' ]);
  const r = run({ producer: prod, consumers: { c1: { group: 'C', lines: ALL('c1').concat([ dl('p1-5', 1, 1, 'c1', 2000) ]) },
    o1: { group: 'O', lines: ALL('o1') } } });
  assert.equal(r.ok, false);
  assert.match(r.report, /not_stored_but_delivered=1/);
});

test('an unknown outcome or a process killed mid-send may or may not be delivered', () => {
  const prod = PRODUCER.concat([ 'SEND p1-5 plain - 0 1 180', 'FAIL p1-5 -10012 190 outcome unknown', 'SEND p1-6 plain - 0 1 200' ]);
  const r = run({ producer: prod, consumers: { c1: { group: 'C', lines: ALL('c1').concat([ dl('p1-5', 1, 1, 'c1', 2000) ]) },
    o1: { group: 'O', lines: ALL('o1') } } });
  assert.equal(r.ok, true, r.report);
});

test('a redelivery without any fault or membership change is unexplained', () => {
  const c = ALL('c1').concat([ dl('p1-4', 1, 0, 'c1', 5000) ]);
  const r = run({ producer: PRODUCER, consumers: { c1: { group: 'C', lines: c }, o1: { group: 'O', lines: ALL('o1') } } });
  assert.equal(r.ok, false);
  assert.equal(r.duplicates, 1);
  assert.equal(r.unexplained, 1);
});

test('a redelivery by the next member after a consumer kill is explained', () => {
  const r = run({ producer: PRODUCER, faults: [ { type: 'consumer-kill', target: 'c1', startUs: 1500, endUs: 1600 } ],
    consumers: { c1: { group: 'C', lines: ALL('c1') }, c2: { group: 'C', lines: [ dl('p1-4', 1, 0, 'c2', 5000) ] },
      o1: { group: 'O', lines: ALL('o1') } } });
  assert.equal(r.ok, true, r.report);
  assert.equal(r.duplicates, 1);
});

test('a second stored copy after an application resend is explained', () => {
  const prod = PRODUCER.concat([ 'SEND p1-5 plain - 0 1 180', 'FAIL p1-5 -10012 190 outcome unknown',
    'SEND p1-5 plain - 0 2 200', 'ACK p1-5 broker-a 1 2 X 210' ]);
  const extra = inst => [ dl('p1-5', 1, 1, inst, 2000), dl('p1-5', 1, 2, inst, 2001) ];
  const r = run({ producer: prod, consumers: { c1: { group: 'C', lines: ALL('c1').concat(extra('c1')) },
    o1: { group: 'O', lines: ALL('o1').concat(extra('o1')) } } });
  assert.equal(r.ok, true, r.report);
  assert.equal(r.duplicates, 2);
});

test('a second stored copy of a single acknowledged attempt without a broker fault is unexplained', () => {
  const c = ALL('c1').concat([ dl('p1-4', 3, 0, 'c1', 2000) ]);
  const r = run({ producer: PRODUCER, consumers: { c1: { group: 'C', lines: c }, o1: { group: 'O', lines: ALL('o1') } } });
  assert.equal(r.unexplained, 1);
  assert.equal(r.ok, false);
});

test('an orderly group delivering a key out of send order is reordered', () => {
  const o = [ dl('p1-2', 0, 1, 'o1', 1000), dl('p1-1', 0, 0, 'o1', 1001), dl('p1-3', 0, 2, 'o1', 1002), dl('p1-4', 1, 0, 'o1', 1003) ];
  const r = run({ producer: PRODUCER, consumers: { c1: { group: 'C', lines: ALL('c1') }, o1: { group: 'O', lines: o } } });
  assert.equal(r.ok, false);
  assert.ok(r.reordered >= 1);
});

test('an ordering restart by the new queue owner after a consumer kill is accepted', () => {
  const o1 = [ dl('p1-1', 0, 0, 'o1', 1000), dl('p1-2', 0, 1, 'o1', 1001) ];
  const o2 = [ dl('p1-1', 0, 0, 'o2', 3000), dl('p1-2', 0, 1, 'o2', 3001), dl('p1-3', 0, 2, 'o2', 3002), dl('p1-4', 1, 0, 'o2', 3003) ];
  const r = run({ producer: PRODUCER, faults: [ { type: 'consumer-kill', target: 'o1', startUs: 2000, endUs: 2100 } ],
    consumers: { c1: { group: 'C', lines: ALL('c1') }, o1: { group: 'O', lines: o1 }, o2: { group: 'O', lines: o2 } } });
  assert.equal(r.ok, true, r.report);
  assert.equal(r.reordered, 0);
});

test('two members consuming one ordered queue at once are caught', () => {
  // o2 restarts the queue at kseq 1 while o1 goes on with kseq 3.
  const o1 = [ dl('p1-1', 0, 0, 'o1', 1000), dl('p1-2', 0, 1, 'o1', 1001), dl('p1-3', 0, 2, 'o1', 3005) ];
  const o2 = [ dl('p1-1', 0, 0, 'o2', 3000), dl('p1-4', 1, 0, 'o2', 3003) ];
  const r = run({ producer: PRODUCER, events: [ { type: 'consumer-start', target: 'o2', startUs: 2000 } ],
    consumers: { c1: { group: 'C', lines: ALL('c1') }, o1: { group: 'O', lines: o1 }, o2: { group: 'O', lines: o2 } } });
  assert.equal(r.ok, false);
  assert.equal(r.reordered, 1, r.report);
});

test('a torn last line and a mid-send kill parse', () => {
  const p = check.parse([ { name: 'p1', role: 'producer', group: null, text: 'SEND p1-1 plain - 0 1 100\nACK p1-1 broker-a 0 0 X 1' } ]);
  assert.equal(p.acked.size, 0);
  assert.equal(p.msgs.get('p1-1').attempts[0].outcome, 'unknown');
  assert.equal(p.bad.length, 0);
});
