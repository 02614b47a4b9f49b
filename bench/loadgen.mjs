// The one load generator of chatlab's benchmark, used unchanged against the
// chatlab server and the Node.js reference server.
//
//   node loadgen.mjs SCENARIO --url http://127.0.0.1:PORT [--pid PID] [options]
//
// Scenarios (each prints one JSON object on stdout; progress on stderr):
//   echo     one sender and --listeners others; the sender sends --messages
//            messages one at a time, each after its own broadcast echo came
//            back: round-trip latency p50/p99 (after --warmup messages).
//   fanout   --clients users, the first --senders of them each keeping
//            --window messages in flight (sent, own echo not yet back) for
//            --duration seconds: deliveries per second.
//   churn    --total connect + adduser + disconnect, --concurrency at a time:
//            connections per second, and the users list empty at the end.
//   online   --users connect + adduser, --concurrency at a time, and stay:
//            time until all are online, server memory idle and with them all.
//            With --time-limit, no new user starts joining after that many
//            seconds, and the figures are for the users online by then.
//
// Every message is unique (a run marker, the sender's number and a sequence
// number), every delivery is counted at every receiver, and each receiver
// checks that each sender's messages arrive once and in order. Messages
// without this run's marker (a server's replayed history) are ignored. A
// client counts as joined once it has its `private` welcome and, with
// --history yes (chatlab, which sends live messages to a connection only
// after its `history`), its `history` event; --history auto decides from
// the first client. Every event sent is valid, so a refusal (an `error`
// event, e.g. chatlab's rate limit) stops the run with the reason.
//
// With --pid, the server's CPU time (utime + stime of /proc/PID/stat) and
// memory (VmRSS, VmHWM of /proc/PID/status) are read at the start and end of
// the measured phase, so CPU per delivery does not depend on whether this
// generator keeps up. Its own CPU share is reported too (1.0 = one core),
// and how long the server's event loop waited for a CPU (/proc/PID/schedstat).
// --pid may list several processes (PID,PID,...: a cluster's nodes and its
// Redis, named by --pid-names): the server figures are their sums, and
// `parts` gives each one's CPU.
//
// A cluster (--url2, a second node of the same chat): in `fanout` the
// senders and the first half of the clients are on --url, the other half
// (--url2-share of all clients, taken from the non-senders) on --url2, so
// every delivery to those crosses from one node to the other; in `echo` the
// sender is on --url and every listener on --url2, the sender asks for an
// acknowledgement, and each message waits for its own echo, its
// acknowledgement and every listener's copy: `cross_node` is the time from
// the sender's emit to a listener's delivery, `ack` to the acknowledgement.
//
// Clients speak Engine.IO 4 / Socket.IO 5 directly over the `ws` package
// (--client wire, the default): websocket transport only, a new connection
// per client, permessage-deflate offered exactly as socket.io-client offers
// it (--no-deflate to offer nothing), and an event's JSON is parsed only if
// the scenario listens to that event, so 1,000 users lists of 1,000 names do
// not make this process the bottleneck. --client sio runs the same scenarios
// on socket.io-client itself (forceNew, websocket only), as a cross-check.
// Only 127.0.0.1 is accepted as the target.

import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { randomBytes } from "node:crypto";
import WebSocket from "ws";
import { io } from "socket.io-client";

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: "string" },
    pid: { type: "string" },
    "pid-names": { type: "string" },
    url2: { type: "string" },
    "url2-share": { type: "string", default: "0.5" },
    "clk-tck": { type: "string", default: "100" },
    client: { type: "string", default: "wire" },
    "no-deflate": { type: "boolean", default: false },
    listeners: { type: "string", default: "10" },
    messages: { type: "string", default: "500" },
    warmup: { type: "string", default: "50" },
    clients: { type: "string", default: "100" },
    senders: { type: "string", default: "10" },
    window: { type: "string", default: "8" },
    duration: { type: "string", default: "10" },
    "max-messages": { type: "string", default: "1000000" },
    total: { type: "string", default: "1000" },
    users: { type: "string", default: "1000" },
    concurrency: { type: "string", default: "50" },
    "time-limit": { type: "string", default: "0" },
    history: { type: "string", default: "auto" },
    timeout: { type: "string", default: "120" },
  },
});

const scenario = positionals[0];
const int = (name) => {
  const value = Number(opt[name]);
  if (!Number.isFinite(value) || value < 0) fail(`--${name} must be a number >= 0`);
  return value;
};
function fail(message) {
  process.stderr.write(`loadgen: ${message}\n`);
  process.exit(2);
}
if (!opt.url) fail("--url is required");
const target = new URL(opt.url);
if (target.hostname !== "127.0.0.1") fail(`only 127.0.0.1 is allowed, not ${target.hostname}`);
const BASE = `${target.protocol}//${target.host}`;
let BASE2 = null; // a second node of the same chat (a cluster)
if (opt.url2) {
  const second = new URL(opt.url2);
  if (second.hostname !== "127.0.0.1") fail(`only 127.0.0.1 is allowed, not ${second.hostname}`);
  BASE2 = `${second.protocol}//${second.host}`;
}
const PIDS = opt.pid ? opt.pid.split(",").map(Number) : [];
if (PIDS.some((pid) => !Number.isInteger(pid) || pid <= 0)) fail("--pid must be PID[,PID...]");
const PID_NAMES = opt["pid-names"] ? opt["pid-names"].split(",") : PIDS.map(String);
if (PID_NAMES.length !== PIDS.length) fail("--pid-names needs one name per --pid");
const PID = PIDS.length ? PIDS[0] : null; // null: no server figures
const CLK_TCK = int("clk-tck");
const DEFLATE = !opt["no-deflate"];
const STEP_TIMEOUT = 30_000; // ms for any one wait (connect, a reply, a drain)

// The whole run is bounded: past --timeout the process reports and exits.
const deadline = setTimeout(() => finish({ error: `timed out after ${opt.timeout} s` }, 3),
  int("timeout") * 1000);
deadline.unref();

const now = () => performance.now();
const phase = (name) => process.stderr.write(`# phase ${name} ${now().toFixed(1)}\n`);
const marker = `run-${randomBytes(4).toString("hex")}`;

// ---------------------------------------------------------------- /proc

function processSnapshot(pid) {
  const out = {};
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces): state is field 3,
  // utime field 14 and stime field 15, in clock ticks.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  out.cpu_s = (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  out.rss_kb = Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
  out.hwm_kb = Number(/VmHWM:\s+(\d+)/.exec(status)[1]);
  // Time the server's main thread (its event loop) spent ready to run but
  // waiting for a CPU, in ns: on a shared machine, a server that is neither
  // busy nor idle is starved.
  try {
    out.wait_s = Number(readFileSync(`/proc/${pid}/schedstat`, "utf8").split(" ")[1]) / 1e9;
  } catch {
    out.wait_s = null; // no schedstat in this kernel
  }
  return out;
}

function snapshot() {
  const cpu = process.cpuUsage();
  const out = { t: now(), loadgen_cpu_s: (cpu.user + cpu.system) / 1e6 };
  if (PID === null) return out;
  out.parts = PIDS.map(processSnapshot);
  const sum = (key) => out.parts.reduce((total, part) => total + part[key], 0);
  out.server_cpu_s = sum("cpu_s");
  out.server_rss_kb = sum("rss_kb");
  out.server_hwm_kb = sum("hwm_kb");
  out.server_wait_s = out.parts.some((part) => part.wait_s === null) ? null : sum("wait_s");
  return out;
}

// Each process's CPU time between two snapshots, per delivery (µs), by name.
function cpuPartsPerDelivery(before, after, deliveries) {
  if (PIDS.length < 2) return undefined;
  return Object.fromEntries(PID_NAMES.map((name, k) => [
    name, ((after.parts[k].cpu_s - before.parts[k].cpu_s) * 1e6) / deliveries]));
}

function usage(before, after) {
  const wall = (after.t - before.t) / 1000;
  const out = { wall_s: wall, loadgen_cpu_share: (after.loadgen_cpu_s - before.loadgen_cpu_s) / wall };
  if (PID !== null) {
    out.server_cpu_s = after.server_cpu_s - before.server_cpu_s;
    out.server_cpu_share = out.server_cpu_s / wall;
    if (after.server_wait_s !== null && before.server_wait_s !== null) {
      out.server_runqueue_share = (after.server_wait_s - before.server_wait_s) / wall;
    }
    out.server_rss_kb = after.server_rss_kb;
    out.server_hwm_kb = after.server_hwm_kb;
    if (PIDS.length > 1) {
      out.parts = Object.fromEntries(PID_NAMES.map((name, k) => {
        const [b, a] = [before.parts[k], after.parts[k]];
        return [name, {
          cpu_s: a.cpu_s - b.cpu_s,
          cpu_share: (a.cpu_s - b.cpu_s) / wall,
          runqueue_share: a.wait_s === null || b.wait_s === null ? null : (a.wait_s - b.wait_s) / wall,
        }];
      }));
    }
  }
  return out;
}

// -------------------------------------------------------------- waiting

// A promise settled by the caller, or rejected after `ms` with `what`.
function waiter(what, ms = STEP_TIMEOUT) {
  let resolve, reject;
  const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
  const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  promise.finally(() => clearTimeout(timer)).catch(() => {});
  return { promise, resolve, reject };
}

// Run fn(i) for i in [0, n), at most `concurrency` at once.
async function pool(n, concurrency, fn) {
  let next = 0;
  const worker = async () => {
    while (next < n) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(n, concurrency) }, worker));
}

function percentile(sorted, q) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

function latencySummary(samples) {
  const sorted = Float64Array.from(samples).sort();
  const mean = sorted.reduce((a, b) => a + b, 0) / (sorted.length || 1);
  return {
    count: sorted.length,
    p50_ms: percentile(sorted, 0.5),
    p99_ms: percentile(sorted, 0.99),
    max_ms: sorted.length ? sorted[sorted.length - 1] : null,
    mean_ms: mean,
  };
}

// -------------------------------------------------------------- clients

// Socket.IO over a bare `ws` websocket: Engine.IO 4 packets, one a frame.
class WireClient {
  constructor(url) {
    this.url = url.replace(/^http/, "ws") + "/socket.io/?EIO=4&transport=websocket";
    this.handlers = new Map();
    this.rawHandlers = new Map();
    this.acks = new Map();
    this.nextAck = 0;
    this.closed = waiter("the connection to close", 10 * STEP_TIMEOUT);
  }

  on(event, fn) { this.handlers.set(event, fn); }       // fn(args): parsed
  onRaw(event, fn) { this.rawHandlers.set(event, fn); } // fn(frame): a Buffer

  connect() {
    const ready = waiter("the Socket.IO connection");
    const ws = new WebSocket(this.url, { perMessageDeflate: DEFLATE ? { threshold: 1024 } : false });
    this.ws = ws;
    ws.on("message", (data) => this.frame(data, ready));
    ws.on("error", (error) => ready.reject(error));
    ws.on("close", () => {
      ready.reject(new Error("closed before connecting"));
      this.closed.resolve();
    });
    return ready.promise;
  }

  frame(data, ready) {
    const kind = data[0];
    if (kind === 0x34 /* 4 message */) {
      const type = data[1];
      if (type === 0x32 /* 2 event */ && data[2] === 0x5b /* [ */) {
        const end = data.indexOf(0x22, 4);
        const event = data.toString("latin1", 4, end);
        const raw = this.rawHandlers.get(event);
        if (raw) return raw(data);
        const handler = this.handlers.get(event);
        if (handler) handler(JSON.parse(data.toString("utf8", 2)).slice(1));
        return;
      }
      if (type === 0x33 /* 3 ack */) {
        const text = data.toString("utf8", 2);
        const bracket = text.indexOf("[");
        const id = Number(text.slice(0, bracket));
        const pending = this.acks.get(id);
        if (pending) {
          this.acks.delete(id);
          pending.resolve(JSON.parse(text.slice(bracket)));
        }
        return;
      }
      if (type === 0x30 /* 0 connect */) {
        this.id = JSON.parse(data.toString("utf8", 2)).sid;
        return ready.resolve(this);
      }
      if (type === 0x34 /* 4 connect_error */) {
        return ready.reject(new Error(`refused: ${data.toString("utf8", 2)}`));
      }
      return; // 1 disconnect: the close follows
    }
    if (kind === 0x32 /* 2 ping */) return this.ws.send("3");
    if (kind === 0x30 /* 0 open */) return this.ws.send("40");
  }

  emit(event, ...args) { this.ws.send("42" + JSON.stringify([event, ...args])); }

  emitWithAck(event, ...args) {
    const id = this.nextAck++;
    const reply = waiter(`the acknowledgement of ${event}`);
    this.acks.set(id, reply);
    this.ws.send(`42${id}` + JSON.stringify([event, ...args]));
    return reply.promise;
  }

  // As socket.io-client's disconnect(): leave the namespace, close the
  // transport; resolves once the websocket has closed.
  close() {
    if (this.ws.readyState === WebSocket.OPEN) {
      this.ws.send("41");
      this.ws.close();
    } else if (this.ws.readyState !== WebSocket.CLOSED) {
      this.ws.terminate();
    }
    return this.closed.promise;
  }
}

// The same interface on socket.io-client itself.
class SioClient {
  constructor(url) {
    this.socket = io(url, {
      transports: ["websocket"], forceNew: true, reconnection: false, autoConnect: false,
      timeout: STEP_TIMEOUT, perMessageDeflate: DEFLATE ? { threshold: 1024 } : false,
    });
    this.closed = waiter("the connection to close", 10 * STEP_TIMEOUT);
    this.socket.on("disconnect", () => this.closed.resolve());
  }
  on(event, fn) { this.socket.on(event, (...args) => fn(args)); }
  // (socket.io-client has parsed it already: pass something as long.)
  onRaw(event, fn) {
    this.socket.on(event, (...args) => fn({ length: JSON.stringify(args).length, args }));
  }
  connect() {
    const ready = waiter("the Socket.IO connection");
    this.socket.once("connect", () => { this.id = this.socket.id; ready.resolve(this); });
    this.socket.once("connect_error", (error) => ready.reject(error));
    this.socket.connect();
    return ready.promise;
  }
  emit(event, ...args) { this.socket.emit(event, ...args); }
  emitWithAck(event, ...args) { return this.socket.timeout(STEP_TIMEOUT).emitWithAck(event, ...args); }
  close() { this.socket.disconnect(); return this.closed.promise; }
}

// The arguments of an event given to an onRaw handler.
const argsOf = (frame) => (Buffer.isBuffer(frame) ? JSON.parse(frame.toString("utf8", 2)).slice(1) : frame.args);

const Client = { wire: WireClient, sio: SioClient }[opt.client] ?? fail(`unknown --client ${opt.client}`);

// Every refusal the server sends, whichever client got it.
const refusals = { count: 0, first: null };

// Short unique names (the online scenario sends every name to every user
// on every join): 4 random hex digits and a base-36 counter.
const namePrefix = randomBytes(2).toString("hex");
let nameCount = 0;

// Whether a client must also wait for `history` before it counts as
// joined. chatlab sends `history` (then its stored recent messages) when a
// client connects, and only then sends it live messages; the Node.js
// reference does not. "auto": wait for it if the first client got one
// before its `private` welcome (chatlab sends it on connect, before any
// adduser), and expect it from every client after that.
let expectHistory = { yes: true, no: false, auto: null }[opt.history];
if (expectHistory === undefined) fail("--history must be yes, no or auto");

// A new client, connected and joined under a fresh name: it has had its
// `private` welcome (and, from chatlab, its `history`).
async function joinedClient(setup = () => {}, base = BASE) {
  const client = new Client(base);
  const name = `${namePrefix}${(nameCount++).toString(36)}`;
  const welcomed = waiter(`the private welcome for ${name}`);
  const history = waiter(`the history event for ${name}`);
  let hadHistory = false;
  client.on("private", ([payload]) => welcomed.resolve(payload));
  client.on("history", () => { hadHistory = true; history.resolve(); });
  client.on("error", ([payload]) => {
    refusals.count += 1;
    refusals.first ??= payload;
    // Every event the load generator sends is valid, so a refusal means the
    // server is limiting it (chatlab's rate limit): the figures would be
    // meaningless, so the run stops here and says why.
    const error = new Error(`the server refused ${payload?.event}: ${payload?.reason}`);
    welcomed.reject(error);
    finish({ error: error.message });
  });
  setup(client, name);
  await client.connect();
  client.emit("adduser", name);
  await welcomed.promise;
  expectHistory ??= hadHistory;
  if (expectHistory) await history.promise;
  else history.resolve();
  client.name = name;
  return client;
}

// --------------------------------------------------------- delivery ledger

// What every receiver got from every sender of this run: each message
// `${marker} ${sender} ${seq} ...` must arrive exactly once and in order.
// A message arriving after a later one of the same sender (or the later one,
// arriving before it) counts as reordered; one arriving twice as a
// duplicate; one that never arrives as lost.
class Ledger {
  constructor(receivers, senders) {
    this.senders = senders;
    this.next = Array.from({ length: receivers }, () => new Int32Array(senders));
    this.missing = new Set(); // "receiver sender seq" skipped over by a later one
    this.delivered = 0;
    this.duplicates = 0;
    this.reordered = 0;
    this.foreign = 0;
  }

  // Returns [sender, seq] for a message of this run seen for the first
  // time by this receiver, else null.
  record(receiver, payload) {
    const text = payload?.message;
    if (typeof text !== "string" || !text.startsWith(marker)) {
      this.foreign += 1;
      return null;
    }
    const [, s, q] = text.split(" ", 3);
    const sender = Number(s);
    const seq = Number(q);
    const next = this.next[receiver];
    if (seq === next[sender]) {
      next[sender] = seq + 1;
    } else if (seq > next[sender]) {
      this.reordered += 1;
      for (let k = next[sender]; k < seq && this.missing.size < 1e6; k++) {
        this.missing.add(`${receiver} ${sender} ${k}`);
      }
      next[sender] = seq + 1;
    } else if (this.missing.delete(`${receiver} ${sender} ${seq}`)) {
      this.reordered += 1;
    } else {
      this.duplicates += 1;
      return null;
    }
    this.delivered += 1;
    return [sender, seq];
  }

  summary(sent) {
    const expected = sent.reduce((a, b) => a + b, 0) * this.next.length;
    return {
      deliveries_expected: expected,
      deliveries: this.delivered,
      lost: expected - this.delivered,
      duplicates: this.duplicates,
      reordered: this.reordered,
      foreign_messages: this.foreign,
    };
  }
}

const text = (sender, seq) => `${marker} ${sender} ${seq} hello everyone, this is a benchmark message`;

// ------------------------------------------------------------- scenarios

async function echo() {
  const listeners = int("listeners");
  const warmup = int("warmup");
  const total = warmup + int("messages");
  const ledger = new Ledger(listeners + 1, 1);
  let own = null; // the waiter for the sender's own echo
  let complete = 0; // clients that have the last message (so, in order, all)
  const all = waiter("every listener to receive every message", 10 * STEP_TIMEOUT);
  // (Its time runs from here, through the sending, to the last delivery.)
  const clients = [];
  // A cluster: the sender on the first node, every listener on the second.
  // Each message then waits for all its copies and its acknowledgement.
  const cluster = BASE2 !== null;
  let step = null; // (cluster) the waiter for every copy of the current message
  let pending = 0; // (cluster) copies and acknowledgement still to come
  let current = -1; // (cluster) the message in flight
  let start = 0;
  const cross = []; // (cluster) emit -> a listener's delivery, each listener
  const acks = []; // (cluster) emit -> acknowledgement
  const arrived = (seq, samples) => {
    if (seq >= warmup && samples) samples.push(now() - start);
    if (--pending === 0) step.resolve();
  };
  phase("connecting");
  await pool(listeners + 1, int("concurrency"), async (i) => {
    clients[i] = await joinedClient((client) => {
      client.on("message", ([payload]) => {
        const got = ledger.record(i, payload);
        if (!got) return;
        if (cluster) {
          if (got[1] === current) arrived(got[1], i === 0 ? samples : cross);
        } else if (i === 0) own.resolve(got[1]);
        if (got[1] === total - 1 && ++complete === listeners + 1) all.resolve();
      });
    }, cluster && i > 0 ? BASE2 : BASE);
  });
  const samples = [];
  phase("measuring");
  const before = snapshot();
  for (let seq = 0; seq < total; seq++) {
    if (cluster) {
      current = seq;
      pending = listeners + 2;
      step = waiter(`every copy and the acknowledgement of message ${seq}`);
      start = now();
      clients[0].emitWithAck("message", text(0, seq)).then(
        () => arrived(seq, acks), (error) => step.reject(error));
      await step.promise;
      continue;
    }
    own = waiter(`the echo of message ${seq}`);
    start = now();
    clients[0].emit("message", text(0, seq));
    const got = await own.promise;
    if (got !== seq) throw new Error(`echo of ${got} while waiting for ${seq}`);
    if (seq >= warmup) samples.push(now() - start);
  }
  const sending = snapshot();
  let drained = true;
  try { await all.promise; } catch { drained = false; } // reported as lost
  const after = snapshot();
  phase("done");
  const sent = [total];
  const result = {
    listeners, messages: total - warmup, warmup, drained,
    latency: latencySummary(samples),
    ...ledger.summary(sent),
    usage: usage(before, sending),
    usage_with_drain: usage(before, after),
    server_cpu_us_per_delivery: PID === null ? null
      : ((after.server_cpu_s - before.server_cpu_s) * 1e6) / ledger.delivered,
    server_cpu_us_per_delivery_parts: cpuPartsPerDelivery(before, after, ledger.delivered),
  };
  if (cluster) Object.assign(result, { cross_node: latencySummary(cross), ack: latencySummary(acks) });
  return result;
}

async function fanout() {
  const n = int("clients");
  const senders = Math.min(int("senders"), n);
  const windowSize = int("window");
  const duration = int("duration") * 1000;
  const maxMessages = int("max-messages");
  const ledger = new Ledger(n, senders);
  const sent = new Array(senders).fill(0);
  const sentAt = Array.from({ length: senders }, () => []);
  const inflight = new Array(senders).fill(0);
  const samples = [];
  let stopAt = Infinity;
  let sending = true;
  let lastDelivery = 0;
  let done = null; // made when sending stops: every client has every message
  let expected = Infinity;
  const clients = [];

  const send = (s) => {
    const seq = sent[s]++;
    inflight[s] += 1;
    sentAt[s][seq] = now();
    clients[s].emit("message", text(s, seq));
  };

  // A cluster: the last `second` clients (none of them a sender) are on
  // the second node, the senders and the rest on the first.
  const second = BASE2 === null ? 0 : Math.round(n * Number(opt["url2-share"]));
  if (!(second >= 0 && second <= n - senders)) {
    fail("--url2-share must leave the senders on the first node");
  }
  const onSecond = (i) => i >= n - second;
  let crossNode = 0; // deliveries to clients of the second node
  phase("connecting");
  await pool(n, int("concurrency"), async (i) => {
    clients[i] = await joinedClient((client) => {
      client.on("message", ([payload]) => {
        const got = ledger.record(i, payload);
        if (!got) return;
        if (second && onSecond(i)) crossNode += 1;
        const t = now();
        lastDelivery = t;
        const [s, seq] = got;
        if (s === i) { // a sender's own echo: one more may go
          samples.push(t - sentAt[s][seq]);
          sentAt[s][seq] = undefined;
          inflight[s] -= 1;
          if (sending && t < stopAt && sent[s] < maxMessages) send(s);
        }
        if (ledger.delivered >= expected) done?.resolve();
      });
    }, onSecond(i) && second ? BASE2 : BASE);
  });
  phase("measuring");
  const before = snapshot();
  stopAt = before.t + duration;
  for (let s = 0; s < senders; s++) for (let k = 0; k < windowSize; k++) send(s);
  // Sending ends at stopAt; then wait for the last deliveries to arrive.
  const stop = waiter("the sending time to end", duration + STEP_TIMEOUT);
  setTimeout(() => stop.resolve(), duration);
  await stop.promise;
  const stopped = snapshot();
  sending = false;
  expected = sent.reduce((a, b) => a + b, 0) * n;
  done = waiter("every client to receive every message", 2 * STEP_TIMEOUT);
  if (ledger.delivered >= expected) done.resolve();
  phase("draining");
  let drained = true;
  try { await done.promise; } catch { drained = false; } // reported as lost
  const after = snapshot();
  phase("done");
  const summary = ledger.summary(sent);
  const wall = (lastDelivery - before.t) / 1000;
  const result = {
    clients: n, senders, window: windowSize, duration_s: duration / 1000,
    messages: sent.reduce((a, b) => a + b, 0),
    ...summary,
    deliveries_per_s: summary.deliveries / wall,
    messages_per_s: sent.reduce((a, b) => a + b, 0) / wall,
    drain_ms: after.t - stopped.t,
    drained,
    echo_under_load: latencySummary(samples),
    usage: usage(before, after),
    server_cpu_us_per_delivery: PID === null ? null
      : ((after.server_cpu_s - before.server_cpu_s) * 1e6) / summary.deliveries,
    server_cpu_us_per_delivery_parts: cpuPartsPerDelivery(before, after, summary.deliveries),
  };
  if (second) {
    Object.assign(result, {
      clients_on_second_node: second,
      cross_node_deliveries: crossNode,
      cross_node_deliveries_per_s: crossNode / wall,
    });
  }
  return result;
}

// A client that joins last and waits until the users list is only itself.
async function usersEmptyCheck() {
  const start = now();
  let latest = null;
  const alone = waiter("the users list to be empty but for the probe");
  let probeName = null;
  const probe = await joinedClient((client) => {
    client.on("users", ([list]) => {
      latest = list;
      if (probeName && list.length === 1 && list[0] === probeName) alone.resolve();
    });
  });
  probeName = probe.name;
  if (latest && latest.length === 1 && latest[0] === probeName) alone.resolve();
  let ok = true;
  try { await alone.promise; } catch { ok = false; }
  await probe.close();
  return { users_empty: ok, users_left: latest ? latest.length - 1 : null, users_empty_wait_ms: now() - start };
}

async function churn() {
  const total = int("total");
  const concurrency = int("concurrency");
  phase("measuring");
  const before = snapshot();
  await pool(total, concurrency, async () => {
    const client = await joinedClient();
    await client.close();
  });
  const after = snapshot();
  phase("checking");
  const check = await usersEmptyCheck();
  phase("done");
  const wall = (after.t - before.t) / 1000;
  return {
    total, concurrency,
    connections_per_s: total / wall,
    ...check,
    usage: usage(before, after),
    server_cpu_ms_per_connection: PID === null ? null
      : ((after.server_cpu_s - before.server_cpu_s) * 1e3) / total,
  };
}

async function online() {
  const wanted = int("users");
  const concurrency = int("concurrency");
  const limit = int("time-limit") * 1000 || Infinity;
  let n = 0; // users who started joining
  // The users lists are not parsed (each is up to n names, and every join
  // sends one to everyone); only their length in bytes is kept. The list
  // only grows while users join, so once all have joined, a client has the
  // final list when its latest frame is as long as the one a last joiner
  // (the observer) gets.
  const lastLength = new Int32Array(wanted);
  let finalLength = 0;
  let haveFinal = 0;
  const everyone = waiter("every user to receive the final users list");
  const clients = [];
  const idle = snapshot();
  phase("measuring");
  const stopAt = idle.t + limit;
  await pool(wanted, concurrency, async (i) => {
    if (now() > stopAt) return;
    n += 1;
    clients[i] = await joinedClient((client) => {
      client.onRaw("users", (frame) => {
        const was = lastLength[i];
        lastLength[i] = frame.length;
        if (finalLength && frame.length === finalLength && was !== finalLength
            && ++haveFinal === n) everyone.resolve();
      });
    });
  });
  const joined = snapshot();
  phase("settling");
  let observerName = null;
  const observer = await joinedClient((client, name) => {
    observerName = name;
    client.onRaw("users", (frame) => {
      // The final list is the one with the observer in it (the only frame
      // parsed here).
      const [list] = argsOf(frame);
      if (list.length !== n + 1 || !list.includes(observerName)) return;
      finalLength = frame.length;
      haveFinal = lastLength.subarray(0, n).filter((len) => len === finalLength).length;
      if (haveFinal === n) everyone.resolve();
    });
  });
  let settledOk = true;
  try { await everyone.promise; } catch { settledOk = false; }
  const settled = snapshot();
  phase("done");
  await observer.close();
  const wall = (joined.t - idle.t) / 1000;
  const result = {
    users: n, users_wanted: wanted, complete: n === wanted, concurrency,
    online_s: wall,
    users_per_s: n / wall,
    settle_ms: settled.t - joined.t,
    users_without_final_list: n - haveFinal,
    all_received_final_list: settledOk,
    usage: usage(idle, joined),
  };
  if (PID !== null) {
    Object.assign(result, {
      rss_idle_kb: idle.server_rss_kb,
      rss_online_kb: settled.server_rss_kb,
      hwm_online_kb: settled.server_hwm_kb,
      kb_per_user: (settled.server_rss_kb - idle.server_rss_kb) / n,
      server_cpu_ms_per_user: ((joined.server_cpu_s - idle.server_cpu_s) * 1e3) / n,
    });
  }
  return result;
}

// Print the one result line and exit (the first call wins).
let finished = false;
function finish(result, code = result.error ? 1 : 0) {
  if (finished) return;
  finished = true;
  result.refusals = refusals.count;
  if (refusals.first) result.first_refusal = refusals.first;
  process.stdout.write(JSON.stringify({ scenario, client: opt.client, deflate: DEFLATE, ...result }) + "\n");
  process.exit(code);
}

const scenarios = { echo, fanout, churn, online };
const run = scenarios[scenario] ?? fail(`unknown scenario ${scenario}; one of ${Object.keys(scenarios).join(", ")}`);
try {
  finish(await run());
} catch (error) {
  finish({ error: String(error?.message ?? error) });
}
