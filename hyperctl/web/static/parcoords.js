// Params vs metric: parallel coordinates over a batch's varying params and a metric, and a scatter
// of one param against the metric, drawn from /ui/api/b/BATCH/params (web/params.py).
// The lines and points are drawn on a canvas (one path per colour: 10,000 jobs draw in a few tens
// of milliseconds, where an SVG element per line would take seconds); the axes, their labels and
// the brushes are SVG above it. A brush is kept in the URL as compare filters (`where=`), which
// the table below (the batch page's, fetched as ?part=table) is narrowed by.
"use strict";

const parcoords = (() => {
  const NS = "http://www.w3.org/2000/svg";
  // Viridis, sampled: dark (least) to yellow (greatest).
  const STOPS = ["#440154", "#482475", "#414487", "#355f8d", "#2a788e", "#21918c",
    "#22a884", "#44bf70", "#7ad151", "#bddf26", "#fde725"];
  const BUCKETS = 16;
  const OUTSIDE = "rgba(150, 158, 166, 0.22)"; // a line outside the brushes
  const MISSING = "#8a949e"; // a job without a value of the metric: dashed
  const M = {top: 34, bottom: 46, left: 48, right: 56};
  const NONE_GAP = 16; // pixels below an axis where jobs without a value sit
  const RELOAD_EVERY = 1000; // ms: live redraws at most this often

  const view = {
    data: null, metric: "", stat: "", x: "", log: new Set(), brushes: new Map(), other: [],
    scales: [], rows: 0, kept: null, drag: null, loading: false, lastLoad: 0, timer: null,
  };
  let els = null;

  // -- numbers -----------------------------------------------------------------------------------
  function short(v) {
    if (v === null || v === undefined) return "none";
    if (typeof v !== "number") return String(v);
    if (v === 0) return "0";
    const a = Math.abs(v);
    if (a >= 1e5 || a < 1e-3) return v.toExponential(2).replace(/\.?0+e/, "e");
    return String(Number(v.toPrecision(4)));
  }

  function bound(v) { return Number(v.toPrecision(4)); } // a brush's end as its filter writes it

  function finite(v) { return typeof v === "number" && Number.isFinite(v); }

  function niceTicks(lo, hi, count) {
    const span = hi - lo;
    if (!(span > 0)) return [lo];
    const raw = span / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= count) || 10 * mag;
    const ticks = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
    return ticks;
  }

  // -- scales: an axis's values to pixels, between `a` (the least) and `b` (the greatest) ---------
  function scaleOf(axis, a, b) {
    const values = axis.values;
    const missing = values.some((v) => v === null);
    if (axis.kind === "category") {
      const cats = axis.categories;
      const index = new Map(cats.map((c, i) => [c, i]));
      const pos = (i) => (cats.length === 1 ? (a + b) / 2 : a + (b - a) * i / (cats.length - 1));
      return {
        axis, missing, category: true,
        at: (v) => (v === null ? null : pos(index.get(v))),
        ticks: cats.map((c, i) => ({at: pos(i), label: c})),
        // the categories between two pixels
        within: (p, q) => cats.filter((c, i) => pos(i) >= Math.min(p, q) - 0.5 && pos(i) <= Math.max(p, q) + 0.5),
        spacing: cats.length > 1 ? Math.abs(b - a) / (cats.length - 1) : Math.abs(b - a),
      };
    }
    const present = values.filter(finite);
    const log = axis.log_ok && view.log.has(axis.expr);
    let lo = present.length ? Math.min(...present) : 0;
    let hi = present.length ? Math.max(...present) : 1;
    if (lo === hi) {
      if (log) { lo /= 2; hi *= 2; } else { const pad = Math.abs(lo) * 0.1 || 1; lo -= pad; hi += pad; }
    }
    const f = log ? Math.log10 : (v) => v;
    const g = log ? (u) => Math.pow(10, u) : (u) => u;
    const flo = f(lo), fhi = f(hi);
    const at = (v) => (finite(v) ? a + (b - a) * (f(v) - flo) / (fhi - flo) : null);
    let ticks;
    if (log) {
      ticks = [];
      for (let e = Math.ceil(flo - 1e-9); e <= fhi + 1e-9; e++) ticks.push(Math.pow(10, e));
      if (ticks.length < 2) ticks = [lo, hi];
    } else {
      ticks = niceTicks(lo, hi, 6);
    }
    return {
      axis, missing, category: false, log, lo, hi,
      at,
      value: (p) => g(flo + (fhi - flo) * (p - a) / (b - a)),
      ticks: ticks.map((t) => ({at: at(t), label: short(t)})),
    };
  }

  // -- colour -------------------------------------------------------------------------------------
  function mix(c1, c2, t) {
    const p = (c, i) => parseInt(c.slice(1 + 2 * i, 3 + 2 * i), 16);
    const ch = [0, 1, 2].map((i) => Math.round(p(c1, i) + (p(c2, i) - p(c1, i)) * t));
    return `rgb(${ch[0]}, ${ch[1]}, ${ch[2]})`;
  }

  function colourAt(t) {
    const x = Math.max(0, Math.min(1, t)) * (STOPS.length - 1);
    const i = Math.min(STOPS.length - 2, Math.floor(x));
    return mix(STOPS[i], STOPS[i + 1], x - i);
  }

  const PALETTE = Array.from({length: BUCKETS}, (_, i) => colourAt((i + 0.5) / BUCKETS));

  // -- brushes and filters --------------------------------------------------------------------------
  function escapeRegex(text) { return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"); }

  function filtersOf(axis, brush) {
    if (brush.cats) return [`${axis.expr}~^(${brush.cats.map(escapeRegex).join("|")})$`];
    return [`${axis.expr}>=${brush.lo}`, `${axis.expr}<=${brush.hi}`];
  }

  function unescapeRegex(text) { return text.replace(/\\(.)/g, "$1"); }

  function splitAlternatives(text) {
    const out = [];
    let cur = "";
    for (let i = 0; i < text.length; i++) {
      if (text[i] === "\\" && i + 1 < text.length) { cur += text[i] + text[i + 1]; i++; continue; }
      if (text[i] === "|") { out.push(cur); cur = ""; continue; }
      cur += text[i];
    }
    out.push(cur);
    return out.map(unescapeRegex);
  }

  // The where= filters of the URL as brushes on the axes that wrote them; the others kept as they are.
  function readBrushes(where) {
    view.brushes = new Map();
    view.other = [];
    const axes = view.data ? view.data.axes : [];
    for (const text of where) {
      const axis = axes.find((a) => text.startsWith(a.expr) && /^(>=|<=|~)/.test(text.slice(a.expr.length)));
      if (!axis) { view.other.push(text); continue; }
      const rest = text.slice(axis.expr.length);
      const brush = view.brushes.get(axis.expr) || {};
      if (rest.startsWith("~")) {
        const found = /^~\^\((.*)\)\$$/s.exec(rest);
        if (!found || axis.kind !== "category") { view.other.push(text); continue; }
        brush.cats = splitAlternatives(found[1]);
      } else {
        const value = Number(rest.slice(2));
        if (!Number.isFinite(value)) { view.other.push(text); continue; }
        brush[rest.startsWith(">=") ? "lo" : "hi"] = value;
      }
      view.brushes.set(axis.expr, brush);
    }
    for (const brush of view.brushes.values()) {
      if (!brush.cats) {
        if (brush.lo === undefined) brush.lo = -Infinity;
        if (brush.hi === undefined) brush.hi = Infinity;
      }
    }
  }

  function where() {
    const out = [...view.other];
    for (const axis of view.data ? view.data.axes : []) {
      const brush = view.brushes.get(axis.expr);
      if (brush) out.push(...filtersOf(axis, brush).filter((f) => !/[<>]=-?Infinity$/.test(f)));
    }
    return out;
  }

  function keeps(brush, v) {
    if (v === null || v === undefined) return false; // as compare: a missing value never passes
    if (brush.cats) return brush.cats.includes(v);
    return finite(v) && v >= brush.lo && v <= brush.hi;
  }

  // Which jobs every brush keeps (Uint8Array, 1: kept).
  function kept(extra) {
    const n = view.rows;
    const out = new Uint8Array(n).fill(1);
    const brushes = new Map(view.brushes);
    if (extra) brushes.set(extra.name, extra.brush);
    for (const axis of view.data.axes) {
      const brush = brushes.get(axis.expr);
      if (!brush) continue;
      const values = axis.values;
      for (let i = 0; i < n; i++) if (out[i] && !keeps(brush, values[i])) out[i] = 0;
    }
    return out;
  }

  // -- the URL --------------------------------------------------------------------------------------
  function readUrl() {
    const p = new URLSearchParams(location.search);
    view.metric = p.get("metric") || "";
    view.stat = p.get("stat") || "";
    view.x = p.get("x") || "";
    view.log = new Set(p.getAll("log"));
    return p.getAll("where");
  }

  function search(whereChanged) {
    const p = new URLSearchParams(location.search);
    for (const key of ["metric", "stat", "x", "log", "where", "part"]) p.delete(key);
    if (whereChanged) p.delete("page");
    if (view.metric) p.set("metric", view.metric);
    if (view.stat) p.set("stat", view.stat);
    if (view.x) p.set("x", view.x);
    for (const name of view.log) p.append("log", name);
    for (const f of where()) p.append("where", f);
    const query = p.toString();
    return query ? "?" + query : "";
  }

  // The URL says the view; the table (and its links, which keep the view) is fetched again.
  function changed(whereChanged) {
    const query = search(whereChanged);
    history.replaceState(null, "", location.pathname + query);
    for (const link of document.querySelectorAll("a[data-export]")) link.href = link.dataset.export + query;
    if (typeof hyperctl !== "undefined") hyperctl.refresh("table", query || "?");
  }

  // -- data -----------------------------------------------------------------------------------------
  async function load() {
    if (view.loading) { view.again = true; return; }
    view.loading = true;
    view.lastLoad = performance.now();
    const p = new URLSearchParams();
    if (view.metric) p.set("metric", view.metric);
    if (view.stat) p.set("stat", view.stat);
    try {
      const answer = await fetch(els.chart.dataset.api + "?" + p.toString(), {credentials: "same-origin"});
      const body = await answer.json();
      if (!answer.ok) {
        const why = body.error || `error ${answer.status}`;
        if (answer.status === 400 && (view.metric || view.stat)) {
          // a metric or stat that is none (a link from before a change): said, and the default shown
          view.fallback = why;
          view.metric = view.stat = "";
          changed(false);
          view.again = true;
          view.lastLoad = 0;
        } else {
          problem(why);
        }
        return;
      }
      problem(view.fallback ? `${view.fallback}: the default metric is shown instead` : "");
      view.fallback = "";
      const filters = view.data ? where() : readUrl();
      view.data = body;
      view.rows = body.names.length;
      readBrushes(filters);
      controls();
      draw();
    } catch (error) {
      problem("the server does not answer");
    } finally {
      view.loading = false;
      if (view.again) { view.again = false; later(); }
    }
  }

  // A live change: drawn again, at most once every RELOAD_EVERY ms.
  function later() {
    if (view.timer) return;
    const wait = Math.max(0, view.lastLoad + RELOAD_EVERY - performance.now());
    view.timer = setTimeout(() => { view.timer = null; load(); }, wait);
  }

  function problem(text) {
    els.problem.textContent = text;
    els.problem.hidden = !text;
  }

  function option(select, value, label) {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = label;
    select.append(o);
  }

  function controls() {
    const d = view.data;
    els.metric.replaceChildren();
    for (const m of d.metrics) option(els.metric, m, m);
    if (!d.metrics.length) option(els.metric, "", "(no metric reported yet)");
    els.metric.value = d.metric || "";
    els.stat.value = d.stat;
    els.x.replaceChildren();
    const params = d.axes.filter((a) => !a.metric);
    for (const a of params) option(els.x, a.name, a.name);
    if (!params.some((a) => a.name === view.x)) view.x = "";
    els.x.value = view.x || (params[0] ? params[0].name : "");
  }

  // -- drawing --------------------------------------------------------------------------------------
  function svg(parent, tag, attrs, text) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    parent.append(node);
    return node;
  }

  function canvasFor(canvas, width, height) {
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    return ctx;
  }

  function metricAxis() { return view.data.axes.find((a) => a.metric) || null; }

  // Each job's colour bucket (0..BUCKETS-1), or -1 without a value of the metric.
  function buckets() {
    const axis = metricAxis();
    const out = new Int16Array(view.rows).fill(-1);
    if (!axis) return out;
    const scale = scaleOf(axis, 0, 1);
    for (let i = 0; i < view.rows; i++) {
      const t = scale.at(axis.values[i]);
      if (t !== null) out[i] = Math.min(BUCKETS - 1, Math.max(0, Math.floor(t * BUCKETS)));
    }
    return out;
  }

  function draw() {
    const started = performance.now();
    const d = view.data;
    if (!d) return;
    const axes = d.axes;
    els.chart.classList.toggle("empty", axes.length === 0);
    if (axes.length === 0) {
      problem("No param varies between the jobs of this batch and none reported a metric: nothing to draw.");
    }
    view.kept = kept(view.drag && view.drag.brush ? view.drag : null);
    view.colours = buckets();
    drawLines();
    drawLegend();
    drawScatter();
    count();
    view.drawMs = performance.now() - started;
    els.chart.dataset.drawn = String(view.rows); // for tests and the curious: drawn, with how many jobs
    els.chart.dataset.drawMs = view.drawMs.toFixed(1);
  }

  function positions(width) {
    const n = view.data.axes.length;
    if (n === 1) return [width / 2];
    return view.data.axes.map((_, k) => M.left + (width - M.left - M.right) * k / (n - 1));
  }

  function drawLines() {
    const width = els.chart.clientWidth;
    const height = els.chart.clientHeight;
    const top = M.top, bottom = height - M.bottom;
    const xs = positions(width);
    view.scales = view.data.axes.map((axis) => scaleOf(axis, bottom, top));
    view.xs = xs;
    const ctx = canvasFor(els.lines, width, height);
    const n = view.rows, A = xs.length;
    // each job's pixel on each axis
    const ys = new Float32Array(n * A);
    view.scales.forEach((scale, k) => {
      const values = scale.axis.values;
      for (let i = 0; i < n; i++) {
        const y = scale.at(values[i]);
        ys[i * A + k] = y === null ? bottom + NONE_GAP : y;
      }
    });
    const trace = (i) => {
      ctx.moveTo(xs[0], ys[i * A]);
      for (let k = 1; k < A; k++) ctx.lineTo(xs[k], ys[i * A + k]);
    };
    const stroke = (colour, select, dashed) => {
      ctx.beginPath();
      let any = false;
      for (let i = 0; i < n; i++) if (select(i)) { trace(i); any = true; }
      if (!any) return;
      ctx.strokeStyle = colour;
      ctx.setLineDash(dashed ? [4, 3] : []);
      ctx.stroke();
    };
    if (A > 1) {
      ctx.lineWidth = 1;
      ctx.globalAlpha = 1;
      stroke(OUTSIDE, (i) => !view.kept[i], false);
      ctx.globalAlpha = n > 2000 ? 0.45 : n > 300 ? 0.7 : 0.9;
      stroke(MISSING, (i) => view.kept[i] && view.colours[i] < 0, true);
      // the better values drawn last, on top (the greater ones unless the objective minimises this metric)
      const axis = metricAxis(), objective = view.data.objective;
      const least = axis && objective && objective.metric === axis.name && objective.mode === "min";
      for (let j = 0; j < BUCKETS; j++) {
        const b = least ? BUCKETS - 1 - j : j;
        stroke(PALETTE[b], (i) => view.kept[i] && view.colours[i] === b, false);
      }
      ctx.globalAlpha = 1;
    }
    drawAxes(width, height, top, bottom);
  }

  function drawAxes(width, height, top, bottom) {
    const root = els.axes;
    root.replaceChildren();
    root.setAttribute("width", width);
    root.setAttribute("height", height);
    root.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg(root, "rect", {class: "pc-back", x: 0, y: 0, width, height, fill: "transparent"});
    view.scales.forEach((scale, k) => {
      const axis = scale.axis;
      const g = svg(root, "g", {class: "pc-axis" + (axis.metric ? " metric" : ""), "data-axis": axis.expr,
        transform: `translate(${view.xs[k]},0)`});
      svg(g, "line", {x1: 0, x2: 0, y1: top, y2: bottom, class: "pc-spine"});
      for (const t of scale.ticks) {
        svg(g, "line", {x1: -4, x2: 0, y1: t.at, y2: t.at, class: "pc-tick"});
        svg(g, "text", {x: -6, y: t.at + 3, "text-anchor": "end", class: "pc-label"}, clip(t.label));
      }
      if (scale.missing) svg(g, "text", {x: -6, y: bottom + NONE_GAP + 3, "text-anchor": "end", class: "pc-label none"}, "none");
      const title = axis.metric ? axis.expr : axis.name;
      svg(g, "text", {x: 0, y: top - 18, "text-anchor": "middle", class: "pc-title"}, clip(title, 22));
      if (axis.kind === "number" && axis.log_ok) {
        const toggle = svg(g, "text", {x: 0, y: height - 12, "text-anchor": "middle",
          class: "pc-log" + (scale.log ? " on" : ""), "data-log": axis.expr, role: "button"}, scale.log ? "log ✓" : "log");
        svg(toggle, "title", {}, `show ${axis.name} on a ${scale.log ? "linear" : "log"} scale`);
      }
      const brush = view.drag && view.drag.name === axis.expr && view.drag.pixels
        ? view.drag.pixels : brushPixels(scale, view.brushes.get(axis.expr), top, bottom);
      if (brush) svg(g, "rect", {class: "pc-brush", x: -9, width: 18, y: brush[0], height: Math.max(2, brush[1] - brush[0])});
      svg(g, "rect", {class: "pc-hit", x: -14, width: 28, y: top - 10, height: bottom - top + 20 + (scale.missing ? NONE_GAP : 0),
        fill: "transparent", "data-axis": axis.expr});
    });
  }

  function clip(text, most) {
    const n = most || 14;
    return text.length > n ? text.slice(0, n - 1) + "…" : text;
  }

  function brushPixels(scale, brush, top, bottom) {
    if (!brush) return null;
    if (brush.cats) {
      const ys = brush.cats.map((c) => scale.at(c)).filter((y) => y !== null && y !== undefined);
      if (!ys.length) return null;
      const half = Math.min(12, Math.max(4, scale.spacing / 4));
      return [Math.max(top - 8, Math.min(...ys) - half), Math.min(bottom + 8, Math.max(...ys) + half)];
    }
    const clampY = (y) => Math.max(top, Math.min(bottom, y));
    const y1 = brush.hi === Infinity ? top : clampY(scale.at(Math.min(brush.hi, scale.hi)));
    const y2 = brush.lo === -Infinity ? bottom : clampY(scale.at(Math.max(brush.lo, scale.lo)));
    return [Math.min(y1, y2), Math.max(y1, y2)];
  }

  function count() {
    let n = 0;
    for (let i = 0; i < view.rows; i++) n += view.kept[i];
    const brushed = view.brushes.size > 0 || (view.drag && view.drag.brush);
    els.count.textContent = brushed ? `${n} of ${view.rows} jobs in the brushes` : `${view.rows} jobs`;
    els.count.dataset.kept = String(n);
  }

  // The legend: HTML text beside small SVG swatches.
  function swatch(parent, width, build) {
    const root = svg(parent, "svg", {width, height: 12, viewBox: `0 0 ${width} 12`, class: "pc-swatch"});
    build(root);
  }

  function say(parent, text, cls) {
    const span = document.createElement("span");
    span.textContent = text;
    if (cls) span.className = cls;
    parent.append(span);
    return span;
  }

  function drawLegend() {
    const root = els.legend;
    root.replaceChildren();
    const axis = metricAxis();
    const item = () => { const div = document.createElement("span"); div.className = "pc-item"; root.append(div); return div; };
    if (axis) {
      const scale = scaleOf(axis, 0, 1);
      const objective = view.data.objective;
      const better = objective && objective.metric === axis.name ? ` (${objective.mode === "max" ? "greater" : "less"} is better)` : "";
      const colour = item();
      say(colour, `colour: ${axis.expr}${better}`, "pc-legend-title");
      say(colour, short(scale.lo));
      swatch(colour, 160, (s) => {
        const grad = svg(svg(s, "defs"), "linearGradient", {id: "pc-gradient", x1: 0, x2: 1, y1: 0, y2: 0});
        STOPS.forEach((c, i) => svg(grad, "stop", {offset: i / (STOPS.length - 1), "stop-color": c}));
        svg(s, "rect", {x: 0, y: 1, width: 160, height: 10, fill: "url(#pc-gradient)"});
      });
      say(colour, short(scale.hi) + (scale.log ? " (log)" : ""));
      const none = axis.values.filter((v) => v === null).length;
      const missing = item();
      swatch(missing, 28, (s) => svg(s, "line", {x1: 0, x2: 28, y1: 6, y2: 6, stroke: MISSING, "stroke-dasharray": "4 3", "stroke-width": 1.5}));
      say(missing, `no value of ${axis.name} (NaN or none): dashed grey, at “none” (${none} job${none === 1 ? "" : "s"})`).id = "pc-legend-none";
    } else {
      say(item(), "no metric reported yet: lines dashed grey", "pc-legend-title");
    }
    const outside = item();
    swatch(outside, 28, (s) => svg(s, "line", {x1: 0, x2: 28, y1: 6, y2: 6, stroke: "#b8bfc6", "stroke-width": 2}));
    say(outside, "outside the brushes");
  }

  function drawScatter() {
    const d = view.data;
    const width = els.scatter.clientWidth, height = els.scatter.clientHeight;
    const ctx = canvasFor(els.points, width, height);
    const root = els.saxes;
    root.replaceChildren();
    root.setAttribute("width", width);
    root.setAttribute("height", height);
    root.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const xAxis = d.axes.find((a) => !a.metric && a.name === els.x.value);
    const yAxis = metricAxis();
    if (!xAxis || !yAxis) {
      els.snote.textContent = yAxis ? "no param varies" : "no metric reported yet";
      return;
    }
    const left = 64, right = width - 16, top = 12, bottom = height - 36;
    const sx = scaleOf(xAxis, left, right), sy = scaleOf(yAxis, bottom, top);
    const jitter = sx.category ? sx.spacing * 0.3 : 0;
    const drawn = {out: [], colours: new Map()};
    let left_out = 0;
    for (let i = 0; i < view.rows; i++) {
      const y = sy.at(yAxis.values[i]);
      const x = sx.at(xAxis.values[i]);
      if (y === null || x === null || x === undefined) { left_out++; continue; }
      const px = x + (jitter ? jitter * (((i * 2654435761) % 1000) / 1000 - 0.5) : 0);
      if (!view.kept[i]) drawn.out.push(px, y);
      else {
        const b = view.colours[i];
        if (!drawn.colours.has(b)) drawn.colours.set(b, []);
        drawn.colours.get(b).push(px, y);
      }
    }
    const dots = (colour, xy) => {
      ctx.beginPath();
      for (let j = 0; j < xy.length; j += 2) { ctx.moveTo(xy[j] + 2.5, xy[j + 1]); ctx.arc(xy[j], xy[j + 1], 2.5, 0, 2 * Math.PI); }
      ctx.fillStyle = colour;
      ctx.fill();
    };
    dots(OUTSIDE, drawn.out);
    for (const [b, xy] of drawn.colours) dots(PALETTE[b], xy);
    svg(root, "line", {x1: left, x2: right, y1: bottom, y2: bottom, class: "pc-spine"});
    svg(root, "line", {x1: left, x2: left, y1: top, y2: bottom, class: "pc-spine"});
    for (const t of sx.ticks) {
      svg(root, "line", {x1: t.at, x2: t.at, y1: bottom, y2: bottom + 4, class: "pc-tick"});
      svg(root, "text", {x: t.at, y: bottom + 16, "text-anchor": "middle", class: "pc-label"}, clip(t.label));
    }
    for (const t of sy.ticks) {
      svg(root, "line", {x1: left - 4, x2: left, y1: t.at, y2: t.at, class: "pc-tick"});
      svg(root, "text", {x: left - 6, y: t.at + 3, "text-anchor": "end", class: "pc-label"}, clip(t.label));
    }
    svg(root, "text", {x: (left + right) / 2, y: height - 4, "text-anchor": "middle", class: "pc-title"},
      xAxis.name + (sx.log ? " (log)" : ""));
    svg(root, "text", {x: 12, y: (top + bottom) / 2, "text-anchor": "middle", class: "pc-title",
      transform: `rotate(-90 12 ${(top + bottom) / 2})`}, yAxis.expr + (sy.log ? " (log)" : ""));
    els.snote.textContent = left_out ? `${left_out} job${left_out === 1 ? "" : "s"} without a value not shown` : "";
  }

  // -- brushing -------------------------------------------------------------------------------------
  function axisAt(expr) { return view.scales.find((s) => s.axis.expr === expr); }

  function brushFrom(scale, p, q) {
    if (scale.category) {
      const cats = scale.within(p, q);
      return cats.length ? {cats} : {cats: []};
    }
    const a = scale.value(Math.max(p, q)), b = scale.value(Math.min(p, q)); // y grows downwards
    return {lo: bound(Math.min(a, b)), hi: bound(Math.max(a, b))};
  }

  function pointerY(event) {
    const box = els.axes.getBoundingClientRect();
    return event.clientY - box.top;
  }

  function onDown(event) {
    const hit = event.target.closest(".pc-hit");
    if (!hit || event.button !== 0) return;
    event.preventDefault();
    const y = pointerY(event);
    view.drag = {name: hit.dataset.axis, start: y, pixels: null, brush: null};
    els.axes.setPointerCapture(event.pointerId);
  }

  let frame = 0;
  function onMove(event) {
    const drag = view.drag;
    if (!drag) return;
    const y = pointerY(event);
    if (Math.abs(y - drag.start) < 3) return;
    const scale = axisAt(drag.name);
    drag.pixels = [Math.min(drag.start, y), Math.max(drag.start, y)];
    drag.brush = brushFrom(scale, drag.start, y);
    if (!frame) frame = requestAnimationFrame(() => { frame = 0; if (view.drag) draw(); });
  }

  function onUp() {
    const drag = view.drag;
    if (!drag) return;
    view.drag = null;
    if (frame) { cancelAnimationFrame(frame); frame = 0; }
    if (!drag.brush) return; // a click, not a drag: nothing changes (and a double click finds the same axis)
    view.brushes.set(drag.name, drag.brush);
    draw();
    changed(true);
  }

  // The axis under the pointer, by position: a click's target is the SVG itself while a drag
  // holds the pointer (pointer capture), so the element under it cannot say.
  function axisNear(event) {
    const x = event.clientX - els.axes.getBoundingClientRect().left;
    const k = view.xs.findIndex((ax) => Math.abs(ax - x) <= 14);
    return k < 0 ? null : view.scales[k].axis.expr;
  }

  function onDoubleClick(event) {
    const expr = axisNear(event);
    if (expr !== null) view.brushes.delete(expr);
    else view.brushes.clear();
    draw();
    changed(true);
  }

  function onClick(event) {
    const toggle = event.target.closest(".pc-log");
    if (!toggle) return;
    const name = toggle.dataset.log;
    if (view.log.has(name)) view.log.delete(name); else view.log.add(name);
    draw();
    changed(false);
  }

  function start() {
    const chart = document.getElementById("pc");
    if (!chart) return;
    els = {
      chart, lines: document.getElementById("pc-lines"), axes: document.getElementById("pc-axes"),
      legend: document.getElementById("pc-legend"), problem: document.getElementById("pc-problem"),
      count: document.getElementById("pc-count"), metric: document.getElementById("pc-metric"),
      stat: document.getElementById("pc-stat"), x: document.getElementById("pc-x"),
      scatter: document.getElementById("sc"), points: document.getElementById("sc-points"),
      saxes: document.getElementById("sc-axes"), snote: document.getElementById("sc-note"),
    };
    readUrl();
    els.axes.addEventListener("pointerdown", onDown);
    els.axes.addEventListener("pointermove", onMove);
    els.axes.addEventListener("pointerup", onUp);
    els.axes.addEventListener("pointercancel", onUp);
    els.axes.addEventListener("dblclick", onDoubleClick);
    els.axes.addEventListener("click", onClick);
    els.metric.addEventListener("change", () => { view.metric = els.metric.value; retarget(); });
    els.stat.addEventListener("change", () => { view.stat = els.stat.value; retarget(); });
    els.x.addEventListener("change", () => { view.x = els.x.value; drawScatter(); changed(false); });
    document.getElementById("pc-clear").addEventListener("click", () => { view.brushes.clear(); draw(); changed(true); });
    document.addEventListener("hyperctl:change", later);
    window.addEventListener("popstate", () => { readBrushes(readUrl()); load(); hyperctl.refresh("table", location.search || "?"); });
    let resizing = null;
    window.addEventListener("resize", () => { clearTimeout(resizing); resizing = setTimeout(draw, 100); });
    load();
  }

  // Another metric or stat: the metric's axis (and its brush) is another one.
  function retarget() {
    const axis = metricAxis();
    const brushed = axis !== null && view.brushes.delete(axis.expr);
    if (view.data) view.data.axes = view.data.axes.filter((a) => !a.metric);
    changed(brushed);
    load();
  }

  document.addEventListener("DOMContentLoaded", start);
  return {view, where, draw, load};
})();
window.parcoords = parcoords;
