// The official Node.js Socket.IO client walks through the chat protocol
// against a server and prints, as JSON, every reply and every event each
// client received, for the Python test to check.
//   node protocol-client.mjs URL websocket|polling
import { io } from "socket.io-client";

const [url, transport] = process.argv.slice(2);
const deadline = setTimeout(() => fail("timed out"), 15000);

function fail(why) {
  console.error(why);
  process.exit(1);
}

function connect(name) {
  const socket = io(url, { transports: [transport], forceNew: true, reconnection: false });
  const seen = [];
  const waiters = [];
  const count = (event) => seen.filter(([e]) => e === event).length;
  socket.onAny((event, ...args) => {
    seen.push([event, ...args]);
    for (const waiter of waiters.splice(0)) waiter();
  });
  // resolves once `wanted` events named `event` have arrived in all
  socket.waitFor = (event, wanted = 1) => new Promise((resolve) => {
    const check = () => (count(event) >= wanted ? resolve() : waiters.push(check));
    check();
  });
  return new Promise((resolve, reject) => {
    socket.on("connect", () => resolve({ name, socket, seen }));
    socket.on("connect_error", reject);
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

console.log(JSON.stringify({
  ids,
  replies,
  seen: { ann: ann.seen, bob: bob.seen },
}));
ann.socket.disconnect();
clearTimeout(deadline);
process.exit(0);  // done: do not wait for the sockets to wind down
