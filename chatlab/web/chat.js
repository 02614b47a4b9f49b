// chatlab's chat page. It speaks the chat protocol with the Socket.IO server
// that served it (every event is in chatlab/protocol.py): sends "adduser"
// and "message"; receives "history", "users", "private", "message" and "error".
//
// Nothing gets lost when the connection drops (the delivery protocol, see
// chatlab/delivery.py): the page remembers the chat's id and the last offset it
// has shown, and reconnects with them, so the server sends exactly what it
// missed; each offset is shown once. Each message the user sends gets an id
// of its own and waits in an outbox, shown as "sending…", until the server
// acknowledges it; it is sent again (same id, stored once) after a timeout
// or a reconnection.
//
// Every piece of text that came from a user is put on the page with
// textContent, never as HTML, so nobody can inject markup into the page;
// and in an element of its own that isolates its direction (<bdi>, or
// dir=auto with unicode-bidi in chat.css), so that a right-to-left name or
// a stray bidirectional control cannot reorder the text around it.
"use strict";

(() => {
  const MAX_ITEMS = 1000; // keep a long-running tab from growing without end
  const ACK_TIMEOUT_MS = 5000; // then the message is sent again (as ChatClient does)

  const byId = (id) => document.getElementById(id);
  const ui = {
    state: byId("state"),
    notice: byId("notice"),
    noticeText: byId("notice-text"),
    noticeClose: byId("notice-close"),
    tokenForm: byId("token-form"),
    token: byId("token"),
    joinForm: byId("join-form"),
    name: byId("name"),
    messages: byId("messages"),
    messageForm: byId("message-form"),
    messageInput: byId("message-input"),
    users: byId("users"),
    userCount: byId("user-count"),
  };

  // -- small helpers -----------------------------------------------------

  /** An element with a class and, optionally, plain text. */
  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /** A user's text (a name, a room) inside other text: a <bdi>, whose
   * direction is its own (dir=auto) and kept apart from its neighbours'. */
  function isolated(text, className) {
    const node = element("bdi", className, text);
    node.dir = "auto";
    return node;
  }

  /** `label` followed by a user's text, isolated (e.g. "to " and a name). */
  function labelled(tag, className, label, text) {
    const node = element(tag, className, label);
    node.append(isolated(text));
    return node;
  }

  /** The connection state: `text`, then the user's name if given. */
  function setState(state, text, name) {
    ui.state.dataset.state = state;
    const label = element("span", "label", text); // one flex item, name and all
    if (name !== undefined) label.append(isolated(name, "name"));
    ui.state.replaceChildren(label);
  }

  function showNotice(text) {
    ui.noticeText.textContent = text;
    ui.notice.hidden = false;
  }

  function hideNotice() {
    ui.notice.hidden = true;
    ui.noticeText.textContent = "";
  }

  function setDisabled(form, disabled) {
    for (const control of form.elements) control.disabled = disabled;
  }

  ui.noticeClose.addEventListener("click", hideNotice);

  // -- the Socket.IO client ----------------------------------------------

  if (typeof window.io !== "function") {
    setState("failed", "no Socket.IO client");
    showNotice(
      "Could not load the Socket.IO client: this server has no copy of it " +
      "(run make install) and the CDN (cdn.jsdelivr.net) could not be reached; " +
      "check your internet connection and reload the page."
    );
    return;
  }

  let me = null;            // {id, name} once the server has sent "private"
  const myIds = new Set();  // this page's connection ids, old and new: its messages
  let wantedName = null;    // the name asked for, sent again after reconnecting
  let joinedBefore = false; // so a reconnection rejoins instead of asking again
  // After a reconnection the name can still be held for a while: by this
  // page's old connection until the server notices it is gone, or by a node
  // of a cluster that died, until its heartbeat runs out (docs/scaling.md).
  // A rejoin refused for that asks again, for up to REJOIN_PATIENCE_MS.
  const REJOIN_PATIENCE_MS = 30000;
  let rejoinUntil = 0;
  let rejoinWait = 0;
  let lastUsers = [];
  let needToken = false;    // the server refused us for a missing or wrong token
  let token = null;         // the token the user gave, sent on every connection

  // Where this page's history ends: the chat's id (from "history") and the
  // newest offset shown, sent on every connection so that the server sends
  // just what the page has not seen.
  let chat = null;
  let lastOffset = null;
  let historyLast = null;   // the newest offset when this connection was made

  // The messages the user wrote that the server has not acknowledged yet,
  // oldest first ({id, text, item}), and the one now waiting for its answer.
  const outbox = [];
  let sending = null;

  // The server stores each message id once, for good, so ids must never
  // repeat. Not crypto.randomUUID(): it exists only in secure contexts
  // (https, localhost) and a hub may serve this page over plain http.
  const pageId = Array.from(crypto.getRandomValues(new Uint8Array(12)),
    (byte) => byte.toString(16).padStart(2, "0")).join("");
  let messageCount = 0;

  function newMessageId() {
    messageCount += 1;
    return `${pageId}-${messageCount}`; // visible ASCII, well under 64 characters
  }

  /** The connect auth: the token if there is one and, once a chat is
   * known, where this page's history ends. */
  function connectAuth() {
    const auth = {};
    if (token !== null) auth.token = token;
    if (chat !== null) {
      auth.chat = chat;
      auth.serverOffset = lastOffset ?? 0;
    }
    return auth;
  }

  // Socket.IO lives beside this page, which may sit under a proxy prefix
  // such as /user/me/proxy/5000/, so its path is taken from the page's own.
  const base = window.location.pathname.replace(/[^/]*$/, "");
  // auth is a function: the client calls it for every (re)connection, so
  // the server always hears the newest offset.
  const socket = window.io({ path: base + "socket.io", auth: (send) => send(connectAuth()) });

  function joined() {
    return me !== null;
  }

  function rejoining() {
    return !joined() && wantedName !== null && joinedBefore;
  }

  /** Show the join form or the message box, enabled when they can be used. */
  function updateForms() {
    const chatting = joined() || rejoining();
    ui.tokenForm.hidden = !needToken;
    setDisabled(ui.tokenForm, !needToken);
    ui.joinForm.hidden = chatting || needToken;
    ui.messageForm.hidden = !chatting;
    // While the server has not answered an adduser, the form waits.
    setDisabled(ui.joinForm, !socket.connected || wantedName !== null);
    // While the page reconnects, what is typed waits in the outbox; not
    // once nothing will reconnect (socket.active: the server closed us).
    setDisabled(ui.messageForm, !(joined() || (chatting && socket.active)));
  }

  function showConnected() {
    if (joined()) setState("connected", "connected as ", me.name);
    else setState("connected", "connected");
  }

  // -- rendering -----------------------------------------------------------

  /** Add an item to the list, above the messages still sending: those stay
   * at the bottom, and the rest in the order the server sent them. */
  function append(item) {
    const list = ui.messages;
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    const firstPending = item.classList.contains("pending")
      ? null : list.querySelector(":scope > li.pending");
    list.insertBefore(item, firstPending); // moves an item already there; null: at the end
    while (list.children.length > MAX_ITEMS) list.firstElementChild.remove();
    if (atBottom || item.classList.contains("mine")) list.scrollTop = list.scrollHeight;
  }

  function addNote(text) {
    append(element("li", "note", text));
  }

  function timeNow() {
    return element("time", "time", new Date().toLocaleTimeString([], {
      hour: "2-digit", minute: "2-digit",
    }));
  }

  /** A message's item, not yet on the page. */
  function messageItem(data, mine) {
    const item = element("li", mine ? "message mine" : "message");
    const meta = element("div", "meta");
    meta.append(isolated(String(data.user ?? "?"), "sender"));
    if (data.room != null) meta.append(labelled("span", "tag", "in ", String(data.room)));
    if (data.to != null) meta.append(labelled("span", "tag", "to ", String(data.to)));
    if (Number.isInteger(data.offset)) item.dataset.offset = String(data.offset);
    // A message from the history arrives now but was sent earlier, at a
    // time the server does not say: better no time than a wrong one.
    const fromHistory = Number.isInteger(data.offset) && historyLast !== null &&
      data.offset <= historyLast;
    if (!fromHistory) meta.append(timeNow());
    // dir=auto: a right-to-left message reads from the right. Its height is
    // capped in chat.css, with a scroll bar of its own (nothing is cut).
    const text = element("p", "text", String(data.message ?? ""));
    text.dir = "auto";
    item.append(meta, text);
    return item;
  }

  function addMessage(data) {
    append(messageItem(data, myIds.has(String(data.id))));
  }

  /** A message of the user's own, shown greyed as "sending…" until the
   * server has it. */
  function addPending(text) {
    const item = messageItem({ user: wantedName, message: text }, true);
    item.classList.add("pending");
    item.querySelector(".meta").append(element("span", "status", "sending…"));
    append(item);
    return item;
  }

  /** A "sending…" item the server now has: an ordinary message, placed
   * after the messages delivered before it. */
  function delivered(item, offset) {
    item.classList.remove("pending");
    item.querySelector(".status")?.remove();
    if (Number.isInteger(offset)) item.dataset.offset = String(offset);
    append(item);
  }

  function renderUsers(names) {
    lastUsers = names;
    const items = names.map((name) => {
      const item = element("li", "user");
      item.append(isolated(name, "name"));
      if (joined() && name === me.name) {
        item.classList.add("me");
        item.append(element("span", "you", " (you)"));
      }
      return item;
    });
    ui.users.replaceChildren(...items);
    ui.userCount.textContent = String(names.length);
  }

  // -- sending until the server acknowledges -------------------------------
  //
  // Not socket.io-client's own `retries` option: its queue is sent the
  // moment the socket connects, before the page has sent adduser again, and
  // the server refuses a message from a connection that has not joined.

  function canSend() {
    return socket.connected && joined();
  }

  /** Send the oldest waiting message: one at a time, so they stay in order. */
  function flush() {
    if (sending !== null || outbox.length === 0 || !canSend()) return;
    const entry = outbox[0];
    sending = entry;
    socket.timeout(ACK_TIMEOUT_MS).emit("message", entry.text, entry.id, (err, reply) => {
      sending = null;
      // err: no answer in time, or the connection dropped. The message stays
      // first in line, sent again (same id) now if connected, else once the
      // page has rejoined; the server stores it once either way.
      if (!err && reply !== null && typeof reply === "object" &&
          typeof reply.retryAfter === "number") {
        // Too fast (a long queue sent after a reconnection): the server said
        // when it will take it.
        setTimeout(flush, Math.min(reply.retryAfter * 1000, ACK_TIMEOUT_MS));
        return;
      }
      if (!err) acknowledged(entry, reply);
      flush();
    });
  }

  /** The server's answer to a message: stored, or refused. */
  function acknowledged(entry, reply) {
    outbox.splice(outbox.indexOf(entry), 1);
    if (reply !== null && typeof reply === "object" && reply.ok === true) {
      // The server sends a message to everyone before acknowledging it, so
      // it has normally come back already (see ownEcho).
      if (entry.item.classList.contains("pending")) delivered(entry.item, reply.offset);
    } else {
      entry.item.remove(); // refused: the "error" event shows why
    }
  }

  /** The waiting message that `data` is: the user's own message coming
   * back from the server, live or, after a reconnection, in the history. */
  function ownEcho(data) {
    if (!myIds.has(String(data.id))) return null;
    return outbox.find((entry) =>
      entry.item.classList.contains("pending") && entry.text === data.message) ?? null;
  }

  /** Join as `name`; once the server has taken it, send what is waiting. */
  function addUser(name) {
    socket.emit("adduser", name, (reply) => {
      if (reply !== null && typeof reply === "object" && reply.ok === true) flush();
    });
  }

  // -- events from the server ----------------------------------------------

  socket.on("connect", () => {
    needToken = false;
    showConnected();
    if (wantedName !== null && joinedBefore) {
      // The server sees a new connection: join again under the same name.
      rejoinUntil = Date.now() + REJOIN_PATIENCE_MS;
      rejoinWait = 250;
      addUser(wantedName);
    }
    updateForms();
  });

  socket.on("disconnect", (reason) => {
    me = null;
    // Anything the client buffered would go out on reconnecting, before
    // adduser, and be refused; the outbox sends it again instead.
    socket.sendBuffer = [];
    renderUsers([]);
    if (reason === "io server disconnect") {
      setState("disconnected", "disconnected by the server");
    } else {
      setState("disconnected", "disconnected, reconnecting…");
    }
    updateForms();
  });

  socket.on("connect_error", (err) => {
    // A server with a token refuses us with data {token: "missing" | "wrong"};
    // it will not let us in by retrying, so ask for the token.
    const refused = err && err.data && typeof err.data === "object" ? err.data.token : undefined;
    if (refused === "missing" || refused === "wrong") {
      needToken = true;
      setState("disconnected", refused === "wrong" ? "wrong token" : "this chat needs a token");
      if (refused === "wrong") {
        // After too many wrong tokens the server says how long to wait.
        const wait = err.data.retryAfter;
        showNotice(Number.isFinite(wait)
          ? `${err.message}.`
          : "The server refused the token; check it and try again.");
      }
      updateForms();
      ui.token.focus();
      return;
    }
    setState("disconnected", "cannot reach the chat server, retrying…");
    updateForms();
  });

  socket.io.on("reconnect_attempt", (attempt) => {
    setState("connecting", `reconnecting (attempt ${attempt})…`);
  });

  // First on every connection: which history the offsets belong to, and
  // up to where the messages that follow are the ones this page missed.
  socket.on("history", (data) => {
    if (data === null || typeof data !== "object") return;
    const { after, last } = data;
    if (typeof data.chat !== "string" || !Number.isInteger(after) || !Number.isInteger(last)) {
      return;
    }
    if (data.chat !== chat) {
      // A new page, or a server that lost its messages: offsets start afresh.
      if (chat !== null) addNote("The chat server has started a new history.");
      chat = data.chat;
    }
    // What follows starts after `after`: normally the offset we sent, lower
    // if the server's history is shorter than we thought (a restored file).
    lastOffset = after;
    historyLast = last;
  });

  socket.on("users", (names) => {
    renderUsers(Array.isArray(names) ? names.map(String) : []);
  });

  socket.on("private", (data) => {
    if (data === null || typeof data !== "object") return;
    me = { id: String(data.id), name: String(data.name) };
    myIds.add(me.id);
    wantedName = me.name;
    joinedBefore = true;
    hideNotice();
    if (data.msg) addNote(String(data.msg));
    renderUsers(lastUsers); // mark "(you)" now that the name is known
    showConnected();
    updateForms();
    ui.messageInput.focus();
  });

  socket.on("message", (data) => {
    if (data === null || typeof data !== "object") return;
    if (Number.isInteger(data.offset)) {
      // Each offset once, whatever the server sends again.
      if (lastOffset !== null && data.offset <= lastOffset) return;
      lastOffset = data.offset;
      const echo = ownEcho(data);
      if (echo !== null) {
        delivered(echo.item, data.offset);
        return;
      }
    }
    addMessage(data); // a room or direct message has no offset
  });

  socket.on("error", (data) => {
    const event = data && typeof data === "object" ? data.event : undefined;
    const reason = data && typeof data === "object" ? data.reason : data;
    showNotice(
      event ? `The server refused "${event}": ${reason}` : `Server error: ${reason}`
    );
    if (event === "adduser" && !joined() && rejoining() && Date.now() + rejoinWait < rejoinUntil
        && /is taken|try again/.test(String(reason))) {
      showNotice(`Waiting for the name "${wantedName}" to be free again: ${reason}`);
      const connection = socket.id;
      setTimeout(() => {
        if (socket.connected && socket.id === connection && rejoining()) addUser(wantedName);
      }, rejoinWait);
      rejoinWait = Math.min(2 * rejoinWait, 2000);
      return;
    }
    if (event === "adduser" && !joined()) {
      // The name was refused (taken, too long…): ask for another.
      wantedName = null;
      joinedBefore = false;
      updateForms();
      ui.name.focus();
    }
  });

  // -- what the user does --------------------------------------------------

  ui.tokenForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const given = ui.token.value;
    if (!given) return;
    hideNotice();
    setState("connecting", "connecting…");
    token = given; // sent with every reconnection too (see connectAuth)
    setDisabled(ui.tokenForm, true);
    socket.connect();
  });

  ui.joinForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = ui.name.value.trim();
    if (!name || !socket.connected) return;
    wantedName = name;
    hideNotice();
    updateForms();
    addUser(name);
  });

  ui.messageForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = ui.messageInput.value;
    // Also while reconnecting: it waits in the outbox until the page has
    // rejoined (the server refuses a message before adduser).
    if (!text.trim() || !(joined() || rejoining())) return;
    outbox.push({ id: newMessageId(), text, item: addPending(text) });
    ui.messageInput.value = "";
    flush();
  });

  setState("connecting", "connecting…");
  updateForms();
})();
