// Kiteline's own JavaScript, loaded by every page (the Content-Security-Policy allows no inline
// script): the CSRF header on htmx requests, and live updates over Server-Sent Events.
(function () {
  "use strict";

  // htmx requests that change state carry the session's CSRF token, as forms do in a field.
  document.addEventListener("htmx:configRequest", function (event) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) {
      event.detail.headers["X-CSRF-Token"] = meta.content;
    }
  });

  // Each message of an event stream parsed as JSON and handed to `handle` (one that does not
  // parse is skipped); log.js's own streams use it too (`window.kiteline.onJsonMessage`).
  function onJsonMessage(source, handle) {
    source.onmessage = function (message) {
      var data;
      try {
        data = JSON.parse(message.data);
      } catch (error) {
        return;
      }
      handle(data);
    };
  }
  window.kiteline = window.kiteline || {};
  window.kiteline.onJsonMessage = onJsonMessage;

  // A page with <body data-live-url="…"> listens to that event stream. Each message (an
  // outbox event, or "resync") fires a `live` event on <body>, at most one per
  // REFRESH_DELAY_MS with the latest coming last: live regions declare
  // hx-get="<this page>" hx-trigger="live from:body" and are re-rendered by the server.
  // Pages that need the event itself listen to `kiteline:event` on document.
  var REFRESH_DELAY_MS = 250;
  var LIVE_REGION = '[hx-trigger="live from:body"]';

  function startLive() {
    var url = document.body.dataset.liveUrl;
    if (!url || !window.EventSource) {
      return;
    }
    var pending = null;
    var dropped = false;
    var missed = false;
    var source = new EventSource(url);

    function regionFetching() {
      return document.querySelector(LIVE_REGION + ".htmx-request") !== null;
    }

    function refresh() {
      if (pending !== null) {
        return;
      }
      pending = window.setTimeout(function () {
        pending = null;
        if (regionFetching()) {
          // A live region is still fetching: htmx would queue this refresh on it, and its
          // outerHTML swap then drops the queue with the old element (the page would keep
          // what the earlier request read). Refresh again once no region is fetching.
          missed = true;
          return;
        }
        document.body.dispatchEvent(new CustomEvent("live"));
      }, REFRESH_DELAY_MS);
    }

    function refreshIfMissed() {
      if (missed && !regionFetching()) {
        missed = false;
        refresh();
      }
    }
    // `htmx:load` comes from the swapped-in region (the old one, detached, bubbles nowhere);
    // `htmx:afterRequest` from a region whose request swapped nothing (an error, a 204).
    document.addEventListener("htmx:load", refreshIfMissed);
    document.addEventListener("htmx:afterRequest", refreshIfMissed);

    source.onopen = function () {
      document.body.dataset.liveConnected = "true";
      if (dropped) {
        // Reconnected: anything missed meanwhile is replayed from Last-Event-ID, but a
        // refresh costs little and also covers a server that restarted.
        dropped = false;
        refresh();
      }
    };
    source.onerror = function () {
      delete document.body.dataset.liveConnected;
      dropped = true;
    };
    onJsonMessage(source, function (data) {
      document.dispatchEvent(new CustomEvent("kiteline:event", { detail: data }));
      refresh();
    });
  }

  // A click outside an open menu (<details class="menu">) closes it.
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) {
        menu.removeAttribute("open");
      }
    });
  });

  // <time data-ago datetime="…"> says how long ago, as the server wrote it ("3 minutes ago");
  // kept true every 30 s while the page stays open between live refreshes.
  function ago(moment) {
    var seconds = Math.max(0, Math.floor((Date.now() - moment) / 1000));
    var units = [["day", 86400], ["hour", 3600], ["minute", 60]];
    for (var i = 0; i < units.length; i++) {
      if (seconds >= units[i][1]) {
        var count = Math.floor(seconds / units[i][1]);
        return count + " " + units[i][0] + (count === 1 ? "" : "s") + " ago";
      }
    }
    return "just now";
  }

  window.setInterval(function () {
    document.querySelectorAll("time[data-ago]").forEach(function (element) {
      var moment = Date.parse(element.getAttribute("datetime"));
      if (!isNaN(moment)) {
        element.textContent = ago(moment);
      }
    });
  }, 30000);

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", startLive);
  } else {
    startLive();
  }
})();
