/* Cape chat widget: one script tag on any website.

   <script src="https://cape.example/widget.js" data-channel="chat:demo" async></script>

   Plain JavaScript, no dependencies, no build step (docs/widget.md). A guest on someone else's page:
   everything it draws lives in a shadow root under one fixed, zero-size host that lets clicks
   through; nothing is drawn until Cape has answered; the browser functions it needs are taken when
   it loads, so a page that replaces them later does not break it. */
(function () {
  "use strict";
  var W = window;
  var D = document;
  if (W.__capeChat) return; // the tag twice on one page: one widget
  W.__capeChat = true;

  // -- the host page's globals, taken now (a page may replace them later) -------------------------
  var nativeFetch = W.fetch && W.fetch.bind(W);
  var NativeSocket = W.WebSocket;
  var NativeJSON = W.JSON && typeof W.JSON.parse === "function" ? W.JSON : null;
  var NativeResponse = W.Response;
  var nativeSetTimeout = W.setTimeout.bind(W);
  var nativeClearTimeout = W.clearTimeout.bind(W);
  var nativeSetInterval = W.setInterval.bind(W);
  var nativeClearInterval = W.clearInterval.bind(W);
  var store = (function () {
    try {
      var s = W.localStorage;
      s.getItem("cape.chat");
      return s;
    } catch (e) {
      return null; // storage disabled (private mode, sandboxed frame): the chat lasts one page
    }
  })();

  // JSON without the page's JSON: our messages are plain objects of strings, numbers and booleans.
  function encode(v) {
    if (v === null || v === undefined) return "null";
    var t = typeof v;
    if (t === "number") return isFinite(v) ? String(v) : "null";
    if (t === "boolean") return v ? "true" : "false";
    if (t === "string") {
      return '"' + v.replace(/[\\"\u0000-\u001f\u2028\u2029]/g, function (c) {
        return "\\u" + ("000" + c.charCodeAt(0).toString(16)).slice(-4);
      }) + '"';
    }
    var parts = [];
    if (Object.prototype.toString.call(v) === "[object Array]") {
      for (var i = 0; i < v.length; i++) parts.push(encode(v[i]));
      return "[" + parts.join(",") + "]";
    }
    for (var k in v) {
      if (Object.prototype.hasOwnProperty.call(v, k) && v[k] !== undefined) parts.push(encode(k) + ":" + encode(v[k]));
    }
    return "{" + parts.join(",") + "}";
  }

  function decode(text) {
    if (NativeJSON) {
      try {
        return Promise.resolve(NativeJSON.parse(text));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return new NativeResponse(text).json(); // the browser's own parser, out of the page's reach
  }

  // -- where Cape is, which channel, which language ------------------------------------------------
  var script = D.currentScript;
  if (!script || !/\/widget\.js(\?|#|$)/.test(script.src || "")) {
    var scripts = D.getElementsByTagName("script");
    for (var i = scripts.length - 1; i >= 0; i--) {
      if (/\/widget\.js(\?|#|$)/.test(scripts[i].src || "")) {
        script = scripts[i];
        break;
      }
    }
  }
  if (!script) return;
  var BASE = script.src.replace(/\/widget\.js([?#].*)?$/, "");
  var WS_BASE = BASE.replace(/^http/, "ws");
  var CHANNEL = script.getAttribute("data-channel") || "";
  if (!CHANNEL) {
    if (W.console) W.console.warn("Cape chat: the script tag needs data-channel");
    return;
  }
  var KEY = "cape.chat." + CHANNEL;

  /* The strings a visitor sees. The launcher's name always contains "Chat" and the message box's
     "Message", in every language, so that people and tests find them by the same words. */
  var STRINGS = {
    "en": {
      "launcher": "Chat with us",
      "close": "Close chat",
      "message": "Message",
      "placeholder": "Write a message…",
      "send": "Send",
      "attach": "Attach a file",
      "messages": "Messages",
      "sending": "Sending…",
      "sent": "Sent",
      "seen": "Seen",
      "failed": "Not sent",
      "retry": "Try again",
      "typing": "{name} is typing…",
      "typing_anonymous": "Typing…",
      "online": "We're online",
      "offline": "We're away right now",
      "offline_notice": "No one is available at the moment. Leave a message here, or continue by email and we'll reply there.",
      "continue_by_email": "Continue by email",
      "your_email": "Your email",
      "your_name": "Your name",
      "email_done": "Thank you. We'll reply to {email}.",
      "invalid_email": "Enter a valid email address.",
      "prechat": "Before we start, tell us who you are (optional).",
      "start": "Start chat",
      "file_too_large": "{file} is too large: the limit is {size}.",
      "file_type": "{file} can't be sent: this type of file isn't accepted.",
      "upload_failed": "{file} could not be sent. Try again.",
      "reconnecting": "Connection lost. Reconnecting…",
      "new_message": "New message from {name}: {body}",
      "you": "You",
      "unread": "{count} new"
    },
    "fr": {
      "launcher": "Chat en ligne : écrivez-nous",
      "close": "Fermer le chat",
      "message": "Votre message",
      "placeholder": "Écrivez un message…",
      "send": "Envoyer",
      "attach": "Joindre un fichier",
      "messages": "Messages",
      "sending": "Envoi…",
      "sent": "Envoyé",
      "seen": "Lu",
      "failed": "Non envoyé",
      "retry": "Réessayer",
      "typing": "{name} écrit…",
      "typing_anonymous": "En train d'écrire…",
      "online": "Nous sommes en ligne",
      "offline": "Nous sommes absents pour le moment",
      "offline_notice": "Personne n'est disponible pour le moment. Laissez un message ici, ou continuez par e-mail et nous vous répondrons par e-mail.",
      "continue_by_email": "Continuer par e-mail",
      "your_email": "Votre adresse e-mail",
      "your_name": "Votre nom",
      "email_done": "Merci. Nous vous répondrons à {email}.",
      "invalid_email": "Saisissez une adresse e-mail valide.",
      "prechat": "Avant de commencer, dites-nous qui vous êtes (facultatif).",
      "start": "Commencer la discussion",
      "file_too_large": "{file} est trop volumineux : la limite est de {size}.",
      "file_type": "{file} ne peut pas être envoyé : ce type de fichier n'est pas accepté.",
      "upload_failed": "{file} n'a pas pu être envoyé. Réessayez.",
      "reconnecting": "Connexion perdue. Reconnexion…",
      "new_message": "Nouveau message de {name} : {body}",
      "you": "Vous",
      "unread": "{count} nouveau(x)"
    },
    "da": {
      "launcher": "Chat med os",
      "close": "Luk chatten",
      "message": "Besked (message)",
      "placeholder": "Skriv en besked…",
      "send": "Send",
      "attach": "Vedhæft en fil",
      "messages": "Beskeder",
      "sending": "Sender…",
      "sent": "Sendt",
      "seen": "Set",
      "failed": "Ikke sendt",
      "retry": "Prøv igen",
      "typing": "{name} skriver…",
      "typing_anonymous": "Skriver…",
      "online": "Vi er online",
      "offline": "Vi er ikke til stede lige nu",
      "offline_notice": "Der er ingen ledige lige nu. Skriv en besked her, eller fortsæt på e-mail, så svarer vi dig der.",
      "continue_by_email": "Fortsæt på e-mail",
      "your_email": "Din e-mailadresse",
      "your_name": "Dit navn",
      "email_done": "Tak. Vi svarer dig på {email}.",
      "invalid_email": "Skriv en gyldig e-mailadresse.",
      "prechat": "Fortæl os gerne, hvem du er, før vi går i gang (valgfrit).",
      "start": "Start chatten",
      "file_too_large": "{file} er for stor: grænsen er {size}.",
      "file_type": "{file} kan ikke sendes: den filtype modtager vi ikke.",
      "upload_failed": "{file} kunne ikke sendes. Prøv igen.",
      "reconnecting": "Forbindelsen blev afbrudt. Forbinder igen…",
      "new_message": "Ny besked fra {name}: {body}",
      "you": "Dig",
      "unread": "{count} nye"
    }
  };

  function pickLanguage() {
    var wanted = [script.getAttribute("data-lang"), D.documentElement.lang];
    var nav = W.navigator || {};
    wanted = wanted.concat(nav.languages || [], [nav.language]);
    for (var i = 0; i < wanted.length; i++) {
      var code = String(wanted[i] || "").toLowerCase().slice(0, 2);
      if (code === "nb" || code === "no") continue; // close to Danish, but not Danish
      if (STRINGS[code]) return code;
    }
    return "en";
  }
  var LANG = pickLanguage();
  var T = STRINGS[LANG];

  function t(key, values) {
    return (T[key] || STRINGS.en[key] || key).replace(/\{(\w+)\}/g, function (m, name) {
      return values && values[name] !== undefined ? String(values[name]) : m;
    });
  }

  // -- state -------------------------------------------------------------------------------------
  var config = null;
  var token = read(KEY) || "";
  var identity = readIdentity();
  var ui = null; // the drawn parts, once mounted
  var opened = false;
  var online = false;
  var agent = null; // {name, avatar_url} of the agent who answers
  var records = []; // messages in order: {msg, el, status, file}
  var byId = {};
  var byClient = {};
  var lastId = 0; // the newest message id known: the catch-up asks for what came after it
  var seenSent = 0; // the newest agent message the visitor has been shown (and told Cape about)
  var agentSeen = 0; // the newest of the visitor's messages an agent has read
  var unread = 0;
  var sessionPromise = null;
  var sessionReady = false;
  var socket = null;
  var attempt = 0; // consecutive failed connections: the backoff grows with it
  var failedOpens = 0;
  var retryTimer = null;
  var pingTimer = null;
  var pongTimer = null;
  var typingOn = false;
  var typingSentAt = 0;
  var typingIdle = null;
  var agentTypingTimer = null;
  var lastConfigAt = 0;
  var conversationId = null;
  var noticeEmail = null; // the offline notice's email field, filled from the pre-chat form
  var connected = true;

  function read(key) {
    try {
      return store ? store.getItem(key) : null;
    } catch (e) {
      return null;
    }
  }

  function write(key, value) {
    try {
      if (!store) return;
      if (value === null) store.removeItem(key);
      else store.setItem(key, value);
    } catch (e) {
      /* full or disabled: the chat still works for this page */
    }
  }

  function readIdentity() {
    var hash = script.getAttribute("data-identity-hash");
    if (!hash) return null;
    var out = { hash: hash };
    ["email", "id", "name"].forEach(function (field) {
      var value = script.getAttribute("data-identity-" + field);
      if (value) out[field] = value;
    });
    return out;
  }

  function uuid() {
    var c = W.crypto;
    if (c && typeof c.randomUUID === "function") {
      try {
        return c.randomUUID(); // secure contexts only
      } catch (e) {
        /* fall through */
      }
    }
    var b = new Uint8Array(16);
    if (c && c.getRandomValues) c.getRandomValues(b);
    else for (var i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
    b[6] = (b[6] & 15) | 64;
    b[8] = (b[8] & 63) | 128;
    var h = "";
    for (var j = 0; j < 16; j++) h += (b[j] + 256).toString(16).slice(1);
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  // -- talking to Cape -----------------------------------------------------------------------------
  function api(method, path, body, form) {
    var headers = {};
    if (token) headers.Authorization = "Bearer " + token;
    var init = { method: method, headers: headers, mode: "cors", credentials: "omit", cache: "no-store" };
    if (form) init.body = form;
    else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = encode(body);
    }
    return nativeFetch(BASE + path, init).then(function (response) {
      return response.text().then(function (text) {
        return decode(text || "{}")
          .catch(function () {
            return {};
          })
          .then(function (data) {
            if (!response.ok) {
              var error = new Error((data && data.error && data.error.message) || String(response.status));
              error.status = response.status;
              throw error;
            }
            return data;
          });
      });
    });
  }

  function loadConfig() {
    var url = "/widget/api/config?channel=" + encodeURIComponent(CHANNEL) + "&lang=" + LANG;
    return api("GET", url).then(function (data) {
      config = data || {};
      lastConfigAt = Date.now();
      online = !!config.online;
      return config;
    });
  }

  function startSession(extra) {
    if (sessionPromise && !extra) return sessionPromise;
    var body = { channel: CHANNEL, language: LANG };
    if (token) body.token = token;
    if (identity) body.identity = identity;
    if (extra) for (var k in extra) if (extra[k]) body[k] = extra[k];
    sessionPromise = api("POST", "/widget/api/session", body).then(
      function (data) {
        // Another conversation than the one on screen (the old token was refused: a new visitor):
        // what is on screen is not theirs. (The token itself is renewed on every visit.)
        if (conversationId && data.conversation_id !== conversationId) forgetMessages();
        conversationId = data.conversation_id || null;
        token = data.token;
        write(KEY, token);
        sessionReady = true;
        if (typeof data.online === "boolean") online = data.online;
        if (data.agent) agent = data.agent;
        (data.messages || []).forEach(function (m) {
          upsert(m, false);
        });
        render();
        return data;
      },
      function (error) {
        sessionPromise = null;
        if (error.status === 422 && identity && !extra) {
          // The site's identity hash is wrong: chat anonymously rather than not at all.
          if (W.console) W.console.warn("Cape chat: the identity hash was refused; chatting anonymously");
          identity = null;
          return startSession();
        }
        throw error;
      }
    );
    return sessionPromise;
  }

  function connect() {
    nativeClearTimeout(retryTimer);
    retryTimer = null;
    if (socket) return;
    var ready = sessionReady ? Promise.resolve() : startSession();
    ready.then(openSocket, retryLater);
  }

  function retryLater() {
    if (retryTimer || socket) return;
    var delay = Math.min(30000, 1000 * Math.pow(2, attempt)) * (0.5 + Math.random() / 2);
    attempt++;
    retryTimer = nativeSetTimeout(connect, delay);
  }

  function openSocket() {
    if (socket || !NativeSocket) return;
    var ws;
    try {
      ws = new NativeSocket(WS_BASE + "/widget/ws?token=" + encodeURIComponent(token));
    } catch (e) {
      return retryLater();
    }
    socket = ws;
    var isOpen = false;
    var giveUp = nativeSetTimeout(function () {
      if (!isOpen && socket === ws) drop(); // a connection that neither opens nor fails: try again
    }, 10000);
    ws.onopen = function () {
      nativeClearTimeout(giveUp);
      isOpen = true;
      attempt = 0;
      failedOpens = 0;
      setConnected(true);
      startPing();
      // Subscribed first, then ask for what came meanwhile: nothing falls between the two.
      catchUp().then(flushPending, flushPending);
      sendSeen();
    };
    ws.onmessage = function (event) {
      decode(event.data).then(onFrame, function () {});
    };
    ws.onclose = function (event) {
      nativeClearTimeout(giveUp);
      if (socket !== ws) return;
      socket = null;
      stopPing();
      typingOn = false;
      setConnected(false);
      // Refused before it opened, again and again (a token Cape no longer knows, a policy
      // close): start the session again, which gives a new token when the old one is invalid.
      if ((!isOpen && ++failedOpens >= 3) || event.code === 1008) {
        failedOpens = 0;
        sessionReady = false;
        sessionPromise = null;
      }
      retryLater();
    };
  }

  function drop() {
    var ws = socket;
    if (!ws) return;
    try {
      ws.close();
    } catch (e) {
      /* already closing */
    }
    ws.onclose({ code: 1006 });
  }

  function send(frame) {
    if (!socket || socket.readyState !== 1) return false;
    try {
      socket.send(encode(frame));
      return true;
    } catch (e) {
      return false;
    }
  }

  function startPing() {
    stopPing();
    pingTimer = nativeSetInterval(ping, 25000);
  }

  function stopPing() {
    nativeClearInterval(pingTimer);
    nativeClearTimeout(pongTimer);
    pongTimer = null;
  }

  // A socket can look open and be dead (a phone that slept, a proxy that forgot it): no pong, no socket.
  function ping() {
    if (!send({ type: "ping" })) return;
    nativeClearTimeout(pongTimer);
    pongTimer = nativeSetTimeout(drop, 8000);
  }

  function catchUp() {
    if (!sessionReady) return Promise.resolve();
    return api("GET", "/widget/api/messages?after=" + lastId).then(
      function (data) {
        (data.messages || []).forEach(function (m) {
          upsert(m, true);
        });
        render();
      },
      function (error) {
        if (error.status === 401 || error.status === 403) {
          sessionReady = false;
          sessionPromise = null;
          drop();
        }
      }
    );
  }

  // Messages typed while the connection was down go now, with the client ids they got when typed:
  // Cape stores one message per client id, so a message sent twice is still one message.
  function flushPending() {
    var waiting = records.filter(function (r) {
      return !r.msg.id && !r.file && r.status !== "failed";
    });
    waiting.forEach(function (r, i) {
      nativeSetTimeout(function () {
        if (!r.msg.id) send({ type: "message", client_id: r.msg.client_id, body: r.msg.body });
      }, i * 250); // spaced, within the per-connection rate limit
    });
  }

  function onFrame(frame) {
    if (!frame || typeof frame !== "object") return;
    if (frame.type === "pong") {
      nativeClearTimeout(pongTimer);
      pongTimer = null;
    } else if (frame.type === "message" && frame.message) {
      upsert(frame.message, true);
      render();
    } else if (frame.type === "ack") {
      var r = byClient[frame.client_id];
      if (r && frame.message_id) {
        setId(r, frame.message_id);
        if (r.status === "sending" || r.status === "failed") r.status = "sent";
        savePending();
        render();
      }
    } else if (frame.type === "typing") {
      showAgentTyping(!!frame.on, frame.agent);
    } else if (frame.type === "seen") {
      agentSeen = Math.max(agentSeen, frame.message_id || 0);
      render();
    } else if (frame.type === "error" && frame.client_id && byClient[frame.client_id]) {
      var refused = byClient[frame.client_id]; // Cape refused this message: the visitor may try again
      if (!refused.msg.id) {
        refused.status = "failed";
        refused.dirty = true;
        savePending();
        render();
      }
    }
  }

  // -- messages ------------------------------------------------------------------------------------
  function forgetMessages() {
    records.forEach(function (r) {
      if (r.el && r.el.parentNode) r.el.parentNode.removeChild(r.el);
    });
    var keep = records.filter(function (r) {
      return !r.msg.id && !r.file; // typed but never sent: still the visitor's words, sent as the new visitor
    });
    records = [];
    byId = {};
    byClient = {};
    lastId = 0;
    seenSent = 0;
    agentSeen = 0;
    keep.forEach(function (r) {
      r.el = null;
      records.push(r);
      byClient[r.msg.client_id] = r;
    });
  }

  // Give ``r`` its id and put it in its place: records are ordered by id, those without one last.
  function setId(r, id) {
    r.msg.id = id;
    byId[id] = r;
    if (id > lastId) lastId = id;
    var from = records.indexOf(r);
    if (from >= 0) records.splice(from, 1);
    var at = records.length;
    for (var i = 0; i < records.length; i++) {
      if (!records[i].msg.id || records[i].msg.id > id) {
        at = i;
        break;
      }
    }
    records.splice(at, 0, r);
  }

  function upsert(m, fresh) {
    var r = (m.id && byId[m.id]) || (m.client_id && byClient[m.client_id]);
    if (r) {
      for (var k in m) if (k !== "id" && m[k] !== undefined) r.msg[k] = m[k];
      if (m.id) {
        if (r.msg.id !== m.id) setId(r, m.id);
        r.status = "sent";
        r.file = null;
        savePending();
      }
      r.dirty = true;
      return r;
    }
    r = { msg: m, el: null, status: m.id ? "sent" : "sending", dirty: true };
    if (m.client_id) byClient[m.client_id] = r;
    if (m.id) setId(r, m.id);
    else records.push(r);
    if (fresh && m.direction === "outbound") {
      if (m.author) agent = m.author;
      showAgentTyping(false);
      announce(t("new_message", { name: (m.author && m.author.name) || (config && config.name) || "", body: m.body || fileNames(m) }));
      if (!opened || D.visibilityState === "hidden") unread++;
    }
    return r;
  }

  function forget(r) {
    records.splice(records.indexOf(r), 1);
    delete byClient[r.msg.client_id];
    if (r.el && r.el.parentNode) r.el.parentNode.removeChild(r.el);
  }

  function fileNames(m) {
    return (m.attachments || [])
      .map(function (a) {
        return a.filename;
      })
      .join(", ");
  }

  function savePending() {
    var waiting = records
      .filter(function (r) {
        return !r.msg.id && !r.file && r.status !== "failed";
      })
      .map(function (r) {
        return { client_id: r.msg.client_id, body: r.msg.body, created_at: r.msg.created_at };
      });
    write(KEY + ".pending", waiting.length ? encode(waiting) : null);
  }

  function restorePending() {
    var raw = read(KEY + ".pending");
    if (!raw) return Promise.resolve();
    return decode(raw).then(
      function (list) {
        (list || []).forEach(function (p) {
          if (p && p.client_id && !byClient[p.client_id]) {
            upsert({ id: null, client_id: p.client_id, direction: "inbound", body: String(p.body || ""), created_at: p.created_at, attachments: [] }, false);
          }
        });
      },
      function () {}
    );
  }

  function sendMessage(body) {
    body = body.replace(/^\s+|\s+$/g, "");
    if (!body) return;
    var m = { id: null, client_id: uuid(), direction: "inbound", body: body, created_at: new Date().toISOString(), attachments: [] };
    upsert(m, false);
    savePending();
    stopTyping();
    render(true);
    if (!send({ type: "message", client_id: m.client_id, body: body })) connect();
  }

  // -- files ---------------------------------------------------------------------------------------
  function formatSize(bytes) {
    if (bytes >= 1048576) return Math.round((bytes / 1048576) * 10) / 10 + " MB";
    return Math.max(1, Math.round(bytes / 1024)) + " KB";
  }

  function accepted(file, types) {
    if (!types || !types.length) return true;
    var name = file.name.toLowerCase();
    var mime = (file.type || "").toLowerCase();
    return types.some(function (type) {
      type = String(type).toLowerCase();
      if (type.charAt(0) === ".") return name.slice(-type.length) === type;
      if (type.slice(-2) === "/*") return mime.indexOf(type.slice(0, -1)) === 0;
      return mime === type;
    });
  }

  function sendFile(file) {
    var limits = (config && config.upload) || {};
    if (limits.max_bytes && file.size > limits.max_bytes) {
      return showError(t("file_too_large", { file: file.name, size: formatSize(limits.max_bytes) }));
    }
    if (!accepted(file, limits.types)) return showError(t("file_type", { file: file.name }));
    showError("");
    var m = {
      id: null,
      client_id: uuid(),
      direction: "inbound",
      body: "",
      created_at: new Date().toISOString(),
      attachments: [{ filename: file.name, size: file.size, url: "" }]
    };
    var r = upsert(m, false);
    r.file = file;
    render(true);
    upload(r);
  }

  function upload(r) {
    r.status = "sending";
    r.dirty = true;
    render();
    var form = new W.FormData();
    form.append("file", r.file, r.file.name);
    form.append("client_id", r.msg.client_id);
    var name = r.file.name;
    (sessionReady ? Promise.resolve() : startSession())
      .then(function () {
        return api("POST", "/widget/api/upload", undefined, form);
      })
      .then(
        function (data) {
          if (data.message) upsert(data.message, false);
          r.file = null;
          render();
        },
        function (error) {
          r.status = "failed";
          r.dirty = true;
          var limits = (config && config.upload) || {};
          if (error.status === 413) showError(t("file_too_large", { file: name, size: formatSize(limits.max_bytes || 0) }));
          else if (error.status === 415) showError(t("file_type", { file: name }));
          else showError(t("upload_failed", { file: name }));
          if (error.status === 413 || error.status === 415) forget(r); // refused for good: the error says why
          render();
        }
      );
  }

  function retry(r) {
    if (r.file) return upload(r);
    r.status = "sending";
    r.dirty = true;
    savePending();
    render();
    if (!send({ type: "message", client_id: r.msg.client_id, body: r.msg.body })) connect();
  }

  // -- typing and read receipts --------------------------------------------------------------------
  function typing() {
    var now = Date.now();
    if (!typingOn || now - typingSentAt > 4000) {
      if (send({ type: "typing", on: true })) {
        typingOn = true;
        typingSentAt = now;
      }
    }
    nativeClearTimeout(typingIdle);
    typingIdle = nativeSetTimeout(stopTyping, 3000);
  }

  function stopTyping() {
    nativeClearTimeout(typingIdle);
    if (typingOn) send({ type: "typing", on: false });
    typingOn = false;
  }

  function showAgentTyping(on, who) {
    nativeClearTimeout(agentTypingTimer);
    if (!ui) return;
    var name = who && who.name;
    ui.typing.textContent = on ? (name ? t("typing", { name: name }) : t("typing_anonymous")) : "";
    ui.typing.hidden = !on;
    if (on) agentTypingTimer = nativeSetTimeout(showAgentTyping, 8000, false); // a lost "off" ends too
  }

  // The visitor has seen the agent's messages when the window is open on a visible tab.
  function sendSeen() {
    if (!opened || D.visibilityState === "hidden") return;
    var newest = 0;
    records.forEach(function (r) {
      if (r.msg.direction === "outbound" && r.msg.id > newest) newest = r.msg.id;
    });
    unread = 0;
    if (newest > seenSent && send({ type: "seen", message_id: newest })) seenSent = newest;
  }

  // -- drawing -------------------------------------------------------------------------------------
  // Icons drawn through the DOM, not markup: pages that allow no inline markup (Trusted Types) work too.
  var ICONS = {
    chat: [26, { fill: "currentColor", d: "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z" }],
    close: [22, { fill: "none", stroke: "currentColor", "stroke-width": "2.4", "stroke-linecap": "round", d: "M6 6l12 12M18 6L6 18" }],
    send: [20, { fill: "currentColor", d: "M3 20l18-8L3 4v6l12 2-12 2z" }],
    attach: [
      20,
      { fill: "none", stroke: "currentColor", "stroke-width": "2", "stroke-linecap": "round", d: "M20 11l-8.5 8.5a5 5 0 0 1-7-7L13 4a3.5 3.5 0 0 1 5 5l-8.5 8.5a2 2 0 0 1-3-3L14 7" }
    ]
  };

  function icon(name, extraClass) {
    var NS = "http://www.w3.org/2000/svg";
    var spec = ICONS[name];
    var svg = D.createElementNS(NS, "svg");
    var attrs = { viewBox: "0 0 24 24", width: spec[0], height: spec[0], "aria-hidden": "true", focusable: "false" };
    if (extraClass) attrs["class"] = extraClass;
    for (var k in attrs) svg.setAttribute(k, attrs[k]);
    var path = D.createElementNS(NS, "path");
    for (var a in spec[1]) path.setAttribute(a, spec[1][a]);
    svg.appendChild(path);
    return svg;
  }

  var CSS =
    ".w{all:initial;position:fixed;bottom:0;right:0;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#1d2330;color-scheme:light}" +
    ":where(.w *,.w *::before,.w *::after){box-sizing:border-box;font:inherit;color:inherit;letter-spacing:normal;text-transform:none;margin:0;padding:0}" +
    "[hidden]{display:none!important}" +
    ".sr{position:absolute!important;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}" +
    "button,input,textarea{pointer-events:auto;border:0;background:none;cursor:pointer}" +
    "button:focus-visible,input:focus-visible,textarea:focus-visible,a:focus-visible{outline:3px solid var(--a);outline-offset:2px}" +
    ".launcher{position:fixed;bottom:20px;right:20px;width:56px;height:56px;border-radius:50%;background:var(--a);color:var(--on);display:flex;align-items:center;justify-content:center;box-shadow:0 4px 14px rgba(0,0,0,.25);transition:transform .15s}" +
    ".launcher:hover{transform:scale(1.06)}.i-close,.open .i-chat{display:none}.open .i-close{display:block}" +
    ".left .launcher{right:auto;left:20px}" +
    ".badge{position:absolute;top:-4px;right:-4px;min-width:20px;height:20px;padding:0 6px;border-radius:10px;background:#d92d20;color:#fff;font-size:12px;font-weight:700;line-height:20px;text-align:center}" +
    ".win{position:fixed;bottom:88px;right:20px;width:370px;height:min(600px,calc(100vh - 108px));display:flex;flex-direction:column;background:#fff;border-radius:14px;box-shadow:0 10px 40px rgba(0,0,0,.25);overflow:hidden;pointer-events:auto;animation:rise .18s ease-out}" +
    ".left .win{right:auto;left:20px}" +
    "@keyframes rise{from{opacity:0;transform:translateY(12px)}to{opacity:1;transform:none}}" +
    "header{display:flex;align-items:center;gap:10px;padding:12px 12px 12px 16px;background:var(--a);color:var(--on)}" +
    ".who{flex:1;min-width:0}.who strong{display:block;font-weight:700;font-size:15px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}.who span{display:block;font-size:12px;opacity:.9}" +
    ".av{flex:none;width:36px;height:36px;border-radius:50%;background:rgba(255,255,255,.25);color:inherit;display:flex;align-items:center;justify-content:center;font-weight:700;font-size:14px;overflow:hidden}" +
    ".av img{width:100%;height:100%;object-fit:cover}" +
    ".x{width:40px;height:40px;border-radius:8px;display:flex;align-items:center;justify-content:center;color:inherit}" +
    ".x:hover{background:rgba(0,0,0,.12)}" +
    ".body{flex:1;overflow-y:auto;padding:14px 14px 4px;display:flex;flex-direction:column;gap:10px;overscroll-behavior:contain}" +
    ".note{background:#f4f6fa;border-radius:10px;padding:10px 12px}" +
    ".notice{background:#fff6e5;border:1px solid #f0d49b}" +
    ".notice form,.pre{display:flex;flex-direction:column;gap:8px;margin-top:8px}" +
    "label{font-size:13px;font-weight:600}" +
    "input{cursor:text;border:1px solid #b8c0cc;border-radius:8px;padding:8px 10px;background:#fff;width:100%}" +
    ".btn{align-self:flex-start;background:var(--a);color:var(--on);border-radius:8px;padding:8px 14px;font-weight:600}" +
    ".link{color:#1a4fb3;text-decoration:underline;padding:0}" +
    "ol{list-style:none;display:flex;flex-direction:column;gap:6px}" +
    "li{display:flex;flex-direction:column;max-width:82%;align-self:flex-start}" +
    "li.mine{align-self:flex-end;align-items:flex-end}" +
    ".by{display:flex;align-items:center;gap:6px;font-size:12px;color:#5b6475;margin:4px 0 2px}" +
    ".by .av{width:22px;height:22px;font-size:10px;background:#e3e7ee}" +
    ".bub{border-radius:14px;padding:8px 12px;background:#eef1f6;white-space:pre-wrap;overflow-wrap:anywhere}" +
    ".mine .bub{background:var(--a);color:var(--on)}" +
    ".bub a{color:inherit;text-decoration:underline;display:block}" +
    ".meta{font-size:11px;color:#5b6475;margin-top:2px}" +
    ".failed .meta{color:#b42318}" +
    ".meta button{color:#1a4fb3;text-decoration:underline;margin-left:6px;font-size:11px}" +
    ".typing{font-size:12px;color:#5b6475;padding:0 16px 4px}" +
    ".typing::after{content:'';display:inline-block;width:6px;height:6px;margin-left:6px;border-radius:50%;background:#8a93a3;animation:blink 1s infinite}" +
    "@keyframes blink{50%{opacity:.2}}" +
    ".status{font-size:12px;color:#5b6475;padding:4px 16px}" +
    ".error{font-size:13px;color:#b42318;padding:4px 16px}" +
    "form.compose{display:flex;align-items:flex-end;gap:4px;padding:8px;border-top:1px solid #e3e7ee}" +
    "textarea{flex:1;cursor:text;resize:none;max-height:120px;min-height:40px;border:1px solid #b8c0cc;border-radius:10px;padding:9px 10px;background:#fff}" +
    ".icon{flex:none;width:40px;height:40px;border-radius:8px;display:flex;align-items:center;justify-content:center;color:#3d4656}" +
    ".icon:hover{background:#eef1f6}.icon.go{color:var(--a)}" +
    "input[type=file]{display:none}" +
    "@media (max-width:520px){.win,.left .win{inset:0;width:auto;height:auto;border-radius:0}.open .launcher{display:none}textarea,input{font-size:16px}}" +
    "@media (prefers-reduced-motion:reduce){.w *{animation:none!important;transition:none!important}}";

  function el(tag, attrs, children) {
    var node = D.createElement(tag);
    for (var k in attrs || {}) {
      if (k === "text") node.textContent = attrs[k];
      else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), attrs[k]);
      else if (attrs[k] === true) node.setAttribute(k, "");
      else if (attrs[k] !== false && attrs[k] != null) node.setAttribute(k, attrs[k]);
    }
    (children || []).forEach(function (child) {
      if (child) node.appendChild(child);
    });
    return node;
  }

  function initials(name) {
    var parts = String(name || "").trim().split(/\s+/).filter(Boolean);
    return ((parts[0] || "?").charAt(0) + (parts.length > 1 ? parts[parts.length - 1].charAt(0) : "")).toUpperCase();
  }

  function avatar(person) {
    var box = el("span", { class: "av", "aria-hidden": "true" });
    if (person && person.avatar_url) {
      var img = el("img", { alt: "", src: absolute(person.avatar_url) });
      img.onerror = function () {
        box.textContent = initials(person.name);
      };
      box.appendChild(img);
    } else box.textContent = initials(person && person.name ? person.name : (config && config.name) || "");
    return box;
  }

  function absolute(url) {
    try {
      return new URL(url, BASE + "/").href;
    } catch (e) {
      return url;
    }
  }

  function readableOn(hex) {
    var n = parseInt(hex.slice(1), 16);
    var lum = 0.2126 * ((n >> 16) & 255) + 0.7152 * ((n >> 8) & 255) + 0.0722 * (n & 255);
    return lum > 160 ? "#111" : "#fff";
  }

  function mount() {
    var colour = /^#[0-9a-fA-F]{6}$/.test(config.colour || "") ? config.colour : "#2457c5";
    var host = D.createElement("cape-chat");
    // Inline and important: the page's own style sheets cannot move, hide or enlarge the host.
    // (Set through the CSSOM, which a page's Content-Security-Policy allows, unlike a style attribute.)
    var hostStyle = {
      all: "initial", display: "block", position: "fixed", top: "0", left: "0", width: "0", height: "0",
      overflow: "visible", "z-index": "2147483000", "pointer-events": "none", visibility: "visible",
      opacity: "1", transform: "none"
    };
    for (var prop in hostStyle) host.style.setProperty(prop, hostStyle[prop], "important");
    var root = host.attachShadow({ mode: "open" });
    var names = {};
    ["win", "title", "list", "input", "file", "notice", "pre", "err"].forEach(function (n) {
      names[n] = "cape-" + n;
    });
    var u = (ui = {});
    u.badge = el("span", { class: "badge", "aria-hidden": "true", hidden: true });
    u.launcher = el(
      "button",
      { type: "button", class: "launcher", "aria-label": t("launcher"), "aria-expanded": "false", "aria-controls": names.win, onclick: toggle },
      [icon("chat", "i-chat"), icon("close", "i-close"), u.badge]
    );
    u.face = el("span", {}, [el("span")]);
    u.name = el("strong", { id: names.title });
    u.presence = el("span");
    u.close = el("button", { type: "button", class: "x", "aria-label": t("close"), onclick: close }, [icon("close")]);
    u.greeting = el("p", { class: "note", hidden: true });
    u.notice = buildNotice(names.notice);
    u.pre = buildPrechat(names.pre);
    u.list = el("ol", { "aria-label": t("messages"), id: names.list });
    u.body = el("div", { class: "body" }, [u.greeting, u.notice, u.pre, u.list]);
    u.typing = el("p", { class: "typing", hidden: true });
    u.status = el("p", { class: "status", role: "status", hidden: true });
    u.error = el("p", { class: "error", role: "alert", id: names.err, hidden: true });
    u.live = el("div", { class: "sr", "aria-live": "polite", "aria-atomic": "true" });
    u.input = el("textarea", {
      rows: "1",
      maxlength: "5000",
      "aria-label": t("message"),
      placeholder: t("placeholder"),
      oninput: function () {
        grow();
        typing();
      },
      onkeydown: function (event) {
        if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
          event.preventDefault();
          submit();
        }
      },
      onblur: stopTyping
    });
    u.file = el("input", {
      type: "file",
      tabindex: "-1",
      "aria-hidden": "true",
      accept: ((config.upload && config.upload.types) || []).join(",") || false,
      onchange: function () {
        var files = Array.prototype.slice.call(u.file.files || []);
        u.file.value = "";
        files.forEach(sendFile);
      }
    });
    u.attach = el("button", {
      type: "button",
      class: "icon",
      "aria-label": t("attach"),
      title: t("attach"),
      onclick: function () {
        u.file.click();
      }
    }, [icon("attach")]);
    u.send = el("button", { type: "submit", class: "icon go", "aria-label": t("send"), title: t("send"), }, [icon("send")]);
    u.compose = el(
      "form",
      {
        class: "compose",
        onsubmit: function (event) {
          event.preventDefault();
          submit();
        }
      },
      [u.attach, u.file, u.input, u.send]
    );
    u.win = el(
      "section",
      { class: "win", id: names.win, role: "dialog", "aria-labelledby": names.title, hidden: true },
      [
        el("header", {}, [u.face, el("div", { class: "who" }, [u.name, u.presence]), u.close]),
        u.body,
        u.typing,
        u.status,
        u.error,
        u.compose,
        u.live
      ]
    );
    u.wrap = el("div", { class: "w" + (config.position === "left" ? " left" : ""), lang: LANG }, [u.win, u.launcher]);
    u.wrap.style.setProperty("--a", colour);
    u.wrap.style.setProperty("--on", readableOn(colour));
    u.wrap.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && opened) close();
    });
    // Keys typed in the chat are the visitor's words, not the page's keyboard shortcuts.
    ["keydown", "keyup", "keypress"].forEach(function (type) {
      u.wrap.addEventListener(type, function (event) {
        event.stopPropagation();
      });
    });
    // A constructed style sheet where the browser has them (a page's CSP cannot refuse it), else a <style>.
    try {
      var sheet = new W.CSSStyleSheet();
      sheet.replaceSync(CSS);
      root.adoptedStyleSheets = [sheet];
    } catch (e) {
      root.appendChild(el("style", { text: CSS }));
    }
    root.appendChild(u.wrap);
    (D.body || D.documentElement).appendChild(host);
    render();
  }

  function buildNotice(id) {
    var box = el("div", { class: "note notice", id: id, hidden: true });
    var text = el("p", { text: t("offline_notice") });
    var done = el("p", { role: "status" });
    var field = el("input", { type: "email", autocomplete: "email", id: id + "-email", required: true });
    var form = el("form", { hidden: true, novalidate: true }, [
      el("label", { for: id + "-email", text: t("your_email") }),
      field,
      el("button", { type: "submit", class: "btn", text: t("continue_by_email") })
    ]);
    var open = el("button", {
      type: "button",
      class: "link",
      text: t("continue_by_email"),
      onclick: function () {
        open.hidden = true;
        form.hidden = false;
        field.focus();
      }
    });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var email = field.value.trim();
      if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) return showError(t("invalid_email"));
      showError("");
      (sessionReady ? Promise.resolve() : startSession())
        .then(function () {
          return api("POST", "/widget/api/email", { email: email });
        })
        .then(
          function () {
            write(KEY + ".email", email);
            form.hidden = true;
            done.textContent = t("email_done", { email: email });
          },
          function (error) {
            showError(error.status === 422 || error.status === 400 ? t("invalid_email") : error.message);
          }
        );
    });
    box.appendChild(text);
    box.appendChild(open);
    box.appendChild(form);
    box.appendChild(done);
    noticeEmail = field;
    return box;
  }

  function buildPrechat(id) {
    var ask = (config.prechat || {});
    var fields = [];
    var name = null;
    var email = null;
    if (ask.ask_name) {
      name = el("input", { type: "text", autocomplete: "name", id: id + "-name" });
      fields.push(el("label", { for: id + "-name", text: t("your_name") }), name);
    }
    if (ask.ask_email) {
      email = el("input", { type: "email", autocomplete: "email", id: id + "-email" });
      fields.push(el("label", { for: id + "-email", text: t("your_email") }), email);
    }
    var form = el("form", { class: "note pre", hidden: true, novalidate: true }, [el("p", { text: t("prechat") })].concat(fields, [
      el("button", { type: "submit", class: "btn", text: t("start") })
    ]));
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var details = { name: name ? name.value.trim() : "", email: email ? email.value.trim() : "" };
      if (details.email && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(details.email)) return showError(t("invalid_email"));
      showError("");
      write(KEY + ".prechat", "1");
      if (details.email && noticeEmail) noticeEmail.value = details.email;
      sessionReady = false;
      startSession(details).then(connect, retryLater);
      render();
      ui.input.focus();
    });
    return form;
  }

  function needsPrechat() {
    var ask = config.prechat || {};
    return (ask.ask_name || ask.ask_email) && !read(KEY + ".prechat") && !records.length;
  }

  function submit() {
    var text = ui.input.value;
    if (!text.replace(/\s/g, "")) return;
    ui.input.value = "";
    grow();
    sendMessage(text);
    ui.input.focus();
  }

  function grow() {
    var input = ui.input;
    input.style.height = "auto";
    input.style.height = Math.min(120, input.scrollHeight + 2) + "px";
  }

  function showError(text) {
    if (!ui) return;
    ui.error.textContent = text || "";
    ui.error.hidden = !text;
  }

  function setConnected(value) {
    connected = value;
    if (!ui) return;
    var show = !value && !!token && opened;
    ui.status.textContent = show ? t("reconnecting") : "";
    ui.status.hidden = !show;
  }

  function announce(text) {
    if (ui && text) ui.live.textContent = text;
  }

  function time(iso) {
    var at = iso ? new Date(iso) : new Date();
    try {
      return at.toLocaleTimeString(LANG, { hour: "2-digit", minute: "2-digit" });
    } catch (e) {
      return "";
    }
  }

  function drawMessage(r, previous) {
    var m = r.msg;
    var mine = m.direction === "inbound";
    var status = mine ? (r.msg.id && r.msg.id <= agentSeen ? "seen" : r.status) : "";
    var li = el("li", { class: (mine ? "mine " : "theirs ") + status });
    if (m.id) li.setAttribute("data-id", m.id);
    if (m.client_id) li.setAttribute("data-client-id", m.client_id);
    var author = m.author && m.author.name;
    var samePerson = previous && previous.msg.direction === m.direction && ((previous.msg.author && previous.msg.author.name) || "") === (author || "");
    if (!mine && author && !samePerson) li.appendChild(el("span", { class: "by" }, [avatar(m.author), el("span", { text: author })]));
    var bubble = el("div", { class: "bub" });
    if (m.body) bubble.appendChild(D.createTextNode(m.body));
    (m.attachments || []).forEach(function (a) {
      var label = a.filename + (a.size ? " (" + formatSize(a.size) + ")" : "");
      bubble.appendChild(a.url ? el("a", { href: absolute(a.url), target: "_blank", rel: "noopener", text: label }) : el("span", { text: label }));
    });
    li.appendChild(bubble);
    var meta = el("span", { class: "meta" }, [
      el("span", { class: "sr", text: (mine ? t("you") : author || (config && config.name) || "") + ", " }),
      el("time", { datetime: m.created_at || false, text: time(m.created_at) })
    ]);
    if (mine) {
      meta.appendChild(D.createTextNode(" · " + t(status)));
      if (status === "failed") meta.appendChild(el("button", { type: "button", text: t("retry"), onclick: function () { retry(r); } }));
    }
    li.appendChild(meta);
    return li;
  }

  function render(forceScroll) {
    if (!ui) return;
    var body = ui.body;
    var atEnd = body.scrollHeight - body.scrollTop - body.clientHeight < 60;
    // Header: the agent who answers, or the team.
    var who = agent || null;
    var face = avatar(who || { name: config.name });
    ui.face.replaceChild(face, ui.face.firstChild);
    ui.name.textContent = (who && who.name) || config.name || "";
    ui.presence.textContent = online ? t("online") : t("offline");
    var greeting = config.greeting;
    if (greeting && typeof greeting === "object") greeting = greeting[LANG] || greeting.en || "";
    ui.greeting.textContent = greeting || "";
    ui.greeting.hidden = !greeting;
    var prechat = needsPrechat();
    ui.notice.hidden = online || !!prechat; // one thing at a time: who they are first
    ui.pre.hidden = !prechat;
    ui.compose.hidden = !!prechat;
    // Messages: each drawn once, redrawn when its status changes, in order.
    var previous = null;
    var cursor = ui.list.firstChild;
    records.forEach(function (r) {
      var status = r.msg.direction === "inbound" ? (r.msg.id && r.msg.id <= agentSeen ? "seen" : r.status) : "";
      if (!r.el || r.dirty || r.drawnStatus !== status) {
        if (r.el && r.el.parentNode) {
          if (r.el === cursor) cursor = cursor.nextSibling;
          r.el.parentNode.removeChild(r.el);
        }
        r.el = drawMessage(r, previous);
        r.dirty = false;
        r.drawnStatus = status;
      }
      if (r.el === cursor) cursor = cursor.nextSibling;
      else ui.list.insertBefore(r.el, cursor);
      previous = r;
    });
    // Unread count on the launcher while closed.
    ui.badge.textContent = unread ? String(unread) : "";
    ui.badge.hidden = !unread || opened;
    ui.launcher.setAttribute("aria-label", t("launcher") + (unread && !opened ? " (" + t("unread", { count: unread }) + ")" : ""));
    if (forceScroll || atEnd) body.scrollTop = body.scrollHeight;
    if (opened) sendSeen();
  }

  // -- opening and closing -------------------------------------------------------------------------
  function open() {
    if (!ui || opened) return;
    opened = true;
    ui.win.hidden = false;
    ui.wrap.classList.add("open");
    ui.launcher.setAttribute("aria-expanded", "true");
    unread = 0;
    setConnected(connected);
    if (Date.now() - lastConfigAt > 60000) {
      loadConfig().then(function () {
        render();
      }, function () {});
    }
    connect();
    render(true);
    var first = !ui.pre.hidden && ui.pre.querySelector("input");
    (first || ui.input).focus({ preventScroll: true });
  }

  function close() {
    if (!ui || !opened) return;
    opened = false;
    stopTyping();
    ui.win.hidden = true;
    ui.wrap.classList.remove("open");
    ui.launcher.setAttribute("aria-expanded", "false");
    render();
    ui.launcher.focus();
  }

  function toggle() {
    if (opened) close();
    else open();
  }

  // A phone bringing the tab back, or the network coming back: reconnect now, and catch up.
  function wake() {
    if (!ui || !(sessionReady || token)) return;
    if (D.visibilityState === "hidden") return;
    if (socket && socket.readyState === 1) {
      ping();
      catchUp();
      sendSeen();
    } else {
      attempt = 0;
      connect();
    }
  }

  // -- start ---------------------------------------------------------------------------------------
  function whenBodyExists(fn) {
    if (D.body) fn();
    else D.addEventListener("DOMContentLoaded", fn);
  }

  var configTries = 0;
  var configTimer = null;
  function start() {
    loadConfig().then(
      function () {
        whenBodyExists(function () {
          if (ui) return;
          mount();
          restorePending().then(function () {
            render();
            // A returning visitor is reconnected at once (their history, the agent's replies);
            // a new one only when they open the chat.
            if (token || records.length) connect();
          });
        });
      },
      function (error) {
        // Cape unreachable or the channel unknown: nothing is drawn, the page is untouched.
        // Unreachable is tried again (a visitor may have messages waiting); unknown is not.
        if (error.status >= 400 && error.status < 500) return;
        configTimer = nativeSetTimeout(start, Math.min(60000, 3000 * Math.pow(3, configTries++)));
      }
    );
  }

  W.addEventListener("online", function () {
    if (!ui) {
      nativeClearTimeout(configTimer);
      configTries = 0;
      start();
    } else wake();
  });
  D.addEventListener("visibilitychange", wake);
  W.addEventListener("pageshow", function (event) {
    if (event.persisted) wake(); // back from the back/forward cache
  });

  W.CapeChat = { open: open, close: close };
  if (nativeFetch) start();
})();
