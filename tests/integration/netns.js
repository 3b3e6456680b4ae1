'use strict';
// Test hosts in network namespaces (ip netns, iproute2) for the tests that cut the network,
// not only processes (partition.test.js): host i is a namespace with one veth whose other end
// sits on a bridge in the test's own namespace, so the test, the name server and the
// controllers (root side, on the bridge address) reach every host, and the hosts reach each
// other through the bridge. cut(i) takes host i's link down (a partition of that host from
// everyone), heal(i) brings it back. Needs root (CAP_NET_ADMIN); NetHosts.available() says
// whether this machine lets us, and why not. Everything made here is removed by teardown()
// and at process exit. Not a *.test.js file.

const { execFileSync } = require('node:child_process');

function ip(args) {
  return execFileSync('ip', args, { stdio: [ 'ignore', 'pipe', 'pipe' ] }).toString();
}

class NetHosts {
  /** null when namespaces can be made here, else the reason they cannot. */
  static unavailable() {
    if (process.getuid && process.getuid() !== 0) return 'not root (ip netns needs CAP_NET_ADMIN)';
    const probe = `fprobe${process.pid % 100000}`;
    try {
      ip([ 'netns', 'add', probe ]);
    } catch (e) {
      return `ip netns add failed: ${(e.stderr || e.message).toString().trim()}`;
    }
    try { ip([ 'netns', 'del', probe ]); } catch (_) { /* gone anyway */ }
    return null;
  }

  /**
   * A /24 of 198.18.0.0/15 (RFC 2544's benchmarking range, kept off real networks) that no
   * route of this machine covers yet, so that the bridge never shadows a real network.
   */
  static freeSubnet() {
    const routes = ip([ '-4', 'route', 'show', 'table', 'all' ]);
    for (let i = 0; i < 500; i++) {
      const n = (process.pid + i) % 500;
      const net = `198.${18 + (n >= 250 ? 1 : 0)}.${n % 250}`;
      if (!routes.includes(`${net}.`)) return net;
    }
    throw new Error('no free /24 in 198.18.0.0/15 for the test hosts');
  }

  /** n hosts; names carry the pid so parallel runs never collide (interface names <= 15 chars). */
  constructor(n) {
    const tag = (process.pid % 100000).toString(36);
    this.n = n;
    this.bridge = `fbr${tag}`;
    this.subnet = NetHosts.freeSubnet();
    this.bridgeIp = `${this.subnet}.1`;
    this.hosts = [];
    for (let i = 0; i < n; i++) {
      this.hosts.push({ ns: `fns${tag}h${i}`, veth: `fv${tag}h${i}`, ip: `${this.subnet}.${10 + i}` });
    }
    this.made = false;
    this.onExit = () => this.teardown();
    process.on('exit', this.onExit);
  }

  setup() {
    this.made = true;
    ip([ 'link', 'add', this.bridge, 'type', 'bridge' ]);
    ip([ 'addr', 'add', `${this.bridgeIp}/24`, 'dev', this.bridge ]);
    ip([ 'link', 'set', this.bridge, 'up' ]);
    for (const h of this.hosts) {
      ip([ 'netns', 'add', h.ns ]);
      ip([ 'link', 'add', h.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.ns ]);
      ip([ 'link', 'set', h.veth, 'master', this.bridge ]);
      ip([ 'link', 'set', h.veth, 'up' ]);
      ip([ '-n', h.ns, 'addr', 'add', `${h.ip}/24`, 'dev', 'eth0' ]);
      ip([ '-n', h.ns, 'link', 'set', 'lo', 'up' ]);
      ip([ '-n', h.ns, 'link', 'set', 'eth0', 'up' ]);
    }
  }

  /** The command prefix that runs a program on host i. */
  exec(i) {
    return [ 'ip', 'netns', 'exec', this.hosts[i].ns ];
  }

  ipOf(i) {
    return this.hosts[i].ip;
  }

  /** Host i loses its link: nothing reaches it and it reaches nothing. */
  cut(i) {
    ip([ 'link', 'set', this.hosts[i].veth, 'down' ]);
  }

  heal(i) {
    ip([ 'link', 'set', this.hosts[i].veth, 'up' ]);
  }

  teardown() {
    if (!this.made) return;
    this.made = false;
    for (const h of this.hosts) {
      try { ip([ 'netns', 'del', h.ns ]); } catch (_) { /* not made */ }
    }
    try { ip([ 'link', 'del', this.bridge ]); } catch (_) { /* not made */ }
    process.removeListener('exit', this.onExit);
  }
}

module.exports = { NetHosts };
