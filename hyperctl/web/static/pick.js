// The batch page's job picks: tick rows, then "compare curves" opens their curves overlaid
// (/b/BATCH/curves?jobs=a,b). The picks are kept in the page's URL (?pick=a,b) and survive the
// table's live redraws, sorting and paging.
"use strict";

(() => {
  const picked = new Set((new URLSearchParams(location.search).get("pick") || "").split(",").filter(Boolean));

  function keep() {
    const url = new URLSearchParams(location.search);
    if (picked.size) url.set("pick", [...picked].join(",")); else url.delete("pick");
    const query = url.toString();
    history.replaceState(history.state, "", location.pathname + (query ? "?" + query : ""));
  }

  function show() {
    for (const box of document.querySelectorAll("input.pick")) box.checked = picked.has(box.value);
    const button = document.getElementById("compare-curves");
    if (button) {
      button.disabled = picked.size === 0;
      button.textContent = picked.size ? `compare curves (${picked.size})` : "compare curves";
    }
  }

  document.addEventListener("change", (event) => {
    const box = event.target;
    if (!(box instanceof HTMLInputElement) || !box.classList.contains("pick")) return;
    if (box.checked) picked.add(box.value); else picked.delete(box.value);
    keep();
    show();
  });
  document.addEventListener("click", (event) => {
    const button = event.target.closest("#compare-curves");
    if (!button || picked.size === 0) return;
    location.href = button.dataset.curves + "?" + new URLSearchParams({jobs: [...picked].join(",")}).toString();
  });
  document.addEventListener("hyperctl:updated", () => { keep(); show(); });
  window.addEventListener("popstate", () => setTimeout(() => { keep(); show(); }, 0));
  document.addEventListener("DOMContentLoaded", show);
})();
