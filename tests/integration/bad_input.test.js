'use strict';
// Bad input on one connection closes only that connection (REMOTING.md §1.1, §1.2, §1.5):
// garbage bytes, an oversize or negative frame length, a bad header length, an unknown
// serialization type, a header that is not JSON. Another connection opened before keeps
// working and the server stays up. An unknown request code gets REQUEST_CODE_NOT_SUPPORTED (3)
// with a remark naming the code, and a oneway request gets no answer at all (§1.6, §1.7).
// Checked against both the broker and the name server.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { useCluster, ms, withLogsOnFailure } = require('../compat/harness');
const remoting = require('../compat/remoting');
const { RemotingConnection, RESP, MAX_FRAME } = remoting;

const UNKNOWN_CODE = 9999;

const ctx = useCluster({ name: 'int-badinput' });

function frame(total, word, rest = Buffer.alloc(0)) {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(total >>> 0, 0);
  b.writeUInt32BE(word >>> 0, 4);
  return Buffer.concat([ b, rest ]);
}

function prng(seed) {
  let x = seed >>> 0;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x & 0xff;
  };
}

const header = Buffer.from('{"code":30,"flag":0,"language":"JAVA","opaque":1,"version":409,"extFields":{"topic":"T","queueId":"0"}}');

// Each case: bytes written on a fresh connection that must make the server close it.
const CASES = [
  { name: 'text that is not a frame (HTTP request line)', bytes: Buffer.from('GET / HTTP/1.1\r\nHost: ferrymq\r\n\r\n') },
  { name: 'oversize frame length (16 MiB cap + 1), body never sent', bytes: frame(MAX_FRAME - 4 + 1, header.length) },
  { name: 'huge frame length 0x7fffffff', bytes: frame(0x7fffffff, header.length) },
  { name: 'negative frame length', bytes: frame(0xfffffff0, header.length) },
  { name: 'frame length smaller than the header-length word', bytes: Buffer.from([ 0, 0, 0, 2, 0, 0 ]) },
  { name: 'header length beyond the frame', bytes: frame(4 + 20, 100, Buffer.alloc(20, 0x20)) },
  { name: 'unknown serialization type 0x5A', bytes: frame(4 + header.length, (0x5a << 24) | header.length, header) },
  { name: 'JSON header that is not JSON', bytes: frame(4 + 12, 12, Buffer.from('{not json!!}')) },
  { name: 'binary (ROCKETMQ) header with a remark length past the end',
    bytes: (() => {
      const h = Buffer.alloc(21);
      h.writeInt16BE(30, 0); h[2] = 0; h.writeInt16BE(409, 3); h.writeInt32BE(1, 5); h.writeInt32BE(0, 9);
      h.writeInt32BE(1000000, 13); // remark_len
      return frame(4 + h.length, (1 << 24) | h.length, h);
    })() },
  { name: '4 KiB of pseudo-random bytes',
    bytes: (() => {
      const r = prng(0xfe44);
      const b = Buffer.alloc(4096);
      for (let i = 0; i < b.length; i++) b[i] = r();
      b.writeUInt32BE(4000, 0); // a plausible length so the server reads a header from the noise
      b.writeUInt32BE((0x7e << 24) | 3000, 4);
      return b;
    })() },
];

/** A request every server answers, whatever the code: proves the connection is alive. */
async function stillServes(conn, what) {
  const resp = await conn.invoke(UNKNOWN_CODE, {}, { timeoutMs: ms(5000) });
  assert.equal(resp.code, RESP.REQUEST_CODE_NOT_SUPPORTED, `${what}: the other connection is still served`);
}

async function badInputSuite(addr, who, proc) {
  const keeper = await RemotingConnection.connect(addr);
  const unmatched = [];
  keeper.on('unmatched', r => unmatched.push(r));
  try {
    await stillServes(keeper, `${who} before any bad input`);

    // Unknown code: 3 with a remark naming the code.
    const resp = await keeper.invoke(UNKNOWN_CODE, { foo: 'bar' });
    assert.equal(resp.code, RESP.REQUEST_CODE_NOT_SUPPORTED, `${who}: unknown request code ${UNKNOWN_CODE} gets code 3`);
    assert.ok(resp.flag & 1, `${who}: the answer is flagged as a response`);
    assert.match(String(resp.remark), new RegExp(`\\b${UNKNOWN_CODE}\\b`), `${who}: the remark names the code`);

    // Oneway unknown code: no answer (the next response on the connection is the next request's).
    const onewayOpaque = keeper.oneway(UNKNOWN_CODE, {});
    await stillServes(keeper, `${who} after a oneway request`);
    assert.deepEqual(unmatched.map(r => r.opaque), [], `${who}: no response to the oneway request (opaque ${onewayOpaque})`);

    for (const c of CASES) {
      const bad = await RemotingConnection.connect(addr);
      bad.writeRaw(c.bytes);
      const closed = await bad.waitClosed(ms(5000));
      if (!closed) await bad.close();
      assert.ok(closed, `${who}: the server closes the connection that sent: ${c.name}`);
      proc.checkAlive(`handling: ${c.name}`);
      await stillServes(keeper, `${who} after: ${c.name}`);
    }

    // A frame exactly at the cap is accepted (and answered), not treated as oversize.
    const big = await RemotingConnection.connect(addr);
    try {
      const h = Buffer.from(`{"code":${UNKNOWN_CODE},"flag":0,"language":"JAVA","opaque":77,"version":409}`);
      const bodyLen = MAX_FRAME - 8 - h.length;
      const buf = Buffer.concat([ frame(4 + h.length + bodyLen, h.length, h), Buffer.alloc(bodyLen, 0x61) ]);
      const answer = new Promise((resolve, reject) => {
        big.once('unmatched', resolve);
        big.closed.then(() => reject(new Error('connection closed')));
      });
      big.writeRaw(buf);
      let timer;
      const r = await Promise.race([ answer, new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('no answer within the deadline')), ms(15000));
      }) ]).finally(() => clearTimeout(timer));
      assert.equal(r.opaque, 77);
      assert.equal(r.code, RESP.REQUEST_CODE_NOT_SUPPORTED, `${who}: a ${MAX_FRAME}-byte frame (the cap) is read and answered`);
    } finally {
      await big.close();
    }

    proc.checkAlive('after the bad-input cases');
    await stillServes(keeper, `${who} at the end`);
    assert.equal(keeper.isClosed, false, `${who}: the well-behaved connection was never closed`);
  } finally {
    await keeper.close();
  }
}

test('broker: bad input closes only its own connection; unknown codes get code 3', async () => {
  await withLogsOnFailure(ctx.cluster, () => badInputSuite(ctx.cluster.brokerAddr, 'broker', ctx.cluster.broker));
});

test('name server: bad input closes only its own connection; unknown codes get code 3', async () => {
  await withLogsOnFailure(ctx.cluster, () => badInputSuite(ctx.cluster.nsAddr, 'name server', ctx.cluster.namesrv));
});

test('the broker is still registered after the bad input', async () => {
  await withLogsOnFailure(ctx.cluster, async () => {
    assert.ok(await ctx.cluster.isBrokerRegistered(), 'the name server still lists the broker');
  });
});
