// The job log viewer (templates/build/log.html, loaded into a job's row): pages through a long
// log a window at a time with at most MAX_LINES lines in the page, follows the tail while the
// job runs (the log's live stream pushes the new lines, or says how far the log has grown),
// shows timestamps on demand, and brings the line the URL names (#<job id>-L<n>) into view.
(function () {
  "use strict";

  var MAX_LINES = 5000;
  // Logs followed by a stream of their own (the page has one too); the others are polled.
  var MAX_STREAMS = 2;
  var POLL_MS = 1000;
  // A stream the server ended is opened again after this long, from where the viewer then is.
  var RECONNECT_MS = 2000;
  var streams = 0;

  function list(viewer) {
    return viewer.querySelector(".log-windows");
  }

  function fetchWindow(viewer, query) {
    return fetch(viewer.dataset.logUrl + "?" + query, {
      credentials: "same-origin",
      headers: { "HX-Request": "true" },
    })
      .then(function (response) {
        if (!response.ok || response.redirected) {
          throw new Error("log window: " + response.status);
        }
        return response.text();
      })
      .then(windowOf);
  }

  function windowOf(html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    return template.content.querySelector(".log-window");
  }

  // Lines at the start of `later` that continue the section the page's windows up to
  // `earlier` end with go under it (a window whose lines all went under the section before it
  // is empty: the section is then an earlier window's).
  function joinSections(earlier, later) {
    var continued = later.firstElementChild;
    while (earlier && !earlier.lastElementChild) {
      earlier = earlier.previousElementSibling;
    }
    var section = earlier && earlier.lastElementChild;
    if (!continued || !continued.classList.contains("log-continued")) {
      return;
    }
    if (!section || section.tagName !== "DETAILS") {
      return;
    }
    var lines = section.querySelector(".log-lines");
    while (continued.firstElementChild) {
      continued.firstElementChild.dataset.joinedFrom = later.dataset.from;
      lines.appendChild(continued.firstElementChild);
    }
    continued.remove();
  }

  function joinedFrom(win, from) {
    return Array.prototype.slice.call(
      win.querySelectorAll('.log-line[data-joined-from="' + from + '"]')
    );
  }

  // A window leaving the page takes its lines with it, those it lent to windows before it
  // included, and gives back those it was lent (by any of the windows after it).
  function dropFirst(windows) {
    var gone = windows.firstElementChild;
    for (var next = gone.nextElementSibling; next; next = next.nextElementSibling) {
      var lent = joinedFrom(gone, next.dataset.from);
      if (lent.length) {
        var continued = document.createElement("div");
        continued.className = "log-lines log-continued";
        lent.forEach(function (line) {
          delete line.dataset.joinedFrom;
          continued.appendChild(line);
        });
        next.insertBefore(continued, next.firstChild);
      }
    }
    gone.remove();
  }

  function dropLast(windows) {
    var gone = windows.lastElementChild;
    joinedFrom(windows, gone.dataset.from).forEach(function (line) {
      line.remove();
    });
    gone.remove();
  }

  function lineCount(viewer) {
    return viewer.querySelectorAll(".log-line").length;
  }

  function update(viewer) {
    var windows = list(viewer);
    var first = windows.firstElementChild;
    var last = windows.lastElementChild;
    viewer.querySelector(".log-earlier").hidden = !first || first.dataset.from === "0";
    var later = viewer.querySelector(".log-later");
    later.hidden = !last || Number(last.dataset.to) >= Number(last.dataset.size);
    var done = last && last.hasAttribute("data-complete") && later.hidden;
    if (done && viewer.hasAttribute("data-following")) {
      stopFollowing(viewer);
    }
  }

  function append(viewer, win) {
    var windows = list(viewer);
    var last = windows.lastElementChild;
    if (last && win.dataset.from === win.dataset.to) {
      // Nothing new but how big the log is and whether it is complete.
      last.dataset.size = win.dataset.size;
      if (win.hasAttribute("data-complete")) {
        last.setAttribute("data-complete", "");
      }
      update(viewer);
      return;
    }
    if (last) {
      joinSections(last, win);
    }
    windows.appendChild(win);
    while (lineCount(viewer) > MAX_LINES && windows.children.length > 1) {
      dropFirst(windows);
    }
    update(viewer);
  }

  function prepend(viewer, win) {
    var windows = list(viewer);
    if (windows.firstElementChild) {
      joinSections(win, windows.firstElementChild);
    }
    windows.insertBefore(win, windows.firstElementChild);
    while (lineCount(viewer) > MAX_LINES && windows.children.length > 1) {
      dropLast(windows);
    }
    update(viewer);
  }

  function later(viewer) {
    var last = list(viewer).lastElementChild;
    if (viewer.busy || !last) {
      viewer.again = true;
      return;
    }
    viewer.busy = true;
    var query = "after=" + last.dataset.to + "&line=" + last.dataset.nextLine;
    fetchWindow(viewer, query)
      .then(function (win) {
        if (win) {
          append(viewer, win);
        }
      })
      .catch(function () {})
      .then(function () {
        viewer.busy = false;
        if (viewer.again) {
          viewer.again = false;
          if (viewer.hasAttribute("data-following")) {
            later(viewer);
            return;
          }
        }
        if (viewer.lost && viewer.source) {
          // The stream no longer pushed from where the viewer is: opened again from there.
          openStream(viewer);
        }
      });
  }

  function earlier(viewer) {
    var first = list(viewer).firstElementChild;
    if (viewer.busy || !first) {
      return;
    }
    viewer.busy = true;
    fetchWindow(viewer, "before=" + first.dataset.from + "&line=" + first.dataset.line)
      .then(function (win) {
        if (win) {
          prepend(viewer, win);
        }
      })
      .catch(function () {})
      .then(function () {
        viewer.busy = false;
      });
  }

  // Following: the live stream of the log, opened from where the viewer is (its last
  // window's end and next line), pushes the window after it each time the log grows: the
  // window route's answer, appended as a fetched one is. A window that does not start where
  // the viewer is (or a size without one) is fetched as it was before the push; so is the
  // tail once more when the job finishes, for a last line without its newline.
  function stopFollowing(viewer) {
    viewer.removeAttribute("data-following");
    if (viewer.source) {
      viewer.source.close();
      viewer.source = null;
      streams -= 1;
    }
    if (viewer.reconnect) {
      window.clearTimeout(viewer.reconnect);
      viewer.reconnect = null;
    }
    if (viewer.poller) {
      window.clearInterval(viewer.poller);
      viewer.poller = null;
    }
    var status = viewer.querySelector(".log-status");
    if (status) {
      status.textContent = "";
    }
  }

  function heard(viewer, data) {
    var last = list(viewer).lastElementChild;
    var atTail = viewer.querySelector(".log-later").hidden;
    if (data.event !== "log" || !atTail) {
      return;
    }
    if (data.html && last && !viewer.busy && String(data.from) === last.dataset.to) {
      var win = windowOf(data.html);
      if (win) {
        append(viewer, win);
        return;
      }
    }
    if (!last || data.size > Number(last.dataset.to)) {
      viewer.lost = true;
      later(viewer);
    }
  }

  // The stream (one per viewer, its count kept while it is opened again).
  function openStream(viewer) {
    if (viewer.source) {
      viewer.source.close();
    }
    viewer.lost = false;
    var last = list(viewer).lastElementChild;
    var url = viewer.dataset.liveUrl;
    if (last) {
      url += "&from=" + last.dataset.to + "&line=" + last.dataset.nextLine;
    }
    var source = new EventSource(url);
    viewer.source = source;
    window.kiteline.onJsonMessage(source, function (data) {
      heard(viewer, data);
    });
    source.onerror = function () {
      // Ended by the server (streams last minutes): reopened from where the viewer is now,
      // not from the URL it was opened with. A stream refused for good (signed out) stays shut.
      if (viewer.source !== source || source.readyState !== EventSource.CONNECTING) {
        return;
      }
      source.close();
      viewer.reconnect = window.setTimeout(function () {
        viewer.reconnect = null;
        if (viewer.source === source && viewer.hasAttribute("data-following")) {
          openStream(viewer);
        }
      }, RECONNECT_MS);
    };
  }

  function follow(viewer) {
    if (!window.EventSource || !viewer.dataset.liveUrl || streams >= MAX_STREAMS) {
      // A browser holds about six connections to a server: past a few streams, poll.
      viewer.poller = window.setInterval(function () {
        if (viewer.querySelector(".log-later").hidden) {
          later(viewer);
        }
      }, POLL_MS);
      return;
    }
    streams += 1;
    openStream(viewer);
  }

  document.addEventListener("kiteline:event", function (event) {
    var data = event.detail || {};
    if (!data.job_id || !/^job\.finished/.test(data.event || "")) {
      return;
    }
    document.querySelectorAll(".log-viewer[data-following]").forEach(function (viewer) {
      if (viewer.dataset.job === data.job_id && viewer.querySelector(".log-later").hidden) {
        later(viewer);
      }
    });
  });

  // The line the URL names: its section opened, scrolled to, highlighted.
  function showLine(viewer) {
    var id = decodeURIComponent(window.location.hash.slice(1));
    var line = id ? document.getElementById(id) : null;
    if (!line || !viewer.contains(line)) {
      return;
    }
    var section = line.closest("details");
    if (section) {
      section.open = true;
    }
    line.scrollIntoView({ block: "center" });
  }

  function start(viewer) {
    if (viewer.started) {
      return;
    }
    viewer.started = true;
    update(viewer);
    if (viewer.hasAttribute("data-following")) {
      follow(viewer);
    }
    showLine(viewer);
  }

  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target : null;
    var viewer = target ? target.closest(".log-viewer") : null;
    if (!viewer) {
      return;
    }
    if (target.closest(".log-timestamps")) {
      var shown = viewer.classList.toggle("show-times");
      target.closest(".log-timestamps").setAttribute("aria-pressed", shown ? "true" : "false");
    } else if (target.closest(".log-earlier")) {
      earlier(viewer);
    } else if (target.closest(".log-later")) {
      later(viewer);
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var swapped = event.detail && event.detail.target;
    if (swapped instanceof Element) {
      swapped.querySelectorAll(".log-viewer").forEach(start);
    }
  });

  window.addEventListener("hashchange", function () {
    document.querySelectorAll(".log-viewer").forEach(showLine);
  });
})();
