// Loads the chat page's scripts in order: the Socket.IO browser client, then
// chat.js.
//
// index.html asks chatlab's own server for the client first (the copy the
// set-up installs, so the page works without the internet). When that copy
// is missing, the server answers 404 and this file loads the same pinned
// client from the CDN in its data-cdn-src; the hash in data-cdn-integrity
// makes the browser refuse any other file. chat.js (data-chat) runs after
// either, and says so on the page when neither loaded.
//
// A file of its own, not a script in the page: the page's Content-Security-
// Policy allows no inline script.
"use strict";

(() => {
  const here = document.currentScript;

  function startChat() {
    const chat = document.createElement("script");
    chat.src = here.dataset.chat;
    document.head.append(chat);
  }

  if (typeof window.io === "function") {
    startChat();
    return;
  }
  const cdn = document.createElement("script");
  cdn.src = here.dataset.cdnSrc;
  cdn.integrity = here.dataset.cdnIntegrity;
  cdn.crossOrigin = "anonymous";
  cdn.addEventListener("load", startChat);
  cdn.addEventListener("error", startChat);
  document.head.append(cdn);
})();
