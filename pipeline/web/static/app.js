// The review app's only script: keyboard shortcuts and "select all". Loaded from /static under a
// Content-Security-Policy that allows no inline script; it never builds HTML from page text.
(function () {
  "use strict";
  function typing(el) {
    return el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable);
  }
  var rows = [];
  var current = -1;
  function mark(i) {
    if (!rows.length) return;
    if (current >= 0) rows[current].classList.remove("current");
    current = Math.max(0, Math.min(rows.length - 1, i));
    rows[current].classList.add("current");
    rows[current].scrollIntoView({ block: "nearest" });
  }
  function pickAction(name) {
    var page = document.body.dataset.page;
    if (page === "case") {
      var radio = document.getElementById("act-" + name);
      var reason = document.getElementById("reason");
      if (radio && reason) { radio.checked = true; reason.focus(); }
    } else if (page === "queue") {
      var sel = document.getElementById("bulk-action");
      var why = document.getElementById("bulk-reason");
      if (sel && why) { sel.value = name; why.focus(); }
    }
  }
  document.addEventListener("DOMContentLoaded", function () {
    rows = Array.prototype.slice.call(document.querySelectorAll("#queue-table tr.row"));
    var all = document.getElementById("select-all");
    if (all) {
      all.addEventListener("change", function () {
        document.querySelectorAll("#queue-table input.pick").forEach(function (box) { box.checked = all.checked; });
      });
    }
    var help = document.getElementById("show-keys");
    var dialog = document.getElementById("keys");
    if (help && dialog) help.addEventListener("click", function () { dialog.showModal(); });
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (typing(document.activeElement)) {
      if (ev.key === "Escape") document.activeElement.blur();
      return;
    }
    var dialog = document.getElementById("keys");
    switch (ev.key) {
      case "j": mark(current + 1); break;
      case "k": mark(current - 1); break;
      case "x":
        if (current >= 0) { var box = rows[current].querySelector("input.pick"); box.checked = !box.checked; }
        break;
      case "o": case "Enter":
        if (current >= 0) { window.location.href = rows[current].querySelector("a.open").href; } else return;
        break;
      case "c": pickAction("confirm"); break;
      case "d": pickAction("dismiss"); break;
      case "r": pickAction("resolve"); break;
      case "e": pickAction("reopen"); break;
      case "m": var claim = document.getElementById("claim"); if (claim) claim.click(); break;
      case "u": window.location.href = "/"; break;
      case "/": var f = document.getElementById("f-category"); if (f) f.focus(); break;
      case "?": if (dialog) dialog.showModal(); break;
      default: return;
    }
    ev.preventDefault();
  });
})();
