// hyperctl's pages: live parts refreshed when the server tells of a change (Server-Sent Events),
// and the job table sorted, filtered and paged in place, its state kept in the URL.
// Every piece of HTML comes from the server (a page's ?part=NAME): nothing is built here.
"use strict";

const hyperctl = (() => {
  const parts = new Map(); // name -> {section, every, busy, again, last}

  function partUrl(name, search) {
    const src = parts.has(name) && parts.get(name).section.dataset.src; // a part with a URL of its own
    if (src) return src + "?part=" + encodeURIComponent(name);
    const params = new URLSearchParams(search === undefined ? location.search : search);
    params.set("part", name);
    return location.pathname + "?" + params.toString();
  }

  async function refresh(name, search) {
    const part = parts.get(name);
    if (!part) return;
    if (part.busy) { part.again = true; return; }
    const wait = part.last + part.every - performance.now();
    if (wait > 0 && search === undefined) {
      if (!part.timer) part.timer = setTimeout(() => { part.timer = null; refresh(name); }, wait);
      return;
    }
    part.busy = true;
    part.again = false;
    try {
      const answer = await fetch(partUrl(name, search), {credentials: "same-origin"});
      if (answer.ok) {
        part.section.innerHTML = await answer.text();
        part.section.dispatchEvent(new CustomEvent("hyperctl:updated", {bubbles: true}));
      } else if (answer.status === 401) {
        live(false, "logged out: open a new login link");
      }
    } catch (error) {
      live(false, "the server does not answer");
    } finally {
      part.busy = false;
      part.last = performance.now();
      if (part.again) refresh(name);
    }
  }

  function live(on, why) {
    const dot = document.getElementById("live");
    if (!dot) return;
    dot.classList.toggle("on", on);
    dot.classList.toggle("off", !on);
    dot.title = on ? "live: updates as the batch changes" : why;
  }

  function listen() {
    const url = document.body.dataset.events;
    if (!url || parts.size === 0) return;
    const events = new EventSource(url);
    events.addEventListener("open", () => live(true));
    events.addEventListener("error", () => live(false, "reconnecting..."));
    events.addEventListener("change", () => { for (const name of parts.keys()) refresh(name); });
    // A page's own script (a chart drawn from JSON) hears of the change too.
    events.addEventListener("change", () => document.dispatchEvent(new CustomEvent("hyperctl:change")));
  }

  // -- the job table: sort, filter, pages, in place ------------------------------------------------
  function go(search, push) {
    const params = new URLSearchParams(search);
    params.delete("part");
    const query = params.toString();
    if (push) history.pushState(null, "", location.pathname + (query ? "?" + query : ""));
    for (const link of document.querySelectorAll("a[data-export]")) {
      link.href = link.dataset.export + (query ? "?" + query : "");
    }
    refresh("table", "?" + query);
  }

  function tableLinks() {
    const table = document.querySelector('[data-part="table"]');
    if (!table) return;
    table.addEventListener("click", (event) => {
      const link = event.target.closest("a.sort, a.page");
      if (!link || event.button !== 0 || event.metaKey || event.ctrlKey) return;
      event.preventDefault();
      const url = new URL(link.href);
      const form = document.getElementById("filters");
      if (form && link.classList.contains("sort")) form.elements.sort.value = url.searchParams.get("sort") || "";
      go(url.search, true);
    });
    const form = document.getElementById("filters");
    if (!form) return;
    const apply = () => {
      const params = new URLSearchParams(new FormData(form));
      for (const [key, value] of [...params]) if (!value) params.delete(key);
      go("?" + params.toString(), true);
    };
    form.addEventListener("submit", (event) => { event.preventDefault(); apply(); });
    form.elements.status.addEventListener("change", apply);
    let typing = null;
    form.elements.q.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(apply, 250); });
    window.addEventListener("popstate", () => {
      const params = new URLSearchParams(location.search);
      for (const name of ["status", "q", "columns", "sort"]) {
        if (form.elements[name]) form.elements[name].value = params.get(name) || "";
      }
      go(location.search, false);
    });
  }

  function csrf() {
    const meta = document.querySelector('meta[name="csrf"]');
    return meta ? meta.content : "";
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const section of document.querySelectorAll("[data-part]")) {
      parts.set(section.dataset.part, {
        section, every: Number(section.dataset.every || 250), busy: false, again: false, last: 0, timer: null,
      });
    }
    tableLinks();
    listen();
  });

  return {refresh, csrf, partUrl};
})();
