// The build page: tabs, job rows that open (and load their log), the row named by the URL's
// #<job id>, durations that count while running, the waterfall's axis following the clock,
// and live updates that replace only the parts whose digest changed (dialogs.js opens the
// unblock dialogs).
(function () {
  "use strict";

  // Tabs -------------------------------------------------------------------------------------

  function selectTab(tab) {
    var tabs = document.querySelectorAll('.tabs [role="tab"]');
    tabs.forEach(function (other) {
      var selected = other === tab;
      other.setAttribute("aria-selected", selected ? "true" : "false");
      other.tabIndex = selected ? 0 : -1;
      var panel = document.getElementById(other.getAttribute("aria-controls"));
      if (panel) {
        panel.hidden = !selected;
      }
    });
  }

  function startTabs() {
    var first = document.querySelector('.tabs [role="tab"]');
    if (first) {
      selectTab(first);
    }
  }

  // Job rows ---------------------------------------------------------------------------------

  function setOpen(row, open) {
    var toggle = row.querySelector(".job-toggle");
    var body = row.querySelector(".job-body");
    if (!toggle || !body) {
      return;
    }
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    body.hidden = !open;
    row.classList.toggle("open", open);
    var log = body.querySelector(".job-log");
    if (open && log && window.htmx) {
      // hx-trigger="job-open once": the log is fetched the first time the row opens.
      window.htmx.trigger(log, "job-open");
    }
  }

  // The row whose id the URL's hash names (a job's web_url): shown, opened, scrolled to.
  function openFromHash() {
    var id = decodeURIComponent(window.location.hash.slice(1));
    if (!id) {
      return;
    }
    var named = document.getElementById("tab-" + id);
    if (named && named.getAttribute("role") === "tab") {
      selectTab(named); // #waterfall, #artifacts, #environment: that tab
      return;
    }
    var row = document.getElementById(id);
    var line = /^(.+)-L\d+$/.exec(id); // a log line, #<job id>-L<n>: its job's row opens
    if (line && (!row || !row.classList.contains("job-row"))) {
      if (row) {
        return; // already shown: log.js opens its section and scrolls to it
      }
      row = document.getElementById(line[1]);
    }
    if (!row || !row.classList.contains("job-row")) {
      return;
    }
    var tab = document.getElementById("tab-jobs");
    if (tab) {
      selectTab(tab);
    }
    document.querySelectorAll(".job-row.targeted").forEach(function (other) {
      other.classList.remove("targeted");
    });
    row.classList.add("targeted");
    setOpen(row, true);
    row.scrollIntoView({ block: "start" });
  }

  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target : null;
    if (!target) {
      return;
    }
    var toggle = target.closest(".job-toggle");
    if (toggle) {
      var row = toggle.closest(".job-row");
      setOpen(row, toggle.getAttribute("aria-expanded") !== "true");
      return;
    }
    var tab = target.closest('.tabs [role="tab"]');
    if (tab) {
      selectTab(tab);
    }
  });

  // Arrow keys move between tabs, as a tab list should.
  document.addEventListener("keydown", function (event) {
    var tab = event.target instanceof Element ? event.target.closest('.tabs [role="tab"]') : null;
    if (!tab || (event.key !== "ArrowRight" && event.key !== "ArrowLeft")) {
      return;
    }
    var tabs = Array.prototype.slice.call(document.querySelectorAll('.tabs [role="tab"]'));
    var step = event.key === "ArrowRight" ? 1 : tabs.length - 1;
    var next = tabs[(tabs.indexOf(tab) + step) % tabs.length];
    selectTab(next);
    next.focus();
  });

  // Clocks: durations without an end, and the waterfall while the build runs ---------------

  function formatDuration(seconds) {
    var whole = Math.max(Math.floor(seconds), 0);
    var hours = Math.floor(whole / 3600);
    var minutes = Math.floor((whole % 3600) / 60);
    var secs = whole % 60;
    if (hours) {
      return hours + "h " + minutes + "m";
    }
    if (minutes) {
      return minutes + "m " + secs + "s";
    }
    return secs + "s";
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-elapsed-from]:not([data-elapsed-to])").forEach(function (el) {
      el.textContent = formatDuration((now - Date.parse(el.dataset.elapsedFrom)) / 1000);
    });
    document.querySelectorAll(".waterfall[data-running]").forEach(function (chart) {
      var span = Math.max(parseFloat(chart.dataset.span), (now - Date.parse(chart.dataset.start)) / 1000);
      if (!(span > 0)) {
        return;
      }
      function position(value) {
        var seconds = value === "" ? span : parseFloat(value);
        return Math.min(Math.max(seconds / span, 0), 1) * 1000;
      }
      chart.querySelectorAll("rect[data-from]").forEach(function (bar) {
        var from = position(bar.dataset.from);
        bar.setAttribute("x", from.toFixed(2));
        bar.setAttribute("width", Math.max(position(bar.dataset.to) - from, 0).toFixed(2));
      });
      chart.querySelectorAll(".ticks span").forEach(function (label, index, all) {
        label.textContent = formatDuration((span * index) / (all.length - 1));
      });
    });
  }

  // Live updates -----------------------------------------------------------------------------

  // A row replaced by its newer rendering keeps what the reader did with it: open or not, its
  // log (already loaded, maybe following the tail), its environment, its highlight.
  function carryOver(old, fresh) {
    // The log and the environment (opened or not, loaded or loading) stay as they were.
    [".job-log", ".job-env"].forEach(function (selector) {
      var kept = old.querySelector(selector);
      var replaced = fresh.querySelector(selector);
      if (kept && replaced) {
        replaced.replaceWith(kept);
      }
    });
    var wasOpen = old.classList.contains("open");
    var toggle = fresh.querySelector(".job-toggle");
    var body = fresh.querySelector(".job-body");
    if (toggle && body) {
      toggle.setAttribute("aria-expanded", wasOpen ? "true" : "false");
      body.hidden = !wasOpen;
      fresh.classList.toggle("open", wasOpen);
    }
    fresh.classList.toggle("targeted", old.classList.contains("targeted"));
  }

  function morphRows(list, freshList) {
    var current = {};
    Array.prototype.forEach.call(list.children, function (row) {
      if (row.id) {
        current[row.id] = row;
      }
    });
    var wanted = [];
    var added = [];
    var finished = [];
    Array.prototype.forEach.call(freshList.children, function (fresh) {
      var old = fresh.id ? current[fresh.id] : null;
      if (old && old.dataset.digest === fresh.dataset.digest) {
        wanted.push(old);
        return;
      }
      if (old) {
        carryOver(old, fresh);
        if (fresh.hasAttribute("data-finished") && !old.hasAttribute("data-finished")) {
          finished.push(fresh.id);
        }
      }
      wanted.push(fresh);
      added.push(fresh);
    });
    wanted.forEach(function (row, index) {
      if (list.children[index] !== row) {
        list.insertBefore(row, list.children[index] || null);
      }
    });
    while (list.children.length > wanted.length) {
      list.removeChild(list.lastElementChild);
    }
    list.dataset.digest = freshList.dataset.digest;
    added.forEach(function (row) {
      if (window.htmx) {
        window.htmx.process(row);
      }
    });
    // A log following its job's tail asks once more when the job finishes (log.js).
    finished.forEach(function (id) {
      document.dispatchEvent(
        new CustomEvent("kiteline:event", { detail: { event: "job.finished", job_id: id } })
      );
    });
  }

  function applyHeader(header) {
    var summary = header.querySelector("[data-title]");
    if (!summary) {
      return;
    }
    document.title = summary.dataset.title;
    var icon = document.getElementById("favicon");
    if (icon && icon.getAttribute("href") !== summary.dataset.favicon) {
      icon.setAttribute("href", summary.dataset.favicon);
    }
  }

  function applyLive(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    document.querySelectorAll("[data-live-block]").forEach(function (region) {
      var replacement = fresh.getElementById(region.id);
      if (!replacement || replacement.dataset.digest === region.dataset.digest) {
        return;
      }
      if (region.querySelector("dialog[open]")) {
        return; // someone is filling in a dialog: it changes after they are done
      }
      if (region.tagName === "OL") {
        morphRows(region, replacement);
        return;
      }
      var adopted = document.importNode(replacement, true);
      region.replaceWith(adopted);
      if (window.htmx) {
        window.htmx.process(adopted);
      }
      if (adopted.id === "build-header") {
        applyHeader(adopted);
      }
    });
    tick();
  }

  // The block's stream (pages/build_feed.py): the server renders the block once per change of
  // the build for all its viewers and pushes it (`event: block`); it sends nothing the page
  // already shows. A block arriving while someone fills in a dialog waits until it closes.
  var waiting = null;

  function receive(html) {
    if (document.querySelector("#build_live dialog[open]")) {
      waiting = html;
      return;
    }
    waiting = null;
    applyLive(html);
  }

  function follow() {
    var url = document.body.dataset.blockUrl;
    if (!url || !window.EventSource) {
      return;
    }
    var source = new EventSource(url);
    source.onopen = function () {
      document.body.dataset.liveConnected = "true";
    };
    source.onerror = function () {
      delete document.body.dataset.liveConnected;
    };
    source.addEventListener("block", function (message) {
      receive(message.data);
    });
    document.addEventListener(
      "close",
      function (event) {
        if (waiting !== null && event.target instanceof HTMLDialogElement) {
          receive(waiting);
        }
      },
      true
    );
  }

  function start() {
    if (!document.getElementById("build_live")) {
      return;
    }
    startTabs();
    openFromHash();
    tick();
    window.setInterval(tick, 1000);
    follow();
    window.addEventListener("hashchange", openFromHash);
  }

  // After htmx has processed the page (its DOMContentLoaded listener was added first), so that
  // a row opened from the hash can load its log.
  if (document.readyState === "complete") {
    start();
  } else {
    document.addEventListener("DOMContentLoaded", start);
  }
})();
