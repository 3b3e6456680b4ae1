'use strict';
// A tiny RocketMQ "remoting" client for the tests, written from REMOTING.md (§1 framing, §3.1
// stored records, §3.5 offset msgIds). Node standard library only, so tests/integration can use
// it without npm. It talks like a Java 4.9.8 client: JSON headers, extFields values as strings,
// language JAVA, version 409.

const net = require('node:net');
const zlib = require('node:zlib');
const { EventEmitter } = require('node:events');

const MAX_FRAME = 16 * 1024 * 1024; // whole frame incl. the length field (§1.1)
const JAVA_VERSION_4_9_8 = 409;

const REQ = Object.freeze({
  SEND_MESSAGE: 10,
  PULL_MESSAGE: 11,
  QUERY_MESSAGE: 12,
  QUERY_CONSUMER_OFFSET: 14,
  UPDATE_CONSUMER_OFFSET: 15,
  UPDATE_AND_CREATE_TOPIC: 17,
  GET_MAX_OFFSET: 30,
  GET_MIN_OFFSET: 31,
  VIEW_MESSAGE_BY_ID: 33,
  HEART_BEAT: 34,
  GET_ROUTEINFO_BY_TOPIC: 105,
  GET_BROKER_CLUSTER_INFO: 106,
  SEND_MESSAGE_V2: 310,
});

const RESP = Object.freeze({
  SUCCESS: 0,
  SYSTEM_ERROR: 1,
  SYSTEM_BUSY: 2,
  REQUEST_CODE_NOT_SUPPORTED: 3,
  FLUSH_DISK_TIMEOUT: 10,
  TOPIC_NOT_EXIST: 17,
  PULL_NOT_FOUND: 19,
  PULL_RETRY_IMMEDIATELY: 20,
  PULL_OFFSET_MOVED: 21,
  QUERY_NOT_FOUND: 22,
});

const MESSAGE_MAGIC = 0xdaa320a7 | 0; // -626843481 (§3.1)

// zlib's CRC-32 (zlib.crc32 exists from Node 20.15 / 22.2; a table-driven one otherwise).
let crcTable = null;
function crc32(buf) {
  if (typeof zlib.crc32 === 'function') return zlib.crc32(buf) >>> 0;
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = crcTable[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

let nextOpaque = 1;

// ---------------------------------------------------------------------------------------------
// Frames (§1.2-§1.4)

/** Encodes one JSON-serialized frame. extFields values are sent as strings (Java style). */
function encodeFrame(cmd) {
  const ext = {};
  for (const [k, v] of Object.entries(cmd.extFields || {})) {
    if (v === undefined || v === null) continue;
    ext[k] = String(v);
  }
  const header = {
    code: cmd.code,
    extFields: ext,
    flag: cmd.flag || 0,
    language: cmd.language || 'JAVA',
    opaque: cmd.opaque,
    serializeTypeCurrentRPC: 'JSON',
    version: cmd.version === undefined ? JAVA_VERSION_4_9_8 : cmd.version,
  };
  if (cmd.remark !== undefined && cmd.remark !== null) header.remark = cmd.remark;
  const h = Buffer.from(JSON.stringify(header), 'utf8');
  const body = cmd.body ? Buffer.from(cmd.body) : Buffer.alloc(0);
  const out = Buffer.alloc(8 + h.length + body.length);
  out.writeInt32BE(4 + h.length + body.length, 0);
  out.writeInt32BE(h.length, 4); // serialization type 0 (JSON) in the top byte
  h.copy(out, 8);
  body.copy(out, 8 + h.length);
  return out;
}

/**
 * Decodes the frame content after the length field. Throws with a precise message when the
 * frame is not what a JSON-speaking client (ali-ons, C++) can read.
 */
function decodeFrame(frame) {
  if (frame.length < 4) throw new Error(`frame of ${frame.length} bytes has no header-length word`);
  const word = frame.readUInt32BE(0);
  const serType = word >>> 24;
  const headerLen = word & 0xffffff;
  if (serType !== 0) {
    throw new Error(`response header serialization type ${serType} (expected 0 = JSON: ali-ons and C++ ` +
      'read the header length without masking the type byte)');
  }
  if (headerLen > frame.length - 4) throw new Error(`header length ${headerLen} > frame ${frame.length - 4}`);
  const text = frame.subarray(4, 4 + headerLen).toString('utf8');
  let h;
  try {
    h = JSON.parse(text); // strict JSON, as ali-ons parses it
  } catch (e) {
    throw new Error(`response header is not strict JSON (${e.message}): ${text.slice(0, 300)}`);
  }
  return {
    code: h.code,
    flag: h.flag || 0,
    opaque: h.opaque,
    language: h.language,
    version: h.version,
    remark: h.remark === undefined ? null : h.remark,
    extFields: h.extFields || {},
    rawHeader: h,
    body: frame.subarray(4 + headerLen),
  };
}

// ---------------------------------------------------------------------------------------------
// Connection

class RemotingConnection extends EventEmitter {
  constructor(socket, addr) {
    super();
    this.addr = addr;
    this.socket = socket;
    this.pending = new Map();
    this.buf = Buffer.alloc(0);
    this.isClosed = false;
    this.closeError = null;
    this.protocolError = null;
    this.closed = new Promise(resolve => { this._resolveClosed = resolve; });
    socket.on('data', chunk => this._onData(chunk));
    socket.on('error', err => { this.closeError = err; });
    socket.on('close', () => this._onClose());
    // Requests the server sends us (notify consumer ids changed, ...): answer "not supported"
    // unless oneway, like a client with no handler for them.
    this.on('request', req => {
      if (req.flag & 2) return;
      this._write(encodeFrame({ code: RESP.REQUEST_CODE_NOT_SUPPORTED, flag: 1, opaque: req.opaque,
        remark: `request type ${req.code} not supported` }));
    });
  }

  static connect(addr, timeoutMs = 5000) {
    const [host, portStr] = splitAddr(addr);
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port: Number(portStr) });
      socket.setNoDelay(true);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect to ${addr} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('error', err => { clearTimeout(timer); reject(err); });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new RemotingConnection(socket, addr));
      });
    });
  }

  _onData(chunk) {
    this.buf = this.buf.length ? Buffer.concat([ this.buf, chunk ]) : chunk;
    while (this.buf.length >= 4) {
      const total = this.buf.readInt32BE(0);
      if (total < 4 || total + 4 > MAX_FRAME) {
        this._protocolError(new Error(`server sent a frame with total length ${total}`));
        return;
      }
      if (this.buf.length < 4 + total) break;
      const frame = this.buf.subarray(4, 4 + total);
      this.buf = this.buf.subarray(4 + total);
      let cmd;
      try {
        cmd = decodeFrame(frame);
      } catch (e) {
        this._protocolError(e);
        return;
      }
      if (cmd.flag & 1) {
        const p = this.pending.get(cmd.opaque);
        if (p) {
          this.pending.delete(cmd.opaque);
          clearTimeout(p.timer);
          p.resolve(cmd);
        } else {
          this.emit('unmatched', cmd);
        }
      } else {
        this.emit('request', cmd);
      }
    }
  }

  _protocolError(err) {
    this.protocolError = err;
    this.socket.destroy();
  }

  _onClose() {
    this.isClosed = true;
    const why = this.protocolError || this.closeError;
    for (const [ , p ] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new Error(`connection to ${this.addr} closed before the response to code ${p.code}` +
        (why ? `: ${why.message}` : '')));
    }
    this.pending.clear();
    this._resolveClosed({ error: why });
  }

  _write(buf) {
    if (!this.isClosed) this.socket.write(buf);
  }

  /** Sends a request and resolves with the decoded response. */
  invoke(code, extFields = {}, opts = {}) {
    const timeoutMs = opts.timeoutMs || 5000;
    if (this.isClosed) return Promise.reject(new Error(`connection to ${this.addr} is closed`));
    const opaque = nextOpaque++;
    if (nextOpaque > 0x7fffff00) nextOpaque = 1;
    const frame = encodeFrame({ code, extFields, body: opts.body, remark: opts.remark, opaque,
      version: opts.version });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(opaque);
        reject(new Error(`no response to request code ${code} from ${this.addr} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(opaque, { resolve, reject, timer, code });
      this._write(frame);
    });
  }

  /** Sends a oneway request (flag bit 1): the server must not answer. Returns the opaque. */
  oneway(code, extFields = {}, opts = {}) {
    const opaque = nextOpaque++;
    this._write(encodeFrame({ code, extFields, body: opts.body, opaque, flag: 2 }));
    return opaque;
  }

  writeRaw(buf) {
    this._write(buf);
  }

  /** Resolves true when the peer closes the connection within timeoutMs, false otherwise. */
  async waitClosed(timeoutMs) {
    let timer;
    const t = new Promise(resolve => { timer = setTimeout(() => resolve(false), timeoutMs); });
    const r = await Promise.race([ this.closed.then(() => true), t ]);
    clearTimeout(timer);
    return r;
  }

  close() {
    this.socket.destroy();
    return this.closed;
  }
}

function splitAddr(addr) {
  const i = addr.lastIndexOf(':');
  if (i <= 0) throw new Error(`bad address ${addr}`);
  return [ addr.slice(0, i), addr.slice(i + 1) ];
}

/** Opens a connection, runs fn(conn), always closes it. */
async function withConnection(addr, fn) {
  const conn = await RemotingConnection.connect(addr);
  try {
    return await fn(conn);
  } finally {
    await conn.close();
  }
}

/** Throws a descriptive error unless resp.code is one of the expected codes. */
function expectCode(resp, expected, what) {
  const list = Array.isArray(expected) ? expected : [ expected ];
  if (!list.includes(resp.code)) {
    throw new Error(`${what}: response code ${resp.code} (expected ${list.join(' or ')}), remark=${JSON.stringify(resp.remark)}, ` +
      `extFields=${JSON.stringify(resp.extFields)}`);
  }
  return resp;
}

// ---------------------------------------------------------------------------------------------
// JSON bodies from the name server. fastjson writes maps with integer keys unquoted
// ({0:"127.0.0.1:10911"}) for old clients (§2.3.3); accept both forms.

function parseLenientJson(buf) {
  const text = Buffer.isBuffer(buf) ? buf.toString('utf8') : String(buf);
  try {
    return JSON.parse(text);
  } catch (_) {
    // Quote bare integer keys outside strings.
    let out = '';
    let inStr = false;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (inStr) {
        out += c;
        if (c === '\\') { out += text[++i]; } else if (c === '"') inStr = false;
        continue;
      }
      if (c === '"') { inStr = true; out += c; continue; }
      if ((c === '{' || c === ',')) {
        const m = /^\s*(-?\d+)\s*:/.exec(text.slice(i + 1));
        if (m) {
          out += `${c}"${m[1]}":`;
          i += m[0].length;
          continue;
        }
      }
      out += c;
    }
    return JSON.parse(out);
  }
}

// ---------------------------------------------------------------------------------------------
// Messages (§3.1-§3.5)

function parseProperties(s) {
  const props = {};
  if (!s) return props;
  for (const item of s.split('\u0002')) {
    const i = item.indexOf('\u0001');
    if (i <= 0) continue;
    const v = item.slice(i + 1);
    if (v.length) props[item.slice(0, i)] = v;
  }
  return props;
}

function propertiesToString(props) {
  return Object.entries(props).filter(([ , v ]) => v !== undefined && v !== null)
    .map(([ k, v ]) => `${k}\u0001${v}`).join('\u0002');
}

function hostToString(buf, off, v6) {
  if (v6) {
    const parts = [];
    for (let i = 0; i < 16; i += 2) parts.push(buf.readUInt16BE(off + i).toString(16));
    return { addr: `[${parts.join(':')}]:${buf.readInt32BE(off + 16)}`, size: 20 };
  }
  return { addr: `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}:${buf.readInt32BE(off + 4)}`, size: 8 };
}

/** Offset msgId (§3.5) from a store host "a.b.c.d:port" and a commit-log offset. */
function createMessageId(storeHost, commitLogOffset) {
  const [ ip, port ] = splitAddr(storeHost);
  const b = Buffer.alloc(16);
  ip.split('.').forEach((x, i) => { b[i] = Number(x); });
  b.writeInt32BE(Number(port), 4);
  b.writeBigInt64BE(BigInt(commitLogOffset), 8);
  return b.toString('hex').toUpperCase();
}

function decodeMessageId(msgId) {
  if (typeof msgId !== 'string' || !/^[0-9A-F]{32}$/.test(msgId)) {
    throw new Error(`msgId ${JSON.stringify(msgId)} is not a 32-character upper-case IPv4 offset id (§3.5)`);
  }
  const b = Buffer.from(msgId, 'hex');
  return {
    address: `${b[0]}.${b[1]}.${b[2]}.${b[3]}:${b.readInt32BE(4)}`,
    offset: b.readBigInt64BE(8),
  };
}

/**
 * Decodes a concatenation of stored records strictly: every record must be complete, carry the
 * message magic, a matching TOTALSIZE and the body CRC (& 0x7FFFFFFF). Throws with the record
 * index and byte position otherwise.
 */
function decodeMessages(buf) {
  const out = [];
  let pos = 0;
  while (pos < buf.length) {
    const where = `record #${out.length} at byte ${pos} of ${buf.length}`;
    if (buf.length - pos < 91) throw new Error(`${where}: only ${buf.length - pos} bytes left (< 91)`);
    const total = buf.readInt32BE(pos);
    if (total < 91 || pos + total > buf.length) throw new Error(`${where}: TOTALSIZE ${total} does not fit`);
    const r = buf.subarray(pos, pos + total);
    const magic = r.readInt32BE(4);
    if (magic !== MESSAGE_MAGIC) throw new Error(`${where}: MAGICCODE 0x${(magic >>> 0).toString(16)} != 0xdaa320a7`);
    const m = {};
    m.storeSize = total;
    m.bodyCRC = r.readInt32BE(8);
    m.queueId = r.readInt32BE(12);
    m.flag = r.readInt32BE(16);
    m.queueOffset = Number(r.readBigInt64BE(20));
    m.commitLogOffset = r.readBigInt64BE(28);
    m.sysFlag = r.readInt32BE(36);
    m.bornTimestamp = Number(r.readBigInt64BE(40));
    let p = 48;
    const born = hostToString(r, p, (m.sysFlag & 0x10) !== 0);
    m.bornHost = born.addr;
    p += born.size;
    m.storeTimestamp = Number(r.readBigInt64BE(p)); p += 8;
    const store = hostToString(r, p, (m.sysFlag & 0x20) !== 0);
    m.storeHost = store.addr;
    p += store.size;
    m.reconsumeTimes = r.readInt32BE(p); p += 4;
    m.preparedTransactionOffset = r.readBigInt64BE(p); p += 8;
    const bodyLen = r.readInt32BE(p); p += 4;
    if (bodyLen < 0 || p + bodyLen > total) throw new Error(`${where}: BODYLENGTH ${bodyLen} does not fit`);
    let body = r.subarray(p, p + bodyLen); p += bodyLen;
    const crc = bodyLen ? (crc32(body) & 0x7fffffff) : 0;
    if (bodyLen && crc !== m.bodyCRC) throw new Error(`${where}: BODYCRC ${m.bodyCRC} != crc32(body) & 0x7fffffff = ${crc}`);
    if (m.sysFlag & 1) body = zlib.inflateSync(body);
    m.body = body;
    const topicLen = r.readInt8(p); p += 1;
    if (topicLen < 0 || p + topicLen > total) throw new Error(`${where}: TOPICLENGTH ${topicLen} does not fit`);
    m.topic = r.subarray(p, p + topicLen).toString('utf8'); p += topicLen;
    const propLen = r.readInt16BE(p); p += 2;
    if (propLen < 0 || p + propLen !== total) {
      throw new Error(`${where}: PROPERTIESLENGTH ${propLen} at ${p} does not end the record of ${total} bytes`);
    }
    m.propertiesString = r.subarray(p, p + propLen).toString('utf8');
    m.properties = parseProperties(m.propertiesString);
    m.tags = m.properties.TAGS;
    m.keys = m.properties.KEYS;
    m.msgId = (m.sysFlag & 0x20) ? null : createMessageId(m.storeHost, m.commitLogOffset);
    out.push(m);
    pos += total;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Request helpers (Java field names, §2.3-§2.4)

async function getRoute(conn, topic) {
  const resp = await conn.invoke(REQ.GET_ROUTEINFO_BY_TOPIC, { topic });
  if (resp.code !== RESP.SUCCESS) return { code: resp.code, remark: resp.remark, route: null };
  return { code: 0, route: parseLenientJson(resp.body) };
}

async function getClusterInfo(conn) {
  const resp = await conn.invoke(REQ.GET_BROKER_CLUSTER_INFO, {});
  expectCode(resp, RESP.SUCCESS, 'GET_BROKER_CLUSTER_INFO');
  return parseLenientJson(resp.body);
}

async function createTopic(conn, topic, queues, extra = {}) {
  const resp = await conn.invoke(REQ.UPDATE_AND_CREATE_TOPIC, Object.assign({
    topic, defaultTopic: 'TBW102', readQueueNums: queues, writeQueueNums: queues, perm: 6,
    topicFilterType: 'SINGLE_TAG', topicSysFlag: 0, order: false,
  }, extra));
  return expectCode(resp, RESP.SUCCESS, `UPDATE_AND_CREATE_TOPIC ${topic}`);
}

/** SEND_MESSAGE_V2 like a Java 4.9.8 producer. Returns the raw response. */
function sendMessage(conn, { group = 'PID_FERRY_TEST', topic, queueId, body, tags, keys, props = {}, timeoutMs }) {
  const properties = Object.assign({}, props);
  if (keys) properties.KEYS = keys;
  if (tags) properties.TAGS = tags;
  if (properties.WAIT === undefined) properties.WAIT = 'true';
  return conn.invoke(REQ.SEND_MESSAGE_V2, {
    a: group, b: topic, c: 'TBW102', d: 4, e: queueId, f: 0, g: Date.now(), h: 0,
    i: propertiesToString(properties), j: 0, k: false, m: false,
  }, { body, timeoutMs });
}

async function pullMessages(conn, { group, topic, queueId, offset, maxNums = 32, subscription = '*', timeoutMs }) {
  const resp = await conn.invoke(REQ.PULL_MESSAGE, {
    consumerGroup: group, topic, queueId, queueOffset: offset, maxMsgNums: maxNums,
    sysFlag: 4, commitOffset: 0, suspendTimeoutMillis: 0, subscription, subVersion: 0,
  }, { timeoutMs });
  const r = {
    code: resp.code,
    remark: resp.remark,
    nextBeginOffset: resp.extFields.nextBeginOffset === undefined ? null : Number(resp.extFields.nextBeginOffset),
    minOffset: Number(resp.extFields.minOffset),
    maxOffset: Number(resp.extFields.maxOffset),
    msgs: [],
  };
  if (resp.code === RESP.SUCCESS) r.msgs = decodeMessages(resp.body);
  return r;
}

async function getMaxOffset(conn, topic, queueId) {
  const resp = expectCode(await conn.invoke(REQ.GET_MAX_OFFSET, { topic, queueId }), RESP.SUCCESS,
    `GET_MAX_OFFSET ${topic}/${queueId}`);
  return Number(resp.extFields.offset);
}

/** Committed offset, or -1 when the broker answers QUERY_NOT_FOUND. */
async function queryConsumerOffset(conn, group, topic, queueId) {
  const resp = expectCode(await conn.invoke(REQ.QUERY_CONSUMER_OFFSET, { consumerGroup: group, topic, queueId }),
    [ RESP.SUCCESS, RESP.QUERY_NOT_FOUND ], `QUERY_CONSUMER_OFFSET ${group} ${topic}/${queueId}`);
  return resp.code === RESP.SUCCESS ? Number(resp.extFields.offset) : -1;
}

async function updateConsumerOffset(conn, group, topic, queueId, commitOffset) {
  return expectCode(await conn.invoke(REQ.UPDATE_CONSUMER_OFFSET, { consumerGroup: group, topic, queueId, commitOffset }),
    RESP.SUCCESS, `UPDATE_CONSUMER_OFFSET ${group} ${topic}/${queueId}=${commitOffset}`);
}

module.exports = {
  MAX_FRAME,
  crc32,
  REQ,
  RESP,
  RemotingConnection,
  withConnection,
  encodeFrame,
  decodeFrame,
  expectCode,
  parseLenientJson,
  parseProperties,
  propertiesToString,
  createMessageId,
  decodeMessageId,
  decodeMessages,
  getRoute,
  getClusterInfo,
  createTopic,
  sendMessage,
  pullMessages,
  getMaxOffset,
  queryConsumerOffset,
  updateConsumerOffset,
};
