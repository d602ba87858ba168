/* The audience builder: a rule tree edited with selects and inputs, never JSON.

   The page hands over a catalog (fields and calculated attributes with their types, the
   operator registry, audiences, event names, consent purposes) and the rule to edit. The
   tree is kept as a small model, turned into the rule JSON on every change; a debounced call
   to POST /api/v1/audiences/validate/ returns the FilterQL text and the estimated size, or
   problems with the JSON path of their node, shown next to that node. Saving posts (or
   patches) the audience through the API with the session, then opens its page. */
(function () {
  "use strict";

  var catalog, config, root, seq = 0, timer = null, samplesCache = {};

  var OP_LABELS = {
    "=": "=", "!=": "≠", ">": ">", ">=": "≥", "<": "<", "<=": "≤", "between": "between",
    "contains": "contains", "not contains": "doesn't contain", "like": "like",
    "in": "is one of", "not in": "is none of", "intersects": "has any of",
    "exists": "exists", "not exists": "doesn't exist"
  };
  var KINDS = [["field", "Field"], ["attribute", "Attribute"],
               ["event", "Event"], ["audience", "Audience"], ["consent", "Consent"]];
  var PAGE_SLUGS = ["new", "builder", "profile"];
  var RELATIVE = [["now", "now"], ["now-1d", "1 day ago"], ["now-7d", "7 days ago"],
                  ["now-30d", "30 days ago"], ["now-90d", "90 days ago"], ["now-1y", "1 year ago"]];

  // ---------------------------------------------------------------------- small helpers

  var el = window.Strata.el;  // static/strata/dom.js

  function select(options, value, attrs) {
    var node = el("select", attrs);
    options.forEach(function (opt) {
      if (opt.group) {
        var group = el("optgroup", {label: opt.group});
        opt.options.forEach(function (o) { group.appendChild(option(o, value)); });
        node.appendChild(group);
      } else node.appendChild(option(opt, value));
    });
    return node;
  }

  function option(opt, value) {
    var o = el("option", {value: opt[0], text: opt[1]});
    if (String(opt[0]) === String(value)) o.selected = true;
    return o;
  }

  function byName(list, name) {
    for (var i = 0; i < list.length; i++) if (list[i].name === name) return list[i];
    return null;
  }

  function operator(name) {
    for (var i = 0; i < catalog.operators.length; i++) if (catalog.operators[i].name === name) return catalog.operators[i];
    return null;
  }

  // A field the reader sees masked (no pii.view) takes no pattern, part or range: the server
  // refuses those (they would spell the value out through the estimated size).
  function opsFor(kind, masked) {
    return catalog.operators.filter(function (op) {
      return op.kinds.indexOf(kind) >= 0 && !(masked && op.revealing);
    });
  }

  function datalist(id, values) {
    var existing = document.getElementById(id);
    if (existing) existing.remove();
    var list = el("datalist", {id: id});
    values.forEach(function (v) { list.appendChild(el("option", {value: v})); });
    document.body.appendChild(list);
    return id;
  }

  function formatNumber(n) { return Number(n).toLocaleString("en-US"); }

  // ---------------------------------------------------------------------- model <-> rule

  function group(op, items) { return {t: "group", op: op || "and", not: false, items: items || []}; }
  function blank(t) {
    if (t === "event") return {t: "event", not: false, event: "", min_count: "1", within_days: "", where: []};
    if (t === "audience") return {t: "audience", slug: "", op: "include"};
    if (t === "consent") return {t: "consent", not: false, purpose: ""};
    return {t: t || "field", not: false, name: "", op: "", value: ""};
  }

  function uiValue(value) {
    if (value === undefined || value === null) return "";
    if (Array.isArray(value)) return value.map(uiValue);
    return String(value);
  }

  function fromRule(rule) {
    if (!rule || typeof rule !== "object") return blank("field");
    if (rule.and || rule.or) {
      var op = rule.and ? "and" : "or";
      return group(op, (rule[op] || []).map(fromRule));
    }
    if ("not" in rule) {
      var inner = fromRule(rule.not);
      inner.not = !inner.not;
      return inner;
    }
    if ("field" in rule || "attribute" in rule) {
      var t = "field" in rule ? "field" : "attribute";
      return {t: t, not: false, name: rule[t], op: rule.op || "", value: uiValue(rule.value)};
    }
    if ("event" in rule) {
      return {t: "event", not: false, event: rule.event, min_count: uiValue(rule.min_count || 1),
              within_days: uiValue(rule.within_days),
              where: (rule.where || []).map(function (w) {
                return {property: w.property, type: w.type || propertyTypeOf(w.value), op: w.op,
                        value: uiValue(w.value)};
              })};
    }
    if ("audience" in rule) return {t: "audience", slug: rule.audience, op: rule.op || "include"};
    if ("consent" in rule) return {t: "consent", not: false, purpose: rule.consent};
    return blank("field");
  }

  function propertyTypeOf(value) {
    if (Array.isArray(value)) value = value[0];
    if (typeof value === "boolean") return "bool";
    if (typeof value === "number") return "number";
    return "string";
  }

  function typed(kind, text) {
    if (kind === "numeric") {
      var n = Number(text);
      return text === "" || isNaN(n) ? text : n;
    }
    if (kind === "bool") return text === "true" ? true : text === "false" ? false : text;
    return text;
  }

  function ruleValue(kind, op, value) {
    var spec = operator(op);
    var scalarKind = kind === "set" ? "text" : kind;
    if (!spec || spec.shape === "none") return undefined;
    if (spec.shape === "list") {
      var items = Array.isArray(value) ? value : (value === "" ? [] : [value]);
      return items.map(function (v) { return typed(scalarKind, v); });
    }
    if (spec.shape === "pair") {
      var pair = Array.isArray(value) ? value : [value, ""];
      return [typed(kind, pair[0] || ""), typed(kind, pair[1] || "")];
    }
    return typed(kind, Array.isArray(value) ? (value[0] || "") : value);
  }

  function kindOf(node) {
    var list = node.t === "field" ? catalog.fields : catalog.attributes;
    var found = byName(list, node.name);
    return found ? found.kind : "text";
  }

  function propertyKind(cond) {
    for (var i = 0; i < catalog.property_types.length; i++) {
      if (catalog.property_types[i].type === cond.type) return catalog.property_types[i].kind;
    }
    return "text";
  }

  // The rule JSON of a node; records on each node the path of its JSON (``path``) and of the
  // condition inside its NOT (``inner``), so problems find their node.
  function toRule(node, path) {
    node.path = path;
    node.inner = node.not ? childPath(path, "not") : path;
    var rule = LEAF_RULES[node.t](node, node.inner);
    return node.not ? {not: rule} : rule;
  }

  function childPath(path, key, index) {
    var step = index === undefined ? key : key + "[" + index + "]";
    return path === "$" ? step : path + "." + step;
  }

  var LEAF_RULES = {
    group: function (node, path) {
      var out = {};
      out[node.op] = node.items.map(function (item, i) { return toRule(item, childPath(path, node.op, i)); });
      return out;
    },
    field: condition("field"),
    attribute: condition("attribute"),
    event: function (node, path) {
      var rule = {event: node.event};
      if (node.where.length) {
        rule.where = node.where.map(function (w, i) {
          w.path = childPath(path, "where", i);
          var cond = {property: w.property, op: w.op, type: w.type};
          var value = ruleValue(propertyKind(w), w.op, w.value);
          if (value !== undefined) cond.value = value;
          return cond;
        });
      }
      var count = Number(node.min_count);
      if (node.min_count !== "" && count !== 1) rule.min_count = isNaN(count) ? node.min_count : count;
      if (node.within_days !== "") {
        var days = Number(node.within_days);
        rule.within_days = isNaN(days) ? node.within_days : days;
      }
      return rule;
    },
    audience: function (node) { return {audience: node.slug, op: node.op}; },
    consent: function (node) { return {consent: node.purpose}; }
  };

  function condition(key) {
    return function (node) {
      var rule = {};
      rule[key] = node.name;
      rule.op = node.op;
      var value = ruleValue(kindOf(node), node.op, node.value);
      if (value !== undefined) rule.value = value;
      return rule;
    };
  }

  // The whole rule: the root group, or its only condition.
  function currentRule() {
    if (root.items.length === 1 && !root.not) {
      root.path = root.inner = null;
      return toRule(root.items[0], "$");
    }
    return toRule(root, "$");
  }

  // ---------------------------------------------------------------------- rendering

  function render() {
    var tree = document.getElementById("rule-tree");
    tree.textContent = "";
    tree.appendChild(renderGroup(root, null));
    changed();
  }

  function renderGroup(node, parent) {
    var items = el("div", {className: "group-items"});
    node.items.forEach(function (item, i) {
      items.appendChild(item.t === "group" ? renderGroup(item, node) : renderLeaf(item, node, i));
    });
    if (!node.items.length) {
      items.appendChild(el("p", {className: "muted small group-empty",
                                 text: parent ? "An empty group: add a condition." : "No conditions yet: add one below."}));
    }
    var box = el("div", {className: "group" + (parent ? " nested" : " root") + (node.not ? " negated" : ""),
                         dataset: {testid: parent ? "group" : "root-group"}}, [
      el("div", {className: "group-head"}, [
        notToggle(node),
        el("div", {className: "segmented", role: "group", "aria-label": "Match"}, [
          modeButton(node, "and", "ALL"), modeButton(node, "or", "ANY")
        ]),
        el("span", {className: "muted small", text: node.op === "and" ? "of these must hold" : "of these is enough"}),
        parent ? removeButton(function () { remove(parent, node); }, "Remove this group") : null
      ]),
      items,
      el("div", {className: "group-foot"}, [
        el("button", {type: "button", className: "button small secondary", text: "+ Condition",
                      dataset: {testid: "add-condition"}, on: {click: function () { node.items.push(blank("field")); render(); }}}),
        el("button", {type: "button", className: "button small secondary", text: "+ Group",
                      dataset: {testid: "add-group"}, on: {click: function () { node.items.push(group(node.op === "and" ? "or" : "and", [blank("field")])); render(); }}}),
        el("button", {type: "button", className: "button small link", text: "+ Exclude an audience",
                      dataset: {testid: "add-exclude"}, on: {click: function () { var a = blank("audience"); a.op = "exclude"; node.items.push(a); render(); }}})
      ]),
      el("div", {className: "problems"})
    ]);
    node.el = box;
    return box;
  }

  function modeButton(node, op, label) {
    return el("button", {type: "button", text: label, "aria-pressed": node.op === op ? "true" : "false",
                         dataset: {testid: "mode-" + op},
                         on: {click: function () { node.op = op; render(); }}});
  }

  function notToggle(node) {
    return el("button", {type: "button", className: "not-toggle", text: "NOT",
                         title: node.not ? "Negated: click to remove NOT" : "Negate",
                         "aria-pressed": node.not ? "true" : "false", dataset: {testid: "not-toggle"},
                         on: {click: function () { node.not = !node.not; render(); }}});
  }

  function removeButton(handler, title) {
    return el("button", {type: "button", className: "icon-button", title: title, "aria-label": title,
                         text: "×", dataset: {testid: "remove"}, on: {click: handler}});
  }

  function remove(parent, node) {
    parent.items.splice(parent.items.indexOf(node), 1);
    render();
  }

  function renderLeaf(node, parent) {
    var main = el("div", {className: "cond-main"});
    var extra = el("div", {className: "cond-extra"});
    if (node.t !== "audience") main.appendChild(notToggle(node));
    main.appendChild(select(KINDS, node.t, {className: "cond-kind", "aria-label": "Condition on",
                                            dataset: {testid: "kind-select"},
                                            on: {change: function (e) { replace(parent, node, blank(e.target.value)); }}}));
    LEAF_CONTROLS[node.t](node, main, extra);
    main.appendChild(removeButton(function () { remove(parent, node); }, "Remove this condition"));
    var box = el("div", {className: "cond" + (node.not ? " negated" : ""), dataset: {testid: "condition", kind: node.t}},
                 [main, extra, el("div", {className: "problems"})]);
    node.el = box;
    return box;
  }

  function replace(parent, node, fresh) {
    parent.items[parent.items.indexOf(node)] = fresh;
    render();
  }

  // --- fields and calculated attributes

  function fieldControls(node, main, extra) {
    var list = node.t === "field" ? catalog.fields : catalog.attributes;
    var options = [["", list.length ? (node.t === "field" ? "choose a field…" : "choose an attribute…") : "none published"]];
    list.forEach(function (f) { options.push([f.name, f.name]); });
    main.appendChild(select(options, node.name, {
      className: "cond-name", "aria-label": node.t === "field" ? "Field" : "Attribute",
      dataset: {testid: node.t + "-select"},
      on: {change: function (e) {
        node.name = e.target.value;
        var ops = opsFor(kindOf(node), (byName(list, node.name) || {}).masked);
        if (!ops.some(function (o) { return o.name === node.op; })) node.op = ops.length ? ops[0].name : "";
        node.value = "";
        render();
      }}}));
    var info = byName(list, node.name);
    if (!info) return;
    main.appendChild(el("span", {className: "badge type-" + typeClass(info.type), text: info.type}));
    main.appendChild(opSelect(node, info.kind, info.masked));
    valueControls(node, info.kind, main, extra, {field: node.t, name: node.name, info: info});
    if (info.description) extra.appendChild(el("p", {className: "hint", text: info.description}));
  }

  function typeClass(type) {
    if (type === "int" || type === "number") return "number";
    if (type === "bool" || type === "date" || type === "string") return type;
    return "array";
  }

  function opSelect(node, kind, masked) {
    return select(opsFor(kind, masked).map(function (op) { return [op.name, OP_LABELS[op.name] || op.name]; }), node.op, {
      className: "cond-op", "aria-label": "Operator", dataset: {testid: "op-select"},
      on: {change: function (e) {
        var before = operator(node.op), after = operator(e.target.value);
        node.op = e.target.value;
        if (!before || !after || before.shape !== after.shape) node.value = after && after.shape === "list" ? [] : "";
        render();
      }}});
  }

  // The value input(s) for an operator's shape, typed by kind, with samples to click.
  function valueControls(node, kind, main, extra, source) {
    var spec = operator(node.op);
    if (!spec || spec.shape === "none") return;
    var scalarKind = kind === "set" || kind === "map" ? "text" : kind;
    var listId = source ? "samples-" + Math.random().toString(36).slice(2) : null;
    var setValue = null;
    if (spec.shape === "one") {
      var input = scalarInput(scalarKind, node.value, listId, function (v) { node.value = v; changed(); });
      main.appendChild(input);
      setValue = function (v) { input.value = v; node.value = v; changed(); };
      if (kind === "date") main.appendChild(relativeSelect(function (v) { setValue(v); }));
    } else if (spec.shape === "pair") {
      if (!Array.isArray(node.value)) node.value = [node.value || "", ""];
      var low = scalarInput(scalarKind, node.value[0], listId, function (v) { node.value[0] = v; changed(); });
      var high = scalarInput(scalarKind, node.value[1], listId, function (v) { node.value[1] = v; changed(); });
      main.appendChild(low); main.appendChild(el("span", {className: "muted", text: "and"})); main.appendChild(high);
      setValue = function (v) {
        var target = node.value[0] === "" ? 0 : 1;
        (target ? high : low).value = v; node.value[target] = v; changed();
      };
    } else {
      if (!Array.isArray(node.value)) node.value = node.value === "" ? [] : [node.value];
      var chips = chipInput(node, scalarKind, listId);
      main.appendChild(chips.box);
      setValue = chips.add;
    }
    var hint = kind === "date" || kind === "map" ? catalog.hints[kind] : "";
    if (node.op === "like") hint = "* matches any text; case-insensitive";
    if (hint) extra.appendChild(el("span", {className: "hint", text: hint}));
    if (source) samples(source, extra, listId, setValue);
  }

  function scalarInput(kind, value, listId, onInput) {
    if (kind === "bool") {
      var s = select([["", "choose…"], ["true", "true"], ["false", "false"]], value,
                     {className: "cond-value", "aria-label": "Value", dataset: {testid: "value-input"},
                      on: {change: function (e) { onInput(e.target.value); }}});
      return s;
    }
    return el("input", {type: kind === "numeric" ? "number" : "text", step: kind === "numeric" ? "any" : null,
                        className: "cond-value" + (kind === "date" ? " date" : ""), value: value || "",
                        placeholder: kind === "date" ? "2024-05-01 or now-30d" : kind === "numeric" ? "a number" : "text, any case",
                        list: listId, "aria-label": "Value", dataset: {testid: "value-input"},
                        on: {input: function (e) { onInput(e.target.value); }}});
  }

  function relativeSelect(onPick) {
    var options = [["", "relative…"]].concat(RELATIVE.map(function (r) { return [r[0], r[1] + " (" + r[0] + ")"]; }));
    return select(options, "", {className: "relative", "aria-label": "Relative date", dataset: {testid: "relative-date"},
                                on: {change: function (e) { if (e.target.value) onPick(e.target.value); e.target.value = ""; }}});
  }

  function chipInput(node, kind, listId) {
    var box = el("div", {className: "chips-input", dataset: {testid: "list-input"}});
    var input = el("input", {type: kind === "numeric" ? "number" : "text", step: kind === "numeric" ? "any" : null,
                             placeholder: "add, Enter", list: listId, "aria-label": "Add a value",
                             dataset: {testid: "list-value"}});
    function draw() {
      Array.prototype.slice.call(box.querySelectorAll(".chip-item")).forEach(function (c) { c.remove(); });
      node.value.forEach(function (v, i) {
        box.insertBefore(el("span", {className: "chip-item"}, [v, el("button", {
          type: "button", text: "×", "aria-label": "Remove " + v,
          on: {click: function () { node.value.splice(i, 1); draw(); changed(); }}})]), input);
      });
    }
    function add(v) {
      v = String(v).trim();
      if (v === "" || node.value.indexOf(v) >= 0) return;
      node.value.push(v); draw(); changed();
    }
    input.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === ",") { e.preventDefault(); add(input.value); input.value = ""; }
      else if (e.key === "Backspace" && input.value === "" && node.value.length) { node.value.pop(); draw(); changed(); }
    });
    input.addEventListener("change", function () { if (input.value) { add(input.value); input.value = ""; } });
    box.appendChild(input);
    draw();
    return {box: box, add: add};
  }

  // Frequent values of a field or attribute, fetched once per name.
  function samples(source, extra, listId, setValue) {
    var line = el("div", {className: "samples-line", dataset: {testid: "samples"}},
                  [el("span", {className: "muted small", text: "Loading values…"})]);
    extra.appendChild(line);
    if (source.info && source.info.masked) {
      line.textContent = "";
      line.appendChild(el("span", {className: "muted small", text: "PII field: values are not shown to your roles."}));
      return;
    }
    var key = source.field + ":" + source.name;
    var pending = samplesCache[key] || (samplesCache[key] = fetch(
      config.api.values + "?" + source.field + "=" + encodeURIComponent(source.name),
      {credentials: "same-origin", headers: {Accept: "application/json"}}).then(function (r) { return r.json(); }));
    pending.then(function (data) {
      line.textContent = "";
      var values = (data.values || []);
      datalist(listId, values.map(function (v) { return String(v.value); }));
      if (!values.length) {
        line.appendChild(el("span", {className: "muted small", text: data.hidden ? "PII field: values are not shown." : "No values yet."}));
        return;
      }
      var share = data.scanned ? Math.round(100 * data.with_value / data.scanned) : 0;
      var lead = source.field === "attribute" ? "Frequent values:"
        : "Seen on " + share + "% of " + formatNumber(data.scanned) + " recent profiles:";
      line.appendChild(el("span", {className: "muted small", text: lead}));
      values.forEach(function (v) {
        line.appendChild(el("button", {type: "button", className: "sample", title: formatNumber(v.count) + " profiles",
                                       dataset: {testid: "sample", value: String(v.value)},
                                       on: {click: function () { setValue(String(v.value)); }}},
                            [String(v.value), el("small", {text: " " + formatNumber(v.count)})]));
      });
    }).catch(function () { line.textContent = ""; });
  }

  // --- events

  function eventControls(node, main, extra) {
    var listId = datalist("event-names", catalog.events);
    main.appendChild(el("input", {type: "text", className: "cond-event", value: node.event, list: listId,
                                  placeholder: "event name", "aria-label": "Event name", dataset: {testid: "event-name"},
                                  on: {input: function (e) { node.event = e.target.value; changed(); },
                                       change: function () { loadProperties(node); }}}));
    main.appendChild(el("span", {className: "muted", text: "at least"}));
    main.appendChild(el("input", {type: "number", min: "1", className: "small-number", value: node.min_count,
                                  "aria-label": "Minimum count", dataset: {testid: "min-count"},
                                  on: {input: function (e) { node.min_count = e.target.value; changed(); }}}));
    main.appendChild(el("span", {className: "muted", text: "times, in the last"}));
    main.appendChild(el("input", {type: "number", min: "1", className: "small-number", value: node.within_days,
                                  placeholder: "any", "aria-label": "Within days", dataset: {testid: "within-days"},
                                  on: {input: function (e) { node.within_days = e.target.value; changed(); }}}));
    main.appendChild(el("span", {className: "muted", text: "days"}));
    var rows = el("div", {className: "where-rows"});
    node.where.forEach(function (w) { rows.appendChild(whereRow(node, w)); });
    extra.appendChild(rows);
    extra.appendChild(el("button", {type: "button", className: "button small link", text: "+ Property condition",
                                    dataset: {testid: "add-property"},
                                    on: {click: function () { node.where.push({property: "", type: "string", op: "=", value: ""}); render(); }}}));
    loadProperties(node);
  }

  // The event's known properties (fetched once per event name); a promise of the list.
  function loadProperties(node) {
    if (!node.event) return Promise.resolve([]);
    var key = "event:" + node.event;
    var pending = samplesCache[key] || (samplesCache[key] = fetch(
      config.api.values + "?event=" + encodeURIComponent(node.event),
      {credentials: "same-origin", headers: {Accept: "application/json"}}).then(function (r) { return r.json(); }));
    return pending.then(function (data) {
      var properties = data.properties || [];
      datalist("props-" + node.event.replace(/[^A-Za-z0-9_-]/g, "_"), properties.map(function (p) { return p.name; }));
      return properties;
    });
  }

  function whereRow(node, w) {
    var row = el("div", {className: "where-row", dataset: {testid: "property-condition"}});
    var main = el("div", {className: "cond-main"});
    var extra = el("div", {className: "cond-extra"});
    main.appendChild(el("span", {className: "muted small", text: "where"}));
    main.appendChild(el("input", {type: "text", className: "cond-property", value: w.property,
                                  list: "props-" + node.event.replace(/[^A-Za-z0-9_-]/g, "_"),
                                  placeholder: "property", "aria-label": "Property", dataset: {testid: "property-name"},
                                  on: {input: function (e) { w.property = e.target.value; changed(); },
                                       change: function () { guessType(node, w); }}}));
    main.appendChild(select(catalog.property_types.map(function (p) { return [p.type, p.type]; }), w.type, {
      className: "cond-type", "aria-label": "Compare as", on: {change: function (e) {
        w.type = e.target.value;
        var ops = opsFor(propertyKind(w));
        if (!ops.some(function (o) { return o.name === w.op; })) w.op = ops[0].name;
        w.value = ""; render();
      }}}));
    var kind = propertyKind(w);
    main.appendChild(opSelect(w, kind));
    valueControls(w, kind, main, extra, null);
    main.appendChild(removeButton(function () { node.where.splice(node.where.indexOf(w), 1); render(); }, "Remove this property condition"));
    row.appendChild(main);
    row.appendChild(extra);
    row.appendChild(el("div", {className: "problems"}));
    w.el = row;
    return row;
  }

  // A property the event is known to carry takes the type its values have.
  function guessType(node, w) {
    loadProperties(node).then(function (properties) {
      var found = properties.filter(function (p) { return p.name === w.property; })[0];
      if (found && found.type !== w.type) {
        w.type = found.type; w.op = opsFor(propertyKind(w))[0].name; w.value = ""; render();
      }
    });
  }

  // --- audiences and consent

  function audienceControls(node, main) {
    main.appendChild(select([["include", "is in"], ["exclude", "is not in"]], node.op, {
      className: "cond-op", "aria-label": "Include or exclude", dataset: {testid: "audience-op"},
      on: {change: function (e) { node.op = e.target.value; changed(); }}}));
    var options = [["", catalog.audiences.length ? "choose an audience…" : "no other audience yet"]];
    catalog.audiences.forEach(function (a) { options.push([a.slug, a.name + " (" + a.slug + ")"]); });
    main.appendChild(select(options, node.slug, {className: "cond-name audience", "aria-label": "Audience",
                                                  dataset: {testid: "audience-select"},
                                                  on: {change: function (e) { node.slug = e.target.value; changed(); }}}));
  }

  function consentControls(node, main, extra) {
    main.appendChild(el("span", {className: "muted", text: "the profile granted"}));
    main.appendChild(el("input", {type: "text", className: "cond-consent", value: node.purpose,
                                  list: datalist("consent-purposes", catalog.purposes), placeholder: "purpose",
                                  "aria-label": "Consent purpose", dataset: {testid: "consent-purpose"},
                                  on: {input: function (e) { node.purpose = e.target.value; changed(); }}}));
    if (catalog.purposes.length) extra.appendChild(el("span", {className: "hint", text: "Purposes seen: " + catalog.purposes.join(", ")}));
  }

  var LEAF_CONTROLS = {field: fieldControls, attribute: fieldControls, event: eventControls,
                       audience: audienceControls, consent: consentControls};

  // ---------------------------------------------------------------------- validation

  function changed() {
    var rule = currentRule();
    document.getElementById("rule-json").textContent = JSON.stringify(rule, null, 2);
    clearTimeout(timer);
    if (!root.items.length) {
      showEstimate(null, "Add a condition to see how many profiles match.");
      document.getElementById("rule-text").textContent = "—";
      showProblems([]);
      return;
    }
    setNote("Checking…", "pending");
    timer = setTimeout(function () { validate(rule); }, 350);
  }

  function csrf() { return document.querySelector("input[name=csrfmiddlewaretoken]").value; }

  function post(url, body, method) {
    return fetch(url, {method: method || "POST", credentials: "same-origin",
                       headers: {"Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrf()},
                       body: JSON.stringify(body)})
      .then(function (r) {
        return r.json().catch(function () { return {code: "error", message: "Error " + r.status}; })
          .then(function (data) { return {status: r.status, ok: r.ok, data: data}; });
      });
  }

  function validate(rule) {
    var mine = ++seq;
    var body = {rule: rule};
    if (config.audience) body.slug = config.audience.slug;  // refuses a rule including itself
    post(config.api.validate, body).then(function (reply) {
      if (mine !== seq) return;  // a later edit is on its way
      var data = reply.data;
      if (reply.ok) {
        document.getElementById("rule-text").textContent = data.text || "(event conditions have no text form yet)";
        showEstimate(data.estimated_size, "profiles match now");
        showProblems([]);
      } else {
        document.getElementById("rule-text").textContent = "—";
        var problems = data.problems || [{path: "$", message: data.message || "The rule cannot be checked."}];
        showEstimate(null, problems.length + " problem" + (problems.length === 1 ? "" : "s") + " to fix", "bad");
        showProblems(problems);
      }
    }).catch(function () {
      if (mine === seq) setNote("Could not reach the server.", "bad");
    });
  }

  function showEstimate(size, note, state) {
    var value = document.querySelector("[data-testid=estimate]");
    value.textContent = size === null || size === undefined ? "—" : formatNumber(size);
    value.dataset.size = size === null || size === undefined ? "" : String(size);
    setNote(note, state || (size === null ? "" : "ok"));
  }

  function setNote(text, state) {
    var note = document.getElementById("estimate-note");
    note.textContent = text;
    note.dataset.state = state || "";
  }

  // Every node (and event property condition) by the paths its JSON has.
  function nodesByPath() {
    var out = {};
    function visit(node) {
      if (!node) return;
      if (node.path) out[node.path] = node;
      if (node.inner) out[node.inner] = node;
      (node.items || []).forEach(visit);
      (node.where || []).forEach(function (w) { if (w.path) out[w.path] = w; });
    }
    visit(root);
    if (!root.path) out.$ = root.items[0] || root;  // a single condition is the whole rule
    return out;
  }

  function showProblems(problems) {
    document.querySelectorAll("#rule-tree .problems").forEach(function (box) { box.textContent = ""; });
    document.querySelectorAll("#rule-tree .has-problem").forEach(function (n) { n.classList.remove("has-problem"); });
    var nodes = nodesByPath();
    var unplaced = [];
    problems.forEach(function (p) {
      var node = nodes[p.path];
      var box = node && node.el && node.el.querySelector(":scope > .problems");
      if (!box) { unplaced.push(p); return; }
      node.el.classList.add("has-problem");
      box.appendChild(el("p", {className: "problem", dataset: {testid: "problem", path: p.path, code: p.code || ""}, text: p.message}));
    });
    var rootBox = root.el && root.el.querySelector(":scope > .problems");
    unplaced.forEach(function (p) {
      if (rootBox) rootBox.appendChild(el("p", {className: "problem", dataset: {testid: "problem", path: p.path || ""},
                                                text: (p.path && p.path !== "$" ? p.path + ": " : "") + p.message}));
    });
  }

  // ---------------------------------------------------------------------- text form

  function setupText() {
    var editor = document.getElementById("text-editor"), shown = document.getElementById("rule-text");
    var input = document.getElementById("text-input"), problems = document.getElementById("text-problems");
    document.getElementById("edit-text").addEventListener("click", function () {
      input.value = shown.textContent === "—" ? "FILTER " : shown.textContent;
      editor.hidden = false; shown.hidden = true; problems.textContent = "";
      input.focus();
    });
    document.getElementById("cancel-text").addEventListener("click", function () {
      editor.hidden = true; shown.hidden = false;
    });
    document.getElementById("apply-text").addEventListener("click", function () {
      problems.textContent = "";
      post(config.api.validate, {text: input.value}).then(function (reply) {
        if (reply.ok) {
          var model = fromRule(reply.data.rule);
          root = model.t === "group" && !model.not ? model : group("and", [model]);
          editor.hidden = true; shown.hidden = false;
          render();
        } else {
          (reply.data.problems || [reply.data]).forEach(function (p) {
            var where = p.line ? "line " + p.line + ", column " + p.column + ": " : "";
            problems.appendChild(el("p", {className: "problem", dataset: {testid: "problem"}, text: where + p.message}));
          });
        }
      });
    });
  }

  // ---------------------------------------------------------------------- about and save

  function slugify(text) {
    return text.toLowerCase().normalize("NFKD").replace(/[\u0300-\u036f]/g, "")
      .replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "").slice(0, 100);
  }

  function setupForm() {
    var form = document.getElementById("audience-builder");
    var name = document.getElementById("a-name"), slug = document.getElementById("a-slug");
    var description = document.getElementById("a-description"), api = document.getElementById("a-api");
    var editing = config.audience;
    if (editing) {
      name.value = editing.name; slug.value = editing.slug; description.value = editing.description;
      api.checked = editing.api_accessible;
    }
    var slugTouched = !!editing;
    slug.addEventListener("input", function () { slugTouched = slug.value !== ""; });
    name.addEventListener("input", function () { if (!slugTouched) slug.value = slugify(name.value); });
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var box = document.getElementById("save-problems");
      box.textContent = "";
      var body = {name: name.value.trim(), description: description.value, api_accessible: api.checked,
                  rule: currentRule()};
      if (!editing) body.slug = slug.value.trim();
      if (!editing && PAGE_SLUGS.indexOf(body.slug) >= 0) {  // page addresses under /audiences/
        box.appendChild(el("p", {className: "problem", dataset: {testid: "problem"},
                                 text: "The slug “" + body.slug + "” is taken by a page; choose another."}));
        return;
      }
      var button = document.getElementById("save");
      button.disabled = true;
      var url = editing ? config.api.list + encodeURIComponent(editing.slug) + "/" : config.api.list;
      post(url, body, editing ? "PATCH" : "POST").then(function (reply) {
        button.disabled = false;
        if (reply.ok) {
          location.href = config.api.page + encodeURIComponent(reply.data.slug || body.slug || editing.slug) + "/";
          return;
        }
        var data = reply.data;
        box.appendChild(el("p", {className: "problem", dataset: {testid: "problem"}, text: data.message || "The audience could not be saved."}));
        Object.keys(data.fields || data.errors || {}).forEach(function (key) {
          var errors = (data.fields || data.errors)[key];
          box.appendChild(el("p", {className: "problem", text: key + ": " + [].concat(errors).join(" ")}));
        });
        if (data.problems) showProblems(data.problems);
      }).catch(function () {
        button.disabled = false;
        box.appendChild(el("p", {className: "problem", text: "Could not reach the server."}));
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    catalog = JSON.parse(document.getElementById("builder-catalog").textContent);
    config = JSON.parse(document.getElementById("builder-config").textContent);
    var model = fromRule(config.rule);
    root = model.t === "group" && !model.not ? model : group("and", [model]);
    setupForm();
    setupText();
    render();
  });
})();
