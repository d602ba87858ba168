/*! strata.js | Strata's web tag | plain ES2017, no dependencies | docs/tag.md */
(function (w, d) {
  'use strict';
  var VERSION = '1.0.0';
  var LIB = { name: 'strata.js', version: VERSION };
  var METHODS = ['init', 'send', 'page', 'identify', 'consent', 'getid', 'flush', 'decide', 'impression'];
  var existing = w.strata;
  if (existing && existing.loaded) return; // loaded twice: keep the first

  // Where this file came from: the default host for sending.
  var script = d.currentScript || (function () {
    var all = d.getElementsByTagName('script');
    for (var i = all.length - 1; i >= 0; i--) if (/\/strata(\.min)?\.js(\?|$)/.test(all[i].src)) return all[i];
    return null;
  })();
  var scriptOrigin = '';
  try { scriptOrigin = script && script.src ? new URL(script.src, location.href).origin : ''; } catch (e) { /* keep '' */ }

  var cfg = {
    writeKey: '',
    host: scriptOrigin || location.origin,
    stream: null,            // null: the write key's stream
    cookie: 'seerid',
    sessionCookie: 'seerses',
    cookieDomain: '',        // '' = host-only cookie
    cookieExpiry: 365,       // days
    sessionMinutes: 30,
    consentRequired: false,
    consentPurpose: '',      // '' = any granted purpose allows collection
    visitorId: '',
    flushInterval: 1000,     // ms
    batchSize: 20,
    maxTries: 5,
    decideTimeout: 1000,     // ms the personalized elements wait for a decision
    autoImpressions: true    // an element shown with its variant sends the impression
  };
  var ready = false;         // init() has been called
  var held = [];             // messages made before init() or before consent
  var queue = [];            // messages waiting for the next flush
  var waiting = [];          // batches waiting for a retry
  var idWaiters = [];        // getid(callback)s waiting for an id
  var timer = 0;
  var purposes = null;       // {purpose: bool} once consent() was called (or stored)
  var userId = null;
  var decision = null;       // the last answer of POST /api/v1/decide
  var settled = false;       // a decision arrived, or the wait for it timed out
  var deciding = [];         // decide() calls waiting for init()
  var viewed = {};           // experiences whose impression this page sent

  // ---- small helpers -------------------------------------------------------------------
  function uuid() {
    var b = new Uint8Array(16);
    (w.crypto || w.msCrypto).getRandomValues(b);
    b[6] = (b[6] & 15) | 64;
    b[8] = (b[8] & 63) | 128;
    var h = '';
    for (var i = 0; i < 16; i++) h += (b[i] + 256).toString(16).slice(1) + ([3, 5, 7, 9].indexOf(i) >= 0 ? '-' : '');
    return h;
  }
  function isObj(v) { return v !== null && typeof v === 'object' && !Array.isArray(v); }
  function assign(target) {
    for (var i = 1; i < arguments.length; i++) {
      var src = arguments[i];
      if (isObj(src)) for (var k in src) if (Object.prototype.hasOwnProperty.call(src, k)) target[k] = src[k];
    }
    return target;
  }
  function getCookie(name) {
    var parts = d.cookie ? d.cookie.split('; ') : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf('=');
      if (parts[i].slice(0, eq) === name) {
        try { return decodeURIComponent(parts[i].slice(eq + 1)); } catch (e) { return parts[i].slice(eq + 1); }
      }
    }
    return null;
  }
  function setCookie(name, value, seconds) {
    var c = name + '=' + encodeURIComponent(value) + '; path=/; SameSite=Lax; max-age=' + Math.round(seconds);
    if (cfg.cookieDomain) c += '; domain=' + cfg.cookieDomain;
    if (location.protocol === 'https:') c += '; Secure';
    d.cookie = c;
  }
  function store(key, value) {
    try {
      if (value === null) w.localStorage.removeItem(key);
      else w.localStorage.setItem(key, JSON.stringify(value));
    } catch (e) { /* storage may be blocked */ }
  }
  function load(key) {
    try { return JSON.parse(w.localStorage.getItem(key)); } catch (e) { return null; }
  }
  function utm() {
    var out = {};
    try {
      new URL(location.href).searchParams.forEach(function (v, k) { if (/^utm_/.test(k)) out[k] = v; });
    } catch (e) { /* no URL API */ }
    return out;
  }
  function device() {
    var ua = navigator.userAgent || '';
    if (/iPad|Tablet|PlayBook|Silk|(Android(?!.*Mobile))/i.test(ua)) return 'tablet';
    var uad = navigator.userAgentData;
    if ((uad && uad.mobile) || /Mobi|iPhone|iPod|Android|BlackBerry|IEMobile|Opera Mini/i.test(ua)) return 'mobile';
    return 'desktop';
  }

  // ---- consent and identity ------------------------------------------------------------
  function consentKey() { return cfg.cookie + '_consent'; }
  function loadConsent() {
    var saved = load('strata_consent');
    if (!isObj(saved)) {
      try { saved = JSON.parse(getCookie(consentKey())); } catch (e) { saved = null; }
    }
    purposes = isObj(saved) ? saved : null;
  }
  function allowed() {
    if (!cfg.consentRequired) return true;
    if (!purposes) return false;
    if (cfg.consentPurpose) return purposes[cfg.consentPurpose] === true;
    for (var k in purposes) if (purposes[k] === true) return true;
    return false;
  }
  // The visitor id: the one the page handed over, else the first-party cookie (set here when
  // collection is allowed). null while consent is required and not given.
  function visitorId() {
    if (cfg.visitorId) return String(cfg.visitorId);
    if (!allowed()) return null;
    var id = getCookie(cfg.cookie);
    if (!id) id = uuid();
    setCookie(cfg.cookie, id, cfg.cookieExpiry * 86400); // (re)set: keeps the expiry rolling
    return id;
  }
  // True when this hit starts a session (no session cookie, or it timed out).
  function sessionStart() {
    var started = !getCookie(cfg.sessionCookie);
    setCookie(cfg.sessionCookie, '1', cfg.sessionMinutes * 60);
    return started;
  }
  function tellIdWaiters() {
    var id = visitorId();
    if (!id) return;
    var fns = idWaiters;
    idWaiters = [];
    fns.forEach(function (fn) { try { fn(id); } catch (e) { /* the page's bug */ } });
  }

  // ---- messages ------------------------------------------------------------------------
  function context() {
    var ctx = {
      library: LIB,
      page: {
        url: location.href, path: location.pathname, search: location.search,
        referrer: d.referrer, title: d.title
      },
      userAgent: navigator.userAgent,
      locale: navigator.language,
      screen: { width: screen.width, height: screen.height }
    };
    try { ctx.timezone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { /* old */ }
    var u = utm();
    var campaign = {};
    for (var k in u) campaign[k === 'utm_campaign' ? 'name' : k.slice(4)] = u[k];
    if (Object.keys(campaign).length) ctx.campaign = campaign;
    return ctx;
  }
  // A message is made when the call happens (its timestamp), and gets its ids when it can be
  // sent: at once, or after init() / consent().
  function make(type, stream, body) {
    var msg = assign({ type: type, messageId: uuid(), timestamp: new Date().toISOString(), context: context() }, body);
    var item = { stream: stream === undefined ? null : stream, msg: msg };
    if (ready && allowed()) enqueue(item);
    else if (held.length < 100) held.push(item);
  }
  function enqueue(item) {
    var msg = item.msg;
    var id = visitorId();
    if (!id) return;
    msg.anonymousId = id;
    if (userId && msg.userId === undefined) msg.userId = userId;
    if (purposes) msg.context.consent = { categoryPreferences: purposes };
    var props = msg.type === 'identify' ? null : msg.properties;
    if (props && props._uid === undefined) props._uid = id;
    // The first page/track message after 30 idle minutes starts a session (kept rolling).
    if (props && sessionStart()) props._sesstart = 1;
    queue.push({ stream: item.stream === null ? cfg.stream : item.stream, msg: msg });
    if (queue.length >= cfg.batchSize) flush();
    else if (!timer) timer = setTimeout(flush, cfg.flushInterval);
  }
  function release() {
    var items = held;
    held = [];
    items.forEach(enqueue);
  }

  // ---- transport -----------------------------------------------------------------------
  // Events for the write key's stream go to the Segment-spec batch endpoint; events for a
  // named stream go to /collect/json/{stream}. The write key rides in the query string (and
  // the body) so that sendBeacon, which cannot set headers, works the same way.
  function request(batch) {
    var now = new Date().toISOString();
    var msgs = batch.msgs.map(function (m) { m.sentAt = now; return m; });
    var key = encodeURIComponent(cfg.writeKey);
    if (batch.stream) {
      return { url: cfg.host + '/collect/json/' + encodeURIComponent(batch.stream) + '?writeKey=' + key, body: JSON.stringify(msgs) };
    }
    return { url: cfg.host + '/v1/batch?writeKey=' + key, body: JSON.stringify({ batch: msgs, sentAt: now, writeKey: cfg.writeKey }) };
  }
  // Messages grouped by stream, at most batchSize and about maxBytes of JSON per request
  // (Strata takes 500 KB per request; a beacon, 64 KB).
  function batches(items, maxBytes) {
    var by = {};
    var out = [];
    items.forEach(function (it) {
      var k = it.stream || '';
      var size = JSON.stringify(it.msg).length;
      var b = by[k];
      if (!b || b.msgs.length >= cfg.batchSize || (b.bytes + size > maxBytes && b.msgs.length)) {
        out.push(b = by[k] = { stream: it.stream, msgs: [], tries: 0, bytes: 0 });
      }
      b.msgs.push(it.msg);
      b.bytes += size;
    });
    return out;
  }
  function flush() {
    clearTimeout(timer);
    timer = 0;
    var items = queue;
    queue = [];
    batches(items, 400000).forEach(post);
  }
  function retryDelay(batch, res) {
    var after = res ? parseInt(res.headers.get('Retry-After'), 10) : NaN;
    if (after >= 0) return after * 1000;
    var base = Math.min(30000, 500 * Math.pow(2, batch.tries));
    return base / 2 + Math.random() * base / 2; // exponential backoff with jitter
  }
  function post(batch) {
    batch.tries++;
    var r = request(batch);
    var retry = function (res) {
      if (batch.tries >= cfg.maxTries) return; // bounded: give up
      waiting.push(batch);
      batch.timer = setTimeout(function () {
        waiting.splice(waiting.indexOf(batch), 1);
        post(batch);
      }, retryDelay(batch, res));
    };
    fetch(r.url, {
      method: 'POST',
      body: r.body,
      headers: { 'Content-Type': 'text/plain' }, // a "simple" request: no CORS preflight
      credentials: 'omit',
      keepalive: batch.tries === 1 && r.body.length < 60000 // survives a page unload
    }).then(function (res) {
      if (res.status === 429 || res.status >= 500) retry(res);
      // 2xx: done; any other 4xx will not get better by retrying.
    }, function () { retry(null); });
  }
  // The page is going away: hand everything left to sendBeacon (the server drops duplicates by
  // messageId, so a batch that was also in flight is stored once).
  function beacon() {
    clearTimeout(timer);
    timer = 0;
    var left = waiting.splice(0);
    left.forEach(function (b) { clearTimeout(b.timer); });
    left = left.concat(batches(queue.splice(0), 60000));
    left.forEach(function (b) {
      var r = request(b);
      var sent = false;
      try { sent = navigator.sendBeacon && navigator.sendBeacon(r.url, r.body); } catch (e) { /* too big */ }
      if (!sent) {
        fetch(r.url, { method: 'POST', body: r.body, headers: { 'Content-Type': 'text/plain' }, credentials: 'omit', keepalive: true })
          .catch(function () { /* the page is gone */ });
      }
    });
  }
  w.addEventListener('pagehide', beacon);
  d.addEventListener('visibilitychange', function () { if (d.visibilityState === 'hidden') beacon(); });

  // ---- decisions and personalized elements (docs/tag.md, "Experiences") ---------------
  function decisionFor(key) {
    var list = (decision && decision.decisions) || [];
    for (var i = 0; i < list.length; i++) if (list[i].experience === key || list[i].experience_uid === key) return list[i];
    return null;
  }
  function each(root, selector, fn) { Array.prototype.forEach.call(root.querySelectorAll(selector), fn); }
  function shown(el) { return el.hasAttribute('data-strata-shown'); }
  function reveal(el) { el.setAttribute('data-strata-shown', ''); }
  // An element waiting for its decision: show its variant's child (data-strata-variant = the
  // variant key or uid, the others hidden) and fill data-strata-content="field" from the
  // variant's content. An element shown already (timed out) is never changed: no flicker.
  function render(el) {
    if (shown(el)) return;
    var dec = decisionFor(el.getAttribute('data-strata-experience'));
    if (dec && dec.variant) {
      var match = function (o) { var v = o.getAttribute('data-strata-variant'); return v === dec.variant || v === dec.variant_uid; };
      var options = el.querySelectorAll('[data-strata-variant]');
      if (Array.prototype.some.call(options, match)) each(el, '[data-strata-variant]', function (o) { o.hidden = !match(o); });
      each(el, '[data-strata-content]', function (f) {
        var v = isObj(dec.content) ? dec.content[f.getAttribute('data-strata-content')] : undefined;
        if (v !== undefined && v !== null) f.textContent = String(v);
      });
    }
    reveal(el);
    if (dec && cfg.autoImpressions) api.impression(dec.experience);
  }
  function renderAll() { if (settled) each(d, '[data-strata-experience]', render); }
  function settle(answer) {
    if (answer) decision = answer;
    settled = true;
    renderAll();
  }
  function runDecide() {
    var calls = deciding;
    deciding = [];
    calls.forEach(function (call) {
      var opts = call.options;
      var id = visitorId();
      var timer = setTimeout(function () { settle(null); }, cfg.decideTimeout);
      var done = function (answer) { clearTimeout(timer); settle(answer); call.resolve(answer); };
      if (!id) return done(null); // no consent: base content
      var body = { writeKey: cfg.writeKey, uid: id };
      ['identifiers', 'attributes', 'experiences'].forEach(function (k) { if (opts[k]) body[k] = opts[k]; });
      fetch(cfg.host + '/api/v1/decide', {
        method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'text/plain' }, credentials: 'omit'
      }).then(function (res) { return res.ok ? res.json() : null; })
        .then(done, function () { done(null); });
    });
  }
  // An element that waited past its CSS timeout (the anti-flicker style) shows its base.
  d.addEventListener('animationend', function (e) { if (e.animationName === 'strata-reveal') reveal(e.target); }, true);
  if (d.readyState === 'loading') d.addEventListener('DOMContentLoaded', renderAll);

  // ---- the public API ------------------------------------------------------------------
  var api = {
    loaded: true,
    version: VERSION,
    init: function (options) {
      assign(cfg, options);
      if (cfg.host) cfg.host = String(cfg.host).replace(/\/+$/, '');
      if (cfg.host && !/^https?:\/\//.test(cfg.host)) cfg.host = location.protocol + '//' + cfg.host.replace(/^\/\//, '');
      loadConsent();
      if (!userId && allowed()) userId = load('strata_user');
      ready = true;
      if (allowed()) { release(); tellIdWaiters(); }
      if (deciding.length) runDecide();
      return api;
    },
    // decide(options?, callback?) -> Promise of the visitor's decisions (null on failure);
    // shows the personalized elements when it arrives.
    decide: function (options, callback) {
      if (typeof options === 'function') { callback = options; options = null; }
      var p = new Promise(function (resolve) {
        deciding.push({ options: options || {}, resolve: resolve });
        if (ready) runDecide();
      });
      if (typeof callback === 'function') p.then(callback);
      return p;
    },
    // variant(key) -> the variant key the last decision gave this experience (null if none).
    variant: function (key) {
      var dec = decisionFor(key);
      return dec ? dec.variant : null;
    },
    // impression(key): the visitor saw their variant (Segment's "Experiment Viewed"), sent once
    // per page and only when the decision counts them in the experience.
    impression: function (key) {
      var dec = decisionFor(key);
      if (dec && dec.variant && (dec.in_experiment || dec.reason === 'TARGETING_MATCH') && !viewed[dec.experience]) {
        viewed[dec.experience] = 1;
        api.send({ event: 'Experiment Viewed', experiment_id: dec.experience, variation_id: dec.variant });
      }
      return api;
    },
    // send(data) or send(stream, data): a custom event (Segment `track`).
    send: function (stream, data) {
      if (isObj(stream) && data === undefined) { data = stream; stream = undefined; }
      var props = assign({}, data);
      var name = props.event || props._e || 'send';
      make('track', stream, { event: String(name), properties: props });
      return api;
    },
    // page(data?): a page view with the fields the Lytics tag adds.
    page: function (data) {
      var screenSize = screen.width + 'x' + screen.height;
      var dev = device();
      var props = assign({
        url: location.href,
        path: location.pathname,
        title: d.title,
        _e: 'pv',
        _ref: d.referrer,
        _tz: -new Date().getTimezoneOffset() / 60,
        _ul: navigator.language,
        _sz: screenSize,
        _device: dev,
        _ts: Date.now(),
        _v: VERSION
      }, utm(), data);
      props[dev === 'desktop' ? '_nmob' : '_mob'] = 't';
      make('page', undefined, { name: props.name || d.title, properties: props });
      return api;
    },
    // identify(data): traits of the visitor; `userId` (or `user_id`) ties them to a known user.
    identify: function (data) {
      var traits = assign({}, data);
      var uid = traits.userId !== undefined ? traits.userId : traits.user_id;
      delete traits.userId;
      var body = { traits: traits };
      if (uid !== undefined && uid !== null && uid !== '') {
        userId = body.userId = String(uid);
        if (allowed()) store('strata_user', userId);
      }
      make('identify', undefined, body);
      return api;
    },
    // consent(['analytics', ...]) or consent({analytics: true, ads: false}).
    consent: function (granted) {
      var map = {};
      if (Array.isArray(granted)) granted.forEach(function (p) { map[p] = true; });
      else if (isObj(granted)) for (var k in granted) map[k] = granted[k] === true;
      else if (granted === true) map.all = true;
      purposes = map;
      store('strata_consent', map);
      setCookie(consentKey(), JSON.stringify(map), cfg.cookieExpiry * 86400);
      if (allowed()) {
        if (userId) store('strata_user', userId);
        make('track', undefined, { event: 'consent', properties: { purposes: map } });
        if (ready) { release(); tellIdWaiters(); }
      } else if (cfg.consentRequired) {
        // Withdrawn: forget the id and drop what was not sent.
        held = [];
        queue = [];
        setCookie(cfg.cookie, '', 0);
        setCookie(cfg.sessionCookie, '', 0);
        store('strata_user', null);
        userId = null;
      }
      return api;
    },
    // getid() -> the visitor id (null before consent); getid(fn) calls fn(id) once known.
    getid: function (fn) {
      var id = ready ? visitorId() : null;
      if (typeof fn === 'function') {
        if (id) fn(id);
        else idWaiters.push(fn);
      }
      return id;
    },
    flush: function () { flush(); return api; }
  };

  // Replay what the page queued before this file loaded: init() first, then the rest in order.
  // The stub object itself becomes the API, so references the page kept to it keep working.
  var calls = (existing && existing._q) || [];
  if (isObj(existing)) {
    delete existing._q;
    api = assign(existing, api);
  }
  w.strata = api;
  calls.filter(function (c) { return c[0] === 'init'; })
    .concat(calls.filter(function (c) { return c[0] !== 'init'; }))
    .forEach(function (c) {
      if (METHODS.indexOf(c[0]) >= 0) api[c[0]].apply(api, c.slice(1));
    });
})(window, document);
