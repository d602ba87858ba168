/* The experience editor: type, variants (a JSON content editor with a live preview), the split
   as a live bar, who enters (audiences with their sizes), goals picked from the events Strata
   has seen (with their counts), and what would keep the experience from running.

   The page hands over the experience in the management API's input shape ("editor-config")
   and a catalog (audiences, goals, seen events and streams: "editor-catalog"). Every change
   is posted (debounced) to the page's dry run (experiences:check), which answers what would
   refuse the save, what would block activation (each linked to the input that fixes it) and
   whether the save would start a new phase of a running experience, which has to be confirmed
   before saving. Saving posts or patches /api/v1/experiences/ with the session. */
(function () {
  "use strict";

  var catalog, config, state, existing, timer = null, lastCheck = null, seq = 0;
  var COLORS = ["#3b5a91", "#e07a1f", "#1e9e6a", "#b0306b", "#6d5bd0", "#0e8fa8"];

  // ---------------------------------------------------------------------- small helpers

  function $(id) { return document.getElementById(id); }

  var el = window.Strata.el;  // static/strata/dom.js

  function number(n) { return Number(n).toLocaleString("en-US"); }
  function pct(share) { return (Math.round(share * 1000) / 10) + " %"; }

  function slugify(text) {
    return text.toLowerCase().normalize("NFKD").replace(/[\u0300-\u036f]/g, "")
      .replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 100);
  }

  function csrf() { return document.querySelector("input[name=csrfmiddlewaretoken]").value; }

  function send(url, method, body) {
    return fetch(url, {method: method, credentials: "same-origin",
                       headers: {"Content-Type": "application/json", "Accept": "application/json",
                                 "X-CSRFToken": csrf()},
                       body: JSON.stringify(body)})
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          return {ok: response.ok, status: response.status, data: data};
        });
      });
  }

  function kind() {
    if (state.type === "segmented") return "segmented";
    return state.distribution === "bandit" ? "bandit" : "ab";
  }

  function isJson() { return state.value_type === "json"; }

  function audience(slug) {
    for (var i = 0; i < catalog.audiences.length; i++) if (catalog.audiences[i].slug === slug) return catalog.audiences[i];
    return null;
  }

  function sizeText(a) {
    return a.size === null || a.size === undefined ? "size not computed yet" : number(a.size) + " profiles";
  }

  // ---------------------------------------------------------------------- the split

  function shares() {
    var n = state.variants.length;
    if (!n) return [];
    if (kind() === "ab" && state.distribution === "custom") {
      return state.variants.map(function (v) { return Number(v.weight) || 0; });
    }
    return state.variants.map(function () { return 1 / n; });
  }

  function drawSplit() {
    var bar = $("split-bar"), note = $("split-note"), k = kind();
    $("split").hidden = k === "segmented";
    $("e-distribution").hidden = k !== "ab";
    $("e-distribution").value = state.distribution === "custom" ? "custom" : "equal";
    bar.textContent = "";
    var given = shares(), total = given.reduce(function (a, b) { return a + b; }, 0);
    state.variants.forEach(function (v, i) {
      var share = given[i] || 0;
      var segment = el("div", {className: "split-segment", title: (v.name || v.key) + ": " + pct(share), "data-variant": v.key},
                       [el("span", {text: (v.name || v.key) + " " + pct(share)})]);
      segment.style.flexGrow = String(Math.max(share, 0));  // CSSOM, not a style attribute (CSP)
      segment.style.background = COLORS[i % COLORS.length];
      bar.appendChild(segment);
    });
    if (k === "bandit") note.textContent = "Starts with an equal split, then reweights towards what converts.";
    else if (state.distribution === "custom") {
      var off = Math.abs(total - 1) > 1e-9;
      note.textContent = "Weights add up to " + pct(total) + (off ? ": they must add up to 100 %." : ".");
      note.className = off ? "small bad" : "muted small";
    } else { note.textContent = "Each variant gets the same share."; note.className = "muted small"; }
    var allocation = Number(state.traffic_allocation);
    if (k !== "segmented" && allocation < 1) {
      note.textContent += " " + pct(allocation) + " of eligible visitors enter; the rest get the base.";
    }
  }

  // ---------------------------------------------------------------------- variants

  function previewOf(v) {
    var merged = {};
    [v.value, v.content].forEach(function (part) {
      if (part && typeof part === "object" && !Array.isArray(part)) Object.keys(part).forEach(function (k) { merged[k] = part[k]; });
    });
    var title = null;
    ["headline", "title", "label", "text", "cta"].some(function (k) {
      if (typeof merged[k] === "string") { title = merged[k]; return true; }
      return false;
    });
    if (title === null) title = typeof v.value === "string" ? v.value : (v.name || v.key);
    var fields = Object.keys(merged).filter(function (k) {
      var x = merged[k];
      return (typeof x === "string" || typeof x === "number") && String(x) !== title;
    }).slice(0, 4);
    return el("div", {className: "preview", "data-testid": "variant-preview"}, [
      el("div", {className: "preview-title", text: title || "(empty)"})
    ].concat(fields.map(function (k) {
      return el("div", {className: "preview-field"}, [el("span", {className: "muted", text: k}), " " + String(merged[k])]);
    })));
  }

  function jsonEditor(v, i, name, label, hint) {
    var text = JSON.stringify(v[name] === undefined || v[name] === null ? {} : v[name], null, 2);
    var error = el("div", {className: "json-error small bad", "data-testid": "json-error"});
    var area = el("textarea", {rows: Math.min(Math.max(text.split("\n").length, 3), 12), spellcheck: "false",
                               className: "json-input", "data-field": "variants[" + i + "]." + name,
                               "data-testid": "variant-" + name, "aria-label": label + " of " + (v.key || "variant " + (i + 1))});
    area.value = text;
    area.addEventListener("input", function () {
      try {
        var parsed = JSON.parse(area.value || "{}");
        v[name] = parsed;
        v["_" + name + "_error"] = null;
        error.textContent = "";
        area.classList.remove("invalid");
      } catch (e) {
        v["_" + name + "_error"] = label + " of " + (v.key || "variant " + (i + 1)) + " is not valid JSON: " + e.message;
        error.textContent = v["_" + name + "_error"];
        area.classList.add("invalid");
      }
      refreshPreview(i);
      changed();
    });
    return el("div", {className: "json-field"}, [
      el("div", {className: "control-label", text: label}), area, error,
      hint ? el("p", {className: "hint", text: hint}) : null]);
  }

  function refreshPreview(i) {
    var box = document.querySelector(".variant-editor[data-index='" + i + "'] .preview-slot");
    if (!box) return;
    box.textContent = "";
    box.appendChild(previewOf(state.variants[i]));
  }

  function variantEditor(v, i) {
    var k = kind();
    var base = el("input", {type: "radio", name: "base", checked: v.base, "data-testid": "variant-base",
                            "data-field": "variants[" + i + "].base", on: {change: function () {
      state.variants.forEach(function (other) { other.base = other === v; });
      renderVariants(); changed();
    }}});
    var nameInput = el("input", {type: "text", value: v.name || "", maxlength: 200, placeholder: "Variant name",
                                 "data-testid": "variant-name", "aria-label": "Variant name",
                                 on: {input: function (e) {
                                   var autoKey = !v._keyTouched && !v.uid;
                                   v.name = e.target.value;
                                   if (autoKey) { v.key = slugify(v.name); keyInput.value = v.key; }
                                   drawSplit(); refreshPreview(i); changed();
                                 }}});
    var keyInput = el("input", {type: "text", value: v.key, maxlength: 100, className: "mono",
                                "data-field": "variants[" + i + "].key", "data-testid": "variant-key", "aria-label": "Variant key",
                                on: {input: function (e) { v.key = e.target.value; v._keyTouched = true; changed(); }}});
    var remove = state.variants.length > 1 ? el("button", {type: "button", className: "button small link", text: "Remove",
                                                           "data-testid": "remove-variant", on: {click: function () {
      state.variants.splice(i, 1);
      if (!state.variants.some(function (x) { return x.base; }) && state.variants.length) state.variants[0].base = true;
      renderVariants(); changed();
    }}}) : null;
    var body = [];
    if (isJson()) body.push(jsonEditor(v, i, "value", "Value (JSON)", "What decide answers for this variant."));
    else body.push(el("label", {className: "control-label", text: "Value"}),
                   el("input", {type: "text", value: typeof v.value === "string" ? v.value : "", "data-testid": "variant-value",
                                "data-field": "variants[" + i + "].value", "aria-label": "Value",
                                on: {input: function (e) { v.value = e.target.value; refreshPreview(i); changed(); }}}));
    body.push(jsonEditor(v, i, "content", "Content (JSON)", "Optional: fields for the site or CMS to render (headline, image, cta…)."));
    var side = [el("div", {className: "control-label", text: "Preview"}), el("div", {className: "preview-slot"})];
    if (k === "ab" && state.distribution === "custom") {
      side.push(el("label", {className: "control-label", text: "Weight"}),
                el("div", {className: "weight-input"}, [
                  el("input", {type: "number", min: 0, max: 100, step: "any", "data-testid": "variant-weight",
                               "data-field": "variants[" + i + "].weight", "aria-label": "Weight of " + (v.key || "variant"),
                               value: v.weight === null || v.weight === undefined ? "" : String(Math.round(v.weight * 100000) / 1000),
                               on: {input: function (e) {
                                 v.weight = e.target.value === "" ? null : Number(e.target.value) / 100;
                                 drawSplit(); changed();
                               }}}), " %"]));
    }
    if (k === "segmented" && !v.base) {
      var pick = el("select", {"data-testid": "variant-audience", "data-field": "variants[" + i + "].audience",
                               "aria-label": "Audience of " + (v.key || "variant"),
                               on: {change: function (e) { v.audience = e.target.value || null; renderVariants(); changed(); }}},
                    [el("option", {value: "", text: "Pick an audience…"})].concat(catalog.audiences.map(function (a) {
                      var o = el("option", {value: a.slug, text: a.name + " (" + sizeText(a) + ")"});
                      if (a.slug === v.audience) o.selected = true;
                      return o;
                    })));
      var chosen = audience(v.audience);
      side.push(el("label", {className: "control-label", text: "Audience"}), pick,
                chosen ? el("p", {className: "hint", "data-testid": "variant-audience-size",
                                  text: sizeText(chosen) + (chosen.api_accessible ? "" : " · not API accessible")}) : null,
                el("label", {className: "control-label", text: "Priority"}),
                el("input", {type: "number", step: 1, value: String(v.priority || 0), "aria-label": "Priority",
                             on: {input: function (e) { v.priority = parseInt(e.target.value, 10) || 0; changed(); }}}),
                el("p", {className: "hint", text: "Lower is matched first."}));
    } else if (k === "segmented") {
      side.push(el("p", {className: "hint", text: "Everyone in no variant's audience gets the base."}));
    }
    var node = el("article", {className: "variant-editor", "data-index": String(i), "data-testid": "variant-editor"}, [
      el("header", {}, [el("span", {className: "swatch", "data-series": String(i)}), nameInput, keyInput,
                        el("label", {className: "check base-pick"}, [base, " Base"]), remove]),
      el("div", {className: "variant-body"}, [el("div", {className: "variant-main"}, body),
                                              el("div", {className: "variant-side"}, side)])
    ]);
    return node;
  }

  function renderVariants() {
    var list = $("variant-list");
    list.textContent = "";
    state.variants.forEach(function (v, i) { list.appendChild(variantEditor(v, i)); refreshPreview(i); });
    $("variants-lead").textContent = kind() === "segmented"
      ? "Each variant goes to its audience (the first match by priority wins); everyone else gets the base."
      : "The base variant is what everyone gets when the experience is off, and what the others are compared with.";
    drawSplit();
  }

  // ---------------------------------------------------------------------- targeting

  function renderTargeting() {
    var segmented = kind() === "segmented";
    $("target-block").hidden = segmented;
    document.querySelector(".allocation-row").hidden = segmented;
    $("targeting-lead").textContent = segmented
      ? "Each variant's audience decides who gets it (see Variants)."
      : "Everyone, or visitors in one of the chosen audiences.";
    document.querySelectorAll("input[name=target]").forEach(function (r) { r.checked = r.value === state.target; });
    var box = $("target-audiences");
    box.textContent = "";
    box.hidden = state.target !== "audiences";
    if (!catalog.audiences.length) box.appendChild(el("p", {className: "muted", text: "This account has no audiences yet."}));
    catalog.audiences.forEach(function (a) {
      var on = state.target_audiences.indexOf(a.slug) >= 0;
      box.appendChild(el("label", {className: "check audience-pick"}, [
        el("input", {type: "checkbox", value: a.slug, checked: on, "data-testid": "target-" + a.slug, on: {change: function (e) {
          if (e.target.checked) state.target_audiences.push(a.slug);
          else state.target_audiences = state.target_audiences.filter(function (s) { return s !== a.slug; });
          changed();
        }}}),
        el("span", {}, [a.name + " ", el("span", {className: "muted small", text: sizeText(a) + (a.api_accessible ? "" : " · not API accessible")})])
      ]));
    });
    $("e-allocation").value = String(Math.round(Number(state.traffic_allocation) * 100));
  }

  // ---------------------------------------------------------------------- goals

  function goalLink(key) {
    for (var i = 0; i < state.goals.length; i++) if (state.goals[i].goal === key) return state.goals[i];
    return null;
  }

  function renderGoals() {
    var box = $("goal-list");
    box.textContent = "";
    if (!catalog.goals.length) box.appendChild(el("p", {className: "muted", text: "No goals yet: create one from a seen event below."}));
    catalog.goals.forEach(function (g) {
      var link = goalLink(g.key);
      var measure = el("input", {type: "checkbox", checked: Boolean(link), "data-testid": "goal-" + g.key, on: {change: function (e) {
        if (e.target.checked) state.goals.push({goal: g.key, primary: !state.goals.some(function (x) { return x.primary; })});
        else state.goals = state.goals.filter(function (x) { return x.goal !== g.key; });
        renderGoals(); changed();
      }}});
      var primary = el("input", {type: "radio", name: "primary-goal", checked: Boolean(link && link.primary), disabled: !link,
                                 "data-testid": "primary-" + g.key, "aria-label": "Primary goal: " + g.name, on: {change: function () {
        state.goals.forEach(function (x) { x.primary = x.goal === g.key; });
        changed();
      }}});
      box.appendChild(el("div", {className: "goal-pick" + (link ? " on" : ""), "data-goal": g.key}, [
        el("label", {className: "check"}, [measure, el("strong", {text: g.name})]),
        el("span", {className: "small"}, [el("code", {text: g.event}), " on ", g.stream ? el("code", {text: g.stream}) : "any stream"]),
        el("span", {className: "small" + (g.count ? "" : " bad"), "data-testid": "goal-count",
                    text: g.count ? number(g.count) + " events in " + catalog.days + " days" : "not seen in " + catalog.days + " days"}),
        el("label", {className: "check small"}, [primary, " primary"])
      ]));
    });
  }

  function eventTotals() {
    var totals = {}, order = [];
    catalog.events.forEach(function (row) {
      if (!(row.event in totals)) { totals[row.event] = 0; order.push(row.event); }
      totals[row.event] += row.count;
    });
    return order.map(function (name) { return {event: name, count: totals[name]}; });
  }

  function fillGoalStreams() {
    var event = $("g-event").value, streams = $("g-stream"), total = 0;
    streams.textContent = "";
    var rows = catalog.events.filter(function (row) { return row.event === event; });
    rows.forEach(function (row) { total += row.count; });
    streams.appendChild(el("option", {value: "", text: "Any stream (" + number(total) + ")"}));
    rows.forEach(function (row) { streams.appendChild(el("option", {value: row.stream, text: row.stream + " (" + number(row.count) + ")"})); });
    if (!$("g-name").dataset.touched) $("g-name").value = event ? event.replace(/[_-]+/g, " ").replace(/^./, function (c) { return c.toUpperCase(); }) : "";
  }

  function setUpNewGoal() {
    var events = $("g-event");
    var totals = eventTotals();
    if (!totals.length) events.appendChild(el("option", {value: "", text: "No events seen in " + catalog.days + " days"}));
    totals.forEach(function (row) { events.appendChild(el("option", {value: row.event, text: row.event + " (" + number(row.count) + ")"})); });
    events.addEventListener("change", fillGoalStreams);
    $("g-name").addEventListener("input", function () { $("g-name").dataset.touched = "1"; });
    fillGoalStreams();
    if (!config.can_create_goals) {
      document.querySelector(".new-goal-form").hidden = true;
      $("goal-permission").hidden = false;
    }
    $("create-goal").addEventListener("click", function () {
      var name = $("g-name").value.trim(), event = $("g-event").value;
      var body = {key: slugify(name || event).slice(0, 100), name: name || event, event: event, stream: $("g-stream").value};
      showProblems($("goal-problems"), []);
      send(config.api.goals, "POST", body).then(function (answer) {
        if (!answer.ok) { showProblems($("goal-problems"), problemsOf(answer.data)); return; }
        var g = answer.data, counted = catalog.events.filter(function (row) {
          return row.event === g.event && (!g.stream || row.stream === g.stream);
        }).reduce(function (sum, row) { return sum + row.count; }, 0);
        catalog.goals.push({key: g.key, name: g.name, event: g.event, stream: g.stream, count: counted});
        state.goals.push({goal: g.key, primary: !state.goals.some(function (x) { return x.primary; })});
        $("new-goal").open = false;
        renderGoals(); changed();
      });
    });
  }

  // ---------------------------------------------------------------------- checking

  function payload() {
    return {
      key: state.key, name: state.name, description: state.description || "",
      type: state.type, distribution: state.distribution, value_type: state.value_type,
      traffic_allocation: Number(state.traffic_allocation), target: state.target,
      target_audiences: state.target === "audiences" ? state.target_audiences.slice() : [],
      goals: state.goals.map(function (g) { return {goal: g.goal, primary: Boolean(g.primary)}; }),
      variants: state.variants.map(function (v, i) {
        var out = {key: v.key, name: v.name || "", value: v.value, content: v.content || {}, base: Boolean(v.base),
                   weight: v.weight === undefined ? null : v.weight,
                   audience: kind() === "segmented" && !v.base ? (v.audience || null) : null, priority: v.priority || 0};
        if (v.uid) out.uid = v.uid;
        return out;
      })
    };
  }

  function jsonProblems() {
    var found = [];
    state.variants.forEach(function (v, i) {
      ["value", "content"].forEach(function (name) {
        if (v["_" + name + "_error"]) found.push({code: "invalid_json", message: v["_" + name + "_error"], field: "variants[" + i + "]." + name});
      });
    });
    return found;
  }

  function target(field) {
    if (!field) return null;
    var exact = document.querySelector("[data-field='" + field + "']");
    if (exact) return exact;
    if (field === "key") return $("e-key");
    if (field === "name") return $("e-name");
    if (field === "traffic_allocation") return $("e-allocation");
    if (field === "target_audiences") return $("targeting");
    if (field.indexOf("goals") === 0) return $("goals");
    if (field.indexOf("variants") === 0) return $("variants");
    return $("about");
  }

  function fix(field) {
    var node = target(field);
    if (!node) return;
    node.scrollIntoView({block: "center"});
    if (typeof node.focus === "function" && node.tagName !== "SECTION") node.focus();
    node.classList.add("flash");
    setTimeout(function () { node.classList.remove("flash"); }, 1600);
  }

  function problemItem(p, kindClass) {
    return el("li", {className: kindClass, "data-code": p.code}, [
      el("span", {text: p.message + " "}),
      el("a", {href: "#" + (p.field || "about"), className: "fix-link", "data-testid": "fix-" + p.code, text: "Fix",
               on: {click: function (e) { e.preventDefault(); fix(p.field); }}})
    ]);
  }

  function drawCheck(answer) {
    var list = $("blockers"), refused = jsonProblems().concat(answer.refused || []), blockers = answer.blockers || [];
    list.textContent = "";
    refused.forEach(function (p) { list.appendChild(problemItem(p, "refused")); });
    blockers.forEach(function (p) { list.appendChild(problemItem(p, "blocker")); });
    var live = state.status === "active" || state.status === "paused";
    if (!refused.length && !blockers.length) {
      list.appendChild(el("li", {className: "ready", "data-testid": "ready",
                                 text: live ? "Nothing blocks it: the changes can go live." : "Nothing blocks activation."}));
    }
    $("blockers-title").textContent = refused.length ? "Cannot save yet" : (blockers.length ? "Blocks activation" : "Ready to activate?");
    if (state.status === "active" || state.status === "paused") $("blockers-title").textContent = refused.length ? "Cannot save yet" : "Ready";
    var notice = $("phase-notice");
    notice.hidden = !answer.new_phase;
    if (answer.new_phase) {
      $("phase-title").textContent = "Saving starts phase " + answer.next_phase + " (" + answer.new_phase + ").";
      $("phase-text").textContent = "Results so far stay with phase " + (answer.next_phase - 1) +
        "; the new phase counts visitors from zero, so the two splits are never mixed.";
      if (!$("phase-reason").value) $("phase-reason").value = answer.new_phase;
    } else $("phase-confirm").checked = false;
  }

  function check() {
    var mine = ++seq;
    send(config.api.check, "POST", {existing: existing, changes: payload()}).then(function (answer) {
      if (mine !== seq) return;
      lastCheck = answer.ok ? answer.data : {refused: problemsOf(answer.data), blockers: []};
      drawCheck(lastCheck);
    });
  }

  function changed() {
    clearTimeout(timer);
    timer = setTimeout(check, 250);
  }

  function problemsOf(data) {
    if (data && data.problems && data.problems.length) return data.problems;
    if (data && data.message) return [{code: data.code || "refused", message: data.message}];
    if (data && typeof data === "object") {
      return Object.keys(data).map(function (k) { return {code: "invalid", message: k + ": " + JSON.stringify(data[k]), field: k}; });
    }
    return [{code: "refused", message: "The change was refused."}];
  }

  function showProblems(box, problems) {
    box.textContent = "";
    if (!problems.length) return;
    box.appendChild(el("ul", {}, problems.map(function (p) { return problemItem(p, "refused"); })));
  }

  // ---------------------------------------------------------------------- saving

  function save(e) {
    e.preventDefault();
    var box = $("save-problems"), local = jsonProblems();
    if (local.length) { showProblems(box, local); return; }
    var body = payload();
    if (lastCheck && lastCheck.new_phase) {
      if (!$("phase-confirm").checked) {
        showProblems(box, [{code: "confirm_phase", message: "This change starts a new phase: tick “Start a new phase” to save it.", field: "phase"}]);
        $("phase-confirm").focus();
        return;
      }
      body.reason = $("phase-reason").value.trim();
    }
    $("save").disabled = true;
    var url = existing ? config.api.experiences + encodeURIComponent(existing) + "/" : config.api.experiences;
    send(url, existing ? "PATCH" : "POST", body).then(function (answer) {
      $("save").disabled = false;
      if (!answer.ok) { showProblems(box, problemsOf(answer.data)); return; }
      window.location.href = config.api.page + encodeURIComponent(answer.data.key) + "/";
    }, function () {
      $("save").disabled = false;
      showProblems(box, [{code: "network", message: "Strata could not be reached; nothing was saved."}]);
    });
  }

  // ---------------------------------------------------------------------- wiring

  function renderAll() {
    document.querySelectorAll("input[name=kind]").forEach(function (r) { r.checked = r.value === kind(); });
    $("e-value-type").value = state.value_type;
    renderVariants();
    renderTargeting();
    renderGoals();
  }

  function locked() {
    if (state.status === "draft") return;
    ["e-key", "e-value-type"].forEach(function (id) { $(id).disabled = true; });
    document.querySelectorAll("input[name=kind]").forEach(function (r) {
      if (state.type === "segmented" || r.value === "segmented") r.disabled = r.value !== kind();
    });
    $("key-hint").textContent = "Fixed: sites already ask for it.";
  }

  function ready() {
    catalog = JSON.parse($("editor-catalog").textContent);
    config = JSON.parse($("editor-config").textContent);
    state = JSON.parse(JSON.stringify(config.experience));
    existing = config.existing;
    $("e-name").value = state.name;
    $("e-key").value = state.key;
    $("e-description").value = state.description || "";
    var keyTouched = Boolean(existing);
    $("e-name").addEventListener("input", function (e) {
      state.name = e.target.value;
      if (!keyTouched) { state.key = slugify(state.name); $("e-key").value = state.key; }
      changed();
    });
    $("e-key").addEventListener("input", function (e) { state.key = e.target.value; keyTouched = true; changed(); });
    $("e-description").addEventListener("input", function (e) { state.description = e.target.value; changed(); });
    document.querySelectorAll("input[name=kind]").forEach(function (r) {
      r.addEventListener("change", function () {
        if (r.value === "segmented") { state.type = "segmented"; state.distribution = "equal"; }
        else { state.type = "ab"; state.distribution = r.value === "bandit" ? "bandit" : (state.distribution === "custom" ? "custom" : "equal"); }
        renderAll(); changed();
      });
    });
    $("e-value-type").addEventListener("change", function (e) {
      state.value_type = e.target.value;
      state.variants.forEach(function (v) {
        if (state.value_type === "string" && typeof v.value !== "string") v.value = v.key;
        if (state.value_type === "json" && (typeof v.value !== "object" || v.value === null)) v.value = {};
      });
      renderVariants(); changed();
    });
    $("e-distribution").addEventListener("change", function (e) {
      state.distribution = e.target.value;
      if (state.distribution === "custom") {
        var even = shares();
        state.variants.forEach(function (v, i) { if (v.weight === null || v.weight === undefined) v.weight = even[i]; });
      }
      renderVariants(); changed();
    });
    document.querySelectorAll("input[name=target]").forEach(function (r) {
      r.addEventListener("change", function () { state.target = r.value; renderTargeting(); changed(); });
    });
    $("e-allocation").addEventListener("input", function (e) {
      state.traffic_allocation = (Number(e.target.value) || 0) / 100;
      drawSplit(); changed();
    });
    $("add-variant").addEventListener("click", function () {
      var n = state.variants.length;
      state.variants.push({key: "variant-" + n, name: "Variant " + n, value: isJson() ? {} : "variant-" + n, content: {},
                           base: false, weight: state.distribution === "custom" ? 0 : null, audience: null, priority: n});
      renderVariants(); changed();
    });
    $("experience-editor").addEventListener("submit", save);
    setUpNewGoal();
    renderAll();
    locked();
    check();
    if (window.location.hash.length > 1) setTimeout(function () { fix(decodeURIComponent(window.location.hash.slice(1))); }, 50);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready);
  else ready();
})();
