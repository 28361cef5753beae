// The machines part of a batch page: what its jobs use is sampled by the server only when this part
// is asked for, so it is asked for every 5 s while the page is visible (at once when it loads or
// shows again), and never while the page is hidden. The HTML comes from the server (app.js).
"use strict";

(() => {
  const EVERY = 5000;

  function tick() {
    if (document.visibilityState === "visible") hyperctl.refresh("machines");
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (!document.querySelector('[data-part="machines"]')) return;
    tick();
    setInterval(tick, EVERY);
    document.addEventListener("visibilitychange", tick);
  });
})();
