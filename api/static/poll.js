// Watch a job until it reaches a terminal status. Shared by the single-case form and the job page.
"use strict";
window.Cytoscore = window.Cytoscore || {};
(function (ns) {
  const TERMINAL = new Set(["succeeded", "failed", "needs_review", "cancelled"]);
  const EVERY_MS = 1000; // at most one request a second
  const RETRY_MS = 2000;

  function sleep(ms) {
    return new Promise(function (resolve) { window.setTimeout(resolve, ms); });
  }

  // Call onUpdate(job) with each answer of GET `statusUrl`; resolve with the job once it has finished.
  // `wait` (seconds) asks the server to hold each answer until the job finishes (long polling): right when only
  // the end matters; leave it out to see progress as it happens, every `everyMs` (at most one request a second
  // by default).
  async function watchJob(statusUrl, onUpdate, wait, everyMs) {
    const url = wait ? statusUrl + "?wait=" + wait : statusUrl;
    for (;;) {
      const started = Date.now();
      let pause = RETRY_MS;
      try {
        const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
        if (response.ok) {
          if (ns.sessionUsed) ns.sessionUsed(); // session.js: the page is in use
          const job = await response.json();
          onUpdate(job);
          if (TERMINAL.has(job.status)) return job;
          pause = (everyMs || EVERY_MS) - (Date.now() - started);
        }
      } catch (err) {
        // the network blinked; try again
      }
      if (pause > 0) await sleep(pause);
    }
  }

  // Numbers as the server writes them ("30,000", "40.0 %").
  function thousands(n) { return Number(n).toLocaleString("en-US"); }
  function percent(part, whole) { return whole ? (100 * part / whole).toFixed(1) + " %" : "–"; }

  // What to tell a person when a request was refused without a JSON answer.
  function refusal(status) {
    if (status === 401 || status === 403) return "you are not signed in, or may not do this (" + status + ")";
    if (status === 429) return "too many jobs at once: wait for some to finish, then try again";
    return "the server answered " + status;
  }

  ns.TERMINAL = TERMINAL;
  ns.watchJob = watchJob;
  ns.thousands = thousands;
  ns.percent = percent;
  ns.refusal = refusal;
})(window.Cytoscore);
