// Actions of a daemon's own batch (kill a job, kill the batch): each asks first in a <dialog>, then
// POSTs with the page's CSRF token (hyperctl.csrf()); what the server answers is said beside the
// buttons, and the page's parts are fetched again (the change also comes over the events).
"use strict";

(() => {
  function confirmed(text, verb) {
    const dialog = document.getElementById("confirm-action");
    if (!dialog || typeof dialog.showModal !== "function") return Promise.resolve(window.confirm(text));
    document.getElementById("confirm-text").textContent = text;
    document.getElementById("confirm-ok").textContent = verb || "ok";
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), {once: true});
      dialog.returnValue = "";
      dialog.showModal();
    });
  }

  function say(text, problem) {
    const out = document.getElementById("action-result");
    if (!out) return;
    out.textContent = text;
    out.classList.toggle("problem", Boolean(problem));
  }

  async function act(button) {
    if (!(await confirmed(button.dataset.confirm, button.dataset.verb))) return;
    button.disabled = true;
    say(button.dataset.verb + "…");
    try {
      const answer = await fetch(button.dataset.action, {
        method: "POST", credentials: "same-origin", headers: {"X-Hyperctl-CSRF": hyperctl.csrf()},
      });
      const body = await answer.json().catch(() => ({}));
      say(answer.ok ? body.message : (body.error || answer.statusText), !answer.ok);
    } catch (error) {
      say("the server does not answer", true);
    } finally {
      button.disabled = false;
      for (const section of document.querySelectorAll("[data-part]")) hyperctl.refresh(section.dataset.part);
    }
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button || button.disabled) return;
    event.preventDefault();
    act(button);
  });
})();
