// A job page's live log: one Server-Sent Events stream (/ui/log, web/logstream.py) for the log
// shown, which sends the bytes appended as the file grows. Text only: appended as text nodes,
// never parsed as HTML (the server shows control characters as \xNN escapes).
"use strict";

(() => {
  const MOST_TAIL = 64 * 1024 * 1024;

  function kb(bytes) {
    if (bytes < 1024) return bytes + " B";
    if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(bytes < 10240 ? 1 : 0) + " KB";
    return (bytes / 1024 / 1024).toFixed(1) + " MB";
  }

  function start(section) {
    const pre = document.getElementById("log");
    const state = document.getElementById("log-state");
    const note = document.getElementById("log-note");
    const follow = document.getElementById("log-follow");
    const attemptPick = document.getElementById("log-attempt");
    const more = document.getElementById("log-more");
    let stream = "stdout";
    let tail = Number(section.dataset.tail);
    let source = null;
    let shown = 0; // characters in the <pre>
    let from = 0; // byte offset the text starts at
    let ended = null; // the last stream's end: {why, again, elsewhere}
    let attempts = lastAttempt();

    function lastAttempt() {
      const rows = document.querySelectorAll("#attempts tr[data-attempt]");
      return rows.length ? rows[rows.length - 1].dataset.attempt : "";
    }

    function say() {
      const where = from < 0 ? "its latest part (older text dropped here)" : from > 0 ? `from byte ${from.toLocaleString()} (the last ${kb(tail)}; "more" shows more)` : "from its start";
      state.textContent = ended ? `${where}; ${ended.why}` : `${where}; live`;
    }

    function append(text) {
      pre.append(text);
      shown += text.length;
      const most = Math.max(4 * tail, 1 << 20);
      if (shown > most) { // a fast log followed for long: keep the page light
        const all = pre.textContent;
        pre.textContent = all.slice(all.length - most);
        shown = most;
        from = -1;
      }
      if (follow.checked) pre.scrollTop = pre.scrollHeight;
    }

    function open() {
      if (source) source.close();
      ended = null;
      note.textContent = "";
      const params = new URLSearchParams({batch: section.dataset.batch, job: section.dataset.job, stream, tail});
      if (attemptPick.value) params.set("attempt", attemptPick.value);
      const events = new EventSource("/ui/log?" + params.toString());
      source = events;
      events.addEventListener("head", (event) => {
        const head = JSON.parse(event.data);
        if (head.reset) { pre.textContent = ""; shown = 0; }
        from = head.offset === undefined ? 0 : head.offset;
        if (head.remote) note.textContent = `it runs on ${head.host}: read there, its last ${head.lines} lines first`;
        say();
      });
      events.addEventListener("text", (event) => append(JSON.parse(event.data)));
      events.addEventListener("note", (event) => { note.textContent = JSON.parse(event.data); });
      events.addEventListener("end", (event) => {
        ended = JSON.parse(event.data);
        events.close();
        if (source === events) source = null;
        say();
        if (ended.again) setTimeout(() => { if (source === null && ended && ended.again) open(); }, 1500);
      });
      events.addEventListener("error", () => {
        if (events.readyState === EventSource.CLOSED) {
          state.textContent = "cannot read this log (the server refused it: reload the page)";
        } else {
          state.textContent = "reconnecting...";
        }
      });
    }

    for (const tab of section.querySelectorAll("button.tab")) {
      tab.addEventListener("click", () => {
        stream = tab.dataset.stream;
        for (const other of section.querySelectorAll("button.tab")) other.classList.toggle("on", other === tab);
        open();
      });
    }
    attemptPick.addEventListener("change", open);
    follow.addEventListener("change", () => { if (follow.checked) pre.scrollTop = pre.scrollHeight; });
    more.addEventListener("click", () => {
      tail = Math.min(tail * 4, MOST_TAIL);
      open();
    });
    // The attempts part was redrawn (a change in the batch): a new attempt to pick, or to follow.
    document.addEventListener("hyperctl:updated", () => {
      const now = lastAttempt();
      const known = new Set([...attemptPick.options].map((o) => o.value));
      for (const row of document.querySelectorAll("#attempts tr[data-attempt]")) {
        const n = row.dataset.attempt;
        if (!known.has(n)) attemptPick.add(new Option(n, n));
      }
      const status = document.getElementById("job-status");
      const goneHome = ended && ended.elsewhere && status && status.dataset.status !== "running";
      if (source === null && !attemptPick.value && (now !== attempts || goneHome)) open();
      attempts = now;
    });
    if (attempts) open(); else state.textContent = "no attempt yet: its log shows once it starts";
  }

  document.addEventListener("DOMContentLoaded", () => {
    const section = document.getElementById("log-section");
    if (section) start(section);
  });
})();
