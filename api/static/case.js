// The single-case form without a reload: post its fields, show problems beside them, or wait for the answer.
// Without this script the form posts as usual and the server answers with a page.
"use strict";
(function () {
  const form = document.getElementById("case-form");
  const ns = window.Cytoscore;
  if (!form || !ns || !window.fetch) return;
  const statusLine = document.getElementById("case-status");
  const problemsBox = document.getElementById("case-problems");
  const answer = document.getElementById("answer");
  const staleNotice = document.getElementById("answer-stale");
  const newCase = document.getElementById("new-case");
  let busy = false;

  function say(text) { statusLine.textContent = text; }
  function slot(name) { return answer.querySelector('[data-slot="' + name + '"]'); }

  function setError(input, message) {
    const field = input.closest(".field");
    const error = field && field.querySelector(".error");
    if (!error) return;
    error.textContent = message;
    error.hidden = !message;
    field.classList.toggle("invalid", Boolean(message));
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  function showProblems(problems) {
    const items = problems.map(function (text) {
      const li = document.createElement("li");
      li.textContent = text;
      return li;
    });
    problemsBox.querySelector("ul").replaceChildren(...items);
    problemsBox.hidden = items.length === 0;
  }

  function showFieldErrors(fieldErrors) {
    let first = null;
    for (const input of form.querySelectorAll("input[name]:not([type=hidden])")) {
      const message = fieldErrors[input.name] || "";
      setError(input, message);
      if (message && !first) first = input;
    }
    return first;
  }

  // The answer card is the server's own HTML (the same template as the case's page and its report).
  async function showAnswer(jobUrl) {
    const response = await fetch(jobUrl + "/case", { headers: { Accept: "text/html" }, credentials: "same-origin" });
    if (!response.ok) throw new Error("the answer could not be read (" + response.status + ")");
    if (ns.sessionUsed) ns.sessionUsed(); // session.js: the page is in use
    const card = new DOMParser().parseFromString(await response.text(), "text/html").body;
    slot("card").replaceChildren(...card.childNodes);
    slot("job-link").href = jobUrl;
    slot("report-link").href = jobUrl + "/report.pdf";
    markStale(false);
    answer.hidden = false;
    answer.focus();
  }

  async function submit() {
    showProblems([]);
    showFieldErrors({});
    answer.hidden = true;
    say("Sending the case…");
    const response = await fetch(form.action, {
      method: "POST",
      body: new FormData(form), // every field, so a CSRF token added to the form rides along
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
    const body = await response.json().catch(function () { return {}; });
    if (response.status === 422) {
      const first = showFieldErrors(body.field_errors || {});
      showProblems(body.problems || []);
      say("The case was not scored: see the marked " + (first ? "fields" : "problems") + ".");
      (first || problemsBox).focus();
      return;
    }
    if (!response.ok) throw new Error(body.error || ns.refusal(response.status));
    say("Scoring the case…");
    const job = await ns.watchJob(body.status_url, function () {}, 25); // only the end matters: long-poll
    if (job.status !== "succeeded") {
      say("The case was not scored: " + (job.error || "no reason given") + ".");
      return;
    }
    say("");
    await showAnswer(body.job);
  }

  // An answer never stands beside values it was not given: once a field changes, the card says so.
  function markStale(stale) {
    staleNotice.hidden = !stale;
    answer.classList.toggle("stale", stale);
  }

  form.addEventListener("input", function () {
    if (!answer.hidden && staleNotice.hidden) markStale(true);
  });

  // The next patient: empty fields, no answer, no problems, the cursor in the first field.
  newCase.hidden = false;
  newCase.addEventListener("click", function () {
    if (busy) return;
    const inputs = form.querySelectorAll("input[name]:not([type=hidden])");
    for (const input of inputs) input.value = "";
    showFieldErrors({});
    showProblems([]);
    answer.hidden = true;
    markStale(false);
    say("");
    inputs[0].focus();
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (busy) return;
    busy = true;
    submit()
      .catch(function (err) { say("Something went wrong: " + err.message + ". Please try again."); })
      .finally(function () { busy = false; });
  });
})();
