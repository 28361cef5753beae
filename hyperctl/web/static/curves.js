// Metric curves in plain SVG: the series of /ui/api/b/BATCH/curves (downsampled on the server to
// at most 1,000 points each), x = step / wall time / relative time, linear or log y, smoothing
// (an exponential moving average, the raw curve faint behind), a legend, the values under the
// pointer. The controls' state is kept in the page's URL. Live: refetched when the page's live
// parts are redrawn (a change in the batch) while a shown job runs or waits.
"use strict";

const curves = (() => {
  const SVG = "http://www.w3.org/2000/svg";
  const COLORS = ["#1f6ac0", "#d2452f", "#2e9e5b", "#d98b1f", "#7d4fb0", "#1a9aa8", "#b0406f", "#6b7a1f", "#5f6b76", "#c06a1f"];
  const HEIGHT = 340;
  const MARGIN = {left: 64, right: 16, top: 12, bottom: 36};
  const TIME_STEPS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (parent) parent.appendChild(node);
    return node;
  }

  // -- numbers and ticks -------------------------------------------------------------------------
  function fmt(v) {
    if (v === 0) return "0";
    const a = Math.abs(v);
    if (a >= 1e5 || a < 1e-3) {
      const [m, e] = v.toExponential(2).split("e");
      return `${String(Number(m))}e${Number(e)}`;
    }
    return String(Number(v.toPrecision(4)));
  }

  function linearTicks(lo, hi, count) {
    if (!(hi > lo)) return [lo];
    const raw = (hi - lo) / count;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) || 10 * power;
    const ticks = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Math.abs(t) < step * 1e-9 ? 0 : t);
    return ticks;
  }

  function logTicks(lo, hi) { // lo, hi: log10 of the range
    const ticks = [];
    for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) {
      for (const m of hi - lo < 2 ? [1, 2, 5] : [1]) {
        const t = Math.log10(m) + e;
        if (t >= lo - 1e-9 && t <= hi + 1e-9) ticks.push(t);
      }
    }
    if (ticks.length < 2) return linearTicks(Math.pow(10, lo), Math.pow(10, hi), 4).filter((t) => t > 0).map(Math.log10);
    return ticks;
  }

  function timeTicks(lo, hi, count) {
    const raw = (hi - lo) / count;
    const step = TIME_STEPS.find((s) => s >= raw) || Math.ceil(raw / 86400) * 86400;
    const ticks = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi; t += step) ticks.push(t);
    return ticks;
  }

  function duration(s, span) {
    if (span < 10) return `${fmt(Number(s.toFixed(3)))} s`;
    const sign = s < 0 ? "-" : "";
    s = Math.round(Math.abs(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return sign + (h ? `${h}:${String(m).padStart(2, "0")}:${String(r).padStart(2, "0")}` : `${m}:${String(r).padStart(2, "0")}`);
  }

  function clock(t, span) {
    const d = new Date(t * 1000);
    const hms = d.toTimeString().slice(0, 8) + (span < 10 ? "." + String(d.getMilliseconds()).padStart(3, "0") : "");
    return span > 86400 ? `${d.getMonth() + 1}-${d.getDate()} ${hms.slice(0, 5)}` : hms;
  }

  // -- smoothing: an exponential moving average, debiased at the start, begun anew after a gap ----
  function smooth(ys, weight) {
    if (!weight) return ys;
    const out = [];
    let last = 0, n = 0;
    for (const y of ys) {
      if (y === null) { out.push(null); last = 0; n = 0; continue; }
      last = last * weight + (1 - weight) * y;
      n++;
      out.push(last / (1 - Math.pow(weight, n)));
    }
    return out;
  }

  // -- a chart -------------------------------------------------------------------------------------
  class Chart {
    constructor(root) {
      this.root = root;
      this.form = root.querySelector("form.curve-controls");
      this.box = root.querySelector(".chart");
      this.legend = root.querySelector(".legend");
      this.notes = root.querySelector(".note");
      this.data = null;
      this.loading = false;
      this.again = false;
      this.loaded = 0;
      this.took = 0;
      this.timer = null;
      const url = new URLSearchParams(location.search);
      const f = this.form.elements;
      const metric = url.get("metric") || root.dataset.metric;
      if (metric) this.pick(f.metric, metric);
      if (url.get("x")) this.pick(f.x, url.get("x"));
      if (url.get("attempt") && f.attempt) this.pick(f.attempt, url.get("attempt"));
      f.logy.checked = url.get("logy") === "1";
      if (url.get("smooth")) f.smooth.value = url.get("smooth");
      this.form.querySelector("output").textContent = f.smooth.value;
      this.chosenMetric = Boolean(metric);
      this.form.addEventListener("submit", (event) => event.preventDefault());
      for (const name of ["metric", "x", "attempt", "logy"]) {
        if (f[name]) f[name].addEventListener("change", () => { if (name === "metric") this.chosenMetric = true; this.load(); });
      }
      f.smooth.addEventListener("input", () => {
        this.form.querySelector("output").textContent = f.smooth.value;
        this.keepInUrl();
        this.draw();
      });
      let resizing = null;
      window.addEventListener("resize", () => { clearTimeout(resizing); resizing = setTimeout(() => this.draw(), 100); });
      document.addEventListener("hyperctl:updated", () => { if (this.live()) this.later(); });
      this.load();
    }

    pick(select, value) {
      if (!select) return;
      if (![...select.options].some((o) => o.value === value)) select.add(new Option(value, value));
      select.value = value;
    }

    live() { // a shown job runs, or waits to (its first points are to come)
      if (this.data && this.data.series.some((s) => s.running)) return true;
      return Boolean(document.querySelector('[data-status="running"], [data-status="pending"]'));
    }

    query() {
      const f = this.form.elements;
      const params = new URLSearchParams({jobs: this.root.dataset.jobs, x: f.x.value});
      if (this.chosenMetric && f.metric.value) params.set("metric", f.metric.value);
      if (f.logy.checked) params.set("logy", "1");
      if (f.attempt) params.set("attempt", f.attempt.value);
      return params;
    }

    keepInUrl() {
      const f = this.form.elements;
      const url = new URLSearchParams(location.search);
      const set = (key, value, unset) => (value && value !== unset ? url.set(key, value) : url.delete(key));
      set("metric", this.chosenMetric ? f.metric.value : "");
      set("x", f.x.value, "step");
      set("logy", f.logy.checked ? "1" : "");
      set("smooth", f.smooth.value, "0");
      if (f.attempt) set("attempt", f.attempt.value, "all");
      const query = url.toString();
      history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
    }

    later() { // a live reload: no sooner than 1 s, or 4 times the last load's time, after the last
      const wait = this.loaded + Math.max(1000, 4 * this.took) - performance.now();
      if (wait <= 0) { this.load(); return; }
      if (!this.timer) this.timer = setTimeout(() => { this.timer = null; this.load(); }, wait);
    }

    async load() {
      if (this.loading) { this.again = true; return; }
      this.loading = true;
      this.again = false;
      const began = performance.now();
      try {
        const answer = await fetch(this.root.dataset.source + "?" + this.query().toString(), {credentials: "same-origin"});
        const body = await answer.json();
        if (!answer.ok) {
          this.notes.textContent = body.error || `the server answered ${answer.status}`;
          this.notes.classList.add("problem");
          return;
        }
        this.notes.classList.remove("problem");
        this.data = body;
        const f = this.form.elements;
        for (const m of body.metrics) this.pick(f.metric, m);
        if (body.metric) f.metric.value = body.metric;
        this.keepInUrl();
        this.draw();
      } catch (error) {
        this.notes.textContent = "the server does not answer";
      } finally {
        this.loading = false;
        this.loaded = performance.now();
        this.took = this.loaded - began;
        if (this.again) this.load();
      }
    }

    draw() {
      const data = this.data;
      if (!data) return;
      const f = this.form.elements;
      const weight = Number(f.smooth.value);
      const logy = data.logy;
      const width = Math.max(320, this.box.clientWidth || 800);
      const plotW = width - MARGIN.left - MARGIN.right, plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
      const series = data.series.map((s, i) => ({...s, color: COLORS[i % COLORS.length], ys: logy ? s.y.map((y) => (y === null ? null : Math.log10(y))) : s.y}));
      let xlo = Infinity, xhi = -Infinity, ylo = Infinity, yhi = -Infinity;
      for (const s of series) {
        s.x.forEach((x, i) => {
          if (s.ys[i] === null) return;
          xlo = Math.min(xlo, x); xhi = Math.max(xhi, x);
          ylo = Math.min(ylo, s.ys[i]); yhi = Math.max(yhi, s.ys[i]);
        });
      }
      this.box.textContent = "";
      this.legend.textContent = "";
      const notes = [];
      if (!Number.isFinite(xlo)) {
        this.notes.textContent = `No point of ${data.metric || "any metric"} to draw yet.`;
        this.drawLegend(series, notes);
        return;
      }
      if (xhi === xlo) { xlo -= 1; xhi += 1; }
      if (yhi === ylo) { const pad = Math.abs(ylo) * 0.05 || 1; ylo -= pad; yhi += pad; }
      const ypad = (yhi - ylo) * 0.04;
      ylo -= ypad; yhi += ypad;
      const sx = (x) => MARGIN.left + ((x - xlo) / (xhi - xlo)) * plotW;
      const sy = (y) => MARGIN.top + (1 - (y - ylo) / (yhi - ylo)) * plotH;

      const svg = el("svg", {class: "curve-svg", width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}`, role: "img",
        "aria-label": `${data.metric} by ${data.x}`, "data-metric": data.metric, "data-logy": logy ? "1" : "0"}, this.box);
      const axes = el("g", {class: "axes"}, svg);
      // y ticks and grid
      const yticks = logy ? logTicks(ylo, yhi) : linearTicks(ylo, yhi, 6);
      for (const t of yticks) {
        const y = sy(t);
        el("line", {class: "grid", x1: MARGIN.left, x2: width - MARGIN.right, y1: y, y2: y}, axes);
        el("text", {class: "tick y", x: MARGIN.left - 6, y: y + 4, "text-anchor": "end"}, axes).textContent = fmt(logy ? Math.pow(10, t) : t);
      }
      // x ticks
      const span = xhi - xlo;
      const xticks = data.x === "step" ? linearTicks(xlo, xhi, Math.max(2, Math.floor(plotW / 90))).filter(Number.isInteger)
        : timeTicks(xlo, xhi, Math.max(2, Math.floor(plotW / 110)));
      const xlabel = data.x === "wall" ? (t) => clock(t, span) : data.x === "relative" ? (t) => duration(t, span) : fmt;
      for (const t of xticks) {
        const x = sx(t);
        el("line", {class: "grid", x1: x, x2: x, y1: MARGIN.top, y2: MARGIN.top + plotH}, axes);
        el("text", {class: "tick x", x, y: HEIGHT - MARGIN.bottom + 16, "text-anchor": "middle"}, axes).textContent = xlabel(t);
      }
      el("rect", {class: "frame", x: MARGIN.left, y: MARGIN.top, width: plotW, height: plotH}, axes);
      el("text", {class: "axis-title", x: MARGIN.left + plotW / 2, y: HEIGHT - 4, "text-anchor": "middle"}, axes).textContent =
        {step: "step", wall: "wall time", relative: "time since the attempt started"}[data.x];
      // the curves
      const lines = el("g", {class: "lines"}, svg);
      for (const s of series) {
        const drawn = weight ? smooth(s.ys, weight) : s.ys;
        if (weight) this.path(lines, s, s.ys, sx, sy, "raw");
        this.path(lines, s, drawn, sx, sy, weight ? "smoothed" : "line");
        s.drawn = drawn;
      }
      this.hover(svg, series, sx, sy, {xlabel, logy, width, plotH});
      for (const s of series) {
        const out = Object.entries(s.left_out || {}).map(([why, n]) => `${n} ${why}`);
        const kept = s.total - Object.values(s.left_out || {}).reduce((a, b) => a + b, 0);
        if (s.shown < kept) out.push(`${kept.toLocaleString()} points shown as ${s.shown.toLocaleString()} (min and max per bucket)`);
        if (out.length) notes.push(`${s.job} #${s.attempt}: ${out.join(", ")}`);
      }
      this.drawLegend(series, notes);
    }

    path(parent, s, ys, sx, sy, kind) {
      let d = "", points = 0, pen = "M";
      s.x.forEach((x, i) => {
        if (ys[i] === null) { pen = "M"; return; }
        d += `${pen}${sx(x).toFixed(1)} ${sy(ys[i]).toFixed(1)}`;
        pen = "L";
        points++;
      });
      const path = el("path", {class: `curve ${kind}`, d, stroke: s.color, fill: "none", "data-job": s.job,
        "data-attempt": s.attempt, "data-points": points}, parent);
      if (points === 1) { // one point: no line to draw, a dot instead
        const [x, y] = d.slice(1).split(" ").map(Number);
        el("circle", {class: `dot ${kind}`, cx: x, cy: y, r: 3, fill: s.color}, parent);
      }
      return path;
    }

    hover(svg, series, sx, sy, opts) {
      const marker = el("g", {class: "hover", visibility: "hidden"}, svg);
      const rule = el("line", {class: "rule", y1: MARGIN.top, y2: MARGIN.top + opts.plotH}, marker);
      const box = el("g", {class: "tip"}, marker);
      const area = el("rect", {class: "hover-area", x: MARGIN.left, y: MARGIN.top, width: opts.width - MARGIN.left - MARGIN.right,
        height: opts.plotH, fill: "transparent"}, svg);
      const xOf = (px) => {
        // the nearest point of any series to the pointer's x
        let best = null;
        for (const s of series) for (const x of s.x) if (best === null || Math.abs(sx(x) - px) < Math.abs(sx(best) - px)) best = x;
        return best;
      };
      area.addEventListener("mousemove", (event) => {
        const rect = svg.getBoundingClientRect();
        const px = event.clientX - rect.left;
        const x = xOf(px);
        if (x === null) return;
        box.textContent = "";
        const lines = [`${opts.xlabel(x)}`];
        for (const s of series) {
          const i = s.x.indexOf(x);
          if (i < 0 || s.drawn[i] === null) continue;
          const v = opts.logy ? Math.pow(10, s.drawn[i]) : s.drawn[i];
          lines.push({text: `${s.job} #${s.attempt}: ${fmt(v)}`, color: s.color});
          el("circle", {cx: sx(x), cy: sy(s.drawn[i]), r: 3, fill: s.color}, box);
        }
        const left = sx(x) + 10 + 220 > opts.width ? sx(x) - 230 : sx(x) + 10;
        el("rect", {class: "tip-box", x: left, y: MARGIN.top + 4, width: 220, height: 16 * lines.length + 8, rx: 3}, box);
        lines.forEach((line, k) => {
          const text = el("text", {class: "tip-text", x: left + 8, y: MARGIN.top + 20 + 16 * k}, box);
          text.textContent = typeof line === "string" ? line : line.text;
          if (typeof line !== "string") text.setAttribute("fill", line.color);
        });
        rule.setAttribute("x1", sx(x));
        rule.setAttribute("x2", sx(x));
        marker.setAttribute("visibility", "visible");
        svg.dataset.hover = lines.map((l) => (typeof l === "string" ? l : l.text)).join("\n");
      });
      area.addEventListener("mouseleave", () => marker.setAttribute("visibility", "hidden"));
    }

    drawLegend(series, notes) {
      for (const s of series) {
        const item = document.createElement("span");
        item.className = "item";
        item.dataset.job = s.job;
        const swatch = el("svg", {width: 14, height: 10, class: "swatch"});
        el("rect", {width: 14, height: 10, fill: s.color}, swatch);
        item.append(swatch, ` ${s.job} · attempt ${s.attempt}${s.running ? " (running)" : ""}`);
        this.legend.appendChild(item);
      }
      if (this.data && this.data.metric) this.notes.textContent = notes.join("; ");
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const root of document.querySelectorAll(".curves[data-source]")) root.chart = new Chart(root);
  });

  return {fmt, linearTicks, logTicks, smooth};
})();
