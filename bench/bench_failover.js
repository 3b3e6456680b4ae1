'use strict';
// The client side of the failover case of bench/bench_repl.sh (which starts, kills and restarts
// the processes). Node standard library only, through the tests' remoting client
// (tests/compat/remoting.js).
//
//   node bench/bench_failover.js send <namesrv> <topic> <brokerName> [loops]
//       <loops> (default 2) loops each send SEND_MESSAGE_V2 (64 B bodies, WAIT=true) one after
//       the other to the master that the name server's route of <topic> names for <brokerName>
//       (brokerAddrs id 0). The route is asked again after any failed send (error, timeout or
//       a code other than SUCCESS) and while it names no master; retries are paced by 20 ms, so
//       a dead master is not hammered. Prints, one line each, flushed at once:
//         ACK <epoch ms> <broker addr>   the first SEND_OK, and every SEND_OK from another
//                                        broker than the previous one (a failover)
//         FAIL <epoch ms> <broker addr> <why>   the first failure after a SEND_OK
//       and runs until SIGTERM / SIGINT (then prints `SENT ok=<n> failed=<n>` and exits 0).
//
//   node bench/bench_failover.js wait-sync <controllers> <brokerName> <n> [timeout ms]
//       Polls the controllers (host:port;host:port, CONTROLLER_GET_SYNC_STATE_DATA 1006) until
//       one of them answers a master and at least <n> alive members of the sync state set
//       (master included) for <brokerName>; prints the master's address and exits 0, or exits
//       1 with the last answer after the timeout (default 60000).
//
// Times are wall-clock milliseconds (Date.now()), so that the script can compare them with the
// moment it killed the master (date +%s%3N on the same machine).

const remoting = require('../tests/compat/remoting');

const { RemotingConnection, RESP, REQ } = remoting;
const CTL_GET_SYNC_STATE_DATA = 1006;
const PACE_MS = 20;
const SEND_TIMEOUT_MS = 3000;

const sleep = msec => new Promise(resolve => setTimeout(resolve, msec));

function usage() {
  process.stderr.write('usage: bench_failover.js send <namesrv> <topic> <brokerName> [loops]\n' +
    '       bench_failover.js wait-sync <controllers> <brokerName> <n> [timeout ms]\n');
  process.exit(2);
}

/** A connection to one address, reopened after it closed or failed. */
class Link {
  constructor() {
    this.addr = null;
    this.conn = null;
  }

  async get(addr) {
    if (this.conn && (this.conn.isClosed || this.addr !== addr)) this.drop();
    if (!this.conn) {
      this.addr = addr;
      this.conn = await RemotingConnection.connect(addr, 1000);
    }
    return this.conn;
  }

  drop() {
    if (this.conn) this.conn.close();
    this.conn = null;
  }
}

async function send(namesrv, topic, brokerName, loops) {
  const ns = new Link();
  const body = Buffer.alloc(64, 'f');
  let master = null; // the route's id 0, until a send to it fails
  let resolving = null;
  let lastAckAddr = null;
  let failedSinceAck = false;
  let stop = false;
  let ok = 0;
  let failed = 0;

  const out = line => process.stdout.write(`${line}\n`);

  async function resolve() {
    if (master) return master;
    if (!resolving) {
      resolving = (async () => {
        try {
          const r = await (await ns.get(namesrv)).invoke(REQ.GET_ROUTEINFO_BY_TOPIC, { topic }, { timeoutMs: 1000 });
          if (r.code !== RESP.SUCCESS) return null;
          const bd = (remoting.parseLenientJson(r.body).brokerDatas || []).find(d => d.brokerName === brokerName);
          master = bd && bd.brokerAddrs && bd.brokerAddrs['0'] ? bd.brokerAddrs['0'] : null;
          return master;
        } catch (_) {
          ns.drop();
          return null;
        } finally {
          resolving = null;
        }
      })();
    }
    return resolving;
  }

  async function loop(w) {
    const link = new Link();
    for (let i = 0; !stop; i++) {
      const addr = await resolve();
      if (!addr) {
        await sleep(PACE_MS);
        continue;
      }
      let why = null;
      try {
        const r = await remoting.sendMessage(await link.get(addr), { topic, queueId: (w + i) % 4, body,
          keys: `fo-${w}-${i}`, timeoutMs: SEND_TIMEOUT_MS });
        if (r.code !== RESP.SUCCESS) why = `code ${r.code} ${r.remark || ''}`.trim();
      } catch (e) {
        why = e.message;
        link.drop();
      }
      const now = Date.now();
      if (!why) {
        ok++;
        if (addr !== lastAckAddr) out(`ACK ${now} ${addr}`);
        lastAckAddr = addr;
        failedSinceAck = false;
        continue;
      }
      failed++;
      if (!failedSinceAck && lastAckAddr) out(`FAIL ${now} ${addr} ${why.replace(/\s+/g, ' ')}`);
      failedSinceAck = true;
      if (master === addr) master = null;
      await sleep(PACE_MS);
    }
    link.drop();
  }

  const done = Promise.all(Array.from({ length: loops }, (_, w) => loop(w)));
  const finish = async () => {
    if (stop) return;
    stop = true;
    await done;
    ns.drop();
    out(`SENT ok=${ok} failed=${failed}`);
    process.exit(0);
  };
  process.on('SIGTERM', finish);
  process.on('SIGINT', finish);
}

async function syncState(addr, brokerName) {
  const conn = await RemotingConnection.connect(addr, 1000);
  try {
    const r = await conn.invoke(CTL_GET_SYNC_STATE_DATA, {}, { body: Buffer.from(JSON.stringify([ brokerName ])),
      timeoutMs: 1000 });
    if (r.code !== RESP.SUCCESS) return { why: `${addr}: code ${r.code} ${r.remark || ''}` };
    const t = (remoting.parseLenientJson(r.body).replicasInfoTable || {})[brokerName];
    if (!t) return { why: `${addr}: no replica info for ${brokerName}` };
    return { master: t.masterAddress || null, alive: (t.inSyncReplicas || []).filter(x => x.alive).length,
      why: `${addr}: ${JSON.stringify(t)}` };
  } finally {
    conn.close();
  }
}

async function waitSync(controllers, brokerName, n, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last = '(no answer)';
  while (Date.now() < deadline) {
    for (const addr of controllers.split(';')) {
      try {
        const s = await syncState(addr, brokerName);
        last = s.why;
        if (s.master && s.alive >= n) {
          process.stdout.write(`${s.master}\n`);
          return 0;
        }
      } catch (e) {
        last = `${addr}: ${e.message}`;
      }
    }
    await sleep(100);
  }
  process.stderr.write(`bench_failover: no master with ${n} alive in-sync members of ${brokerName} ` +
    `within ${timeoutMs} ms; last answer ${last}\n`);
  return 1;
}

const [ cmd, ...args ] = process.argv.slice(2);
if (cmd === 'send' && args.length >= 3) {
  send(args[0], args[1], args[2], Number(args[3] || 2));
} else if (cmd === 'wait-sync' && args.length >= 3) {
  waitSync(args[0], args[1], Number(args[2]), Number(args[3] || 60000)).then(rc => process.exit(rc));
} else {
  usage();
}
