// Keep the job page current: poll the job's JSON until it reaches a terminal state, then reload once for results.
"use strict";
(function () {
  const root = document.getElementById("job");
  if (!root) return;
  const url = root.dataset.statusUrl;
  const terminal = new Set(["succeeded", "failed"]);
  if (terminal.has(root.dataset.status)) return;

  function show(job) {
    const done = job.rows_scored + job.rows_rejected;
    const status = document.getElementById("status");
    status.textContent = job.status;
    status.className = "status status-" + job.status;
    const progress = document.getElementById("progress");
    progress.max = Math.max(job.rows_total, 1);
    progress.value = done;
    progress.textContent = done + " of " + job.rows_total;
    document.getElementById("done").textContent = done;
    document.getElementById("total").textContent = job.rows_total;
    document.getElementById("scored").textContent = job.rows_scored;
    document.getElementById("rejected").textContent = job.rows_rejected;
    document.getElementById("attempts").textContent = job.attempts > 1 ? "(attempt " + job.attempts + ")" : "";
    const error = document.getElementById("error");
    error.textContent = job.error || "";
    error.hidden = !job.error;
  }

  async function poll() {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const job = await response.json();
        show(job);
        if (terminal.has(job.status)) {
          if (job.status === "succeeded") window.location.reload();
          return;
        }
      }
    } catch (err) {
      // The network blinked; try again on the next tick.
    }
    window.setTimeout(poll, 1000);
  }
  window.setTimeout(poll, 500);
})();
