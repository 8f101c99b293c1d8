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

  // The top bar's menu: always open on a wide screen; on a phone, closed until its summary is
  // pressed (the page is served with it open, so it works without this script too).
  const menu = document.querySelector("details[data-menu]");
  const wide = window.matchMedia("(min-width: 761px)");
  function fitMenu() { if (menu) menu.open = wide.matches; }
  fitMenu();
  wide.addEventListener("change", fitMenu);

  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (event.key === "Escape" && menu && menu.open && !wide.matches && menu.contains(target)) {
      menu.open = false;
      menu.querySelector("summary").focus();
      return;
    }
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
        if (event.key === "Enter" && target.closest("a, button, summary")) return;  // it does its own thing
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

  // The sentence is in the viewer's language (the page gives them); the server's detail, for API
  // callers, follows it in brackets, as the error page shows it.
  function errorText(key) {
    let texts = {};
    try { texts = JSON.parse(document.body.dataset.errorTexts || "{}"); } catch (_) { /* none given */ }
    return texts[key] || texts.other || "";
  }

  document.addEventListener("htmx:responseError", (event) => {
    const xhr = event.detail.xhr;
    if (xhr.status === 401) { window.location.href = "/login?next=" + encodeURIComponent(location.pathname); return; }
    let error = {};
    try { error = JSON.parse(xhr.responseText).error || {}; } catch (_) { /* not JSON */ }
    if (error.code === "csrf_failed") { notify(errorText("csrf_failed")); return; }
    const text = errorText(String(xhr.status));
    notify(error.message ? `${text} (${error.message})` : text);
  });
  document.addEventListener("htmx:sendError", () => notify(errorText("offline")));

  // The Actions card: choosing an order chooses its currency, and as the agent types, a warning
  // says when the action would go beyond their authority (the page gives the limits and the
  // translated texts). It only informs: the server decides, and sends such a request for approval.
  function minorUnits(text, currency) {
    let digits = 2;
    try { digits = new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits; } catch (_) { /* unknown code */ }
    let cleaned = text.replace(/[\s\u00a0]/g, "");
    if (cleaned.includes(",") && !cleaned.includes(".")) cleaned = cleaned.replace(",", ".");
    if (!/^(\d+\.?\d*|\.\d+)$/.test(cleaned)) return null;
    return Math.round(parseFloat(cleaned) * 10 ** digits);
  }

  function actionCard(form, changed) {
    const type = form.querySelector("[data-action-type]");
    const order = form.querySelector("[data-action-order]");
    const amount = form.querySelector("[data-action-amount]");
    const currency = form.querySelector("[data-action-currency]");
    const warning = form.querySelector("[data-authority-warning]");
    if (!type || !amount || !currency || !warning) return;
    const kind = type.selectedOptions[0];
    const chosenOrder = order && order.value ? order.selectedOptions[0] : null;
    if (changed === order && chosenOrder && chosenOrder.dataset.currency) currency.value = chosenOrder.dataset.currency;
    const perAction = form.closest(".actions-card").querySelector("[data-per-action]");
    if (perAction && kind) perAction.textContent = kind.dataset.limitText;
    const wholeOrder = type.value === "refund" && chosenOrder;
    amount.placeholder = wholeOrder ? chosenOrder.dataset.refundHint : "";
    const value = amount.value.trim() === "" && wholeOrder ? Number(chosenOrder.dataset.refundable) : minorUnits(amount.value, currency.value);
    const over = (limit) => limit !== undefined && value !== null && value > Number(limit);
    let text = "";
    if (currency.value !== form.dataset.authorityCurrency) text = form.dataset.overCurrency;
    else if (kind && over(kind.dataset.limit)) text = kind.dataset.over;
    else if (over(form.dataset.customerLeft)) text = form.dataset.overCustomer;
    else if (over(form.dataset.todayLeft)) text = form.dataset.overToday;
    warning.textContent = text;
    warning.hidden = !text;
  }

  function actionCards(root) { root.querySelectorAll("[data-action-form]").forEach((form) => actionCard(form, null)); }
  ["input", "change"].forEach((name) => document.addEventListener(name, (event) => {
    const form = event.target.closest && event.target.closest("[data-action-form]");
    if (form) actionCard(form, event.target);
  }));

  document.addEventListener("htmx:afterSwap", (event) => {
    localTimes(event.target);
    actionCards(event.target);
    if (selected) select(rows().find((r) => r.dataset.conversationId === selected));
  });
  document.addEventListener("DOMContentLoaded", () => { localTimes(document); actionCards(document); });
})();
