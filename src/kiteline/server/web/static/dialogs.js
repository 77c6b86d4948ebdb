// Dialogs of the pages that load this file (no inline script: the Content-Security-Policy
// allows none): a button with data-open-dialog="<id>" opens that <dialog> as a modal, one with
// data-close-dialog closes its own, and a dialog the server answered with errors (422, marked
// data-reopen) opens again on load with its first invalid field focused.
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target : null;
    if (!target) {
      return;
    }
    var opener = target.closest("[data-open-dialog]");
    if (opener) {
      var dialog = document.getElementById(opener.dataset.openDialog);
      if (dialog && !dialog.open) {
        dialog.showModal();
        var first = dialog.querySelector("input, textarea, select");
        if (first) {
          first.focus();
        }
      }
      return;
    }
    var closer = target.closest("[data-close-dialog]");
    if (closer) {
      closer.closest("dialog").close();
    }
  });

  function reopen() {
    document.querySelectorAll("dialog[data-reopen]").forEach(function (dialog) {
      if (!dialog.open) {
        dialog.showModal();
      }
      var invalid = dialog.querySelector('[aria-invalid="true"], fieldset[aria-describedby]');
      if (invalid) {
        invalid.focus();
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", reopen);
  } else {
    reopen();
  }
})();
