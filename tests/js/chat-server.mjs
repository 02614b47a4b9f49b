// A reference chat server on the official Node.js Socket.IO server (socket.io
// 4.8, default options: no permessage-deflate, no rate limit), speaking the
// same protocol as chatlab's ChatServer (events, payloads, refusals), so that
// chatlab's Python client can be checked against both (tests/) and chatlab's
// server measured against it (bench/run.py). Both run this one file, on the
// socket.io pinned in tests/js (bench/run.py installs it when missing).
//
// Two modes:
// - delivery (the default, for the tests): chatlab's delivery protocol too.
//   Every public message is stored with an offset, in an array that lives as
//   long as the process, like ChatServer's default in-memory database; a new
//   connection is sent `history` and then the recent messages, or those
//   after its auth.serverOffset; a message id is stored once.
// - --no-delivery (for the benchmark): the base protocol only. Nothing is
//   stored, there is no `history` or replay, public messages go straight to
//   everyone and `message` takes the text alone: socket.io's own cost of
//   the chat, which is what chatlab is compared with.
//
//   node chat-server.mjs [--no-delivery] [port] [history]
// prints "listening on PORT" when ready (port 0, the default: a free one;
// history: how many recent messages a new client is sent, 50 by default,
// unused with --no-delivery).
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { Server } from "socket.io";
import {
  LIMITS, Refused, checkLabel, checkMessage, describe, oneArgument, repr,
} from "./chat-checks.mjs";

// strict: an unknown option stops the server instead of being taken as a port.
const { values: options, positionals } = parseArgs({
  options: { "no-delivery": { type: "boolean", default: false } },
  allowPositionals: true,
});
const DELIVERY = !options["no-delivery"];
const PORT = Number(positionals[0] ?? 0);
const HISTORY = Number(positionals[1] ?? 50); // recent messages a new client is sent
const EVENTS = ["adduser", "message", "join", "leave", "roommessage", "direct"];
const ROOM_PREFIX = "room:";
// The connections that have had their history and now get public messages
// as they are sent. Not a chat room (no prefix), so no client can join it.
const LIVE_ROOM = "chatlab:live";
const MESSAGE_ID = /^[\x21-\x7e]{1,64}$/;
const MESSAGE_ID_RULE =
  "1 to 64 visible ASCII characters (letters, digits, punctuation; no spaces)";

function checkMessageId(value) {
  if (value === null || value === undefined) return null;
  if (typeof value !== "string") {
    throw new Refused(`the message id must be a string, not ${describe(value)}`);
  }
  if (!MESSAGE_ID.test(value)) throw new Refused(`the message id must be ${MESSAGE_ID_RULE}`);
  return value;
}

// Where a connecting client's history ends: the chat id and the offset in
// its connect auth (each null when not given).
function checkResume(auth) {
  if (typeof auth !== "object" || auth === null || Array.isArray(auth)) return [null, null];
  const chat = auth.chat ?? null;
  if (chat !== null && !(typeof chat === "string" && MESSAGE_ID.test(chat))) {
    const shown = typeof chat === "string" ? "a string of other characters" : describe(chat);
    throw new Refused(`auth.chat must be a chat id as the server sent it in history, not ${shown}`);
  }
  const offset = auth.serverOffset ?? null;
  if (offset !== null && !(Number.isInteger(offset) && offset >= 0)) {
    const shown = typeof offset === "number" ? String(offset) : describe(offset);
    throw new Refused("auth.serverOffset must be a whole number of at least 0 "
      + `(the last offset this client saw), not ${shown}`);
  }
  return [chat, offset];
}

function fields(event, data, names) {
  const expected = `{${names.join(", ")}}`;
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new Refused(`${event} needs an object ${expected}, not ${describe(data)}`);
  }
  const keys = Object.keys(data).sort();
  if (keys.join() !== [...names].sort().join()) {
    throw new Refused(`${event} needs an object with exactly the keys ${expected}`);
  }
  return names.map((name) => data[name]);
}

const users = new Map(); // socket id → name, in join order
const chatId = randomBytes(16).toString("hex"); // names this history
const stored = []; // every public message, {offset, user, sender, text}; offset = index + 1
const offsetOf = new Map(); // message id → the offset it was stored under
const payload = (message) => ({
  message: message.text, user: message.user, id: message.sender, offset: message.offset,
});
const names = () => [...users.values()];
const sidOf = (name) => {
  for (const [sid, user] of users) if (user.toLowerCase() === name.toLowerCase()) return sid;
  return null;
};
const roomsOf = (socket) => [...socket.rooms]
  .filter((room) => room.startsWith(ROOM_PREFIX))
  .map((room) => room.slice(ROOM_PREFIX.length))
  .sort();

const httpServer = createServer();
const io = new Server(httpServer);

// Refused before it is connected: the client gets connect_error {message}.
// Without delivery the auth means nothing, so nothing in it is refused.
if (DELIVERY) {
  io.use((socket, next) => {
    try {
      socket.data.resume = checkResume(socket.handshake.auth);
    } catch (error) {
      if (!(error instanceof Refused)) throw error;
      return next(new Error(error.message));
    }
    next();
  });
}

io.on("connection", (socket) => {
  if (DELIVERY) {
    // The history first, then the stored messages it does not have, then
    // live ones: all synchronous, so no public message can come in between.
    const [chat, seen] = socket.data.resume;
    const last = stored.length;
    const after = chat === chatId && seen !== null && seen <= last
      ? seen : Math.max(0, last - HISTORY); // else a new client, or offsets from another history
    socket.emit("history", { chat: chatId, after, last });
    for (const message of stored.slice(after)) socket.emit("message", payload(message));
    socket.join(LIVE_ROOM);
  }

  const joined = (doing) => {
    const name = users.get(socket.id);
    if (name === undefined) throw new Refused(`send adduser with your name before ${doing}`);
    return name;
  };
  const handlers = {
    adduser(args) {
      if (users.has(socket.id)) {
        throw new Refused(`this connection has already joined as ${repr(users.get(socket.id))}`);
      }
      const name = checkLabel(oneArgument("adduser", args, "your user name"), "the user name", LIMITS.name);
      if (sidOf(name) !== null) throw new Refused(`the name ${repr(name)} is taken; choose another`);
      users.set(socket.id, name);
      socket.data.name = name;
      io.emit("users", names());
      socket.emit("private", {
        id: socket.id, name, msg: `Welcome, ${name}! You are connected as ${socket.id}.`,
      });
      return { ok: true, id: socket.id, name };
    },
    message(args) {
      const user = joined("sending a message");
      if (!DELIVERY) {
        const text = checkMessage(oneArgument("message", args, "the message text"));
        io.emit("message", { message: text, user, id: socket.id });
        return { ok: true };
      }
      if (args.length === 0) throw new Refused("message needs the message text");
      if (args.length > 2) {
        throw new Refused("message takes the message text and, optionally, a message id; "
          + `not ${args.length} arguments`);
      }
      const text = checkMessage(args[0]);
      const messageId = checkMessageId(args[1]);
      if (messageId !== null && offsetOf.has(messageId)) {
        // Sent again (a retry after a lost acknowledgement): stored once.
        return { ok: true, offset: offsetOf.get(messageId), duplicate: true };
      }
      const message = { offset: stored.length + 1, user, sender: socket.id, text };
      stored.push(message);
      if (messageId !== null) offsetOf.set(messageId, message.offset);
      io.to(LIVE_ROOM).emit("message", payload(message));
      return { ok: true, offset: message.offset };
    },
    join(args) {
      joined("joining a room");
      const room = checkLabel(oneArgument("join", args, "the room name"), "the room name", LIMITS.room);
      socket.join(ROOM_PREFIX + room);
      return { ok: true, rooms: roomsOf(socket) };
    },
    leave(args) {
      joined("leaving a room");
      const room = checkLabel(oneArgument("leave", args, "the room name"), "the room name", LIMITS.room);
      if (!roomsOf(socket).includes(room)) throw new Refused(`you are not in the room ${repr(room)}`);
      socket.leave(ROOM_PREFIX + room);
      return { ok: true, rooms: roomsOf(socket) };
    },
    roommessage(args) {
      const user = joined("sending to a room");
      const data = oneArgument("roommessage", args, "{room, message}");
      let [room, text] = fields("roommessage", data, ["room", "message"]);
      room = checkLabel(room, "the room name", LIMITS.room);
      text = checkMessage(text);
      if (!roomsOf(socket).includes(room)) throw new Refused(`join the room ${repr(room)} before sending to it`);
      io.to(ROOM_PREFIX + room).emit("message", { message: text, user, id: socket.id, room });
      return { ok: true };
    },
    direct(args) {
      const user = joined("sending a direct message");
      const data = oneArgument("direct", args, "{to, message}");
      let [to, text] = fields("direct", data, ["to", "message"]);
      to = checkLabel(to, "the user name", LIMITS.name);
      text = checkMessage(text);
      const target = sidOf(to);
      if (target === null) throw new Refused(`there is no user called ${repr(to)}`);
      io.to([target, socket.id]).emit("message", {
        message: text, user, id: socket.id, to: users.get(target),
      });
      return { ok: true };
    },
  };

  socket.onAny((event, ...args) => {
    const ack = typeof args.at(-1) === "function" ? args.pop() : null;
    let reply;
    try {
      const handler = handlers[event];
      if (!handler) {
        throw new Refused(`unknown event ${repr(event)}; the chat understands ${EVENTS.join(", ")}`);
      }
      reply = handler(args);
    } catch (error) {
      if (!(error instanceof Refused)) throw error;
      reply = { event, reason: error.message };
      socket.emit("error", reply);
    }
    if (ack) ack(reply);
  });

  socket.on("disconnect", () => {
    if (users.delete(socket.id)) io.emit("users", names());
  });
});

httpServer.listen(PORT, "127.0.0.1", () => {
  console.log(`listening on ${httpServer.address().port}`);
});
const stop = () => io.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
