// FerryMQ's dashboard: a single page app without framework or network beyond the broker that
// serves it. Every figure comes from the broker's JSON API (/api/, docs/DASHBOARD.md), which
// runs mqadmin's own commands in-process: /api/topicStatus?t=T is `mqadmin topicStatus -t T
// --json`. Views are chosen by the URL's hash (#/topics, #/group/G, ...); a view polls while it
// is shown and stops when another is. Everything the API returns is put into the page as text
// (never as HTML). Actions (create topic, reset offsets, resend dead letters) are POSTs with the
// X-Ferry-Action header, each after a confirmation dialog. With the broker's ACL on, an API call
// that answers 401 shows the login form (an admin account's access key and secret key); after the
// login the view that was asked for is shown, and the header shows the account and "Log out".
'use strict';

(() => {
  const main = document.getElementById('main');
  let gen = 0; // the current view; a view's late results are dropped once it changed

  // ---- DOM helpers ----

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid === undefined || kid === null || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  }

  const link = (href, text, attrs = {}) => h('a', Object.assign({ href }, attrs), text);
  const enc = encodeURIComponent;

  function table(headers, rows, attrs = {}) {
    return h('table', Object.assign({ class: 'grid' }, attrs),
      h('thead', null, h('tr', null, headers.map(x => h('th', null, x)))),
      h('tbody', null, rows));
  }

  function cell(value, attrs = {}) {
    return h('td', attrs, value === undefined || value === null ? '' : value);
  }

  function num(value, name) {
    return h('td', { class: 'num', 'data-field': name, 'data-value': value }, String(value));
  }

  function errorBox(e) {
    return h('div', { class: 'error', 'data-testid': 'error' }, e && e.message ? e.message : String(e));
  }

  function note(text, cls = 'note') {
    return h('p', { class: cls }, text);
  }

  function section(title, ...kids) {
    return h('section', { class: 'card' }, h('h2', null, title), kids);
  }

  function pad(n, w = 2) {
    return String(n).padStart(w, '0');
  }

  function fmtTime(ms) {
    if (!ms || ms <= 0) return '-';
    const d = new Date(Number(ms));
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  }

  // A time typed by a person: milliseconds, earliest/latest/now, or local "yyyy-mm-dd hh:mm[:ss[.mmm]]".
  function parseTime(text) {
    const s = text.trim();
    if (/^(earliest|latest|now)$/.test(s)) return s;
    if (/^\d+$/.test(s)) return s;
    const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2})(?:[.,:](\d{1,3}))?)?$/.exec(s);
    if (!m) throw new Error(`not a time: "${s}" (milliseconds, earliest, latest or yyyy-mm-dd hh:mm:ss.mmm)`);
    const d = new Date(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0), +(m[7] || '0').padEnd(3, '0'));
    return String(d.getTime());
  }

  // ---- the API ----

  async function answer(r) {
    let body;
    try {
      body = await r.json();
    } catch (_) {
      throw new Error(`HTTP ${r.status} without a JSON answer`);
    }
    if (r.status === 401) { // no session (aclEnable): the login form replaces the view
      showLogin(body && body.error);
      throw new LoginNeeded((body && body.error) || 'log in');
    }
    if (!r.ok) {
      const e = new Error((body && body.error) || `HTTP ${r.status}`);
      e.status = r.status;
      throw e;
    }
    return body;
  }

  function clean(params) {
    const out = {};
    for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== '') out[k] = String(v);
    return out;
  }

  async function api(name, params) {
    const q = new URLSearchParams(clean(params)).toString();
    return answer(await fetch(`api/${name}${q ? '?' + q : ''}`, { headers: { Accept: 'application/json' } }));
  }

  function post(name, body) {
    return fetch(`api/${name}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Ferry-Action': '1', Accept: 'application/json' },
      body: JSON.stringify(body),
    });
  }

  async function action(name, params) {
    return answer(await post(name, clean(params)));
  }

  // ---- login (the broker's ACL on: docs/DASHBOARD.md) ----

  class LoginNeeded extends Error {}
  const userBox = document.getElementById('user');
  let loginShown = false;

  // The header's account and "Log out"; nothing when there is no session (or no ACL).
  function setUser(user) {
    userBox.hidden = !user;
    userBox.replaceChildren(...(user ? [
      h('span', { 'data-testid': 'user' }, user),
      h('button', { type: 'button', class: 'logout', 'data-testid': 'logout', onclick: logout }, 'Log out'),
    ] : []));
  }

  // The server's message as a sentence: a capital first letter, a final period.
  const sentence = t => t.charAt(0).toUpperCase() + t.slice(1) + (/[.!?]$/.test(t) ? '' : '.');

  // Replaces the view with the login form, with the first reason given (the other requests of
  // the view that answer 401 at the same time change nothing).
  function showLogin(reason) {
    setUser(null);
    selfInfo = null;
    document.getElementById('self').textContent = '';
    if (loginShown) return;
    loginShown = true;
    ++gen; // the view's polls stop
    const ak = h('input', { name: 'accessKey', autocomplete: 'username', required: true, 'data-testid': 'login-ak' });
    const sk = h('input', { name: 'secretKey', type: 'password', autocomplete: 'current-password', required: true,
      'data-testid': 'login-sk' });
    const button = h('button', { type: 'submit', 'data-testid': 'login-submit' }, 'Log in');
    const result = h('div');
    const submit = async ev => {
      ev.preventDefault();
      button.disabled = true;
      result.replaceChildren();
      try {
        const r = await post('login', { accessKey: ak.value, secretKey: sk.value });
        let body = {};
        try { body = await r.json(); } catch (_) { /* shown by status */ }
        if (r.ok) {
          loginShown = false;
          setUser(body.user);
          route(); // the view that was asked for
          return;
        }
        const retry = r.headers.get('Retry-After');
        const msg = r.status === 401 ? 'Wrong access key or secret key.'
          : r.status === 429 ? `Too many failed logins from this address: try again in ${retry || 60} s.`
            : r.status === 403 && /not an admin/.test(body.error || '') ? `Refused: ${body.error}`
              : body.error || `HTTP ${r.status}`;
        result.replaceChildren(h('div', { class: 'error', 'data-testid': 'login-error', 'data-status': r.status }, msg));
        sk.value = '';
        sk.focus();
      } catch (e) {
        result.replaceChildren(h('div', { class: 'error', 'data-testid': 'login-error' }, e.message));
      } finally {
        button.disabled = false;
      }
    };
    main.replaceChildren(h('section', { class: 'card login', 'data-testid': 'login' },
      h('h2', null, 'Log in to the dashboard'),
      h('p', { class: /session ended/.test(reason || '') ? 'warn' : 'note', id: 'login-reason', 'data-testid': 'login-reason' },
        reason ? sentence(reason) : 'Log in with an admin account of the broker\'s ACL file.'),
      h('form', { 'data-testid': 'login-form', onsubmit: submit },
        h('label', null, 'Access key', ak),
        h('label', null, 'Secret key', sk),
        button,
        result),
      note('Admin accounts (admin: true in plain_acl.yml) only. The commands behind the pages run with this ' +
        'account\'s keys on every broker.')));
    for (const a of document.querySelectorAll('#nav a')) a.classList.remove('active');
    main.dataset.view = 'login';
    main.dataset.ready = '1';
    ak.focus();
  }

  async function logout() {
    ++gen; // the view's polls stop
    try {
      await post('logout', {});
    } catch (_) { /* the form comes anyway */ }
    showLogin('Logged out.');
    document.getElementById('login-reason').textContent = 'Logged out.';
  }

  // ---- confirmation ----

  function confirmAction(title, lines) {
    const d = document.getElementById('confirm');
    document.getElementById('confirm-title').textContent = title;
    document.getElementById('confirm-body').replaceChildren(...lines.map(l => h('p', null, l)));
    d.returnValue = '';
    d.showModal();
    return new Promise(resolve => d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true }));
  }

  // ---- polling ----

  // Runs fn now and then every `ms` while the view that started it is shown (never two at once).
  function poll(fn, ms) {
    const my = gen;
    const tick = async () => {
      if (my !== gen) return;
      try {
        await fn();
      } catch (e) {
        // fn shows its own errors; never an unhandled rejection
      }
      if (my === gen) setTimeout(tick, ms);
    };
    tick();
  }

  // ---- charts: inline SVG ----

  const SVG = 'http://www.w3.org/2000/svg';
  function s(tag, attrs, text) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function niceMax(v) {
    if (v <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  // series: [{ name, color, values: [numbers] }] (same length); xLabel(i) for a few ticks.
  function lineChart(series, { width = 760, height = 200, xLabel = i => String(i), unit = '', testid } = {}) {
    const L = 56, R = 12, T = 12, B = 28;
    const n = Math.max(0, ...series.map(x => x.values.length));
    const max = niceMax(Math.max(0, ...series.flatMap(x => x.values)));
    const svg = s('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img',
      'data-testid': testid || 'chart' });
    const x = i => L + (n <= 1 ? 0 : (i * (width - L - R)) / (n - 1));
    const y = v => T + (height - T - B) * (1 - v / max);
    for (let k = 0; k <= 4; k++) {
      const v = (max * k) / 4;
      svg.append(s('line', { x1: L, x2: width - R, y1: y(v), y2: y(v), class: 'gridline' }));
      svg.append(s('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' },
        `${+v.toPrecision(3)}${unit}`));
    }
    if (n > 1) {
      for (const i of [0, Math.floor((n - 1) / 2), n - 1]) {
        svg.append(s('text', { x: x(i), y: height - 8, 'text-anchor': i === 0 ? 'start' : i === n - 1 ? 'end' : 'middle',
          class: 'axis' }, xLabel(i)));
      }
      for (const ser of series) {
        const d = ser.values.map((v, i) => `${i ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join('');
        svg.append(s('path', { d, fill: 'none', stroke: ser.color, 'stroke-width': 1.8 }));
      }
    } else {
      svg.append(s('text', { x: width / 2, y: height / 2, 'text-anchor': 'middle', class: 'axis' }, 'collecting samples…'));
    }
    const legend = h('div', { class: 'legend' }, series.map(ser =>
      h('span', null, h('i', { style: `background:${ser.color}` }), ser.name)));
    return h('div', { class: 'chartbox' }, svg, legend);
  }

  const ago = (t0, i, step) => {
    const sec = Math.round(((t0 - i) * step) / 1000);
    return sec <= 0 ? 'now' : sec >= 60 ? `-${Math.floor(sec / 60)}m${sec % 60 ? pad(sec % 60) + 's' : ''}` : `-${sec}s`;
  };

  // ---- who serves the page ----

  let selfInfo = null;
  async function self() {
    if (!selfInfo) {
      selfInfo = await api('self');
      document.getElementById('self').textContent =
        `${selfInfo.brokerName} (${selfInfo.brokerRole}) at ${selfInfo.brokerAddr} · cluster ${selfInfo.clusterName}`;
    }
    return selfInfo;
  }

  // ---- kinds of topics and groups ----

  const SYSTEM_TOPICS = new Set(['TBW102', 'SELF_TEST_TOPIC', 'OFFSET_MOVED_EVENT', 'BenchmarkTest',
    'SCHEDULE_TOPIC_XXXX', 'RMQ_SYS_TRANS_HALF_TOPIC', 'RMQ_SYS_TRANS_OP_HALF_TOPIC', 'TRANS_CHECK_MAX_TIME_TOPIC',
    'rmq_sys_wheel_timer', 'RMQ_SYS_TRACE_TOPIC']);
  function topicKind(t, names) {
    if (t.startsWith('%RETRY%')) return 'retry';
    if (t.startsWith('%DLQ%')) return 'dlq';
    if (SYSTEM_TOPICS.has(t) || names.has(t) || /_REPLY_TOPIC$|^rmq_sys_|^RMQ_SYS_/.test(t)) return 'system';
    return 'normal';
  }
  const SYSTEM_GROUPS = /^(TOOLS_CONSUMER|FILTERSRV_CONSUMER|SELF_TEST_C_GROUP|CID_ONS.*|CID_RMQ_SYS_.*|CID_SYS_RMQ_TRANS)$/;

  async function clusterNames() {
    const ci = await api('clusterList');
    const names = new Set(Object.keys(ci.clusterAddrTable || {}));
    for (const b of Object.keys(ci.brokerAddrTable || {})) names.add(b);
    return { ci, names };
  }

  // ---- Cluster ----

  async function viewCluster(my) {
    const me = await self();
    const { ci } = await clusterNames();
    if (my !== gen) return;
    const brokersBox = h('div', null, note('loading…'));
    const chartBox = h('div', null, note('loading…'));
    main.append(section('Brokers', brokersBox),
      section('Throughput of every broker, messages per second, last 10 minutes', chartBox));

    const rows = [];
    for (const [cluster, names] of Object.entries(ci.clusterAddrTable || {})) {
      for (const name of names) {
        const bd = (ci.brokerAddrTable || {})[name] || { brokerAddrs: {} };
        for (const [id, addr] of Object.entries(bd.brokerAddrs || {})) rows.push({ cluster, name, id, addr });
      }
    }
    const epochs = new Map();
    await Promise.all(Object.keys(ci.clusterAddrTable || {}).map(async c => {
      try {
        for (const e of await api('getBrokerEpoch', { c })) epochs.set(e.brokerAddr, e);
      } catch (_) { /* shown as '-' */ }
    }));
    await Promise.all(rows.map(async r => {
      try { r.rt = await api('brokerStatus', { b: r.addr }); } catch (e) { r.err = e.message; }
      try { r.ha = (await api('haStatus', { b: r.addr }))[0]; } catch (_) { /* older broker */ }
    }));
    if (my !== gen) return;
    const tr = rows.map(r => {
      const rt = r.rt || {};
      const ep = epochs.get(r.addr);
      const last = ep && ep.epochList && ep.epochList.length ? ep.epochList[ep.epochList.length - 1].epoch : '-';
      const ratio = rt.commitLogDiskRatio !== undefined ? `${(Number(rt.commitLogDiskRatio) * 100).toFixed(1)} %` : '-';
      return h('tr', { 'data-testid': 'broker-row', 'data-addr': r.addr },
        cell(r.cluster), cell(r.name), cell(r.id), cell(r.addr),
        cell(r.ha ? `${r.ha.role}${r.ha.fenced ? ' (fenced)' : ''}` : rt.brokerRole || '-'),
        cell(last), cell(rt.brokerVersionDesc || '-'),
        cell(ratio, { title: rt.commitLogDirCapacity || '' }),
        num(rt.commitLogMaxOffset || 0, 'commitLogMaxOffset'),
        cell((rt.putTps || '-').split(' ')[0]), cell((rt.getTransferedTps || '-').split(' ')[0]),
        cell(rt.bootTimestamp ? fmtTime(Number(rt.bootTimestamp)) : (r.err || '-')));
    });
    brokersBox.replaceChildren(table(['Cluster', 'Broker', 'ID', 'Address', 'Role', 'Epoch', 'Version', 'Disk used',
      'Commit log max offset', 'In TPS (10 s)', 'Out TPS (10 s)', 'Started'], tr, { 'data-testid': 'brokers' }),
    note('Role and epoch from haStatus and getBrokerEpoch, the rest from brokerStatus (mqadmin).'));

    // One chart per broker: mqadmin brokerThroughput -c <cluster> for each cluster of the table
    // (the serving broker's cluster when the name server lists none).
    const clusters = Object.keys(ci.clusterAddrTable || {});
    poll(async () => {
      let list;
      try {
        const parts = await Promise.all((clusters.length ? clusters : [ me.clusterName ]).map(c => api('brokerThroughput', { c })));
        list = parts.flat();
      } catch (e) {
        if (my === gen) chartBox.replaceChildren(errorBox(e));
        return;
      }
      if (my !== gen) return;
      chartBox.replaceChildren(h('div', { class: 'tputs' }, list.map(t => throughputBox(t, me))),
        note('From mqadmin brokerThroughput (each broker\'s put and get counts per second), refreshed every 5 s.'));
    }, 5000);
  }

  // One broker's throughput: its chart, or a note when it did not answer.
  function throughputBox(t, me) {
    const self = t.brokerAddr === me.brokerAddr ? ' (this broker)' : '';
    const title = [ t.brokerName || '?', t.brokerId !== undefined ? `id ${t.brokerId}` : null, t.brokerRole,
      `${t.brokerAddr}${self}` ].filter(Boolean).join(' · ');
    if (t.error || !Array.isArray(t.put)) {
      return h('div', { class: 'tput', 'data-testid': 'throughput-broker', 'data-addr': t.brokerAddr },
        h('h3', null, title), h('p', { class: 'warn', 'data-testid': 'throughput-no-answer' }, `no answer: ${t.error || 'no figures'}`));
    }
    const n = t.put.length;
    const lastPut = n ? t.put[n - 1] : 0;
    const lastGet = n ? t.get[n - 1] : 0;
    return h('div', { class: 'tput', 'data-testid': 'throughput-broker', 'data-addr': t.brokerAddr,
      'data-put-total': t.putTotal, 'data-get-total': t.getTotal },
    h('h3', null, title),
    lineChart([{ name: 'put (in)', color: '#2f7fc1', values: t.put }, { name: 'get (out)', color: '#e08a1e', values: t.get }],
      { width: 640, height: 180, xLabel: i => ago(n - 1, i, t.intervalMs), testid: 'throughput-chart' }),
    note(`Last second: ${lastPut} in, ${lastGet} out. Totals since start: ${t.putTotal} put, ${t.getTotal} got.`));
  }

  // ---- Topics ----

  async function topicStats(t) {
    const rows = await api('topicStatus', { t });
    let max = 0, msgs = 0;
    for (const r of rows) {
      max += r.maxOffset;
      msgs += r.maxOffset - r.minOffset;
    }
    return { rows, max, msgs, queues: rows.length };
  }

  async function viewTopics(my) {
    const { ci, names } = await clusterNames();
    const list = (await api('topicList')).topicList.slice().sort();
    if (my !== gen) return;
    const filter = h('input', { type: 'search', placeholder: 'filter', 'data-testid': 'topic-filter' });
    const showAll = h('input', { type: 'checkbox' });
    const body = h('tbody');
    const createBox = h('div', { hidden: true });
    const created = h('div');
    const rowsByTopic = new Map();
    const prev = new Map();
    for (const t of list) {
      const kind = topicKind(t, names);
      const tr = h('tr', { 'data-testid': 'topic-row', 'data-topic': t, 'data-kind': kind },
        cell(link(`#/topic/${enc(t)}`, t)), cell(kind), h('td', { class: 'num q' }), h('td', { class: 'num m' }),
        h('td', { class: 'num x' }), h('td', { class: 'num r' }));
      rowsByTopic.set(t, tr);
      body.append(tr);
    }
    const apply = () => {
      const f = filter.value.trim().toLowerCase();
      for (const [t, tr] of rowsByTopic) {
        tr.hidden = (f && !t.toLowerCase().includes(f)) || (!showAll.checked && tr.dataset.kind !== 'normal');
      }
    };
    filter.addEventListener('input', apply);
    showAll.addEventListener('change', apply);
    apply();

    // create topic
    const targets = h('select', { 'data-testid': 'new-topic-target' },
      Object.keys(ci.clusterAddrTable || {}).map(c => h('option', { value: `c:${c}` }, `cluster ${c} (every master)`)),
      Object.values(ci.brokerAddrTable || {}).flatMap(bd => Object.entries(bd.brokerAddrs || {})
        .filter(([id]) => id === '0').map(([, a]) => h('option', { value: `b:${a}` }, `broker ${bd.brokerName} ${a}`))));
    const name = h('input', { required: true, pattern: '[%\\|a-zA-Z0-9_\\-]+', maxlength: 127, 'data-testid': 'new-topic-name' });
    const rq = h('input', { type: 'number', min: 1, max: 1024, value: 8, 'data-testid': 'new-topic-rq' });
    const wq = h('input', { type: 'number', min: 1, max: 1024, value: 8, 'data-testid': 'new-topic-wq' });
    const perm = h('select', null, h('option', { value: 6 }, 'read and write (6)'), h('option', { value: 4 }, 'read only (4)'),
      h('option', { value: 2 }, 'write only (2)'));
    const order = h('input', { type: 'checkbox' });
    const form = h('form', { class: 'form', 'data-testid': 'create-topic-form' },
      h('label', null, 'Topic ', name), h('label', null, 'On ', targets),
      h('label', null, 'Read queues ', rq), h('label', null, 'Write queues ', wq),
      h('label', null, 'Permission ', perm), h('label', null, order, ' ordered'),
      h('button', { type: 'submit', 'data-testid': 'create-topic-submit' }, 'Create topic…'));
    form.addEventListener('submit', async ev => {
      ev.preventDefault();
      const [kind, target] = [targets.value.slice(0, 1), targets.value.slice(2)];
      const params = { t: name.value.trim(), r: rq.value, w: wq.value, p: perm.value, o: order.checked ? 'true' : 'false' };
      params[kind] = target;
      const ok = await confirmAction('Create topic', [`Create topic ${params.t} on ${kind === 'c' ? 'every master of cluster' : 'broker'} ${target}`,
        `with ${params.r} read and ${params.w} write queues, permission ${params.p}${order.checked ? ', ordered' : ''}?`,
        `(mqadmin updateTopic -t ${params.t} -${kind} ${target} -r ${params.r} -w ${params.w} -p ${params.p})`]);
      if (!ok) return;
      try {
        const r = await action('updateTopic', params);
        created.replaceChildren(h('div', { class: 'ok', 'data-testid': 'create-topic-ok' },
          `Created topic ${r.topic} on ${r.brokers.join(', ')}.`));
        setTimeout(() => { if (my === gen) route(); }, 800);
      } catch (e) {
        created.replaceChildren(errorBox(e));
      }
    });
    createBox.append(form);
    const toggle = h('button', { type: 'button', 'data-testid': 'create-topic-open', onclick: () => { createBox.hidden = !createBox.hidden; } },
      'Create topic');

    main.append(section('Topics',
      h('div', { class: 'toolbar' }, filter, h('label', null, showAll, ' system, retry and dead letter topics'), toggle),
      createBox, created,
      table(['Topic', 'Kind', 'Queues', 'Messages', 'Max offsets (sum)', 'Rate (msg/s)'], [body], { 'data-testid': 'topics' }),
      note('Queues and offsets from topicStatus; the rate is the growth of the max offsets between two refreshes (10 s).')));

    poll(async () => {
      const visible = [...rowsByTopic].filter(([, tr]) => !tr.hidden).slice(0, 100);
      let i = 0;
      const worker = async () => {
        while (i < visible.length && my === gen) {
          const [t, tr] = visible[i++];
          try {
            const st = await topicStats(t);
            const now = Date.now();
            const p = prev.get(t);
            tr.querySelector('.q').textContent = st.queues;
            tr.querySelector('.m').textContent = st.msgs;
            tr.querySelector('.x').textContent = st.max;
            tr.querySelector('.r').textContent = p ? ((st.max - p.max) / ((now - p.at) / 1000)).toFixed(1) : '…';
            prev.set(t, { max: st.max, at: now });
          } catch (e) {
            tr.querySelector('.q').textContent = '-';
            tr.querySelector('.m').textContent = e.message.slice(0, 60);
          }
        }
      };
      await Promise.all([worker(), worker(), worker()]);
    }, 10000);
  }

  async function viewTopic(my, t) {
    const route_ = await api('topicRoute', { t });
    if (my !== gen) return;
    const masters = new Map((route_.brokerDatas || []).map(bd => [bd.brokerName, bd]));
    const routeTable = table(['Broker', 'Cluster', 'Addresses', 'Read queues', 'Write queues', 'Permission'],
      (route_.queueDatas || []).map(q => {
        const bd = masters.get(q.brokerName) || {};
        return h('tr', null, cell(q.brokerName), cell(bd.cluster || ''),
          cell(Object.entries(bd.brokerAddrs || {}).map(([id, a]) => `${id}: ${a}`).join(', ')),
          num(q.readQueueNums, 'readQueueNums'), num(q.writeQueueNums, 'writeQueueNums'), cell(q.perm));
      }));
    const statusBox = h('div', null, note('loading…'));
    const rateBox = h('div', { 'data-testid': 'topic-rate' });
    const chartBox = h('div');
    const groupsBox = h('div', null, note('loading…'));
    main.append(h('h1', null, `Topic ${t}`),
      section('Route (topicRoute)', routeTable),
      section('Queues (topicStatus)', statusBox),
      section('Message rate', rateBox, chartBox),
      section('Consumer groups with offsets on this topic', groupsBox));

    api('groupList').then(groups => {
      if (my !== gen) return;
      const mine = groups.filter(g => (g.topics || []).includes(t));
      groupsBox.replaceChildren(mine.length
        ? h('ul', null, mine.map(g => h('li', null, link(`#/group/${enc(g.group)}`, g.group))))
        : note('none'));
    }).catch(e => { if (my === gen) groupsBox.replaceChildren(errorBox(e)); });

    const samples = [];
    poll(async () => {
      let st;
      try {
        st = await topicStats(t);
      } catch (e) {
        if (my === gen) statusBox.replaceChildren(errorBox(e));
        return;
      }
      if (my !== gen) return;
      const now = Date.now();
      samples.push({ at: now, max: st.max });
      if (samples.length > 201) samples.shift();
      statusBox.replaceChildren(table(['Broker', 'Queue', 'Min offset', 'Max offset', 'Messages', 'Last updated'],
        st.rows.map(r => h('tr', { 'data-testid': 'queue-row', 'data-broker': r.brokerName, 'data-qid': r.queueId },
          cell(r.brokerName), num(r.queueId, 'queueId'), num(r.minOffset, 'minOffset'), num(r.maxOffset, 'maxOffset'),
          num(r.maxOffset - r.minOffset, 'messages'), cell(fmtTime(r.lastUpdateTimestamp)))),
      { 'data-testid': 'queues' }),
      h('p', { class: 'note' }, 'Total: ', h('b', { 'data-testid': 'topic-total-max', 'data-value': st.max }, String(st.max)),
        ` messages written (sum of max offsets), ${st.msgs} kept.`));
      const rates = [];
      for (let i = 1; i < samples.length; i++) {
        rates.push((samples[i].max - samples[i - 1].max) / ((samples[i].at - samples[i - 1].at) / 1000));
      }
      const last = rates.length ? rates[rates.length - 1] : null;
      const span = samples.length > 1 ? (samples[samples.length - 1].at - samples[0].at) / 1000 : 0;
      const avg = span > 0 ? (samples[samples.length - 1].max - samples[0].max) / span : null;
      rateBox.replaceChildren(note(last === null ? 'Measuring (the rate is the growth of the max offsets between refreshes every 3 s)…'
        : `${last.toFixed(1)} msg/s now, ${avg.toFixed(1)} msg/s over the last ${Math.round(span)} s.`));
      chartBox.replaceChildren(lineChart([{ name: 'messages/s', color: '#2f7fc1', values: rates }],
        { xLabel: i => ago(rates.length - 1, i, 3000), testid: 'rate-chart', height: 160 }));
    }, 3000);
  }

  // ---- Consumer groups ----

  async function viewGroups(my) {
    const groups = await api('groupList');
    if (my !== gen) return;
    const filter = h('input', { type: 'search', placeholder: 'filter', 'data-testid': 'group-filter' });
    const showAll = h('input', { type: 'checkbox' });
    const rows = groups.map(g => h('tr', { 'data-testid': 'group-row', 'data-group': g.group, 'data-system': SYSTEM_GROUPS.test(g.group) ? 1 : 0 },
      cell(link(`#/group/${enc(g.group)}`, g.group)), cell(g.subscriptionGroup ? 'yes' : 'no'),
      cell((g.topics || []).join(', ') || '-'), cell((g.brokers || []).join(', '))));
    const apply = () => {
      const f = filter.value.trim().toLowerCase();
      for (const tr of rows) tr.hidden = (f && !tr.dataset.group.toLowerCase().includes(f)) || (!showAll.checked && tr.dataset.system === '1');
    };
    filter.addEventListener('input', apply);
    showAll.addEventListener('change', apply);
    apply();
    main.append(section('Consumer groups',
      h('div', { class: 'toolbar' }, filter, h('label', null, showAll, ' system groups')),
      table(['Group', 'Subscription group', 'Topics with offsets', 'Brokers'], rows, { 'data-testid': 'groups' }),
      note('From groupList: the subscription groups of every master and the groups that committed offsets there.')));
  }

  async function viewGroup(my, g) {
    const membersBox = h('div', null, note('loading…'));
    const progressBox = h('div', null, note('loading…'));
    const chartBox = h('div');
    const resetBox = h('div');
    main.append(h('h1', null, `Consumer group ${g}`),
      section('Members (consumerConnection)', membersBox),
      section('Progress and lag per queue (consumerProgress)', progressBox),
      section('Lag (polled every 3 s while this page is open)', chartBox),
      section('Reset offsets by time (resetOffsetByTime)', resetBox));

    api('consumerConnection', { g }).then(c => {
      if (my !== gen) return;
      const conns = c.connectionSet || [];
      membersBox.replaceChildren(
        table(['Client ID', 'Address', 'Language', 'Version'], conns.map(x => h('tr', { 'data-testid': 'member-row' },
          cell(x.clientId), cell(x.clientAddr), cell(x.language), cell(x.version))), { 'data-testid': 'members' }),
        table(['Subscribed topic', 'Expression'], Object.entries(c.subscriptionTable || {}).map(([topic, sd]) =>
          h('tr', null, cell(topic), cell(sd.subString)))),
        note(`${conns.length} member(s); ${c.consumeType || ''} ${c.messageModel || ''} ${c.consumeFromWhere || ''}`));
    }).catch(e => {
      if (my === gen) membersBox.replaceChildren(h('div', { class: 'warn', 'data-testid': 'members-offline' }, `No member online: ${e.message}`));
    });

    const topics = new Set();
    const samples = [];
    const topicSel = h('select', { 'data-testid': 'reset-topic' });
    poll(async () => {
      let p;
      try {
        p = await api('consumerProgress', { g });
      } catch (e) {
        if (my === gen) progressBox.replaceChildren(errorBox(e));
        return;
      }
      if (my !== gen) return;
      const rows = p.offsetTable || [];
      for (const r of rows) {
        if (!topics.has(r.topic) && !r.topic.startsWith('%RETRY%')) {
          topics.add(r.topic);
          topicSel.append(h('option', { value: r.topic }, r.topic));
        }
      }
      samples.push({ at: Date.now(), total: p.diffTotal });
      if (samples.length > 201) samples.shift();
      progressBox.replaceChildren(
        table(['Topic', 'Broker', 'Queue', 'Broker offset', 'Consumer offset', 'Lag', 'Last consumed'],
          rows.map(r => h('tr', { 'data-testid': 'lag-row', 'data-topic': r.topic, 'data-broker': r.brokerName, 'data-qid': r.queueId },
            cell(r.topic), cell(r.brokerName), num(r.queueId, 'queueId'), num(r.brokerOffset, 'brokerOffset'),
            num(r.consumerOffset, 'consumerOffset'), num(r.diff, 'diff'), cell(fmtTime(r.lastTimestamp)))),
          { 'data-testid': 'progress' }),
        h('p', { class: 'note' }, 'Total lag: ', h('b', { 'data-testid': 'lag-total', 'data-value': p.diffTotal }, String(p.diffTotal)),
          `, consume TPS ${Number(p.consumeTps).toFixed(2)}.`));
      chartBox.replaceChildren(lineChart([{ name: 'total lag (messages)', color: '#c0392b', values: samples.map(x => x.total) }],
        { xLabel: i => ago(samples.length - 1, i, 3000), testid: 'lag-chart', height: 160 }));
    }, 3000);

    const time = h('input', { placeholder: 'yyyy-mm-dd hh:mm:ss.mmm, ms, earliest or latest', size: 34, 'data-testid': 'reset-time',
      value: fmtTime(Date.now() - 3600 * 1000) });
    const force = h('input', { type: 'checkbox', checked: true, 'data-testid': 'reset-force' });
    const result = h('div');
    const form = h('form', { class: 'form', 'data-testid': 'reset-form' },
      h('label', null, 'Topic ', topicSel), h('label', null, 'Time ', time),
      h('label', { title: 'without force, offsets only move back' }, force, ' force'),
      h('button', { type: 'submit', class: 'danger', 'data-testid': 'reset-submit' }, 'Reset offsets…'));
    form.addEventListener('submit', async ev => {
      ev.preventDefault();
      let s;
      try {
        if (!topicSel.value) throw new Error('choose a topic');
        s = parseTime(time.value);
      } catch (e) {
        result.replaceChildren(errorBox(e));
        return;
      }
      const when = /^\d+$/.test(s) ? `${fmtTime(Number(s))} (${s})` : s;
      const ok = await confirmAction('Reset offsets', [`Move the offsets of group ${g} on topic ${topicSel.value} to ${when}?`,
        'Online consumers are told to restart from there; messages may be consumed again or skipped.',
        `(mqadmin resetOffsetByTime -g ${g} -t ${topicSel.value} -s ${s} -f ${force.checked})`]);
      if (!ok) {
        result.replaceChildren(note('Cancelled: nothing was changed.'));
        return;
      }
      try {
        const r = await action('resetOffsetByTime', { g, t: topicSel.value, s, f: force.checked ? 'true' : 'false' });
        result.replaceChildren(h('div', { class: 'ok', 'data-testid': 'reset-ok' }, `Reset ${r.offsetTable.length} queue(s).`),
          table(['Broker', 'Queue', 'New offset'], r.offsetTable.map(x => h('tr', null, cell(x.brokerName), num(x.queueId, 'queueId'),
            num(x.offset, 'offset')))));
      } catch (e) {
        result.replaceChildren(errorBox(e));
      }
    });
    resetBox.append(form, result);
  }

  // ---- Messages ----

  function messageRows(list) {
    return table(['Message ID', 'Topic', 'Broker / queue', 'Offset', 'Keys', 'Tags', 'Stored', 'Body'],
      list.map(m => h('tr', { 'data-testid': 'msg-row', 'data-msgid': m.msgId, 'data-offsetmsgid': m.offsetMsgId || '' },
        cell(m.offsetMsgId ? link(`#/message/${enc(m.offsetMsgId)}`, m.msgId || m.offsetMsgId, { 'data-testid': 'msg-link' }) : m.msgId),
        cell(m.topic), cell(`${m.brokerName || (m.storeHost || '')} / ${m.queueId}`), num(m.queueOffset, 'queueOffset'),
        cell(m.keys), cell(m.tags), cell(fmtTime(m.storeTimestamp)),
        cell(m.body === undefined ? '(compressed)' : m.body.length > 60 ? m.body.slice(0, 60) + '…' : m.body))),
    { 'data-testid': 'results' });
  }

  async function viewMessages(my, query) {
    const q = new URLSearchParams(query || '');
    const by = q.get('by') || 'id';
    const results = h('div');
    const mk = (name, attrs) => h('input', Object.assign({ name, value: q.get(name) || '' }, attrs));
    const submit = (form, byName) => form.addEventListener('submit', ev => {
      ev.preventDefault();
      const p = new URLSearchParams({ by: byName });
      for (const el of form.querySelectorAll('input')) if (el.value.trim()) p.set(el.name, el.value.trim());
      location.hash = `#/messages?${p}`;
    });
    const fId = h('form', { class: 'form', 'data-testid': 'search-id' },
      h('label', null, 'Message ID ', mk('i', { size: 36, required: true, 'data-testid': 'search-id-input',
        placeholder: 'offset msgId, or a msgId with its topic' })),
      h('label', null, 'Topic (for a msgId) ', mk('t', { 'data-testid': 'search-id-topic' })),
      h('button', { type: 'submit' }, 'Find'));
    const fKey = h('form', { class: 'form', 'data-testid': 'search-key' },
      h('label', null, 'Topic ', mk('t', { required: true, 'data-testid': 'search-key-topic' })),
      h('label', null, 'Key ', mk('k', { required: true, 'data-testid': 'search-key-input' })),
      h('button', { type: 'submit' }, 'Find'));
    const now = Date.now();
    const fTime = h('form', { class: 'form', 'data-testid': 'search-time' },
      h('label', null, 'Topic ', mk('t', { required: true, 'data-testid': 'search-time-topic' })),
      h('label', null, 'From ', mk('s', { size: 24, 'data-testid': 'search-time-begin' })),
      h('label', null, 'to ', mk('e', { size: 24, 'data-testid': 'search-time-end' })),
      h('label', null, 'At most ', mk('c', { type: 'number', min: 1, max: 1000, size: 5 })),
      h('button', { type: 'submit' }, 'Find'));
    if (!q.get('s') || by !== 'time') fTime.querySelector('[name=s]').value = fmtTime(now - 3600 * 1000);
    if (!q.get('e') || by !== 'time') fTime.querySelector('[name=e]').value = fmtTime(now);
    if (!q.get('c') || by !== 'time') fTime.querySelector('[name=c]').value = 64;
    submit(fId, 'id');
    submit(fKey, 'key');
    submit(fTime, 'time');
    main.append(section('Find messages',
      h('h3', null, 'By message ID (queryMsgById, or queryMsgByKey with the topic)'), fId,
      h('h3', null, 'By key (queryMsgByKey)'), fKey,
      h('h3', null, 'By store time (consumeMessage -s -e)'), fTime), section('Results', results));
    if (!query) {
      results.append(note('Search above.'));
      return;
    }
    results.append(note('searching…'));
    try {
      let list;
      if (by === 'id' && q.get('t')) list = await api('queryMsgByKey', { t: q.get('t'), k: q.get('i') });
      else if (by === 'id') list = [await api('queryMsgById', { i: q.get('i') })];
      else if (by === 'key') list = await api('queryMsgByKey', { t: q.get('t'), k: q.get('k') });
      else list = await api('consumeMessage', { t: q.get('t'), s: parseTime(q.get('s') || '0'), e: parseTime(q.get('e') || String(Date.now())),
        c: q.get('c') || 64 });
      if (my !== gen) return;
      results.replaceChildren(note(`${list.length} message(s)`), messageRows(list));
    } catch (e) {
      if (my === gen) results.replaceChildren(errorBox(e));
    }
  }

  function hexDump(bytes) {
    const lines = [];
    for (let i = 0; i < bytes.length; i += 16) {
      const chunk = bytes.slice(i, i + 16);
      const hex = Array.from(chunk, b => b.toString(16).padStart(2, '0')).join(' ');
      const txt = Array.from(chunk, b => (b >= 32 && b < 127 ? String.fromCharCode(b) : '.')).join('');
      lines.push(`${i.toString(16).padStart(8, '0')}  ${hex.padEnd(48)}  ${txt}`);
    }
    return lines.join('\n');
  }

  function bodyView(m) {
    const PREVIEW = 64 * 1024;
    if (m.body === undefined) return note('The body is compressed; it is not shown.');
    let bytes;
    if (m.bodyHex) bytes = Uint8Array.from(m.bodyHex.match(/../g) || [], x => parseInt(x, 16));
    else bytes = new TextEncoder().encode(m.body.slice(0, PREVIEW));
    const text = m.body.length > PREVIEW || m.bodyTruncated ? m.body.slice(0, PREVIEW) + '\n… (cut)' : m.body;
    const pre = h('pre', { class: 'body', 'data-testid': 'body' }, m.bodyHex ? hexDump(bytes) : text);
    let hex = !!m.bodyHex;
    const btn = h('button', { type: 'button', disabled: !!m.bodyHex, onclick: () => {
      hex = !hex;
      pre.textContent = hex ? hexDump(bytes) : text;
      btn.textContent = hex ? 'Show as text' : 'Show as hex';
    } }, m.bodyHex ? 'Binary body (hex)' : 'Show as hex');
    return h('div', null, h('p', { class: 'note' }, `${m.bodyLength} bytes `, btn), pre);
  }

  function fieldsTable(m, keys) {
    return table(['Field', 'Value'], keys.filter(k => m[k] !== undefined).map(k => h('tr', { 'data-field': k }, cell(k),
      cell(/Timestamp$/.test(k) ? `${fmtTime(m[k])} (${m[k]})` : String(m[k])))), { class: 'grid kv', 'data-testid': 'fields' });
  }

  function propsTable(props) {
    return table(['Property', 'Value'], Object.entries(props || {}).map(([k, v]) => h('tr', { 'data-prop': k }, cell(k), cell(v))),
      { class: 'grid kv', 'data-testid': 'props' });
  }

  const MSG_FIELDS = ['topic', 'msgId', 'offsetMsgId', 'tags', 'keys', 'queueId', 'queueOffset', 'commitLogOffset',
    'reconsumeTimes', 'bornTimestamp', 'storeTimestamp', 'bornHost', 'storeHost', 'sysFlag', 'bodyLength'];

  async function viewMessage(my, id) {
    const m = await api('queryMsgById', { i: id });
    if (my !== gen) return;
    const track = m.messageTrack || [];
    main.append(h('h1', null, `Message ${m.msgId || m.offsetMsgId}`),
      section('Fields (queryMsgById)', fieldsTable(m, MSG_FIELDS)),
      section('Properties', propsTable(m.properties)),
      section('Body', bodyView(m)),
      section('Delivery track',
        m.messageTrackError ? errorBox(new Error(m.messageTrackError)) : table(['Consumer group', 'State', 'Committed offset of the queue'],
          track.map(t => h('tr', { 'data-testid': 'track-row', 'data-group': t.consumerGroup },
            cell(link(`#/group/${enc(t.consumerGroup)}`, t.consumerGroup)), cell(t.trackType, { class: t.trackType === 'CONSUMED' ? 'good' : 'bad' }),
            num(t.committedOffset, 'committedOffset'))), { 'data-testid': 'track' }),
        note(`Every group with a committed offset on ${m.topic} at ${m.storeHost}: consumed when its offset of queue ${m.queueId} ` +
          `is past the message's queue offset ${m.queueOffset}.`)));
  }

  // ---- Dead letters ----

  async function viewDlq(my) {
    const list = (await api('topicList')).topicList.filter(t => t.startsWith('%DLQ%')).sort();
    if (my !== gen) return;
    const rows = list.map(t => {
      const g = t.slice(5);
      const tr = h('tr', { 'data-testid': 'dlq-row', 'data-group': g }, cell(link(`#/dlq/${enc(g)}`, g)), h('td', { class: 'num n' }, '…'));
      topicStats(t).then(st => { tr.querySelector('.n').textContent = st.msgs; })
        .catch(e => { tr.querySelector('.n').textContent = e.message.slice(0, 60); });
      return tr;
    });
    main.append(section('Dead letter queues',
      rows.length ? table(['Consumer group', 'Dead letters'], rows, { 'data-testid': 'dlqs' }) : note('No %DLQ% topic exists.'),
      note('A group\'s dead letters are the messages it failed to consume too often (%DLQ%<group>).')));
  }

  async function viewDlqGroup(my, g) {
    const list = await api('dlqList', { g, c: 500 });
    if (my !== gen) return;
    const result = h('div');
    const detail = h('div');
    const resend = async (params, what) => {
      const ok = await confirmAction('Resend dead letters', [`Send ${what} of group ${g} back to the original topic?`,
        'The dead letters stay in the DLQ; consumers receive the copies as new messages.',
        `(mqadmin dlqResend -g ${g} ${params.all ? '--all' : `-i ${params.i} -b ${params.b}`})`]);
      if (!ok) return;
      try {
        const r = await action('dlqResend', Object.assign({ g }, params));
        result.replaceChildren(h('div', { class: 'ok', 'data-testid': 'resend-ok' }, `Resent ${r.length} message(s).`),
          table(['DLQ offset', 'Original msgId', 'To topic', 'Queue', 'Status', 'New msgId'], r.map(x => h('tr', null,
            num(x.dlqQueueOffset, 'dlqQueueOffset'), cell(x.originMsgId), cell(x.topic), cell(`${x.brokerName} / ${x.queueId}`),
            cell(x.sendStatus), cell(x.msgId)))));
      } catch (e) {
        result.replaceChildren(errorBox(e));
      }
    };
    const rows = list.map(m => h('tr', { 'data-testid': 'dead-row', 'data-offset': m.queueOffset, 'data-broker': m.brokerName },
      cell(m.brokerName), num(m.queueOffset, 'queueOffset'), cell(fmtTime(m.storeTimestamp)), num(m.reconsumeTimes, 'reconsumeTimes'),
      cell(m.originTopic), cell(m.originMsgId), cell(m.keys), cell(m.tags),
      cell(m.body === undefined ? '' : m.body.length > 40 ? m.body.slice(0, 40) + '…' : m.body),
      h('td', null,
        h('button', { type: 'button', 'data-testid': 'dead-view', onclick: async () => {
          try {
            const d = await api('dlqView', { g, i: m.queueOffset, b: m.brokerName });
            detail.replaceChildren(h('h3', null, `Dead letter ${d.brokerName}:${d.queueOffset}`),
              fieldsTable(d, MSG_FIELDS.concat(['originTopic', 'originMsgId'])), propsTable(d.properties), bodyView(d));
          } catch (e) {
            detail.replaceChildren(errorBox(e));
          }
        } }, 'View'),
        h('button', { type: 'button', 'data-testid': 'dead-resend', onclick: () =>
          resend({ i: m.queueOffset, b: m.brokerName }, `dead letter ${m.brokerName}:${m.queueOffset}`) }, 'Resend…'))));
    main.append(h('h1', null, `Dead letters of ${g}`),
      section(`%DLQ%${g} (dlqList)`,
        h('div', { class: 'toolbar' }, h('button', { type: 'button', class: 'danger', 'data-testid': 'resend-all', disabled: !list.length,
          onclick: () => resend({ all: 'true' }, `all ${list.length} dead letter(s)`) }, 'Resend all…')),
        result,
        list.length ? table(['Broker', 'Offset', 'Stored', 'Reconsumed', 'Original topic', 'Original msgId', 'Keys', 'Tags', 'Body', ''], rows,
          { 'data-testid': 'dead-letters' }) : note('No dead letter.')),
      section('Detail', detail));
  }

  // ---- routing ----

  const routes = [
    [/^#\/cluster$/, viewCluster, 'cluster'],
    [/^#\/topics$/, viewTopics, 'topics'],
    [/^#\/topic\/(.+)$/, viewTopic, 'topics'],
    [/^#\/groups$/, viewGroups, 'groups'],
    [/^#\/group\/(.+)$/, viewGroup, 'groups'],
    [/^#\/messages(?:\?(.*))?$/, viewMessages, 'messages'],
    [/^#\/message\/(.+)$/, viewMessage, 'messages'],
    [/^#\/dlq$/, viewDlq, 'dlq'],
    [/^#\/dlq\/(.+)$/, viewDlqGroup, 'dlq'],
  ];

  async function route() {
    if (loginShown) return; // the login form stays until a login; then route() runs again
    const my = ++gen;
    const hash = location.hash && location.hash !== '#' && location.hash !== '#/' ? location.hash : '#/cluster';
    let found = null;
    for (const [re, fn, nav] of routes) {
      const m = re.exec(hash);
      if (m) {
        found = { fn, nav, args: m.slice(1).map(x => (x === undefined ? undefined : x.startsWith('by=') ? x : decodeURIComponent(x))) };
        break;
      }
    }
    for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', !!found && a.dataset.view === found.nav);
    main.replaceChildren();
    main.dataset.view = found ? found.nav : 'none';
    main.dataset.ready = '0';
    if (!found) {
      main.append(errorBox(new Error(`no such page: ${hash}`)));
      return;
    }
    try {
      await self();
      await found.fn(my, ...found.args);
    } catch (e) {
      if (my === gen && !(e instanceof LoginNeeded)) main.append(errorBox(e));
    }
    if (my === gen) main.dataset.ready = '1';
  }

  window.addEventListener('hashchange', route);
  // Who is logged in (a reload keeps the session); a 401 here shows the login form instead.
  (async () => {
    try {
      setUser((await api('session')).user);
    } catch (e) {
      if (e instanceof LoginNeeded) return;
    }
    route();
  })();
})();
