// One node of the Node.js reference chat as a cluster, for the benchmark's
// cluster scenarios: socket.io 4.8 with @socket.io/redis-adapter on a Redis
// that every node shares, speaking the base chat protocol of
// tests/js/chat-server.mjs --no-delivery (adduser, message, users, private,
// and the same refusals as `error` events and acknowledgements).
//
//   node cluster_node.mjs --redis redis://127.0.0.1:PORT/0 [port]
// prints "listening on PORT" when ready (port 0, the default: a free one).
//
// That server runs as soon as it is imported, so its handlers cannot be
// reused from here; this file keeps only what the benchmark sends (adduser
// and public messages; room and direct messages are refused as unknown),
// with the same checks of names and messages (tests/js/chat-checks.mjs),
// so that a message costs the same here as there. What is the cluster's:
// - a public message is `io.emit`: the adapter sends it to this node's
//   clients and publishes it on Redis, and every other node sends it to its
//   own (socket.io's documented way to scale out);
// - the users list is the names of every node's sockets, from
//   `io.fetchSockets()` (which asks every node through Redis), in join
//   order; a name is refused if a socket of any node has it. Two nodes can
//   accept the same name at the same moment: the reference needs no more.
// Nothing is stored and nothing replayed, as with --no-delivery.
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";
import { Server } from "socket.io";
import {
  LIMITS, Refused, checkLabel, checkMessage, oneArgument, repr,
} from "../tests/js/chat-checks.mjs";

const { values: options, positionals } = parseArgs({
  options: { redis: { type: "string" } },
  allowPositionals: true,
});
if (!options.redis) {
  process.stderr.write("cluster_node: --redis redis://HOST:PORT/DB is required\n");
  process.exit(2);
}
const PORT = Number(positionals[0] ?? 0);
const EVENTS = ["adduser", "message"];
let joins = 0; // orders this node's joins; with Date.now(), the cluster's

const pubClient = createClient({ url: options.redis });
const subClient = pubClient.duplicate();
for (const client of [pubClient, subClient]) {
  client.on("error", (error) => process.stderr.write(`cluster_node: redis: ${error.message}\n`));
}
await Promise.all([pubClient.connect(), subClient.connect()]);

const httpServer = createServer();
const io = new Server(httpServer, { adapter: createAdapter(pubClient, subClient) });

// Every joined user of every node, in join order.
async function joinedSockets() {
  const sockets = (await io.fetchSockets()).filter((socket) => socket.data.name);
  return sockets.sort((a, b) => a.data.joined[0] - b.data.joined[0] || a.data.joined[1] - b.data.joined[1]);
}

io.on("connection", (socket) => {
  const joined = (doing) => {
    const name = socket.data.name;
    if (name === undefined) throw new Refused(`send adduser with your name before ${doing}`);
    return name;
  };
  const handlers = {
    async adduser(args) {
      if (socket.data.name !== undefined) {
        throw new Refused(`this connection has already joined as ${repr(socket.data.name)}`);
      }
      const name = checkLabel(oneArgument("adduser", args, "your user name"), "the user name", LIMITS.name);
      const others = await joinedSockets();
      if (others.some((other) => other.data.name.toLowerCase() === name.toLowerCase())) {
        throw new Refused(`the name ${repr(name)} is taken; choose another`);
      }
      socket.data.name = name;
      socket.data.joined = [Date.now(), joins++];
      io.emit("users", [...others.map((other) => other.data.name), name]);
      socket.emit("private", {
        id: socket.id, name, msg: `Welcome, ${name}! You are connected as ${socket.id}.`,
      });
      return { ok: true, id: socket.id, name };
    },
    message(args) {
      const user = joined("sending a message");
      const text = checkMessage(oneArgument("message", args, "the message text"));
      io.emit("message", { message: text, user, id: socket.id });
      return { ok: true };
    },
  };

  socket.onAny(async (event, ...args) => {
    const ack = typeof args.at(-1) === "function" ? args.pop() : null;
    let reply;
    try {
      const handler = handlers[event];
      if (!handler) {
        throw new Refused(`unknown event ${repr(event)}; this node understands ${EVENTS.join(", ")}`);
      }
      reply = handler(args);
      if (reply instanceof Promise) reply = await reply; // adduser asks the other nodes
    } catch (error) {
      if (!(error instanceof Refused)) throw error;
      reply = { event, reason: error.message };
      socket.emit("error", reply);
    }
    if (ack) ack(reply);
  });

  socket.on("disconnect", async () => {
    if (socket.data.name === undefined) return;
    try {
      const users = await joinedSockets();
      io.emit("users", users.filter((other) => other.id !== socket.id).map((other) => other.data.name));
    } catch (error) { // another node did not answer in time
      process.stderr.write(`cluster_node: no users list after a leave: ${error.message}\n`);
    }
  });
});

httpServer.listen(PORT, "127.0.0.1", () => {
  console.log(`listening on ${httpServer.address().port}`);
});
const stop = () => io.close(() => Promise.allSettled([pubClient.quit(), subClient.quit()])
  .then(() => process.exit(0)));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
