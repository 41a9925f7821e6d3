// Warn before a signed-in page's session ends for idleness, and let the person stay (WCAG 2.2.1, Timing
// Adjustable): two minutes before, a notice with "Stay signed in"; at the end, that nothing typed here was sent.
// The server counts the session's last use at most once a minute, so a request by this page's own scripts is
// taken to leave a minute less than the whole idle limit.
"use strict";
window.Cytoscore = window.Cytoscore || {};
(function (ns) {
  const body = document.body;
  const idle = Number(body.dataset.sessionIdle);
  const box = document.getElementById("idle-warning");
  if (!idle || !box) return;
  const text = document.getElementById("idle-text");
  const stay = document.getElementById("stay-signed-in");
  const again = document.getElementById("sign-in-again");
  const WARN_MS = Math.min(120, idle / 2) * 1000;
  let endsAt = Date.now() + Number(body.dataset.sessionLeft) * 1000;
  let timers = [];

  function minutes(ms) {
    const m = Math.max(1, Math.round(ms / 60000));
    return m + (m === 1 ? " minute" : " minutes");
  }

  // Shown at the foot of the window, over the page: room below the page's end, and the field being typed in
  // brought above the notice (WCAG 2.4.11, focus not obscured).
  function show() {
    box.hidden = false;
    body.classList.add("idle-warned");
    const field = document.activeElement;
    if (field && field !== body && field.getBoundingClientRect().bottom > box.getBoundingClientRect().top) {
      field.scrollIntoView({ block: "center" });
    }
  }

  function hide() {
    box.hidden = true;
    body.classList.remove("idle-warned");
  }

  function warn() {
    text.textContent = "You will be signed out in about " + minutes(endsAt - Date.now()) +
      " because nothing has happened for a while. Anything you have typed here is kept while you stay.";
    stay.hidden = false;
    again.hidden = true;
    show();
  }

  function ended() {
    text.textContent = "You have been signed out after " + minutes(idle * 1000) + " without activity. " +
      "Nothing typed on this page since was sent: sign in again in a new tab, then come back and send it.";
    stay.hidden = true;
    again.hidden = false;
    show();
  }

  function schedule() {
    timers.forEach(window.clearTimeout);
    const left = endsAt - Date.now();
    timers = [window.setTimeout(warn, Math.max(0, left - WARN_MS)), window.setTimeout(ended, Math.max(0, left))];
  }

  // Another script of the page reached the server: the session was used.
  ns.sessionUsed = function () {
    endsAt = Math.max(endsAt, Date.now() + Math.max(0, idle - 60) * 1000);
    hide();
    schedule();
  };

  stay.addEventListener("click", async function () {
    const token = document.querySelector('input[name="csrf_token"]');
    try {
      const response = await fetch(body.dataset.keepAlive, {
        method: "POST",
        headers: { Accept: "application/json", "X-CSRFToken": token ? token.value : "" },
        credentials: "same-origin",
        redirect: "manual", // an ended session is sent to sign in: not the answer asked for
      });
      if (!response.ok) throw new Error("session ended");
      endsAt = Date.now() + (await response.json()).seconds_left * 1000;
      hide();
      schedule();
    } catch (error) {
      ended();
    }
  });
  schedule();
})(window.Cytoscore);
