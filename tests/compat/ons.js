'use strict';
// Helpers around the unmodified ali-ons client (REMOTING.md §7): building producers and push
// consumers pointed at the test cluster's name server, creating topics with ali-ons' own
// UPDATE_AND_CREATE_TOPIC call, and closing everything so the test process can exit.

const fs = require('node:fs');
const path = require('node:path');
const util = require('node:util');
const { Producer, Consumer, Message } = require('ali-ons');
const MQProducer = require('ali-ons/lib/producer/mq_producer');
const { waitFor, ms } = require('./harness');
const remoting = require('./remoting');

// ali-ons asserts that an HTTP client exists even when nameSrv is set; it is only used to
// download a name-server list, which never happens with nameSrv.
const httpclient = {
  request() {
    throw new Error('ali-ons tried an HTTP name-server lookup although nameSrv is set');
  },
};

/** A logger for ali-ons that appends warnings and errors to a file instead of the console. */
function fileLogger(file) {
  const write = (level, args) => {
    try {
      fs.appendFileSync(file, `${new Date().toISOString()} ${level} ${util.format(...args)}\n`);
    } catch (_) { /* temp dir may be gone during teardown */ }
  };
  return {
    debug() {},
    info() {},
    warn(...args) { write('WARN', args); },
    error(...args) { write('ERROR', args); },
  };
}

class OnsClients {
  constructor(cluster) {
    this.cluster = cluster;
    this.logFile = path.join(cluster.dir, 'ali-ons.log');
    this.logger = fileLogger(this.logFile);
    this.clients = [];
    this.errors = [];
  }

  common(extra) {
    return Object.assign({
      nameSrv: this.cluster.nsAddr,
      httpclient,
      logger: this.logger,
      // Short periods so rebalance/offset persistence happen within test time budgets.
      rebalanceInterval: 1000,
      persistConsumerOffsetInterval: 1000,
      heartbeatBrokerInterval: 5000,
      pollNameServerInteval: 5000,
    }, extra);
  }

  _track(client, what) {
    client.on('error', err => {
      this.errors.push(`${what}: ${err && err.message}`);
      this.logger.error(`${what} error event:`, err);
    });
    this.clients.push(client);
    return client;
  }

  async producer(group, extra = {}) {
    const p = this._track(new Producer(this.common(Object.assign({ producerGroup: group }, extra))), `producer ${group}`);
    await p.ready();
    return p;
  }

  /**
   * A push consumer. instanceName must differ between instances of the same process: ali-ons
   * keys its client (and so the clientId the broker sees) by clientIP@instanceName.
   */
  consumer(group, instanceName, extra = {}) {
    return this._track(new Consumer(this.common(Object.assign({
      consumerGroup: group,
      instanceName,
      consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET',
    }, extra))), `consumer ${group}/${instanceName}`);
  }

  async close(client) {
    const i = this.clients.indexOf(client);
    if (i >= 0) this.clients.splice(i, 1);
    await client.close();
  }

  /** Closes every client, then ali-ons' process-wide inner producer. */
  async closeAll() {
    const clients = this.clients.splice(0).reverse();
    for (const c of clients) {
      try {
        await withTimeout(c.close(), ms(10000), 'closing an ali-ons client');
      } catch (e) {
        this.logger.error('close failed:', e);
      }
    }
    const inner = MQProducer.defaultProducer;
    if (inner) {
      MQProducer.defaultProducer = null;
      try {
        await withTimeout(inner.close(), ms(10000), 'closing the ali-ons inner producer');
      } catch (e) {
        this.logger.error('inner producer close failed:', e);
      }
    }
  }

  logTail(n = 60) {
    try {
      return fs.readFileSync(this.logFile, 'utf8').split('\n').slice(-n).join('\n');
    } catch (_) {
      return '(no ali-ons log)';
    }
  }
}

function withTimeout(promise, timeoutMs, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took more than ${timeoutMs} ms`)), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Creates `topic` with ali-ons' createTopic (UPDATE_AND_CREATE_TOPIC, code 17) on every master
 * listed in the TBW102 route (REMOTING.md §7.5), then waits until the name server routes it.
 */
async function createTopic(producer, cluster, topic, queues = 4) {
  const client = producer._mqClient; // ali-ons 3.x internal API, as in REMOTING.md §7.6
  const route = await client.getTopicRouteInfoFromNameServer('TBW102', 3000);
  let created = 0;
  for (const bd of route.brokerDatas) {
    const master = bd.brokerAddrs['0'];
    if (!master) continue;
    await client.createTopic(master, 'TBW102', {
      topicName: topic, readQueueNums: queues, writeQueueNums: queues, perm: 6,
      topicFilterType: 'SINGLE_TAG', topicSysFlag: 0, order: false,
    }, 3000);
    created++;
  }
  if (!created) throw new Error(`TBW102 route lists no master: ${JSON.stringify(route)}`);
  await waitTopicRoute(cluster, topic, queues);
}

/** Waits until the name server's route for `topic` lists this cluster's broker with `queues` queues. */
async function waitTopicRoute(cluster, topic, queues) {
  return waitFor(() => remoting.withConnection(cluster.nsAddr, async conn => {
    const r = await remoting.getRoute(conn, topic);
    if (!r.route) return false;
    const qd = (r.route.queueDatas || []).find(q => q.brokerName === cluster.brokerName);
    const bd = (r.route.brokerDatas || []).find(b => b.brokerName === cluster.brokerName);
    return !!(qd && bd && Number(qd.writeQueueNums) === queues && Number(qd.readQueueNums) === queues &&
      Object.values(bd.brokerAddrs || {}).includes(cluster.brokerAddr)) && r.route;
  }), { timeoutMs: ms(15000), what: `the name server to route topic ${topic} with ${queues} queues to ${cluster.brokerAddr}` });
}

/** The queue ids a push consumer currently pulls for `topic`. */
function assignedQueues(consumer, topic) {
  const ids = [];
  for (const { messageQueue } of consumer.processQueueTable.values()) {
    if (messageQueue.topic === topic) ids.push(messageQueue.queueId);
  }
  return ids.sort((a, b) => a - b);
}

/** Sends `count` messages built by make(i) with at most `concurrency` in flight; returns results by index. */
async function sendAll(producer, count, concurrency, make) {
  const results = new Array(count);
  let next = 0;
  const workers = [];
  for (let w = 0; w < Math.min(concurrency, count); w++) {
    workers.push((async () => {
      for (;;) {
        const i = next++;
        if (i >= count) return;
        const msg = make(i);
        const r = await producer.send(msg);
        if (r.sendStatus !== 'SEND_OK') {
          throw new Error(`send #${i} returned ${r.sendStatus}: ${JSON.stringify(r)}`);
        }
        results[i] = r;
      }
    })());
  }
  await Promise.all(workers);
  return results;
}

module.exports = {
  Message,
  Producer,
  Consumer,
  OnsClients,
  createTopic,
  waitTopicRoute,
  assignedQueues,
  sendAll,
  withTimeout,
};
