/*
 * cdp.js: the platform's browser tracker. One file, no dependencies, no build step, no
 * third-party requests: it talks only to the `host` given to init(). See docs/tracker.md.
 *
 * Before this file loads, the snippet makes `window.cdp` an array with stub methods that
 * record their calls; this file replaces it with the real tracker and replays the calls in
 * order. `cdp.push(["track", "name", {...}])` works both before and after loading.
 */
(function (window, document) {
  "use strict";

  var VERSION = "1.0.0";
  var PREFIX = "cdp_";
  var SCROLL_MILESTONES = [25, 50, 75, 100];
  var MAX_PENDING = 1000; // events kept in memory while offline or waiting for consent
  var MAX_ATTEMPTS = 10;
  var KEEPALIVE_LIMIT = 60000; // browsers cap keepalive bodies at 64 KB in flight
  var TEXT_LIMIT = 255;
  var CLICKABLE =
    "a,button,input[type=submit],input[type=button],input[type=reset],input[type=checkbox]," +
    "input[type=radio],select,label,summary,[role=button],[role=link],[role=tab]," +
    "[role=menuitem],[data-cdp-click]";

  var existing = window.cdp;
  if (existing && existing.__loaded) return; // the file was included twice

  // --- small helpers -------------------------------------------------------------------------

  function now() {
    return new Date().getTime();
  }

  function uuid() {
    var c = window.crypto;
    if (c && typeof c.randomUUID === "function") return c.randomUUID();
    var b = new Uint8Array(16);
    if (c && c.getRandomValues) c.getRandomValues(b);
    else for (var i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = [];
    for (var j = 0; j < 16; j++) h.push((b[j] + 0x100).toString(16).slice(1));
    return (
      h.slice(0, 4).join("") + "-" + h.slice(4, 6).join("") + "-" + h.slice(6, 8).join("") +
      "-" + h.slice(8, 10).join("") + "-" + h.slice(10).join("")
    );
  }

  function assign(target) {
    for (var i = 1; i < arguments.length; i++) {
      var src = arguments[i];
      if (!src) continue;
      for (var k in src) {
        if (Object.prototype.hasOwnProperty.call(src, k)) target[k] = src[k];
      }
    }
    return target;
  }

  function warn(message) {
    if (window.console && console.warn) console.warn("[cdp] " + message);
  }

  function cleanText(text) {
    return (text || "").replace(/\s+/g, " ").trim().slice(0, TEXT_LIMIT);
  }

  // --- storage: localStorage, falling back to first-party cookies ----------------------------

  var memory = {};
  var persistent = true; // false while consent is required and not yet given

  var localStore = (function () {
    try {
      var k = PREFIX + "probe";
      window.localStorage.setItem(k, "1");
      window.localStorage.removeItem(k);
      return window.localStorage;
    } catch (e) {
      return null; // disabled, full, or a sandboxed frame
    }
  })();

  function cookieGet(name) {
    var parts = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (parts[i].slice(0, eq) === name) return decodeURIComponent(parts[i].slice(eq + 1));
    }
    return null;
  }

  function cookieSet(name, value, days) {
    var expires = new Date(now() + days * 864e5).toUTCString();
    var secure = window.location.protocol === "https:" ? "; Secure" : "";
    document.cookie =
      name + "=" + encodeURIComponent(value) + "; expires=" + expires + "; path=/; SameSite=Lax" +
      secure;
  }

  var store = {
    get: function (key) {
      if (key in memory) return memory[key];
      if (!persistent) return null;
      try {
        return localStore ? localStore.getItem(PREFIX + key) : cookieGet(PREFIX + key);
      } catch (e) {
        return null;
      }
    },
    set: function (key, value) {
      memory[key] = value;
      if (persistent) store.write(key, value);
    },
    write: function (key, value) {
      try {
        if (localStore) localStore.setItem(PREFIX + key, value);
        else cookieSet(PREFIX + key, value, 365);
      } catch (e) {
        /* storage full or blocked: the value lives in memory for this page */
      }
    },
    remove: function (key) {
      delete memory[key];
      try {
        if (localStore) localStore.removeItem(PREFIX + key);
        else cookieSet(PREFIX + key, "", -1);
      } catch (e) {
        /* nothing stored */
      }
    },
    persistAll: function () {
      persistent = true;
      for (var k in memory) store.write(k, memory[k]);
    },
  };

  // --- the tracker ---------------------------------------------------------------------------

  var config = null;
  var pending = []; // [{kind: "track"|"identify"|"group", body: {...}, attempts: n}]
  var inFlight = 0; // items at the head of `pending` being sent now
  var flushTimer = null;
  var retryTimer = null;
  var retryAttempt = 0;
  var lastPageUrl = null;
  var pageReferrer = document.referrer || "";
  var scrollSeen = {};
  var early = []; // calls made before init(), replayed by it

  function beforeInit(name, args) {
    if (config) return false;
    early.push([name].concat(Array.prototype.slice.call(args)));
    return true;
  }

  // "granted" or "denied" once the visitor decided; before that, "pending" when the source
  // requires consent, else "granted". A refusal always stops tracking.
  function consentState() {
    var decided = store.get("consent");
    if (decided === "granted" || decided === "denied") return decided;
    return config && config.requireConsent ? "pending" : "granted";
  }

  function anonymousId() {
    var id = store.get("anonymous_id");
    if (!id) {
      id = uuid();
      store.set("anonymous_id", id);
    }
    return id;
  }

  function userId() {
    return store.get("user_id") || null;
  }

  function distinctId() {
    return userId() || anonymousId();
  }

  function parseCampaign(search) {
    var campaign = {};
    var params = (search || "").replace(/^\?/, "").split("&");
    for (var i = 0; i < params.length; i++) {
      var pair = params[i].split("=");
      var m = /^utm_(source|medium|campaign|term|content)$/.exec(pair[0]);
      if (m && pair[1]) {
        try {
          campaign[m[1]] = decodeURIComponent(pair[1].replace(/\+/g, " "));
        } catch (e) {
          campaign[m[1]] = pair[1];
        }
      }
    }
    return campaign;
  }

  /* The session: an id that lasts until `sessionTimeout` minutes pass without an event. It
   * keeps where the visit came from (landing page, referrer, UTM), sent with every event. */
  function session() {
    var raw = store.get("session");
    var s = null;
    try {
      s = raw ? JSON.parse(raw) : null;
    } catch (e) {
      s = null;
    }
    var t = now();
    var campaign = parseCampaign(window.location.search);
    var hasCampaign = false;
    for (var k in campaign) hasCampaign = true;
    // A new campaign in the URL starts a new visit, as the server's sessionization does.
    var newCampaign =
      s && campaign.campaign && campaign.campaign !== (s.campaign || {}).campaign;
    if (!s || !s.id || t - s.last > config.sessionTimeout * 60000 || newCampaign) {
      s = {
        id: uuid(),
        start: t,
        landing_page: window.location.href,
        referrer: pageReferrer,
        campaign: campaign,
      };
    } else if (hasCampaign) {
      s.campaign = campaign;
    }
    s.last = t;
    store.set("session", JSON.stringify(s));
    return s;
  }

  function context(s) {
    var loc = window.location;
    var scr = window.screen || {};
    var ctx = {
      page: {
        url: loc.href,
        path: loc.pathname,
        title: document.title,
        referrer: pageReferrer,
        search: loc.search,
      },
      referrer: { url: s.referrer },
      landing_page: s.landing_page,
      user_agent: navigator.userAgent,
      locale: navigator.language || "",
      screen: { width: scr.width, height: scr.height, density: window.devicePixelRatio || 1 },
      library: { name: "cdp.js", version: VERSION },
    };
    try {
      ctx.timezone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (e) {
      /* old browser without Intl */
    }
    for (var k in s.campaign) {
      ctx.campaign = s.campaign;
      break;
    }
    return ctx;
  }

  // Fields every call carries: who, when, which visit, a message id made once (retries of
  // the same message are deduplicated by the server, so they never double-count).
  function base(s) {
    return {
      distinct_id: distinctId(),
      message_id: uuid(),
      timestamp: new Date().toISOString(),
      session_id: s.id,
      context: context(s),
    };
  }

  function enqueue(kind, body) {
    var state = consentState();
    if (state === "denied") return;
    if (pending.length >= MAX_PENDING) pending.splice(inFlight, 1); // drop the oldest unsent
    pending.push({ kind: kind, body: body, attempts: 0 });
    if (state !== "granted") return;
    var tracked = 0;
    for (var i = inFlight; i < pending.length; i++) if (pending[i].kind === "track") tracked++;
    if (kind !== "track" || tracked >= config.batchSize) schedule(0);
    else schedule(config.flushInterval);
  }

  function schedule(delay) {
    if (retryTimer) return; // a retry is already planned
    if (flushTimer && delay > 0) return;
    clearTimeout(flushTimer);
    flushTimer = setTimeout(function () {
      flushTimer = null;
      flush();
    }, delay);
  }

  // The next request: consecutive track calls go together as one batch; identify and group
  // calls go alone, in order, so the server sees them where they happened.
  function nextChunk(from) {
    if (from >= pending.length) return [];
    if (pending[from].kind !== "track") return [pending[from]];
    var chunk = [];
    for (var i = from; i < pending.length && chunk.length < config.batchSize; i++) {
      if (pending[i].kind !== "track") break;
      chunk.push(pending[i]);
    }
    return chunk;
  }

  var PATHS = {
    track: "/api/track",
    identify: "/api/identify",
    group: "/api/groups",
    consent: "/api/consent",
  };

  // Bodies are text/plain with the write key inside: a CORS "simple" request, so there is no
  // preflight, and the same body works for fetch(keepalive) and sendBeacon (no headers).
  function request(chunk) {
    var body;
    if (chunk[0].kind === "track") {
      var events = [];
      for (var i = 0; i < chunk.length; i++) events.push(chunk[i].body);
      body = { writeKey: config.writeKey, sent_at: new Date().toISOString(), batch: events };
    } else {
      body = { writeKey: config.writeKey, sent_at: new Date().toISOString() };
      assign(body, chunk[0].body);
    }
    return { url: config.host + PATHS[chunk[0].kind], data: JSON.stringify(body) };
  }

  function flush() {
    if (!config || consentState() !== "granted" || inFlight) return;
    var chunk = nextChunk(0);
    if (!chunk.length) return;
    var req = request(chunk);
    inFlight = chunk.length;
    var done = function (retry) {
      inFlight = 0;
      if (retry) {
        for (var i = 0; i < chunk.length; i++) chunk[i].attempts++;
        if (chunk[0].attempts < MAX_ATTEMPTS) return backoff();
        warn("giving up on " + chunk.length + " event(s) after " + MAX_ATTEMPTS + " attempts");
      }
      retryAttempt = 0;
      pending.splice(0, chunk.length);
      if (!pending.length) return;
      var full = nextChunk(0).length >= config.batchSize || pending[0].kind !== "track";
      schedule(full ? 0 : config.flushInterval);
    };
    if (typeof window.fetch !== "function") return sendBeacon(req) ? done(false) : done(true);
    window
      .fetch(req.url, {
        method: "POST",
        body: req.data,
        headers: { "Content-Type": "text/plain" },
        keepalive: req.data.length < KEEPALIVE_LIMIT,
        credentials: "omit",
        mode: "cors",
      })
      .then(
        function (response) {
          var s = response.status;
          if (s >= 500 || s === 429) return done(true);
          if (s >= 400) warn("the server refused " + chunk.length + " event(s): HTTP " + s);
          done(false);
        },
        function () {
          done(true); // network error, offline, or blocked
        }
      );
  }

  function backoff() {
    var delay = Math.min(60000, 1000 * Math.pow(2, retryAttempt)) * (0.75 + Math.random() / 2);
    retryAttempt++;
    clearTimeout(flushTimer);
    flushTimer = null;
    retryTimer = setTimeout(function () {
      retryTimer = null;
      flush();
    }, delay);
  }

  function sendBeacon(req) {
    try {
      return !!(navigator.sendBeacon && navigator.sendBeacon(req.url, req.data));
    } catch (e) {
      return false;
    }
  }

  // The page is being hidden or left: hand everything not already in flight to the browser,
  // which delivers beacons even after the page is gone. There is no answer to retry on, but a
  // fetch still in flight that fails later is retried with the same message ids.
  function flushOnHide() {
    if (!config || consentState() !== "granted") return;
    clearTimeout(flushTimer);
    flushTimer = null;
    clearTimeout(retryTimer);
    retryTimer = null;
    var from = inFlight;
    while (from < pending.length) {
      var chunk = nextChunk(from);
      var req = request(chunk);
      if (!sendBeacon(req)) {
        if (typeof window.fetch !== "function") break;
        window
          .fetch(req.url, { method: "POST", body: req.data, keepalive: true, credentials: "omit" })
          ["catch"](function () {}); // nothing to do: the page is going away
      }
      pending.splice(from, chunk.length);
    }
  }

  // --- auto-events ---------------------------------------------------------------------------

  function autoPage() {
    if (window.location.href === lastPageUrl) return; // replaceState of the same URL, a hash
    if (lastPageUrl !== null) pageReferrer = lastPageUrl; // a single-page-app navigation
    api.page();
  }

  function watchHistory() {
    var wrap = function (name) {
      var original = window.history[name];
      if (typeof original !== "function") return;
      window.history[name] = function () {
        var result = original.apply(this, arguments);
        setTimeout(autoPage, 0); // after the app has updated the title
        return result;
      };
    };
    wrap("pushState");
    wrap("replaceState");
    window.addEventListener("popstate", function () {
      setTimeout(autoPage, 0);
    });
  }

  function watchClicks() {
    document.addEventListener(
      "click",
      function (event) {
        var el = event.target;
        if (!el || !el.closest) return;
        el = el.closest(CLICKABLE);
        if (!el || el.closest("[data-cdp-ignore]")) return;
        var tag = el.tagName.toLowerCase();
        // The value of a form field may be private: only buttons' labels are captured.
        var text =
          tag === "input" ? (/^(submit|button|reset)$/.test(el.type) ? el.value : "") :
          tag === "select" ? "" : el.innerText || el.textContent;
        var props = {
          element_tag: tag,
          element_text: cleanText(text),
          element_id: el.id || "",
          element_classes: cleanText(typeof el.className === "string" ? el.className : "")
            .split(" ")
            .filter(Boolean),
        };
        var href = el.getAttribute("href");
        if (href) props.element_href = el.href || href;
        api.track("element_click", props);
      },
      true
    );
  }

  function watchScroll() {
    var ticking = false;
    var check = function () {
      ticking = false;
      var doc = document.documentElement;
      var height = Math.max(doc.scrollHeight, document.body ? document.body.scrollHeight : 0);
      if (height <= 0) return;
      var bottom = (window.pageYOffset || doc.scrollTop) + window.innerHeight;
      var depth = bottom >= height - 2 ? 100 : (bottom / height) * 100;
      for (var i = 0; i < SCROLL_MILESTONES.length; i++) {
        var m = SCROLL_MILESTONES[i];
        if (depth >= m && !scrollSeen[m]) {
          scrollSeen[m] = true;
          api.track("page_scroll", { depth: m });
        }
      }
    };
    window.addEventListener(
      "scroll",
      function () {
        if (!ticking) {
          ticking = true;
          if (window.requestAnimationFrame) window.requestAnimationFrame(check);
          else setTimeout(check, 50);
        }
      },
      { passive: true }
    );
  }

  // --- the public API ------------------------------------------------------------------------

  var api = {
    __loaded: true,
    version: VERSION,

    init: function (options) {
      options = options || {};
      if (config) return warn("init() was already called");
      if (!options.writeKey) return warn("init() needs a writeKey");
      var auto = options.autoEvents === undefined ? true : options.autoEvents;
      if (typeof auto !== "object") auto = { pageViews: !!auto, clicks: !!auto, scroll: !!auto };
      config = {
        writeKey: options.writeKey,
        host: (options.host || "").replace(/\/+$/, ""),
        batchSize: Math.max(1, Math.min(100, options.batchSize || 20)),
        flushInterval: Math.max(
          0,
          options.flushInterval === undefined ? 2000 : options.flushInterval
        ),
        requireConsent: !!options.requireConsent,
        sessionTimeout: options.sessionTimeout || 30,
        auto: auto,
      };
      var decided = store.get("consent");
      if (decided === "denied" || (config.requireConsent && decided !== "granted")) {
        // Until consent, ids live in memory only: nothing is written to the visitor's device.
        persistent = false;
        memory = decided ? { consent: decided } : {};
      }
      document.addEventListener("visibilitychange", function () {
        if (document.visibilityState === "hidden") flushOnHide();
      });
      window.addEventListener("pagehide", flushOnHide);
      window.addEventListener("online", function () {
        clearTimeout(retryTimer); // back online: don't wait out the backoff
        retryTimer = null;
        schedule(0);
      });
      var calls = early;
      early = [];
      for (var c = 0; c < calls.length; c++) api.push(calls[c]);
      if (auto.pageViews !== false) {
        watchHistory();
        autoPage();
      }
      if (auto.clicks !== false) watchClicks();
      if (auto.scroll !== false) watchScroll();
    },

    track: function (eventName, properties, options) {
      if (beforeInit("track", arguments)) return;
      if (!eventName) return warn("track() needs an event name");
      if (consentState() === "denied") return;
      var body = base(session());
      body.event_name = String(eventName);
      body.properties = assign({}, properties);
      if (options && options.category) body.category = options.category;
      enqueue("track", body);
    },

    page: function (properties) {
      if (beforeInit("page", arguments)) return;
      lastPageUrl = window.location.href;
      scrollSeen = {};
      api.track("page_view", properties, { category: "page" });
    },

    identify: function (id, traits) {
      if (beforeInit("identify", arguments)) return;
      if (id === undefined || id === null || id === "") return warn("identify() needs a user id");
      if (consentState() === "denied") return;
      var body = base(session());
      body.distinct_id = String(id);
      body.anonymous_id = anonymousId();
      body.traits = assign({}, traits);
      store.set("user_id", String(id));
      enqueue("identify", body);
    },

    group: function (groupKey, groupId, action) {
      if (beforeInit("group", arguments)) return;
      enqueue("group", {
        distinct_id: distinctId(),
        action: action || "add",
        group_key: String(groupKey),
        group_id: String(groupId),
        // Resent unchanged on a retry: the server applies it once per message id.
        message_id: uuid(),
      });
    },

    // Log out: forget the user, start a new anonymous id and a new session.
    reset: function () {
      store.remove("user_id");
      store.remove("session");
      store.set("anonymous_id", uuid());
    },

    // cdp.consent(true|false), or the visitor's decision per consent type:
    // cdp.consent({marketing: true, analytics: false}). The decision goes to the server
    // (POST /api/consent) before anything held, so a source that requires consent stores the
    // events that follow. A decision that grants nothing stops tracking as consent(false) does.
    consent: function (decision) {
      if (beforeInit("consent", arguments)) return;
      var perType = decision !== null && typeof decision === "object";
      var granted = !!decision;
      if (perType) {
        granted = false;
        for (var k in decision) if (decision[k] === true || decision[k] === "granted") granted = true;
      }
      var body = { distinct_id: distinctId(), library: "cdp.js" };
      if (perType) body.consents = assign({}, decision);
      else body.all = granted;
      if (granted) {
        store.set("consent", "granted");
        store.persistAll();
        // First in line: ahead of every call held while waiting for the decision.
        pending.splice(inFlight, 0, { kind: "consent", body: body, attempts: 0 });
        schedule(0);
      } else {
        pending = pending.slice(0, inFlight);
        if (perType && store.get("user_id")) {
          // A known visitor withdrawing: tell the server, then forget them.
          var req = request([{ kind: "consent", body: body }]);
          if (!sendBeacon(req) && typeof window.fetch === "function") {
            window
              .fetch(req.url, { method: "POST", body: req.data, keepalive: true, credentials: "omit" })
              ["catch"](function () {});
          }
        }
        store.remove("anonymous_id");
        store.remove("user_id");
        store.remove("session");
        persistent = false;
        memory = { consent: "denied" };
        store.write("consent", "denied"); // the decision itself is remembered
      }
    },

    flush: function () {
      schedule(0);
    },

    anonymousId: function () {
      return anonymousId();
    },
    userId: userId,
    sessionId: function () {
      return config ? session().id : null;
    },

    // Queue-style calls: cdp.push(["track", "signed_up", {plan: "pro"}]).
    push: function (call) {
      if (call && typeof api[call[0]] === "function" && call[0] !== "push") {
        api[call[0]].apply(api, Array.prototype.slice.call(call, 1));
      }
    },
  };

  window.cdp = api;
  if (existing && existing.length) {
    for (var i = 0; i < existing.length; i++) api.push(existing[i]);
  }
})(window, document);
