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

  // Moments are written by the server in the page's language and the deployment's time zone;
  // here they are shown in the viewer's own time zone, in the same language and style.
  const STYLES = { date: { dateStyle: "medium" }, time: { timeStyle: "short" }, datetime: { dateStyle: "medium", timeStyle: "short" } };
  const UNITS = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];

  function relative(at, lang) {
    const seconds = (at.getTime() - Date.now()) / 1000;
    const [unit, size] = UNITS.find(([, s]) => Math.abs(seconds) >= s) || UNITS[UNITS.length - 1];
    return new Intl.RelativeTimeFormat(lang, { numeric: "auto" }).format(Math.round(seconds / size), unit);
  }

  function localTimes(root) {
    const lang = document.documentElement.lang || undefined;
    root.querySelectorAll("time[datetime][data-format]").forEach((el) => {
      const at = new Date(el.getAttribute("datetime"));
      if (isNaN(at)) return;
      const style = el.dataset.format;
      try {
        el.textContent = style === "relative" ? relative(at, lang) : at.toLocaleString(lang, STYLES[style] || STYLES.datetime);
        el.title = at.toLocaleString(lang, STYLES.datetime);
      } catch (_) { /* an old browser keeps the server's text */ }
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

  // HTMX does not swap error responses; say what went wrong instead of doing nothing.
  function notify(text) {
    let box = document.getElementById("notice");
    if (!box) {
      box = document.createElement("div");
      box.id = "notice";
      box.setAttribute("role", "alert");
      document.body.appendChild(box);
    }
    box.textContent = text;
    box.hidden = false;
    clearTimeout(box._timer);
    box._timer = setTimeout(() => { box.hidden = true; }, 8000);
  }

  document.addEventListener("htmx:responseError", (event) => {
    const xhr = event.detail.xhr;
    if (xhr.status === 401) { window.location.href = "/login?next=" + encodeURIComponent(location.pathname); return; }
    let message = xhr.statusText || "Request failed";
    try { message = JSON.parse(xhr.responseText).error.message || message; } catch (_) { /* not JSON */ }
    notify(message);
  });
  document.addEventListener("htmx:sendError", () => notify("The server could not be reached. Try again."));

  document.addEventListener("htmx:afterSwap", (event) => {
    localTimes(event.target);
    if (selected) select(rows().find((r) => r.dataset.conversationId === selected));
  });
  document.addEventListener("DOMContentLoaded", () => localTimes(document));
})();
