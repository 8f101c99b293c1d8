// Keyboard-first workspace: j/k/o in lists, r/n in conversations, g i for the inbox, ? for help.
(function () {
  "use strict";
  let selected = null;
  let pendingG = false;

  function rows() { return Array.from(document.querySelectorAll("tr[data-row]")); }

  function select(row) {
    rows().forEach((r) => r.classList.remove("selected"));
    if (!row) return;
    row.classList.add("selected");
    row.scrollIntoView({ block: "nearest" });
    selected = row.dataset.conversationId;
  }

  function move(step) {
    const all = rows();
    if (!all.length) return;
    const index = all.findIndex((r) => r.dataset.conversationId === selected);
    select(all[Math.max(0, Math.min(all.length - 1, index + step))] || all[0]);
  }

  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach((el) => {
      const at = new Date(el.getAttribute("datetime"));
      if (!isNaN(at)) el.textContent = at.toLocaleString(document.documentElement.lang, { dateStyle: "medium", timeStyle: "short" });
    });
  }

  document.addEventListener("keydown", (event) => {
    const target = event.target;
    const typing = target.matches("input, textarea, select, [contenteditable]");
    if (typing) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && target.form) {
        event.preventDefault();
        target.form.requestSubmit();
      } else if (event.key === "Escape") {
        target.blur();
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const composer = document.querySelector("[data-composer] textarea");
    if (pendingG) {
      pendingG = false;
      if (event.key === "i") { window.location.href = "/inbox"; }
      return;
    }
    switch (event.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "o": case "Enter": {
        const row = document.querySelector("tr[data-row].selected");
        if (row) window.location.href = row.dataset.href;
        break;
      }
      case "r": case "n":
        if (composer) {
          event.preventDefault();
          document.querySelector("[data-internal]").checked = event.key === "n";
          composer.focus();
        }
        break;
      case "g": pendingG = true; break;
      case "?": { const help = document.getElementById("shortcuts"); if (help) help.showModal(); break; }
      default: return;
    }
  });

  document.addEventListener("click", (event) => {
    if (event.target.closest("[data-help]")) { document.getElementById("shortcuts").showModal(); return; }
    const row = event.target.closest("tr[data-row]");
    if (row && !event.target.closest("a")) window.location.href = row.dataset.href;
  });

  document.addEventListener("htmx:afterSwap", (event) => {
    localTimes(event.target);
    if (selected) select(rows().find((r) => r.dataset.conversationId === selected));
  });
  document.addEventListener("DOMContentLoaded", () => localTimes(document));
})();
