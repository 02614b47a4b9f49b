// Socket.IO sits beside this page's folder: /mine/ -> /socket.io/, and
// under a proxy's prefix (on Binder) <prefix>/mine/ -> <prefix>/socket.io/.
const path = new URL("../socket.io/", window.location.href).pathname;
const socket = io(window.location.origin, { path, auth: {} });
const $ = (id) => document.getElementById(id);
let myName = null; // set once the server has accepted our name

function status(text) {
  $("status").textContent = text; // text, never markup
}

function join(name) {
  // An acknowledgement, or an error if none comes within 5 seconds.
  socket.timeout(5000).emit("adduser", name, (err, answer) => {
    if (err) return status("no answer from the server: " + err.message);
    if (!answer.ok) return status("refused: " + answer.reason);
    myName = answer.name;
    status("joined as " + myName);
  });
}

socket.on("connect", () => {
  status("connected as " + socket.id);
  if (myName) join(myName); // a new connection after a drop: join again
});
socket.on("disconnect", (reason) => {
  // The client reconnects by itself unless the server sent it away.
  status("disconnected (" + reason + ")" + (socket.active ? ", reconnecting…" : ""));
});
socket.on("connect_error", (err) => {
  status("cannot connect: " + err.message + (socket.active ? ", retrying…" : ""));
});

socket.on("message", (data) => showMessage(data));
socket.on("users", (names) => showUsers(names));

$("join").addEventListener("submit", (event) => {
  event.preventDefault();
  join($("name").value);
});
$("send").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("text").value;
  if (!text) return;
  socket.timeout(5000).emit("message", text, (err, answer) => {
    if (err) return status("not sent (no answer): " + err.message);
    if (!answer.ok) return status("refused: " + answer.reason);
    $("text").value = "";
  });
});
