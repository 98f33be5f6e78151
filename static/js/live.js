// Live results over the htmx ws extension: reconnects on every close, keeps the socket alive
// behind proxies, never shows older counts than it has, animates the bars and counts down.
// The server sends a full snapshot on every connect, so a reconnect is also a resync.
//
// Two things here look like repeats of the extension or the server, and are not:
// - Reconnecting: the extension retries only after 1006, 1011, 1012 and 1013. A proxy that reloads
//   says 1001 (going away), and a server may say 1000; after those the page would stay dead.
// - The version check: the broadcaster holds back a tally that went backwards (Redis lost increments),
//   and each socket drops a push older than its snapshot. Only this page sees its other source of
//   results: the fragment HTMX swaps in after a vote, which may be newer than a push still on its way.
(function () {
  "use strict";

  // The extension reconnects by itself after these; every other close is handled here.
  var EXTENSION_RECONNECTS = [1006, 1011, 1012, 1013];
  // The poll is gone or the owner link is wrong (realtime.consumers): retrying cannot help.
  var GIVE_UP = [4404];
  // nginx closes a WebSocket idle for 60 s; a ping every 25 s keeps it (and tells a dead socket).
  var KEEPALIVE_MS = 25000;
  // After the countdown ends, ask for a fresh snapshot if no "closed" push came by then.
  var DEADLINE_RESYNC_MS = 4000;

  var STATES = {
    connecting: "Connecting…",
    live: "Live",
    reconnecting: "Reconnecting…",
    gone: "This poll no longer exists",
  };

  var retries = 0;
  var everOpen = false;
  var keepalive = null;
  var wrapper = null;
  // The socket that last opened; a close of any other one (replaced by a resync) is not ours to handle.
  var currentSocket = null;

  // Exponential backoff with jitter, 0.5 s up to 30 s, for the extension's retries and ours.
  function reconnectDelay(retry) {
    var cap = Math.min(30000, 500 * Math.pow(2, retry));
    return cap / 2 + Math.random() * cap / 2;
  }

  function showState(state) {
    document.querySelectorAll("[data-live-indicator]").forEach(function (indicator) {
      indicator.hidden = false;
      if (indicator.dataset.state === state) { return; }
      indicator.dataset.state = state;
      indicator.textContent = STATES[state];
    });
  }

  function versionOf(html) {
    var match = /data-version="(\d+)"/.exec(html);
    return match ? parseInt(match[1], 10) : null;
  }

  // The first version in the live region, as in a push: the results' on a poll's pages, the whole
  // region's on an event's (its state and, when shown, its results).
  function shownVersion() {
    var shown = document.querySelector("#live-region [data-version]");
    return shown ? parseInt(shown.dataset.version, 10) : null;
  }

  document.addEventListener("htmx:wsConnecting", function () {
    showState(everOpen ? "reconnecting" : "connecting");
  });

  document.addEventListener("htmx:wsOpen", function (event) {
    everOpen = true;
    retries = 0;
    wrapper = event.detail.socketWrapper;
    currentSocket = event.detail.event.target;
    showState("live");
    clearInterval(keepalive);
    keepalive = setInterval(function () {
      if (currentSocket && currentSocket.readyState === WebSocket.OPEN) { currentSocket.send("ping"); }
    }, KEEPALIVE_MS);
  });

  // A fresh snapshot on demand: replace the open socket (the server sends a snapshot on connect).
  function resync() {
    if (!wrapper || !currentSocket || currentSocket.readyState !== WebSocket.OPEN) { return; }
    currentSocket = null;
    wrapper.reconnect();
  }

  // An event's phone voted over HTTP (a form with data-tell-socket): its socket, still open, is told, so
  // it sends this phone the "answer is in" fragment from then on (realtime.consumers.EventConsumer).
  // Before the swap: the answer replaces the form, and an event on a removed element reaches no listener.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var form = event.detail.requestConfig && event.detail.requestConfig.elt;  // the element that sent it
    if (event.detail.xhr.status !== 200 || !form || !form.hasAttribute || !form.hasAttribute("data-tell-socket")) { return; }
    if (currentSocket && currentSocket.readyState === WebSocket.OPEN) { currentSocket.send("voted"); }
  });

  document.addEventListener("htmx:wsClose", function (event) {
    var code = event.detail.event.code;
    var socketElt = event.target;
    if (currentSocket && event.detail.event.target !== currentSocket) { return; }
    if (!currentSocket && everOpen && EXTENSION_RECONNECTS.indexOf(code) < 0) { return; }  // replaced by resync()
    currentSocket = null;
    clearInterval(keepalive);
    if (GIVE_UP.indexOf(code) >= 0) {
      showState("gone");
      return;
    }
    showState("reconnecting");
    if (EXTENSION_RECONNECTS.indexOf(code) >= 0 || !document.body.contains(socketElt)) { return; }
    // 1000 (normal), 1001 (going away: a server restart or proxy reload) and the rest.
    var socketWrapper = event.detail.socketWrapper;
    setTimeout(function () {
      if (document.body.contains(socketElt)) { socketWrapper.reconnect(); }
    }, reconnectDelay(retries++));
  });

  // Widths of the bars before a push, so the new ones can grow from there (see afterMessage).
  var widthsBefore = {};

  document.addEventListener("htmx:wsBeforeMessage", function (event) {
    var incoming = versionOf(event.detail.message);
    var shown = shownVersion();
    if (incoming !== null && shown !== null && incoming < shown) {
      event.preventDefault();  // older than what is on screen: a newer push is already shown
      return;
    }
    widthsBefore = {};
    document.querySelectorAll(".bar-fill[id]").forEach(function (bar) { widthsBefore[bar.id] = bar.getAttribute("width"); });
  });

  document.addEventListener("htmx:wsAfterMessage", function () {
    // The extension settles swaps at once, so a new bar never renders its old width and CSS
    // has nothing to transition from. Render the old width once, then let it move.
    document.querySelectorAll(".bar-fill[id]").forEach(function (bar) {
      var before = widthsBefore[bar.id];
      var after = bar.getAttribute("width");
      if (!before || before === after) { return; }
      bar.setAttribute("width", before);
      void bar.getBoundingClientRect();
      bar.setAttribute("width", after);
    });
    widthsBefore = {};
    updateCountdown();
  });

  function formatRemaining(ms) {
    var seconds = Math.max(0, Math.ceil(ms / 1000));
    var h = Math.floor(seconds / 3600);
    var m = Math.floor((seconds % 3600) / 60);
    var s = seconds % 60;
    var mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? h + ":" : "") + mm + ":" + String(s).padStart(2, "0");
  }

  var resyncRequestedFor = null;

  function updateCountdown() {
    var countdown = document.querySelector("[data-countdown]");
    var state = document.querySelector("#live-region .live-state");
    if (!countdown || !state) { return; }
    var closesAt = state.dataset.closesAt ? Date.parse(state.dataset.closesAt) : NaN;
    if (state.dataset.pollOpen !== "1" || isNaN(closesAt)) {
      countdown.hidden = true;
      return;
    }
    var remaining = closesAt - Date.now();
    countdown.hidden = false;
    countdown.textContent = remaining > 0 ? "Closes in " + formatRemaining(remaining) : "Closing…";
    // The broadcaster pushes the closed state when the deadline passes; if that push was lost,
    // a reconnect brings a fresh snapshot.
    if (remaining < -DEADLINE_RESYNC_MS && resyncRequestedFor !== state.dataset.closesAt) {
      resyncRequestedFor = state.dataset.closesAt;
      resync();
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    updateCountdown();
    setInterval(updateCountdown, 1000);
  });

  if (window.htmx) { htmx.config.wsReconnectDelay = reconnectDelay; }
})();
