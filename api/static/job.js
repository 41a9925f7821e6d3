// Keep the job page current while the job runs: status, progress, time left, and the tab's title (so a tab in
// the background says how far it is); on request, a notification when it ends; reload once it has finished.
"use strict";
(function () {
  const root = document.getElementById("job");
  const ns = window.Cytoscore;
  if (!root || !ns || ns.TERMINAL.has(root.dataset.status)) return;
  const samples = []; // [milliseconds, rows done] while running, for the rate
  const title = document.title;
  const shortId = document.querySelector("h1 code").textContent;
  let tell = false; // the person asked to be told when it ends

  function byId(id) { return document.getElementById(id); }

  function timeLeft(job, done) {
    if (job.status === "queued") {
      if (!job.jobs_ahead) return "Waiting for a worker.";
      return "Waiting for a worker: " + job.jobs_ahead + (job.jobs_ahead === 1 ? " job is" : " jobs are") + " ahead of it.";
    }
    if (job.status !== "running") return "";
    if (!job.rows_total) return "Reading the file…"; // a workbook's rows are counted once it is read
    if (done >= job.rows_total) return "";
    samples.push([performance.now(), done]); // from the count on: a workbook's reading is not its rate
    const first = samples[0];
    const last = samples[samples.length - 1];
    // The rate seen on this page; until there is one, the server's, from the job's start.
    const seconds = last[1] > first[1]
      ? (job.rows_total - done) * (last[0] - first[0]) / (last[1] - first[1]) / 1000
      : job.seconds_left;
    if (seconds === null || seconds === undefined) return "Estimating the time left…";
    if (seconds < 1) return "Less than a second left.";
    if (seconds < 90) return "About " + Math.round(seconds) + " s left.";
    const minutes = Math.round(seconds / 60);
    if (minutes < 60) return "About " + minutes + " min left.";
    return "About " + Math.floor(minutes / 60) + " h " + (minutes % 60) + " min left.";
  }

  function show(job) {
    const done = job.rows_scored + job.rows_rejected;
    const badge = byId("status").querySelector(".badge"); // a finished job reloads with its outcome in words
    const word = badge.querySelector(".status-word");
    if (word) word.textContent = job.status;
    badge.className = "badge status-" + job.status;
    const progress = byId("progress");
    progress.max = Math.max(job.rows_total, 1);
    progress.value = done;
    progress.textContent = done + " of " + job.rows_total;
    byId("done").textContent = ns.thousands(done);
    byId("total").textContent = ns.thousands(job.rows_total);
    byId("percent").textContent = ns.percent(done, job.rows_total);
    byId("scored").textContent = ns.thousands(job.rows_scored);
    byId("rejected").textContent = ns.thousands(job.rows_rejected);
    byId("attempts").textContent = job.attempts > 1 ? "(attempt " + job.attempts + ")" : "";
    byId("eta").textContent = timeLeft(job, done);
    const error = byId("error");
    error.textContent = job.error || "";
    error.hidden = !job.error;
    const far = job.status === "queued" ? "Waiting" : job.rows_total ? ns.percent(done, job.rows_total) : "Reading";
    document.title = far + " · " + title;
  }

  // A notification says only that the job ended, never a file name or a result: it may show on a locked screen.
  const notifyLine = byId("notify-line");
  if (notifyLine && "Notification" in window && Notification.permission !== "denied") {
    notifyLine.hidden = false;
    byId("notify").addEventListener("click", async function () {
      const answer = Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
      tell = answer === "granted";
      byId("notify").hidden = tell;
      byId("notify-status").textContent = tell
        ? "You will be told when it ends, even if this tab is in the background."
        : "The browser did not allow notifications; the tab's title shows how far it is.";
    });
  }

  // The finished page (counts, chart, table) is drawn by the server: reload once, when the job is done.
  ns.watchJob(root.dataset.statusUrl, show, 0, 500).then(function (job) {
    if (tell) new Notification("cytoscore: job " + shortId + " " + job.status.replace("_", " "), { tag: job.id });
    window.location.reload();
  });
})();
