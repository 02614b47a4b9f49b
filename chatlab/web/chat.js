// chatlab's chat page. It speaks the chat protocol with the Socket.IO server
// that served it: sends "adduser" and "message"; receives "users",
// "private", "message" and "error".
//
// Every piece of text that came from a user is put on the page with
// textContent, never as HTML, so nobody can inject markup into the page.
"use strict";

(() => {
  const MAX_ITEMS = 1000; // keep a long-running tab from growing without end

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

  function setState(state, text) {
    ui.state.dataset.state = state;
    ui.state.textContent = text;
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
      "Could not load the Socket.IO client from the CDN (cdn.jsdelivr.net); " +
      "check your internet connection and reload the page."
    );
    return;
  }

  // Socket.IO lives beside this page, which may sit under a proxy prefix
  // such as /user/me/proxy/5000/, so its path is taken from the page's own.
  const base = window.location.pathname.replace(/[^/]*$/, "");
  const socket = window.io({ path: base + "socket.io" });

  let me = null;            // {id, name} once the server has sent "private"
  let wantedName = null;    // the name asked for, sent again after reconnecting
  let joinedBefore = false; // so a reconnection rejoins instead of asking again
  let lastUsers = [];
  let needToken = false;    // the server refused us for a missing or wrong token

  function joined() {
    return me !== null;
  }

  /** Show the join form or the message box, enabled when they can be used. */
  function updateForms() {
    const rejoining = !joined() && wantedName !== null && joinedBefore;
    const chatting = joined() || rejoining;
    ui.tokenForm.hidden = !needToken;
    setDisabled(ui.tokenForm, !needToken);
    ui.joinForm.hidden = chatting || needToken;
    ui.messageForm.hidden = !chatting;
    // While the server has not answered an adduser, the form waits.
    setDisabled(ui.joinForm, !socket.connected || wantedName !== null);
    setDisabled(ui.messageForm, !(socket.connected && joined()));
  }

  function showConnected() {
    if (joined()) setState("connected", `connected as ${me.name}`);
    else setState("connected", "connected");
  }

  // -- rendering -----------------------------------------------------------

  function append(item) {
    const list = ui.messages;
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.append(item);
    while (list.children.length > MAX_ITEMS) list.firstElementChild.remove();
    if (atBottom || item.classList.contains("mine")) list.scrollTop = list.scrollHeight;
  }

  function addNote(text) {
    append(element("li", "note", text));
  }

  function addMessage(data) {
    if (data === null || typeof data !== "object") return;
    const mine = joined() && String(data.id) === me.id;
    const item = element("li", mine ? "message mine" : "message");
    const meta = element("div", "meta");
    meta.append(element("span", "sender", String(data.user ?? "?")));
    if (data.room != null) meta.append(element("span", "tag", `in ${data.room}`));
    if (data.to != null) meta.append(element("span", "tag", `to ${data.to}`));
    const time = element("time", "time", new Date().toLocaleTimeString([], {
      hour: "2-digit", minute: "2-digit",
    }));
    meta.append(time);
    item.append(meta, element("p", "text", String(data.message ?? "")));
    append(item);
  }

  function renderUsers(names) {
    lastUsers = names;
    const items = names.map((name) => {
      const item = element("li", "user", name);
      if (joined() && name === me.name) {
        item.classList.add("me");
        item.append(element("span", "you", " (you)"));
      }
      return item;
    });
    ui.users.replaceChildren(...items);
    ui.userCount.textContent = String(names.length);
  }

  // -- events from the server ----------------------------------------------

  socket.on("connect", () => {
    needToken = false;
    showConnected();
    if (wantedName !== null && joinedBefore) {
      // The server sees a new connection: join again under the same name.
      socket.emit("adduser", wantedName);
    }
    updateForms();
  });

  socket.on("disconnect", (reason) => {
    me = null;
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
    const token = err && err.data && typeof err.data === "object" ? err.data.token : undefined;
    if (token === "missing" || token === "wrong") {
      needToken = true;
      setState("disconnected", token === "wrong" ? "wrong token" : "this chat needs a token");
      if (token === "wrong") showNotice("The server refused the token; check it and try again.");
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

  socket.on("users", (names) => {
    renderUsers(Array.isArray(names) ? names.map(String) : []);
  });

  socket.on("private", (data) => {
    if (data === null || typeof data !== "object") return;
    me = { id: String(data.id), name: String(data.name) };
    wantedName = me.name;
    joinedBefore = true;
    hideNotice();
    if (data.msg) addNote(String(data.msg));
    renderUsers(lastUsers); // mark "(you)" now that the name is known
    showConnected();
    updateForms();
    ui.messageInput.focus();
  });

  socket.on("message", addMessage);

  socket.on("error", (data) => {
    const event = data && typeof data === "object" ? data.event : undefined;
    const reason = data && typeof data === "object" ? data.reason : data;
    showNotice(
      event ? `The server refused "${event}": ${reason}` : `Server error: ${reason}`
    );
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
    const token = ui.token.value;
    if (!token) return;
    hideNotice();
    setState("connecting", "connecting…");
    socket.auth = { token }; // kept for every reconnection too
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
    socket.emit("adduser", name);
  });

  ui.messageForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = ui.messageInput.value;
    // Only when joined and connected: a buffered message would reach a
    // reconnected server before the adduser that must come first.
    if (!text.trim() || !joined() || !socket.connected) return;
    socket.emit("message", text);
    ui.messageInput.value = "";
  });

  setState("connecting", "connecting…");
  updateForms();
})();
