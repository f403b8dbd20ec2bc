/* The visual workflow editor: draws a workflow's graph with Drawflow (static/vendor/drawflow),
   builds each node's settings form from its action's config schema, checks the graph with the
   server's graph_validate as it changes, saves drafts, publishes, restores versions, compares
   the draft with the published version, runs test mode and draws traces on the canvas.
   Everything goes through the management API (/api/v1/), with the page's session.

   Field types are a map, extensible: `CDPWorkflowEditor.fieldTypes.NAME = {render(ctx)}` and a
   config schema property annotated with "x-cdp-field": "NAME" is drawn by it (see
   docs/workflows.md). */
(function () {
  "use strict";

  const NODE_ID = /^[A-Za-z0-9_-]{1,100}$/;
  const CATEGORY_ORDER = ["Flow", "Profile", "Segments", "Events", "Integrations", "Data"];
  const BASE_PATHS = [
    "event.name", "event.distinct_id", "event.timestamp", "event.properties", "event.context",
    "profile.id", "profile.distinct_id", "profile.traits", "session.utm_source",
    "session.utm_medium", "session.utm_campaign", "session.referrer", "session.landing_page",
    "source.name",
  ];
  const LAYER_X = 220;
  const ROW_Y = 110;
  const fieldTypes = {};

  // --- small helpers ---------------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function iconSvg(name) {
    const icons = window.CDPWorkflowIcons || {};
    const body = icons[name] || icons.box || "";
    return '<svg class="wf-icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false">' + body + "</svg>";
  }

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  function pretty(value) {
    return value === undefined ? "" : JSON.stringify(value, null, 2);
  }

  function debounce(fn, ms) {
    let timer = null;
    const call = function (...args) {
      clearTimeout(timer);
      timer = setTimeout(() => fn.apply(this, args), ms);
    };
    call.flush = () => { if (timer) { clearTimeout(timer); timer = null; fn(); } };
    return call;
  }

  // A class name made of an action's name (a graph may name an action of any text).
  function classSafe(name) {
    return String(name).replace(/[^A-Za-z0-9_-]/g, "_") || "_";
  }

  let uid = 0;
  function nextUid(prefix) { uid += 1; return prefix + "-" + uid; }

  function readPosition(position) {
    if (Array.isArray(position) && position.length === 2) return { x: Number(position[0]), y: Number(position[1]) };
    if (position && typeof position === "object" && Number.isFinite(Number(position.x)) && Number.isFinite(Number(position.y))) {
      return { x: Number(position.x), y: Number(position.y) };
    }
    return null;
  }

  // --- template and path autocompletion ---------------------------------------------------------

  function attachAutocomplete(editor, input, mode) {
    const listId = nextUid("wf-suggest");
    const list = h("ul", { class: "wf-suggest", role: "listbox", id: listId, hidden: true });
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-controls", listId);
    input.setAttribute("aria-expanded", "false");
    let items = [];
    let active = -1;
    let start = 0;

    function close() {
      list.hidden = true;
      items = [];
      active = -1;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
    }
    function draw() {
      list.replaceChildren(...items.map((path, i) => h("li", {
        id: listId + "-" + i, role: "option", "aria-selected": i === active ? "true" : "false",
        class: i === active ? "active" : "", text: path,
        onmousedown: (e) => { e.preventDefault(); accept(i); },
      })));
      list.hidden = !items.length;
      input.setAttribute("aria-expanded", items.length ? "true" : "false");
      if (active >= 0) input.setAttribute("aria-activedescendant", listId + "-" + active);
    }
    function update() {
      const caret = input.selectionStart === null ? input.value.length : input.selectionStart;
      const before = input.value.slice(0, caret);
      let prefix;
      if (mode === "path") {
        prefix = before;
        start = 0;
      } else {
        const match = /\{\{\s*([A-Za-z0-9_.$-]*)$/.exec(before);
        if (!match) return close();
        prefix = match[1];
        start = caret - prefix.length;
      }
      const all = editor.allPaths().filter((p) => mode !== "path" || /^(event|session)\./.test(p));
      items = all.filter((p) => p.startsWith(prefix) && p !== prefix).slice(0, 12);
      active = items.length ? 0 : -1;
      draw();
    }
    function accept(i) {
      const path = items[i];
      const caret = input.selectionStart === null ? input.value.length : input.selectionStart;
      const rest = input.value.slice(caret);
      const deeper = editor.allPaths().some((p) => p.startsWith(path + "."));
      let insert = path;
      if (deeper) insert += ".";
      else if (mode !== "path" && !/^\s*\}\}/.test(rest)) insert += " }}";
      input.value = input.value.slice(0, start) + insert + rest;
      const at = start + insert.length;
      input.setSelectionRange(at, at);
      input.dispatchEvent(new Event("input", { bubbles: true }));
      if (deeper) update(); else close();
    }
    input.addEventListener("input", update);
    input.addEventListener("focus", () => { if (mode === "path") update(); });
    input.addEventListener("blur", () => setTimeout(close, 150));
    input.addEventListener("keydown", (e) => {
      if (list.hidden) return;
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        active = (active + (e.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
        draw();
      } else if ((e.key === "Enter" || e.key === "Tab") && active >= 0) {
        e.preventDefault();
        accept(active);
      } else if (e.key === "Escape") {
        e.preventDefault();
        close();
      }
    });
    return list;
  }

  // --- field types: each renders a control for one config key -----------------------------------
  // ctx: {key, schema, value, has, required, editor, node, id, set(v), unset(), error(msg|null)}

  function textControl(ctx, multiline) {
    const attrs = { id: ctx.id, class: "wf-input" };
    const control = multiline ? h("textarea", { ...attrs, rows: 3 }) : h("input", { ...attrs, type: "text" });
    control.value = ctx.has ? (typeof ctx.value === "string" ? ctx.value : JSON.stringify(ctx.value)) : "";
    control.addEventListener("input", () => {
      if (control.value === "" && !ctx.required) ctx.unset(); else ctx.set(control.value);
    });
    return control;
  }

  fieldTypes.text = { render: (ctx) => textControl(ctx, false) };

  fieldTypes.template = {
    render(ctx) {
      const multiline = ["template", "body", "message"].includes(ctx.key);
      const control = textControl(ctx, multiline);
      control.placeholder = "text or {{ event.properties.… }}";
      const box = h("div", { class: "wf-autocomplete" }, control);
      box.append(attachAutocomplete(ctx.editor, control, "template"));
      return box;
    },
  };

  fieldTypes.path = {
    render(ctx) {
      const control = textControl(ctx, false);
      control.placeholder = "event.properties.…";
      const box = h("div", { class: "wf-autocomplete" }, control);
      box.append(attachAutocomplete(ctx.editor, control, "path"));
      return box;
    },
  };

  fieldTypes.number = {
    render(ctx) {
      const schema = ctx.schema;
      const control = h("input", {
        id: ctx.id, class: "wf-input", type: "number",
        step: schema.type === "integer" ? "1" : "any",
        min: schema.minimum, max: schema.maximum,
      });
      control.value = ctx.has ? String(ctx.value) : "";
      control.addEventListener("input", () => {
        if (control.value === "") { ctx.unset(); return; }
        const number = Number(control.value);
        if (Number.isNaN(number)) { ctx.error("must be a number"); return; }
        ctx.set(number);
      });
      return control;
    },
  };

  fieldTypes.boolean = {
    render(ctx) {
      const control = h("input", { id: ctx.id, type: "checkbox" });
      control.checked = ctx.has && Boolean(ctx.value);
      control.addEventListener("change", () => ctx.set(control.checked));
      return control;
    },
  };

  fieldTypes.enum = {
    render(ctx) {
      const control = h("select", { id: ctx.id, class: "wf-input" },
        h("option", { value: "", text: ctx.required ? "— choose —" : "(default)" }),
        ...ctx.schema.enum.map((v) => h("option", { value: JSON.stringify(v), text: String(v) })));
      control.value = ctx.has ? JSON.stringify(ctx.value) : "";
      control.addEventListener("change", () => {
        if (control.value === "") ctx.unset(); else ctx.set(JSON.parse(control.value));
      });
      return control;
    },
  };

  fieldTypes.json = {
    render(ctx) {
      const control = h("textarea", { id: ctx.id, class: "wf-input wf-mono", rows: 3, placeholder: ctx.schema.type === "array" ? "[ ]" : "{ }" });
      control.value = ctx.has ? pretty(ctx.value) : "";
      control.addEventListener("input", () => {
        if (control.value.trim() === "") { ctx.unset(); return; }
        try {
          ctx.set(JSON.parse(control.value));
        } catch (err) {
          ctx.error("not valid JSON: " + err.message);
        }
      });
      return control;
    },
  };

  // Any value, or several types: a text (a template) or a JSON value.
  fieldTypes.value = {
    render(ctx) {
      const asJson = ctx.has && typeof ctx.value !== "string";
      const mode = h("select", { class: "wf-input wf-mode", "aria-label": ctx.key + ": kind of value" },
        h("option", { value: "text", text: "Text" }), h("option", { value: "json", text: "JSON" }));
      mode.value = asJson ? "json" : "text";
      const control = h("input", { id: ctx.id, class: "wf-input", type: "text", placeholder: "text or {{ event.properties.… }}" });
      control.value = !ctx.has ? "" : asJson ? JSON.stringify(ctx.value) : ctx.value;
      const apply = () => {
        if (control.value === "" && !ctx.required) { ctx.unset(); return; }
        if (mode.value === "text") { ctx.set(control.value); return; }
        try {
          ctx.set(JSON.parse(control.value));
        } catch (err) {
          ctx.error("not valid JSON: " + err.message);
        }
      };
      control.addEventListener("input", apply);
      mode.addEventListener("change", apply);
      const box = h("div", { class: "wf-autocomplete wf-value" }, mode, control);
      box.append(attachAutocomplete(ctx.editor, control, "template"));
      return box;
    },
  };

  // A condition's filter, in the filter language's text form, parsed by the server as typed.
  fieldTypes.filter = {
    render(ctx) {
      const control = h("textarea", { id: ctx.id, class: "wf-input wf-mono", rows: 3, placeholder: 'event.properties.plan = "pro"' });
      if (ctx.has) {
        control.value = "";
        ctx.editor.filterText({ filter: ctx.value }).then((answer) => {
          if (answer && answer.text !== undefined && control.value === "") control.value = answer.text;
          else if (answer && answer.error && control.value === "") control.value = JSON.stringify(ctx.value);
        });
      }
      const check = debounce(async () => {
        const text = control.value;
        if (text.trim() === "") { ctx.unset(); return; }
        const answer = await ctx.editor.filterText({ text });
        if (!answer || control.value !== text) return;
        if (answer.error) {
          const at = answer.error.position === null || answer.error.position === undefined ? "" : " (at character " + (answer.error.position + 1) + ")";
          ctx.error(answer.error.message + at);
        } else {
          ctx.set(answer.filter);
        }
      }, 350);
      control.addEventListener("input", () => { ctx.pending(); check(); });
      return control;
    },
  };

  function fieldKind(schema, action) {
    const hint = schema["x-cdp-field"];
    if (hint && fieldTypes[hint]) return hint;
    if (Array.isArray(schema.enum)) return "enum";
    const type = schema.type;
    if (type === "boolean") return "boolean";
    if (type === "number" || type === "integer") return "number";
    if (type === "string") return action && action.templated ? "template" : "text";
    if (type === "object" || type === "array") return "json";
    return "value";
  }

  // --- the editor --------------------------------------------------------------------------------

  class WorkflowEditor {
    constructor(root) {
      this.root = root;
      this.config = JSON.parse(document.getElementById(root.dataset.config).textContent);
      this.csrf = root.dataset.csrf;
      this.can = this.config.can;
      this.actions = {};
      this.graph = { nodes: [], edges: [] };
      this.dfByNid = new Map();
      this.nidByDf = new Map();
      this.selected = null;
      this.errors = [];
      this.localErrors = {};
      this.undoStack = [];
      this.redoStack = [];
      this.lastSnapshot = "";
      this.savedSnapshot = "";
      this.suppress = 0;
      this.paths = [];
      this.trace = null;
      this.clipboard = null;
      this.added = 0;
      this.validateSoon = debounce(() => this.validate(), 300);
      this.formChanged = debounce(() => this.changed(), 400);
      this.canvas = root.querySelector(".wf-canvas");
      this.statusEl = root.querySelector(".wf-status");
    }

    // --- API ---

    async api(method, url, body) {
      const options = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
      if (body !== undefined) {
        options.headers["Content-Type"] = "application/json";
        options.body = JSON.stringify(body);
      }
      if (method !== "GET") options.headers["X-CSRFToken"] = this.csrf;
      try {
        const response = await fetch(url, options);
        let data = null;
        try { data = await response.json(); } catch (err) { data = null; }
        if (!response.ok && !(data && data.error)) data = { error: { message: response.status + " " + response.statusText } };
        return { ok: response.ok, status: response.status, data };
      } catch (err) {
        return { ok: false, status: 0, data: { error: { message: "the server did not answer: " + err.message } } };
      }
    }

    status(text, kind) {
      this.statusEl.textContent = text;
      this.statusEl.dataset.kind = kind || "";
    }

    async start() {
      for (const el of this.root.querySelectorAll("[data-needs]")) {
        if (!this.can[el.dataset.needs]) el.hidden = true;
      }
      const [actions, workflow] = await Promise.all([
        this.api("GET", this.config.api.actions),
        this.api("GET", this.config.api.workflow),
      ]);
      if (!actions.ok || !workflow.ok) {
        this.status("Could not load the workflow: " + ((actions.ok ? workflow : actions).data.error.message), "error");
        return;
      }
      for (const action of actions.data) this.actions[action.name] = action;
      this.workflow = workflow.data;
      this.graph = JSON.parse(JSON.stringify(workflow.data.graph));
      this.setupDrawflow();
      this.buildPalette();
      this.bindUi();
      this.render();
      this.lastSnapshot = this.snapshot();
      this.savedSnapshot = this.lastSnapshot;
      this.renderSettings();
      this.renderVersions();
      this.updateButtons();
      this.fitView(false);
      this.validate();
      if (this.can.paths) {
        this.api("GET", this.config.api.paths).then((answer) => { if (answer.ok) this.paths = answer.data.paths; });
      }
      this.root.dataset.ready = "true";
    }

    allPaths() {
      const vars = [];
      for (const node of this.graph.nodes) {
        const name = node.config && node.config.variable;
        if (typeof name === "string" && name) vars.push("vars." + name);
      }
      return Array.from(new Set([...BASE_PATHS, ...this.paths, ...vars])).sort();
    }

    async filterText(body) {
      const answer = await this.api("POST", this.config.api.filter_text, body);
      if (answer.ok) return answer.data;
      return { error: answer.data.error };
    }

    // --- Drawflow ---

    setupDrawflow() {
      const df = new window.Drawflow(this.canvas);
      df.reroute = false;
      df.curvature = 0.4;
      df.zoom_min = 0.3;
      df.editor_mode = this.can.change ? "edit" : "fixed";
      df.start();
      this.df = df;
      df.on("connectionCreated", (c) => this.onConnection(c, true));
      df.on("connectionRemoved", (c) => this.onConnection(c, false));
      df.on("nodeRemoved", (id) => this.onNodeRemoved(String(id)));
      df.on("nodeMoved", () => { if (!this.suppress) this.scheduleChanged(); });
      df.on("nodeSelected", (id) => this.select(this.nidByDf.get(String(id)) || null));
      df.on("zoom", (level) => { this.root.querySelector('[data-cmd="zoom-reset"]').textContent = Math.round(level * 100) + "%"; });
    }

    portsOf(node) {
      const action = this.actions[node.action];
      if (action) return action.ports;
      // An action not installed: the ports its edges use, so the graph can still be drawn.
      const used = this.graph.edges.filter((e) => e.from === node.id).map((e) => e.port || "out");
      return Array.from(new Set(used));
    }

    nodeHtml(node) {
      const action = this.actions[node.action];
      const title = node.label || node.id;
      return '<div class="wf-node-box">' + iconSvg(action ? action.icon : "box") +
        '<span class="wf-node-text"><span class="wf-node-title">' + escapeHtml(title) + "</span>" +
        '<span class="wf-node-sub">' + escapeHtml(node.action) + (node.label ? " · " + escapeHtml(node.id) : "") + "</span></span>" +
        '<span class="wf-node-badge" hidden></span><span class="wf-trace-step" hidden></span></div>';
    }

    dfNodeData(node, dfId, pos) {
      const outputs = {};
      this.portsOf(node).forEach((_, i) => { outputs["output_" + (i + 1)] = { connections: [] }; });
      const action = this.actions[node.action];
      return {
        id: dfId, name: node.action, data: {}, class: "wf-node wf-action-" + classSafe(node.action) + (action ? "" : " wf-unknown"),
        html: this.nodeHtml(node), typenode: false,
        inputs: node.action === "start" ? {} : { input_1: { connections: [] } },
        outputs, pos_x: pos.x, pos_y: pos.y,
      };
    }

    layout(nodes) {
      // Layers by the longest path from a node without inputs; rows in order of appearance.
      const ids = nodes.map((n) => n.id);
      const known = new Set(ids);
      const incoming = new Map(ids.map((id) => [id, 0]));
      const out = new Map(ids.map((id) => [id, []]));
      for (const e of this.graph.edges) {
        if (!known.has(e.from) || !known.has(e.to) || e.from === e.to) continue;
        out.get(e.from).push(e.to);
        incoming.set(e.to, incoming.get(e.to) + 1);
      }
      const depth = new Map();
      const queue = ids.filter((id) => incoming.get(id) === 0);
      for (const id of queue) depth.set(id, 0);
      const remaining = new Map(incoming);
      while (queue.length) {
        const id = queue.shift();
        for (const next of out.get(id)) {
          depth.set(next, Math.max(depth.get(next) || 0, depth.get(id) + 1));
          remaining.set(next, remaining.get(next) - 1);
          if (remaining.get(next) === 0) queue.push(next);
        }
      }
      const rows = new Map();
      const positions = new Map();
      for (const id of ids) {
        const d = depth.has(id) ? depth.get(id) : 0;
        const row = rows.get(d) || 0;
        rows.set(d, row + 1);
        positions.set(id, { x: 40 + d * LAYER_X, y: 40 + row * ROW_Y });
      }
      return positions;
    }

    render() {
      const data = {};
      this.dfByNid.clear();
      this.nidByDf.clear();
      const placed = this.graph.nodes.map((n) => readPosition(n.position));
      let positions = null;
      if (placed.some((p) => !p)) {
        positions = this.layout(this.graph.nodes);
        if (placed.some((p) => p)) {
          // Some nodes were placed by hand: the others go below them.
          const bottom = Math.max(...placed.filter(Boolean).map((p) => p.y)) + ROW_Y;
          for (const [id, p] of positions) positions.set(id, { x: p.x, y: p.y + bottom });
        }
      }
      this.graph.nodes.forEach((node, i) => {
        const dfId = String(i + 1);
        this.dfByNid.set(node.id, dfId);
        this.nidByDf.set(dfId, node.id);
        data[dfId] = this.dfNodeData(node, Number(dfId), placed[i] || positions.get(node.id));
      });
      const drawn = new Set();
      for (const edge of this.graph.edges) {
        const source = this.dfByNid.get(edge.from);
        const target = this.dfByNid.get(edge.to);
        if (!source || !target || data[target].inputs.input_1 === undefined) continue;
        const node = this.graph.nodes[Number(source) - 1];
        const index = this.portsOf(node).indexOf(edge.port || "out");
        const key = source + "|" + index + "|" + target;
        if (index < 0 || drawn.has(key)) continue;
        drawn.add(key);
        const output = "output_" + (index + 1);
        data[source].outputs[output].connections.push({ node: target, output: "input_1" });
        data[target].inputs.input_1.connections.push({ node: source, input: output });
      }
      this.suppress += 1;
      try {
        this.df.import({ drawflow: { Home: { data } } });
      } finally {
        this.suppress -= 1;
      }
      for (const node of this.graph.nodes) this.decorate(node);
      this.drawErrors();
      if (this.trace) this.drawTrace(this.trace.records, false);
    }

    decorate(node) {
      const element = this.nodeElement(node.id);
      if (!element) return;
      element.tabIndex = 0;
      element.dataset.nid = node.id;
      element.setAttribute("role", "button");
      element.setAttribute("aria-label", (node.label || node.id) + ", " + node.action + " node");
      const ports = this.portsOf(node);
      element.querySelectorAll(".outputs .output").forEach((port, i) => {
        const name = ports[i];
        port.dataset.port = name;
        port.title = "port " + name;
        port.classList.add("wf-port-" + classSafe(name));
        if (!port.querySelector(".wf-port-label")) port.append(h("span", { class: "wf-port-label", text: name }));
      });
      const input = element.querySelector(".inputs .input");
      if (input) input.title = "input";
    }

    nodeElement(nid) {
      const dfId = this.dfByNid.get(nid);
      return dfId ? this.canvas.querySelector("#node-" + dfId) : null;
    }

    nodeById(nid) {
      return this.graph.nodes.find((n) => n.id === nid) || null;
    }

    dfPosition(nid) {
      const dfId = this.dfByNid.get(nid);
      const data = dfId && this.df.drawflow.drawflow.Home.data[dfId];
      return data ? { x: Math.round(data.pos_x), y: Math.round(data.pos_y) } : null;
    }

    // The graph as saved: the nodes and edges, each node at the place it is drawn.
    exportGraph() {
      const graph = JSON.parse(JSON.stringify(this.graph));
      for (const node of graph.nodes) {
        const position = this.dfPosition(node.id);
        if (position) node.position = position;
      }
      return graph;
    }

    snapshot() {
      return JSON.stringify(this.exportGraph());
    }

    // --- changes, undo, redo ---

    scheduleChanged() {
      if (this.changePending) return;
      this.changePending = true;
      Promise.resolve().then(() => { this.changePending = false; this.changed(); });
    }

    changed() {
      const now = this.snapshot();
      if (now === this.lastSnapshot) { this.updateButtons(); return; }
      this.undoStack.push(this.lastSnapshot);
      if (this.undoStack.length > 200) this.undoStack.shift();
      this.redoStack = [];
      this.lastSnapshot = now;
      this.afterChange();
    }

    afterChange() {
      this.updateButtons();
      this.validateSoon();
      const field = this.config.sync_field && document.getElementById(this.config.sync_field);
      if (field) field.value = JSON.stringify(this.exportGraph(), null, 2);
      if (this.lastSnapshot !== this.savedSnapshot) this.status("Unsaved changes", "dirty");
    }

    restore(snapshot) {
      this.formChanged.flush();
      this.graph = JSON.parse(snapshot);
      this.localErrors = {};
      this.render();
      this.lastSnapshot = this.snapshot();
      if (this.selected && !this.nodeById(this.selected)) this.selected = null;
      this.renderSettings();
      this.afterChange();
      if (this.lastSnapshot === this.savedSnapshot) this.status("No unsaved changes", "");
    }

    undo() {
      this.formChanged.flush();
      if (!this.undoStack.length) return;
      this.redoStack.push(this.lastSnapshot);
      this.restore(this.undoStack.pop());
    }

    redo() {
      if (!this.redoStack.length) return;
      this.undoStack.push(this.lastSnapshot);
      this.restore(this.redoStack.pop());
    }

    updateButtons() {
      this.root.querySelector('[data-cmd="undo"]').disabled = !this.undoStack.length || !this.can.change;
      this.root.querySelector('[data-cmd="redo"]').disabled = !this.redoStack.length || !this.can.change;
    }

    // --- nodes and edges ---

    uniqueId(base) {
      const stem = base.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 90) || "node";
      if (!this.nodeById(stem)) return stem;
      for (let i = 2; ; i += 1) if (!this.nodeById(stem + "_" + i)) return stem + "_" + i;
    }

    visibleCenter() {
      const rect = this.canvas.getBoundingClientRect();
      const offset = (this.added % 6) * 24;
      this.added += 1;
      return this.toCanvas(rect.left + rect.width / 2 - 80 + offset, rect.top + rect.height / 2 - 30 + offset);
    }

    toCanvas(clientX, clientY) {
      const rect = this.df.precanvas.getBoundingClientRect();
      const zoom = this.df.zoom;
      return { x: Math.round((clientX - rect.left) / zoom), y: Math.round((clientY - rect.top) / zoom) };
    }

    addNode(actionName, at, template) {
      const action = this.actions[actionName];
      if (!action || !this.can.change) return null;
      const node = { id: this.uniqueId(template ? template.id : actionName), action: actionName, config: template ? JSON.parse(JSON.stringify(template.config || {})) : {} };
      if (template && template.label) node.label = template.label;
      this.graph.nodes.push(node);
      const pos = at || this.visibleCenter();
      this.suppress += 1;
      try {
        const dfId = String(this.df.addNode(actionName, actionName === "start" ? 0 : 1, action.ports.length, pos.x, pos.y,
          "wf-node wf-action-" + classSafe(actionName), {}, this.nodeHtml(node)));
        this.dfByNid.set(node.id, dfId);
        this.nidByDf.set(dfId, node.id);
      } finally {
        this.suppress -= 1;
      }
      this.decorate(node);
      this.changed();
      this.select(node.id);
      this.status("Added " + node.id + " (" + actionName + ")", "");
      return node;
    }

    removeNode(nid) {
      const dfId = this.dfByNid.get(nid);
      if (!dfId) return;
      this.df.removeNodeId("node-" + dfId);
    }

    onNodeRemoved(dfId) {
      const nid = this.nidByDf.get(dfId);
      if (this.suppress || nid === undefined) return;
      this.graph.nodes = this.graph.nodes.filter((n) => n.id !== nid);
      this.graph.edges = this.graph.edges.filter((e) => e.from !== nid && e.to !== nid);
      this.dfByNid.delete(nid);
      this.nidByDf.delete(dfId);
      delete this.localErrors[nid];
      if (this.selected === nid) this.selected = null;
      this.renderSettings();
      this.status("Removed " + nid, "");
      this.scheduleChanged();
    }

    onConnection(c, created) {
      if (this.suppress) return;
      const from = this.nidByDf.get(String(c.output_id));
      const to = this.nidByDf.get(String(c.input_id));
      const source = from && this.nodeById(from);
      if (!source || !to) return;
      const port = this.portsOf(source)[Number(String(c.output_class).replace("output_", "")) - 1];
      if (created) {
        this.graph.edges.push({ from, port, to });
      } else {
        const index = this.graph.edges.findIndex((e) => e.from === from && (e.port || "out") === port && e.to === to);
        if (index >= 0) this.graph.edges.splice(index, 1);
      }
      if (this.selected === from || this.selected === to) this.renderConnections();
      this.scheduleChanged();
    }

    connect(from, port, to) {
      const source = this.dfByNid.get(from);
      const target = this.dfByNid.get(to);
      const index = this.portsOf(this.nodeById(from)).indexOf(port);
      if (!source || !target || index < 0) return;
      this.df.addConnection(source, target, "output_" + (index + 1), "input_1");
    }

    disconnect(from, port, to) {
      const index = this.portsOf(this.nodeById(from)).indexOf(port);
      this.df.removeSingleConnection(this.dfByNid.get(from), this.dfByNid.get(to), "output_" + (index + 1), "input_1");
    }

    renameNode(oldId, newId) {
      const node = this.nodeById(oldId);
      if (!node || oldId === newId) return null;
      if (!NODE_ID.test(newId)) return "letters, digits, _ and - only (at most 100)";
      if (this.nodeById(newId)) return "another node has this id";
      const positions = new Map(this.graph.nodes.map((n) => [n.id, this.dfPosition(n.id)]));
      node.id = newId;
      for (const edge of this.graph.edges) {
        if (edge.from === oldId) edge.from = newId;
        if (edge.to === oldId) edge.to = newId;
      }
      for (const n of this.graph.nodes) {
        const p = positions.get(n === node ? oldId : n.id);
        if (p) n.position = p;
      }
      if (this.localErrors[oldId]) { this.localErrors[newId] = this.localErrors[oldId]; delete this.localErrors[oldId]; }
      this.selected = newId;
      this.render();
      this.changed();
      return null;
    }

    moveNode(nid, dx, dy) {
      const dfId = this.dfByNid.get(nid);
      const data = this.df.drawflow.drawflow.Home.data[dfId];
      const element = this.nodeElement(nid);
      if (!data || !element) return;
      data.pos_x += dx;
      data.pos_y += dy;
      element.style.left = data.pos_x + "px";
      element.style.top = data.pos_y + "px";
      this.df.updateConnectionNodes("node-" + dfId);
      this.formChanged();
    }

    autoLayout() {
      const positions = this.layout(this.graph.nodes);
      for (const node of this.graph.nodes) node.position = positions.get(node.id);
      this.render();
      this.changed();
      this.fitView(false);
      this.status("Arranged the nodes in layers", "");
    }

    copy() {
      const node = this.selected && this.nodeById(this.selected);
      if (!node) return;
      this.clipboard = JSON.parse(JSON.stringify(node));
      this.clipboard.position = this.dfPosition(node.id);
      this.status("Copied " + node.id, "");
    }

    paste() {
      const copied = this.clipboard;
      if (!copied || copied.action === "start" && this.graph.nodes.some((n) => n.action === "start")) {
        if (copied) this.status("A workflow has one start node", "error");
        return;
      }
      const at = copied.position ? { x: copied.position.x + 40, y: copied.position.y + 40 } : null;
      const node = this.addNode(copied.action, at, copied);
      if (node) {
        this.clipboard.position = at;
        this.focusNode(node.id);
      }
    }

    focusNode(nid) {
      const element = this.nodeElement(nid);
      if (element) element.focus({ preventScroll: true });
    }

    pan(dx, dy) {
      this.df.canvas_x += dx;
      this.df.canvas_y += dy;
      this.df.precanvas.style.transform = "translate(" + this.df.canvas_x + "px, " + this.df.canvas_y + "px) scale(" + this.df.zoom + ")";
    }

    // Zoom out (not below zoom_min) and move so that every node is in view; with `always`
    // false, only when some node is out of view.
    fitView(always) {
      const data = this.df.drawflow.drawflow.Home.data;
      const boxes = Object.keys(data).map((id) => {
        const element = this.canvas.querySelector("#node-" + id);
        return { x: data[id].pos_x, y: data[id].pos_y, w: (element ? element.offsetWidth : 160) + 70, h: (element ? element.offsetHeight : 60) + 20 };
      });
      if (!boxes.length) return;
      const margin = 20;
      const minX = Math.min(...boxes.map((b) => b.x));
      const minY = Math.min(...boxes.map((b) => b.y));
      const width = Math.max(...boxes.map((b) => b.x + b.w)) - minX;
      const height = Math.max(...boxes.map((b) => b.y + b.h)) - minY;
      const W = this.canvas.clientWidth;
      const H = this.canvas.clientHeight;
      if (!always && minX >= 0 && minY >= 0 && minX + width <= W && minY + height <= H) return;
      const zoom = Math.max(this.df.zoom_min, Math.min(1, (W - 2 * margin) / width, (H - 2 * margin) / height));
      // Drawflow scales the canvas around its centre, after translating it.
      this.df.zoom = zoom;
      this.df.zoom_last_value = zoom;
      this.df.canvas_x = margin - W / 2 - zoom * (minX - W / 2);
      this.df.canvas_y = margin - H / 2 - zoom * (minY - H / 2);
      this.pan(0, 0);
      this.root.querySelector('[data-cmd="zoom-reset"]').textContent = Math.round(zoom * 100) + "%";
    }

    zoomReset() {
      this.df.zoom_reset();
      this.df.canvas_x = 0;
      this.df.canvas_y = 0;
      this.pan(0, 0);
    }

    // --- palette ---

    buildPalette() {
      const groups = new Map();
      for (const action of Object.values(this.actions)) {
        const category = action.category || "Other";
        if (!groups.has(category)) groups.set(category, []);
        groups.get(category).push(action);
      }
      const order = (c) => { const i = CATEGORY_ORDER.indexOf(c); return i < 0 ? CATEGORY_ORDER.length : i; };
      const names = Array.from(groups.keys()).sort((a, b) => order(a) - order(b) || a.localeCompare(b));
      const box = this.root.querySelector(".wf-palette-groups");
      box.replaceChildren(...names.map((category) => {
        const items = groups.get(category).sort((a, b) => a.name.localeCompare(b.name)).map((action) => {
          const item = h("button", {
            type: "button", class: "wf-palette-item", draggable: "true", "data-action": action.name,
            title: action.description, "aria-label": "Add " + action.name + ": " + action.description,
          });
          item.innerHTML = iconSvg(action.icon) + '<span class="wf-palette-text"><span class="wf-palette-name">' + escapeHtml(action.name) +
            '</span><span class="wf-palette-desc">' + escapeHtml(action.description) + "</span></span>";
          item.addEventListener("dragstart", (e) => {
            e.dataTransfer.setData("application/x-cdp-action", action.name);
            e.dataTransfer.setData("text/plain", action.name);
            e.dataTransfer.effectAllowed = "copy";
          });
          item.addEventListener("click", () => { const node = this.addNode(action.name); if (node) this.focusNode(node.id); });
          return item;
        });
        return h("section", { class: "wf-palette-group", "data-category": category }, h("h3", { text: category }), ...items);
      }));
      const search = this.root.querySelector(".wf-search");
      search.addEventListener("input", () => {
        const q = search.value.trim().toLowerCase();
        for (const item of box.querySelectorAll(".wf-palette-item")) {
          item.hidden = Boolean(q) && !item.textContent.toLowerCase().includes(q);
        }
        for (const group of box.querySelectorAll(".wf-palette-group")) {
          group.hidden = !group.querySelector(".wf-palette-item:not([hidden])");
        }
      });
    }

    // --- the page's controls and keys ---

    bindUi() {
      this.canvas.addEventListener("dragover", (e) => { if (this.can.change) { e.preventDefault(); e.dataTransfer.dropEffect = "copy"; } });
      this.canvas.addEventListener("drop", (e) => {
        const name = e.dataTransfer.getData("application/x-cdp-action") || e.dataTransfer.getData("text/plain");
        if (!this.actions[name]) return;
        e.preventDefault();
        const at = this.toCanvas(e.clientX, e.clientY);
        const node = this.addNode(name, { x: at.x - 70, y: at.y - 25 });
        if (node) this.focusNode(node.id);
      });
      this.canvas.addEventListener("focusin", (e) => {
        const element = e.target.closest(".drawflow-node");
        if (element && element.dataset.nid && element.dataset.nid !== this.selected) this.select(element.dataset.nid);
      });
      this.canvas.addEventListener("click", (e) => {
        const element = e.target.closest(".drawflow-node");
        if (element && element.dataset.nid && element.dataset.nid !== this.selected) this.select(element.dataset.nid);
      });
      this.root.addEventListener("keydown", (e) => this.onKey(e));
      this.root.querySelector(".wf-toolbar").addEventListener("click", (e) => {
        const button = e.target.closest("[data-cmd]");
        if (button) this.command(button.dataset.cmd);
      });
      for (const tab of this.root.querySelectorAll("[data-tab]")) {
        tab.addEventListener("click", () => this.showTab(tab.dataset.tab));
      }
      this.root.querySelector(".wf-tabs").addEventListener("keydown", (e) => {
        if (e.key !== "ArrowRight" && e.key !== "ArrowLeft") return;
        const tabs = Array.from(this.root.querySelectorAll("[data-tab]:not([hidden])"));
        const i = tabs.indexOf(document.activeElement);
        const next = tabs[(i + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
        next.focus();
        this.showTab(next.dataset.tab);
      });
      window.addEventListener("beforeunload", (e) => {
        if (this.can.change && !this.submitting && this.lastSnapshot !== this.savedSnapshot) e.preventDefault();
      });
      // In the admin the page's own form saves the graph the editor keeps in step with it.
      const synced = this.config.sync_field && document.getElementById(this.config.sync_field);
      if (synced && synced.form) synced.form.addEventListener("submit", () => { this.submitting = true; });
    }

    command(name) {
      const commands = {
        "undo": () => this.undo(),
        "redo": () => this.redo(),
        "zoom-in": () => this.df.zoom_in(),
        "zoom-out": () => this.df.zoom_out(),
        "zoom-reset": () => this.zoomReset(),
        "layout": () => this.autoLayout(),
        "fit": () => this.fitView(true),
        "save": () => this.save(),
        "publish": () => this.publish(),
      };
      if (commands[name]) commands[name]();
    }

    onKey(e) {
      // Drawflow listens on the whole document: keys typed in the editor stay here.
      e.stopPropagation();
      const target = e.target;
      const typing = target.matches("input, textarea, select");
      const mod = e.ctrlKey || e.metaKey;
      if (typing) return;
      const nodeFocused = target.closest && target.closest(".drawflow-node");
      const onCanvas = this.canvas.contains(target);
      let handled = true;
      if (mod && e.key.toLowerCase() === "z" && !e.shiftKey) this.undo();
      else if (mod && (e.key.toLowerCase() === "y" || (e.key.toLowerCase() === "z" && e.shiftKey))) this.redo();
      else if (mod && e.key.toLowerCase() === "c" && onCanvas) this.copy();
      else if (mod && e.key.toLowerCase() === "v" && onCanvas) this.paste();
      else if ((e.key === "Delete" || e.key === "Backspace") && onCanvas && this.can.change) {
        if (this.df.connection_selected) this.df.removeConnection();
        else if (nodeFocused || this.selected) {
          const nid = nodeFocused ? nodeFocused.dataset.nid : this.selected;
          this.removeNode(nid);
          this.canvas.focus();
        } else handled = false;
      } else if (e.key.startsWith("Arrow") && onCanvas) {
        const step = e.shiftKey ? 50 : 10;
        const dx = e.key === "ArrowLeft" ? -step : e.key === "ArrowRight" ? step : 0;
        const dy = e.key === "ArrowUp" ? -step : e.key === "ArrowDown" ? step : 0;
        if (nodeFocused && this.can.change) this.moveNode(nodeFocused.dataset.nid, dx, dy);
        else this.pan(-dx * 2, -dy * 2);
      } else if ((e.key === "+" || e.key === "=") && onCanvas) this.df.zoom_in();
      else if (e.key === "-" && onCanvas) this.df.zoom_out();
      else if (e.key === "0" && onCanvas) this.zoomReset();
      else if (e.key === "f" && !mod && onCanvas) this.fitView(true);
      else if (e.key === "Enter" && nodeFocused) {
        this.select(nodeFocused.dataset.nid);
        this.showTab("settings");
        const first = this.root.querySelector('[data-panel="settings"] input, [data-panel="settings"] textarea, [data-panel="settings"] select');
        if (first) first.focus();
      } else handled = false;
      if (handled) e.preventDefault();
    }

    showTab(name) {
      for (const tab of this.root.querySelectorAll("[data-tab]")) tab.setAttribute("aria-selected", tab.dataset.tab === name ? "true" : "false");
      for (const panel of this.root.querySelectorAll("[data-panel]")) panel.hidden = panel.dataset.panel !== name;
      if (name === "test") this.renderTest();
      if (name === "runs") this.renderRuns();
      if (name === "versions") this.renderVersions();
    }

    select(nid) {
      if (this.selected === nid) return;
      this.formChanged.flush();
      this.selected = nid;
      for (const element of this.canvas.querySelectorAll(".wf-selected")) element.classList.remove("wf-selected");
      const element = nid && this.nodeElement(nid);
      if (element) element.classList.add("wf-selected");
      this.renderSettings();
      if (nid) this.showTab("settings");
    }

    // --- the settings form ---

    renderSettings() {
      const panel = this.root.querySelector('[data-panel="settings"]');
      const node = this.selected && this.nodeById(this.selected);
      if (!node) {
        const total = this.graph.nodes.length;
        panel.replaceChildren(h("p", { class: "wf-muted", text: "Select a node to edit its settings (click it, or Tab to it on the canvas and press Enter). " + total + " node" + (total === 1 ? "" : "s") + ", " + this.graph.edges.length + " edge" + (this.graph.edges.length === 1 ? "" : "s") + "." }));
        return;
      }
      const action = this.actions[node.action];
      const form = h("fieldset", { class: "wf-form", disabled: !this.can.change },
        h("legend", {}, h("span", { class: "wf-legend-icon", "aria-hidden": "true" }), node.action));
      form.querySelector(".wf-legend-icon").innerHTML = iconSvg(action ? action.icon : "box");
      form.append(h("p", { class: "wf-muted", text: action ? action.description : "This action is not installed: its node can't run." }));
      form.append(h("div", { class: "wf-node-errors", role: "alert" }));
      const idInput = h("input", { id: nextUid("wf-id"), class: "wf-input", type: "text", value: node.id });
      const idError = h("div", { class: "wf-field-error" });
      idInput.addEventListener("change", () => {
        const problem = this.renameNode(node.id, idInput.value.trim());
        idError.textContent = problem || "";
        if (!problem) this.renderSettings();
      });
      form.append(h("div", { class: "wf-field" }, h("label", { for: idInput.id, text: "Node id" }), idInput, idError));
      const labelInput = h("input", { id: nextUid("wf-label"), class: "wf-input", type: "text", value: node.label || "", placeholder: "shown on the canvas" });
      labelInput.addEventListener("input", () => {
        if (labelInput.value) node.label = labelInput.value; else delete node.label;
        const element = this.nodeElement(node.id);
        if (element) {
          element.querySelector(".wf-node-title").textContent = node.label || node.id;
          element.querySelector(".wf-node-sub").textContent = node.action + (node.label ? " · " + node.id : "");
        }
        this.formChanged();
      });
      form.append(h("div", { class: "wf-field" }, h("label", { for: labelInput.id, text: "Label" }), labelInput));
      const schema = (action && action.config_schema) || {};
      const properties = schema.properties || {};
      const required = new Set(schema.required || []);
      if (!node.config || typeof node.config !== "object") node.config = {};
      for (const [key, propSchema] of Object.entries(properties)) {
        form.append(this.renderField(node, action, key, propSchema, required.has(key)));
      }
      if (action && !Object.keys(properties).length) form.append(h("p", { class: "wf-muted", text: "No settings." }));
      form.append(h("div", { class: "wf-connections" }));
      if (this.can.change) {
        form.append(h("div", { class: "wf-row" },
          h("button", { type: "button", onclick: () => { this.copy(); this.paste(); } }, "Duplicate"),
          h("button", { type: "button", class: "wf-danger", onclick: () => this.removeNode(node.id) }, "Delete node")));
      }
      form.append(h("div", { class: "wf-node-trace" }));
      panel.replaceChildren(form);
      this.renderConnections();
      this.drawFieldErrors();
      this.renderNodeTrace();
    }

    renderField(node, action, key, schema, required) {
      const kind = fieldKind(schema, action);
      const id = nextUid("wf-f");
      const field = "config." + key;
      const error = h("div", { class: "wf-field-error", id: id + "-error", "aria-live": "polite" });
      const setLocal = (message) => {
        const errors = this.localErrors[node.id] || (this.localErrors[node.id] = {});
        if (message) errors[field] = message; else delete errors[field];
        if (!Object.keys(errors).length) delete this.localErrors[node.id];
        this.drawErrors();
      };
      const ctx = {
        key, schema, required, editor: this, node, id,
        value: node.config[key], has: Object.prototype.hasOwnProperty.call(node.config, key),
        set: (value) => { node.config[key] = value; setLocal(null); this.formChanged(); },
        unset: () => { delete node.config[key]; setLocal(null); this.formChanged(); },
        error: (message) => setLocal(message),
        pending: () => {},
      };
      const control = fieldTypes[kind].render(ctx);
      const input = control.matches("input, select, textarea") ? control : control.querySelector("#" + id);
      if (input) input.setAttribute("aria-describedby", id + "-error");
      const help = schema.description || (Array.isArray(schema.type) ? "one of: " + schema.type.join(", ") : "");
      return h("div", { class: "wf-field wf-kind-" + kind, "data-field": field },
        h("label", { for: id }, key, required ? h("span", { class: "wf-required", title: "required", text: " *" }) : null),
        control, help ? h("div", { class: "wf-muted wf-help", text: help }) : null, error);
    }

    renderConnections() {
      const box = this.root.querySelector('[data-panel="settings"] .wf-connections');
      const node = this.selected && this.nodeById(this.selected);
      if (!box || !node) return;
      const ports = this.portsOf(node);
      box.replaceChildren(h("h4", { text: "Connections" }));
      if (!ports.length) box.append(h("p", { class: "wf-muted", text: "This node has no output ports." }));
      for (const port of ports) {
        const targets = this.graph.edges.filter((e) => e.from === node.id && (e.port || "out") === port);
        const row = h("div", { class: "wf-port-row", "data-port": port }, h("span", { class: "wf-port-name wf-port-" + port, text: port }));
        for (const edge of targets) {
          row.append(h("span", { class: "wf-chip" }, "→ " + edge.to,
            this.can.change ? h("button", { type: "button", class: "wf-chip-x", "aria-label": "Disconnect " + port + " from " + edge.to, onclick: () => this.disconnect(node.id, port, edge.to) }, "×") : null));
        }
        if (this.can.change) {
          const choices = this.graph.nodes.filter((n) => n.id !== node.id && n.action !== "start" && !targets.some((e) => e.to === n.id));
          const select = h("select", { class: "wf-input wf-connect-select", "aria-label": "Connect port " + port + " to" },
            h("option", { value: "", text: "connect to…" }), ...choices.map((n) => h("option", { value: n.id, text: n.label ? n.label + " (" + n.id + ")" : n.id })));
          const button = h("button", { type: "button", onclick: () => { if (select.value) this.connect(node.id, port, select.value); } }, "Connect");
          row.append(select, button);
        }
        box.append(row);
      }
      const sources = this.graph.edges.filter((e) => e.to === node.id);
      box.append(h("p", { class: "wf-muted", text: sources.length ? "Input from: " + sources.map((e) => e.from + " (" + (e.port || "out") + ")").join(", ") : node.action === "start" ? "Runs start here." : "No input yet." }));
    }

    // --- validation ---

    async validate() {
      const graph = this.exportGraph();
      const answer = await this.api("POST", this.config.api.validate, { graph });
      if (!answer.ok) { this.status("Could not check the graph: " + answer.data.error.message, "error"); return; }
      if (JSON.stringify(graph) !== this.snapshot()) return; // changed meanwhile: a newer check comes
      this.errors = answer.data.errors;
      this.drawErrors();
    }

    errorsByNode() {
      const byNode = new Map();
      const general = [];
      for (const error of this.errors) {
        let nid = error.node;
        if (!nid && error.field) {
          const match = /^nodes\[(\d+)\]/.exec(error.field);
          const node = match && this.graph.nodes[Number(match[1])];
          if (node) nid = node.id;
        }
        if (nid && this.nodeById(nid)) {
          if (!byNode.has(nid)) byNode.set(nid, []);
          byNode.get(nid).push(error);
        } else {
          general.push(error);
        }
      }
      for (const [nid, fields] of Object.entries(this.localErrors)) {
        if (!byNode.has(nid)) byNode.set(nid, []);
        for (const [field, message] of Object.entries(fields)) byNode.get(nid).push({ node: nid, field, message, local: true });
      }
      return { byNode, general };
    }

    drawErrors() {
      const { byNode, general } = this.errorsByNode();
      for (const node of this.graph.nodes) {
        const element = this.nodeElement(node.id);
        if (!element) continue;
        const errors = byNode.get(node.id) || [];
        element.classList.toggle("wf-invalid", errors.length > 0);
        const badge = element.querySelector(".wf-node-badge");
        badge.hidden = !errors.length;
        badge.textContent = errors.length ? "!" + (errors.length > 1 ? errors.length : "") : "";
        badge.title = errors.map((e) => (e.field ? e.field + ": " : "") + e.message).join("\n");
        element.setAttribute("aria-invalid", errors.length ? "true" : "false");
        element.setAttribute("aria-label", (node.label || node.id) + ", " + node.action + " node" + (errors.length ? ", " + errors.length + " error" + (errors.length > 1 ? "s" : "") : ""));
      }
      const list = this.root.querySelector(".wf-graph-errors");
      list.replaceChildren(...general.map((e) => h("li", { text: (e.field ? e.field + ": " : "") + e.message })));
      this.drawFieldErrors();
    }

    drawFieldErrors() {
      const panel = this.root.querySelector('[data-panel="settings"]');
      const node = this.selected && this.nodeById(this.selected);
      if (!node || !panel.querySelector(".wf-form")) return;
      const errors = this.errorsByNode().byNode.get(node.id) || [];
      const unplaced = [];
      const byField = new Map();
      for (const error of errors) {
        const field = error.field || "";
        const match = /^config\.([^.[]+)/.exec(field);
        const wrapper = match && panel.querySelector('[data-field="config.' + CSS.escape(match[1]) + '"]');
        if (wrapper) {
          if (!byField.has(wrapper)) byField.set(wrapper, []);
          byField.get(wrapper).push(error);
        } else {
          unplaced.push(error);
        }
      }
      for (const wrapper of panel.querySelectorAll("[data-field]")) {
        const messages = byField.get(wrapper) || [];
        wrapper.classList.toggle("wf-has-error", messages.length > 0);
        const text = messages.map((e) => e.message).join("; ");
        const box = wrapper.querySelector(".wf-field-error");
        if (box.textContent !== text) box.textContent = text;
        const input = wrapper.querySelector("input, textarea, select:not(.wf-mode)");
        if (input) input.setAttribute("aria-invalid", messages.length ? "true" : "false");
      }
      const box = panel.querySelector(".wf-node-errors");
      box.replaceChildren(...unplaced.map((e) => h("div", { text: (e.field && e.field !== "edges" ? e.field + ": " : "") + e.message })));
    }

    // --- save, publish, versions, changes ---

    hasLocalErrors() {
      return Object.keys(this.localErrors).length > 0;
    }

    async save() {
      this.formChanged.flush();
      if (!this.can.change) return false;
      if (this.hasLocalErrors()) { this.status("Not saved: fix the fields marked in red first", "error"); return false; }
      const graph = this.exportGraph();
      const check = await this.api("POST", this.config.api.validate, { graph });
      if (check.ok && !check.data.valid) {
        this.errors = check.data.errors;
        this.drawErrors();
        this.status("Not saved: " + this.errors.length + " problem" + (this.errors.length > 1 ? "s" : "") + " marked on the graph", "error");
        return false;
      }
      this.status("Saving…", "");
      const answer = await this.api("PATCH", this.config.api.workflow, { graph });
      if (!answer.ok) {
        if (answer.data.error.errors) { this.errors = answer.data.error.errors; this.drawErrors(); }
        this.status("Not saved: " + answer.data.error.message, "error");
        return false;
      }
      this.workflow = answer.data;
      this.lastSaved = graph;
      this.savedSnapshot = JSON.stringify(graph);
      this.lastSnapshot = this.savedSnapshot;
      const field = this.config.sync_field && document.getElementById(this.config.sync_field);
      if (field) field.value = JSON.stringify(graph, null, 2);
      this.status("Draft saved", "ok");
      this.renderVersions();
      return true;
    }

    async publish() {
      if (this.can.change && this.lastSnapshot !== this.savedSnapshot && !(await this.save())) return;
      const answer = await this.api("POST", this.config.api.publish);
      if (!answer.ok) {
        if (answer.data.error.errors) { this.errors = answer.data.error.errors; this.drawErrors(); }
        this.status("Not published: " + answer.data.error.message, "error");
        return;
      }
      await this.reloadWorkflow();
      this.status("Published as v" + answer.data.number, "ok");
    }

    async reloadWorkflow() {
      const answer = await this.api("GET", this.config.api.workflow);
      if (answer.ok) this.workflow = answer.data;
      this.renderVersions();
    }

    renderVersions() {
      const panel = this.root.querySelector('[data-panel="versions"]');
      if (!panel || !this.workflow) return;
      const wf = this.workflow;
      // The page's own mention of the published version, where it has one.
      for (const label of document.querySelectorAll("[data-wf-published]")) {
        label.textContent = wf.published_version ? "published v" + wf.published_version : "not published";
      }
      const dirty = this.lastSnapshot !== this.savedSnapshot;
      const list = h("ul", { class: "wf-list" }, ...(wf.versions || []).map((v) => {
        const current = v.number === wf.published_version;
        const item = h("li", { "data-version": v.number },
          h("strong", { text: "v" + v.number }), current ? h("span", { class: "wf-chip wf-ok", text: "published" }) : null,
          h("span", { class: "wf-muted", text: " " + new Date(v.published_at).toLocaleString() + (v.published_by ? " · " + v.published_by : "") }));
        if (this.can.publish) {
          const confirm = h("span", { class: "wf-confirm", hidden: true },
            "Publish v" + v.number + " again and replace the draft" + (wf.unpublished_changes || dirty ? " (its unpublished changes are lost)" : "") + "? ",
            h("button", { type: "button", class: "wf-danger", onclick: () => this.restoreVersion(v.number) }, "Restore v" + v.number),
            h("button", { type: "button", onclick: () => { confirm.hidden = true; } }, "Cancel"));
          item.append(" ", h("button", { type: "button", onclick: () => { confirm.hidden = false; confirm.querySelector("button").focus(); } }, "Restore…"), confirm);
        }
        return item;
      }));
      panel.replaceChildren(...[
        h("h4", { text: "Published versions" }),
        (wf.versions || []).length ? list : h("p", { class: "wf-muted", text: "Not published yet." }),
        h("h4", { text: "Draft against the published version" }),
        h("button", { type: "button", onclick: () => this.showDiff() }, "Compare"),
        dirty ? h("p", { class: "wf-muted", text: "The comparison uses the saved draft: save to include your latest changes." }) : null,
        h("div", { class: "wf-diff" })].filter(Boolean));
    }

    async restoreVersion(number) {
      const answer = await this.api("POST", this.config.api.restore, { version: number });
      if (!answer.ok) { this.status("Not restored: " + answer.data.error.message, "error"); return; }
      this.workflow = answer.data;
      this.undoStack.push(this.lastSnapshot);
      this.graph = JSON.parse(JSON.stringify(answer.data.graph));
      this.render();
      this.lastSnapshot = this.snapshot();
      this.savedSnapshot = this.lastSnapshot;
      this.selected = null;
      this.renderSettings();
      this.afterChange();
      this.renderVersions();
      this.status("v" + number + " is published again; the draft is a copy of it", "ok");
    }

    async showDiff() {
      const answer = await this.api("GET", this.config.api.diff);
      const box = this.root.querySelector('[data-panel="versions"] .wf-diff');
      for (const element of this.canvas.querySelectorAll(".wf-diff-added, .wf-diff-changed")) element.classList.remove("wf-diff-added", "wf-diff-changed");
      if (!answer.ok) { box.replaceChildren(h("p", { class: "wf-error", text: answer.data.error.message })); return; }
      const d = answer.data;
      const rows = [];
      if (d.published_version === null) rows.push(h("p", { class: "wf-muted", text: "Nothing is published: every node is new." }));
      const section = (title, items, cls) => {
        if (!items.length) return;
        rows.push(h("h5", { text: title + " (" + items.length + ")" }), h("ul", { class: "wf-list " + cls }, ...items.map((text) => h("li", { text }))));
      };
      section("Nodes added", d.added, "wf-added");
      section("Nodes removed", d.removed, "wf-removed");
      section("Nodes changed", d.changed.map((c) => c.node + ": " + c.fields.join(", ")), "wf-changed");
      section("Edges added", d.edges_added.map((e) => e.from + " (" + e.port + ") → " + e.to), "wf-added");
      section("Edges removed", d.edges_removed.map((e) => e.from + " (" + e.port + ") → " + e.to), "wf-removed");
      if (!rows.length) rows.push(h("p", { class: "wf-muted", text: "The draft is the published version v" + d.published_version + "." }));
      box.replaceChildren(...rows);
      for (const nid of d.added) { const el = this.nodeElement(nid); if (el) el.classList.add("wf-diff-added"); }
      for (const c of d.changed) { const el = this.nodeElement(c.node); if (el) el.classList.add("wf-diff-changed"); }
    }

    // --- test mode ---

    renderTest() {
      const panel = this.root.querySelector('[data-panel="test"]');
      if (panel.dataset.built) return;
      panel.dataset.built = "true";
      const eventId = nextUid("wf-test-event");
      const eventBox = h("textarea", { id: eventId, class: "wf-input wf-mono", rows: 7 });
      eventBox.value = pretty({ event_name: "signed_up", distinct_id: "test-user", properties: { plan: "pro" } });
      const recentId = nextUid("wf-recent");
      const recent = h("select", { id: recentId, class: "wf-input" }, h("option", { value: "", text: this.can.events ? "loading…" : "(needs the permission to view events)" }));
      recent.disabled = true;
      const who = h("input", { id: nextUid("wf-who"), class: "wf-input", type: "text", placeholder: "the event's own", list: recentId + "-ids" });
      const ids = h("datalist", { id: recentId + "-ids" });
      const traits = h("textarea", { id: nextUid("wf-traits"), class: "wf-input wf-mono", rows: 2, placeholder: '{"plan": "pro"}' });
      const problem = h("div", { class: "wf-field-error", role: "alert" });
      const run = h("button", { type: "button", class: "wf-primary", "data-cmd-test": "run" }, "Run test");
      const result = h("div", { class: "wf-test-result", "aria-live": "polite" });
      panel.replaceChildren(
        h("p", { class: "wf-muted", text: "Runs the saved draft for this event inside a transaction that is rolled back: nothing is kept, HTTP requests are recorded, not sent (unless a node has a test URL)." }),
        h("div", { class: "wf-field" }, h("label", { for: recentId, text: "A recent event" }), recent),
        h("div", { class: "wf-field" }, h("label", { for: eventId, text: "Event (JSON)" }), eventBox),
        h("div", { class: "wf-field" }, h("label", { for: who.id, text: "As the profile of (distinct id)" }), who, ids),
        h("div", { class: "wf-field" }, h("label", { for: traits.id, text: "With traits (JSON, this test only)" }), traits),
        problem, h("div", { class: "wf-row" }, run, h("button", { type: "button", onclick: () => this.clearTrace() }, "Clear trace")), result);
      if (this.can.events) {
        this.api("GET", this.config.api.events + "?page_size=25").then((answer) => {
          if (!answer.ok) { recent.replaceChildren(h("option", { value: "", text: "could not load events" })); return; }
          const events = answer.data.results || [];
          recent.replaceChildren(h("option", { value: "", text: events.length ? "— pick one (" + events.length + ") —" : "no events yet" }),
            ...events.map((ev, i) => h("option", { value: String(i), text: ev.event_name + " · " + ev.distinct_id + " · " + new Date(ev.timestamp).toLocaleString() })));
          recent.disabled = !events.length;
          ids.replaceChildren(...Array.from(new Set(events.map((ev) => ev.distinct_id))).map((id) => h("option", { value: id })));
          recent.addEventListener("change", () => {
            const ev = events[Number(recent.value)];
            if (!ev) return;
            eventBox.value = pretty({ event_name: ev.event_name, distinct_id: ev.distinct_id, properties: ev.properties, context: ev.context, timestamp: ev.timestamp, category: ev.category });
          });
        });
      }
      run.addEventListener("click", async () => {
        problem.textContent = "";
        let event;
        let traitValues;
        try { event = JSON.parse(eventBox.value); } catch (err) { problem.textContent = "The event is not valid JSON: " + err.message; eventBox.focus(); return; }
        if (!event || typeof event !== "object" || Array.isArray(event)) { problem.textContent = "The event is a JSON object"; return; }
        try { traitValues = traits.value.trim() ? JSON.parse(traits.value) : null; } catch (err) { problem.textContent = "The traits are not valid JSON: " + err.message; traits.focus(); return; }
        if (this.can.change && this.lastSnapshot !== this.savedSnapshot && !(await this.save())) { problem.textContent = "Save the draft first: " + this.statusEl.textContent; return; }
        const profile = {};
        if (who.value.trim()) profile.distinct_id = who.value.trim();
        if (traitValues) profile.traits = traitValues;
        run.disabled = true;
        result.replaceChildren(h("p", { class: "wf-muted", text: "Running…" }));
        const answer = await this.api("POST", this.config.api.test, { event, profile });
        run.disabled = false;
        if (!answer.ok) {
          const err = answer.data.error;
          problem.textContent = (err.field ? err.field + ": " : "") + err.message;
          result.replaceChildren();
          if (err.errors) { this.errors = err.errors; this.drawErrors(); }
          return;
        }
        this.showResult(result, answer.data, "Test run");
        this.drawTrace(answer.data.trace, false);
      });
    }

    showResult(box, data, title) {
      const records = data.trace || data.traces || [];
      const status = h("p", {}, h("strong", { text: title + ": " }), h("span", { class: "wf-chip wf-status-" + data.status, text: data.status }),
        h("span", { class: "wf-muted", text: " " + (data.duration_ms === null || data.duration_ms === undefined ? "" : data.duration_ms + " ms") }));
      const parts = [status];
      if (data.error) parts.push(h("p", { class: "wf-error", text: data.error }));
      parts.push(h("h5", { text: "Trace (" + records.length + " step" + (records.length === 1 ? "" : "s") + ")" }));
      parts.push(h("ol", { class: "wf-trace-list" }, ...records.map((r) => h("li", { class: r.error ? "wf-trace-error" : "" },
        h("button", { type: "button", class: "wf-link", onclick: () => { this.select(r.node); this.focusNode(r.node); } }, r.node),
        " " + r.action + (r.port ? " → " + r.port : "") + " · " + r.duration_ms + " ms" + (r.attempt > 1 ? " · attempt " + r.attempt : "") + (r.error ? " · " + r.error : "")))));
      for (const key of ["changes", "requests", "variables", "profile_after"]) {
        if (data[key] === undefined || data[key] === null) continue;
        if (Array.isArray(data[key]) && !data[key].length) continue;
        parts.push(h("details", {}, h("summary", { text: key.replace("_", " ") }), h("pre", { class: "wf-pre", text: pretty(data[key]) })));
      }
      box.replaceChildren(...parts);
    }

    clearTrace() {
      this.trace = null;
      for (const element of this.canvas.querySelectorAll(".wf-ran, .wf-failed, .wf-skipped")) element.classList.remove("wf-ran", "wf-failed", "wf-skipped");
      for (const element of this.canvas.querySelectorAll(".wf-trace-step")) { element.hidden = true; element.textContent = ""; }
      for (const path of this.canvas.querySelectorAll(".connection.wf-taken, .connection.wf-taken-error")) path.classList.remove("wf-taken", "wf-taken-error");
      this.canvas.classList.remove("wf-tracing");
      this.renderNodeTrace();
    }

    // Draw a trace on the canvas: the nodes that ran in order (step, time), the ports that
    // fired, errors in red; with `animate`, one step after another.
    drawTrace(records, animate) {
      this.clearTrace();
      this.trace = { records, byNode: new Map() };
      for (const r of records) {
        if (!this.trace.byNode.has(r.node)) this.trace.byNode.set(r.node, []);
        this.trace.byNode.get(r.node).push(r);
      }
      this.canvas.classList.add("wf-tracing");
      for (const node of this.graph.nodes) {
        const element = this.nodeElement(node.id);
        if (element && !this.trace.byNode.has(node.id)) element.classList.add("wf-skipped");
      }
      const ran = new Set(records.map((r) => r.node));
      const steps = records.map((r, i) => () => {
        const element = this.nodeElement(r.node);
        if (!element) return;
        element.classList.remove("wf-skipped");
        element.classList.toggle("wf-failed", Boolean(r.error) && !r.port);
        element.classList.toggle("wf-ran", !(r.error && !r.port));
        const step = element.querySelector(".wf-trace-step");
        step.hidden = false;
        step.textContent = (i + 1) + " · " + r.duration_ms + " ms" + (r.port ? " → " + r.port : "");
        step.title = r.error || "";
        if (!r.port) return;
        const node = this.nodeById(r.node);
        const index = node ? this.portsOf(node).indexOf(r.port) : -1;
        if (index < 0) return;
        const source = this.dfByNid.get(r.node);
        for (const path of this.canvas.querySelectorAll(".connection.node_out_node-" + source + ".output_" + (index + 1))) {
          const target = Array.from(path.classList).find((c) => c.startsWith("node_in_node-"));
          const nid = target && this.nidByDf.get(target.replace("node_in_node-", ""));
          if (nid && ran.has(nid)) path.classList.add(r.port === "error" ? "wf-taken-error" : "wf-taken");
        }
      });
      if (animate) {
        steps.forEach((step, i) => setTimeout(step, 350 * i));
      } else {
        steps.forEach((step) => step());
      }
      const missing = Array.from(ran).filter((nid) => !this.nodeById(nid));
      this.renderNodeTrace();
      this.root.dataset.traceSteps = String(records.length);
      return missing;
    }

    renderNodeTrace() {
      const box = this.root.querySelector('[data-panel="settings"] .wf-node-trace');
      if (!box) return;
      const records = (this.trace && this.selected && this.trace.byNode.get(this.selected)) || [];
      if (!records.length) { box.replaceChildren(this.trace ? h("p", { class: "wf-muted", text: "This node did not run in the trace shown." }) : ""); return; }
      box.replaceChildren(h("h4", { text: "In the trace" }), ...records.map((r) => h("div", { class: "wf-trace-record" + (r.error ? " wf-trace-error" : "") },
        h("p", { text: "Step " + (this.trace.records.indexOf(r) + 1) + (r.attempt > 1 ? ", attempt " + r.attempt : "") + " · " + r.duration_ms + " ms" + (r.port ? " · fired " + r.port : "") }),
        r.error ? h("p", { class: "wf-error", text: r.error }) : null,
        h("details", { open: true }, h("summary", { text: "Input" }), h("pre", { class: "wf-pre", text: pretty(r.input) })),
        h("details", { open: true }, h("summary", { text: "Output" }), h("pre", { class: "wf-pre", text: pretty(r.output) })))));
    }

    // --- recorded runs ---

    async renderRuns() {
      const panel = this.root.querySelector('[data-panel="runs"]');
      panel.replaceChildren(h("p", { class: "wf-muted", text: "Loading runs…" }));
      const answer = await this.api("GET", this.config.api.runs + "?page_size=20");
      if (!answer.ok) { panel.replaceChildren(h("p", { class: "wf-error", text: answer.data.error.message })); return; }
      const runs = answer.data.results || [];
      const detail = h("div", { class: "wf-run-detail", "aria-live": "polite" });
      panel.replaceChildren(
        h("div", { class: "wf-row" }, h("h4", { text: "Recent runs" }), h("button", { type: "button", onclick: () => this.renderRuns() }, "Refresh")),
        runs.length ? h("ul", { class: "wf-list wf-runs" }, ...runs.map((run) => h("li", {},
          h("button", { type: "button", class: "wf-link", "data-run": run.id, onclick: () => this.openRun(run.id, detail) }, "#" + run.id),
          " ", h("span", { class: "wf-chip wf-status-" + run.status, text: run.status }),
          h("span", { class: "wf-muted", text: " " + new Date(run.created_at).toLocaleString() + " · " + run.distinct_id + (run.version ? " · v" + run.version : "") + (run.test ? " · test" : "") }))))
          : h("p", { class: "wf-muted", text: "No runs yet: publish the workflow and route events to it with a rule." }),
        detail);
    }

    async openRun(id, box) {
      const answer = await this.api("GET", this.config.api.run.replace("{id}", String(id)));
      if (!answer.ok) { box.replaceChildren(h("p", { class: "wf-error", text: answer.data.error.message })); return; }
      const run = answer.data;
      this.showResult(box, { ...run, trace: run.traces }, "Run #" + run.id);
      const missing = this.drawTrace(run.traces, false);
      const notes = [];
      if (run.version && run.version !== (this.workflow && this.workflow.published_version)) notes.push("This run used v" + run.version + "; the canvas shows the draft.");
      if (missing.length) notes.push("Nodes of the run not on the canvas: " + missing.join(", ") + ".");
      box.prepend(h("div", { class: "wf-row" }, h("button", { type: "button", onclick: () => this.drawTrace(run.traces, true) }, "Replay"), ...notes.map((n) => h("span", { class: "wf-muted", text: n }))));
    }
  }

  function startAll() {
    for (const root of document.querySelectorAll(".wf-editor")) {
      if (root.dataset.started) continue;
      root.dataset.started = "true";
      const editor = new WorkflowEditor(root);
      window.CDPWorkflowEditor.editors.push(editor);
      editor.start();
    }
  }

  window.CDPWorkflowEditor = { fieldTypes, editors: [], WorkflowEditor, fieldKind };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", startAll);
  else startAll();
})();
