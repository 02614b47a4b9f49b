// The Node.js reference chat of chatlab's benchmark: the official Socket.IO
// server (socket.io 4.8, default options: no permessage-deflate, no rate
// limit) speaking the chat protocol of chatlab's ChatServer (events,
// payloads, refusals). Copied from tests/js/chat-server.mjs as it was before
// chatlab's delivery protocol, so that bench/ is self-contained: it mirrors
// the base protocol only. chatlab also stores every public message (SQLite,
// with an offset), sends `history` and replays recent messages on connect,
// and takes a message id; this server does none of that.
//   node node-chat-server.mjs [port]   prints "listening on PORT" when ready
import { createServer } from "node:http";
import { Server } from "socket.io";

const LIMITS = { name: 32, message: 2000, room: 32 };
const EVENTS = ["adduser", "message", "join", "leave", "roommessage", "direct"];
const ROOM_PREFIX = "room:";

class Refused extends Error {}

function describe(value) {
  if (value === null || value === undefined) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "an object";
  return `a ${typeof value}`;
}

function checkCharacters(text, what, allowed = "") {
  for (const char of text) {
    const code = char.codePointAt(0);
    if (code >= 0xd800 && code <= 0xdfff) {
      throw new Refused(`${what} contains an unpaired surrogate (invalid UTF-16)`);
    }
    if ((code < 0x20 || (code >= 0x7f && code < 0xa0)) && !allowed.includes(char)) {
      const hex = code.toString(16).toUpperCase().padStart(4, "0");
      throw new Refused(`${what} contains the control character U+${hex}`);
    }
  }
}

function checkLabel(value, what, limit) {
  if (typeof value !== "string") throw new Refused(`${what} must be a string, not ${describe(value)}`);
  const label = value.trim();
  if (!label) throw new Refused(`${what} must not be empty`);
  if (label.length > limit) {
    throw new Refused(`${what} is ${label.length} characters long; the limit is ${limit}`);
  }
  checkCharacters(label, what);
  return label;
}

function checkMessage(value) {
  if (typeof value !== "string") {
    throw new Refused(`the message must be a string, not ${describe(value)}`);
  }
  if (!value.trim()) throw new Refused("the message must not be empty");
  if (value.length > LIMITS.message) {
    throw new Refused(
      `the message is ${value.length} characters long; the limit is ${LIMITS.message}`);
  }
  checkCharacters(value, "the message", "\n\t");
  return value;
}

function oneArgument(event, args, what) {
  if (args.length === 0) throw new Refused(`${event} needs ${what}`);
  if (args.length > 1) throw new Refused(`${event} takes one argument (${what}), not ${args.length}`);
  return args[0];
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

const repr = (text) => `'${text}'`;
const users = new Map(); // socket id → name, in join order
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

io.on("connection", (socket) => {
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
      const text = checkMessage(oneArgument("message", args, "the message text"));
      io.emit("message", { message: text, user, id: socket.id });
      return { ok: true };
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

httpServer.listen(Number(process.argv[2] ?? 0), "127.0.0.1", () => {
  console.log(`listening on ${httpServer.address().port}`);
});
const stop = () => io.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
