'use strict';
// Master/slave replication with real mqnamesrv / mqbroker processes (docs/REPLICATION.md): a
// SYNC_MASTER + SYNC_FLUSH master and a SYNC_FLUSH slave (haMasterAddress, haSecret).
//  - sends from several connections while the master is killed with kill -9: every message
//    acknowledged SEND_OK is in the slave's CommitLog (read from its files) with its body, at
//    the offset its msgId names;
//  - the master restarts; the slave re-checks the last record it has against the master and
//    goes on; the slave's CommitLog is then a byte-identical prefix of the master's;
//  - the slave frozen with SIGSTOP: FLUSH_SLAVE_TIMEOUT (12) within syncFlushTimeout;
//  - the slave stopped: SLAVE_NOT_AVAILABLE (11) at once; restarted, it catches up from its
//    offset and sends are SEND_OK again;
//  - the master frozen with SIGSTOP: the slave notices the missing heartbeats and reconnects.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { useCluster, waitFor, ms, withLogsOnFailure } = require('../compat/harness');
const remoting = require('../compat/remoting');

const SECRET = 'replication-test-secret';
const TOPIC = 'ReplTopic';
const QUEUES = 4;
const SYNC_FLUSH_TIMEOUT = 1500;
const MAGIC = 0xdaa320a7 | 0;
const BLANK = 0xcbd43194 | 0;

const ctx = useCluster({
  name: 'int-repl',
  flushDiskType: 'SYNC_FLUSH',
  brokerConf: { brokerRole: 'SYNC_MASTER', haSecret: SECRET, haSendHeartbeatInterval: 500,
    syncFlushTimeout: SYNC_FLUSH_TIMEOUT },
});

/** Every record of the CommitLog files in dir: Map phys -> body (string). */
function readCommitLog(dir) {
  const recs = new Map();
  const files = fs.readdirSync(dir).filter(f => /^\d{20}$/.test(f)).sort();
  for (const f of files) {
    const buf = fs.readFileSync(path.join(dir, f));
    const base = Number(f);
    let p = 0;
    while (p + 8 <= buf.length) {
      const size = buf.readInt32BE(p);
      const magic = buf.readInt32BE(p + 4);
      if (size <= 0 || magic === BLANK || magic !== MAGIC || p + size > buf.length) break;
      const m = remoting.decodeMessages(buf.subarray(p, p + size))[0];
      assert.equal(Number(m.commitLogOffset), base + p, `record at ${base + p} names its own offset`);
      recs.set(base + p, m.body.toString());
      p += size;
    }
  }
  return recs;
}

/** The bytes of the CommitLog files in dir, concatenated. */
function commitLogBytes(dir) {
  const files = fs.readdirSync(dir).filter(f => /^\d{20}$/.test(f)).sort();
  return Buffer.concat(files.map(f => fs.readFileSync(path.join(dir, f))));
}

function physOf(msgId) {
  return Number(BigInt(`0x${msgId.slice(16, 32)}`));
}

async function send(addr, body) {
  return remoting.withConnection(addr, conn =>
    remoting.sendMessage(conn, { topic: TOPIC, queueId: Number(body.split('-').pop()) % QUEUES,
      body: Buffer.from(body), timeoutMs: ms(10000) }));
}

test('SYNC_MASTER: acked messages survive kill -9 of the master; slow and absent slaves', { timeout: ms(240000) },
  async t => {
    const cluster = ctx.cluster;
    await withLogsOnFailure(cluster, async () => {
      const haAddr = `127.0.0.1:${cluster.brokerPort + 1}`;
      await remoting.withConnection(cluster.brokerAddr, conn =>
        remoting.createTopic(conn, TOPIC, QUEUES));
      const slaveStore = path.join(cluster.dir, 'store-slave');
      const slave = await cluster.addBroker({ brokerName: cluster.brokerName, brokerConf: {
        brokerRole: 'SLAVE', brokerId: 1, storePathRootDir: slaveStore, haMasterAddress: haAddr } });
      const slaveLog = path.join(slaveStore, 'commitlog');
      const masterLog = path.join(cluster.dir, 'store', 'commitlog');

      // Wait until the master counts the slave as in sync.
      await waitFor(async () => (await send(cluster.brokerAddr, 'warm-0')).code === remoting.RESP.SUCCESS,
        { timeoutMs: ms(20000), intervalMs: 100, what: 'a SEND_OK from the SYNC_MASTER (slave in sync)' });

      // Four connections send until the master dies.
      const acked = [];
      const codes = new Map();
      let stop = false;
      const senders = [ 0, 1, 2, 3 ].map(async w => {
        let conn;
        try {
          conn = await remoting.RemotingConnection.connect(cluster.brokerAddr);
          for (let i = 0; !stop; i++) {
            const body = `m-${w}-${i}-${w}`;
            const r = await remoting.sendMessage(conn, { topic: TOPIC, queueId: w, body: Buffer.from(body),
              timeoutMs: ms(10000) });
            codes.set(r.code, (codes.get(r.code) || 0) + 1);
            if (r.code === remoting.RESP.SUCCESS) acked.push({ phys: physOf(r.extFields.msgId), body });
          }
        } catch (_) {
          // the master died under us: the request in flight has no answer
        } finally {
          if (conn) await conn.close().catch(() => {});
        }
      });
      await waitFor(() => acked.length >= 400, { timeoutMs: ms(60000), intervalMs: 20,
        what: () => `400 acked sends (have ${acked.length}, codes ${JSON.stringify([ ...codes ])})` });
      await cluster.stopBroker({ kill9: true });
      stop = true;
      await Promise.all(senders);
      t.diagnostic(`master killed after ${acked.length} acks; codes ${JSON.stringify([ ...codes ])}`);

      const onSlave = readCommitLog(slaveLog);
      for (const a of acked) {
        assert.equal(onSlave.get(a.phys), a.body, `acked message ${a.body} at ${a.phys} is on the slave`);
      }

      // The master restarts; the slave reconnects, checks its last record and follows again.
      await cluster.startBroker();
      await waitFor(async () => (await send(cluster.brokerAddr, 'after-restart-1')).code === remoting.RESP.SUCCESS,
        { timeoutMs: ms(30000), intervalMs: 200, what: 'SEND_OK after the master restarted' });
      const m = commitLogBytes(masterLog);
      const s = commitLogBytes(slaveLog);
      const slaveRecs = readCommitLog(slaveLog);
      let slaveEnd = 0; // start of the slave's last record: everything below it must match
      for (const phys of slaveRecs.keys()) slaveEnd = Math.max(slaveEnd, phys);
      assert.ok(slaveEnd > 0);
      assert.ok(m.subarray(0, slaveEnd).equals(s.subarray(0, slaveEnd)), 'the slave log is a prefix of the master log');

      // A frozen slave: FLUSH_SLAVE_TIMEOUT after syncFlushTimeout, stored on the master all the same.
      slave.proc.child.kill('SIGSTOP');
      try {
        const t0 = Date.now();
        const r = await send(cluster.brokerAddr, 'frozen-2');
        assert.equal(r.code, 12, `code ${r.code} ${r.remark}`);
        assert.ok(Date.now() - t0 >= SYNC_FLUSH_TIMEOUT - 100, 'waited syncFlushTimeout');
        assert.ok(r.extFields.msgId, 'FLUSH_SLAVE_TIMEOUT still names the stored message');
      } finally {
        slave.proc.child.kill('SIGCONT');
      }

      // No slave: SLAVE_NOT_AVAILABLE at once.
      await slave.stop();
      await waitFor(async () => (await send(cluster.brokerAddr, 'alone-3')).code === 11,
        { timeoutMs: ms(10000), intervalMs: 100, what: 'SLAVE_NOT_AVAILABLE without a slave' });
      const t1 = Date.now();
      assert.equal((await send(cluster.brokerAddr, 'alone-1')).code, 11);
      assert.ok(Date.now() - t1 < 1000, 'SLAVE_NOT_AVAILABLE is immediate');

      // The slave comes back and catches up from its own offset.
      await slave.start();
      await waitFor(async () => (await send(cluster.brokerAddr, 'back-0')).code === remoting.RESP.SUCCESS,
        { timeoutMs: ms(30000), intervalMs: 200, what: 'SEND_OK once the slave is back' });
      const after = readCommitLog(slaveLog);
      for (const b of [ 'alone-3', 'alone-1', 'frozen-2', 'back-0' ]) {
        assert.ok([ ...after.values() ].includes(b), `${b} reached the slave after its restart`);
      }

      // A hung master (SIGSTOP, no FIN): the slave notices the silence (the master sends an
      // empty frame every haSendHeartbeatInterval while idle) and reconnects once it is back.
      cluster.broker.child.kill('SIGSTOP');
      try {
        await waitFor(() => /nothing from master .* reconnecting/.test(fs.readFileSync(slave.proc.logFile, 'utf8')),
          { timeoutMs: ms(15000), intervalMs: 100, what: 'the slave to give up on the frozen master' });
      } finally {
        cluster.broker.child.kill('SIGCONT');
      }
      await waitFor(async () => (await send(cluster.brokerAddr, 'thawed-1')).code === remoting.RESP.SUCCESS,
        { timeoutMs: ms(30000), intervalMs: 200, what: 'SEND_OK once the master runs again' });
    });
  });
