// The official Node.js Socket.IO client walks through the chat protocol
// against a server and prints, as JSON, every reply and every event each
// client received, for the Python test to check. Then carol uses the
// delivery protocol the way the official Socket.IO tutorial does (auth as a
// function giving the last offset seen, message ids "<socket id>-<counter>"):
// she drops out, misses messages, comes back and gets exactly those.
//   node protocol-client.mjs URL websocket|polling
import { io } from "socket.io-client";

const [url, transport] = process.argv.slice(2);
const deadline = setTimeout(() => fail("timed out"), 15000);

function fail(why) {
  console.error(why);
  process.exit(1);
}

// `listen(socket)` adds handlers before anything can arrive.
function connect(name, options = {}, listen = () => {}) {
  const socket = io(url, {
    transports: [transport], forceNew: true, reconnection: false, ...options,
  });
  listen(socket);
  const seen = [];
  const waiters = [];
  const count = (event) => seen.filter(([e]) => e === event).length;
  socket.onAny((event, ...args) => {
    seen.push([event, ...args]);
    // Checked once the event's own handlers (which run after onAny's) are done.
    queueMicrotask(() => {
      for (const waiter of waiters.splice(0)) waiter();
    });
  });
  // resolves once `predicate()` holds, checked after every event
  socket.waitUntil = (predicate) => new Promise((resolve) => {
    const check = () => (predicate() ? resolve() : waiters.push(check));
    check();
  });
  // resolves once `wanted` events named `event` have arrived in all
  socket.waitFor = (event, wanted = 1) => socket.waitUntil(() => count(event) >= wanted);
  // Ready once the chat's history has come: chatlab's server sends it a
  // moment after the connection is made (it reads its store first), and a
  // users list sent to everyone in that moment can come before it.
  return new Promise((resolve, reject) => {
    socket.once("connect", () => {
      socket.waitFor("history").then(() => resolve({ name, socket, seen }));
    });
    socket.once("connect_error", reject);
  });
}

// The reason the server gives for refusing a connection with this auth.
function refusal(auth) {
  const socket = io(url, { transports: [transport], forceNew: true, reconnection: false, auth });
  return new Promise((resolve, reject) => {
    socket.on("connect", () => reject(new Error(`connected with ${JSON.stringify(auth)}`)));
    socket.on("connect_error", (error) => {
      socket.close();
      resolve(error.message);
    });
  });
}

const call = (client, event, ...args) => client.socket.timeout(5000).emitWithAck(event, ...args);

const ann = await connect("ann");
const bob = await connect("bob");
const replies = {};
replies.adduserAnn = await call(ann, "adduser", "ann");
await ann.socket.waitFor("private");
replies.adduserBob = await call(bob, "adduser", "bob");
await ann.socket.waitFor("users", 2);
replies.message = await call(bob, "message", "hello from node");
await ann.socket.waitFor("message");
replies.joinAnn = await call(ann, "join", "node");
replies.joinBob = await call(bob, "join", "node");
replies.roommessage = await call(ann, "roommessage", { room: "node", message: "to the room" });
await bob.socket.waitFor("message", 2);
replies.direct = await call(ann, "direct", { to: "bob", message: "just you" });
await bob.socket.waitFor("message", 3);
replies.refused = await call(ann, "message", "");
await ann.socket.waitFor("error");
replies.leaveBob = await call(bob, "leave", "node");
const ids = { ann: ann.socket.id, bob: bob.socket.id };
bob.socket.disconnect();
await ann.socket.waitFor("users", 3);

// -- delivery, as in the tutorial -------------------------------------------

// What carol's page keeps: the chat's id and the last offset it has shown,
// sent on every (re)connection; it shows each offset once.
const page = { chat: null, lastOffset: 0, last: null, shown: [] };
const carol = await connect("carol", {
  auth: (cb) => cb(page.chat === null ? {} : { chat: page.chat, serverOffset: page.lastOffset }),
}, (socket) => {
  socket.on("history", ({ chat, after, last }) => {
    if (chat !== page.chat) {
      page.chat = chat;
      page.lastOffset = after;
    }
    page.last = last;
  });
  socket.on("message", ({ message, offset }) => {
    if (offset === undefined || offset <= page.lastOffset) return;
    page.lastOffset = offset;
    page.shown.push([offset, message]);
  });
});
const caughtUp = () => carol.socket.waitUntil(
  () => page.last !== null && page.lastOffset >= page.last);
let counter = 0;
const clientOffset = () => `${carol.socket.id}-${counter++}`;
const said = (client, text) => client.socket.waitUntil(
  () => client.seen.some(([event, data]) => event === "message" && data.message === text));

await caughtUp();
replies.adduserCarol = await call(carol, "adduser", "carol");
replies.carolHere = await call(carol, "message", "carol here", clientOffset());
const retried = clientOffset();
replies.onceOnly = await call(carol, "message", "once only", retried);
replies.onceAgain = await call(carol, "message", "once only", retried);  // a lost ack's retry
replies.afterRetry = await call(carol, "message", "after the retry", clientOffset());
await said(ann, "after the retry");
ids.carol = carol.socket.id;
const seenBefore = carol.seen.length;

carol.socket.disconnect();
await ann.socket.waitFor("users", 5);
replies.missed = [await call(ann, "message", "missed 1"), await call(ann, "message", "missed 2")];
const lastSeen = page.lastOffset;
page.last = null;
await new Promise((resolve, reject) => {
  carol.socket.once("connect", resolve);
  carol.socket.once("connect_error", reject);
  carol.socket.connect();
});
await caughtUp();
replies.rejoinCarol = await call(carol, "adduser", "carol");  // a new connection joins again
replies.backAgain = await call(carol, "message", "back again", clientOffset());
await said(ann, "back again");
await said(carol, "back again");
ids.carolAgain = carol.socket.id;

replies.refusedConnections = [
  await refusal({ serverOffset: -1 }),
  await refusal({ serverOffset: "3" }),
  await refusal({ chat: 5 }),
];

console.log(JSON.stringify({
  ids,
  replies,
  seen: { ann: ann.seen, bob: bob.seen, carol: carol.seen.slice(0, seenBefore),
          carolAgain: carol.seen.slice(seenBefore) },
  carol: { lastSeen, ...page },
}));
carol.socket.disconnect();
ann.socket.disconnect();
clearTimeout(deadline);
process.exit(0);  // done: do not wait for the sockets to wind down
