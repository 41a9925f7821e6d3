// The upload form: drag and drop onto the file picker, the size limit checked before sending, and a refused
// file's problems shown in place. Without this script the form posts as usual.
"use strict";
(function () {
  const form = document.getElementById("upload-form");
  if (!form || !window.fetch) return;
  const input = document.getElementById("file");
  const zone = document.getElementById("dropzone");
  const chosen = document.getElementById("chosen");
  const box = document.getElementById("upload-problems");
  const statusLine = document.getElementById("upload-status");
  const maxBytes = Number(form.dataset.maxBytes);
  let busy = false;

  function mib(bytes) { return (bytes / 1048576).toFixed(1) + " MiB"; }
  function say(text) { statusLine.textContent = text; }

  function describe() {
    const file = input.files[0];
    chosen.textContent = file ? "Chosen: " + file.name + " (" + mib(file.size) + ")" : "";
  }

  function showProblems(summary, problems) {
    box.querySelector('[data-slot="summary"]').textContent = summary;
    const items = problems.map(function (text) {
      const li = document.createElement("li");
      li.textContent = text;
      return li;
    });
    box.querySelector("ul").replaceChildren(...items);
    box.hidden = false;
    say("");
    box.focus();
  }

  function hasFiles(event) {
    return event.dataTransfer && Array.from(event.dataTransfer.types || []).includes("Files");
  }

  input.addEventListener("change", describe);
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, function (event) {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      zone.classList.add("over");
    });
  }
  zone.addEventListener("dragleave", function () { zone.classList.remove("over"); });
  zone.addEventListener("drop", function (event) {
    zone.classList.remove("over");
    if (!hasFiles(event)) return;
    event.preventDefault();
    input.files = event.dataTransfer.files;
    describe();
  });
  // A file dropped beside the zone must not make the browser leave the page to show it.
  for (const type of ["dragover", "drop"]) {
    window.addEventListener(type, function (event) { if (hasFiles(event)) event.preventDefault(); });
  }

  async function send(file) {
    const name = file ? file.name : "";
    if (file && file.size > maxBytes) {
      showProblems(name + " was not sent: it is " + mib(file.size) + ", over the limit of " + mib(maxBytes) + ".", []);
      return;
    }
    box.hidden = true;
    say(file ? "Uploading and checking " + name + "…" : "Checking…");
    const response = await fetch(form.action, {
      method: "POST",
      body: new FormData(form), // every field, so a CSRF token added to the form rides along
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
    if (response.status === 413) {
      showProblems(name + " was refused: it is over the limit of " + mib(maxBytes) + ".", []);
      return;
    }
    const body = await response.json().catch(function () { return null; });
    if (response.status === 202 && body && body.job) {
      say("Accepted; opening the job page…");
      window.location.assign(body.job);
      return;
    }
    if (body && body.problems) {
      const summary = body.filename ? body.filename + " was refused; nothing was created." : "Nothing was uploaded.";
      showProblems(summary, body.problems);
      return;
    }
    throw new Error(window.Cytoscore ? window.Cytoscore.refusal(response.status) : "HTTP " + response.status);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (busy) return;
    busy = true;
    send(input.files[0])
      .catch(function (err) { showProblems("The upload did not complete: " + err.message + ".", []); })
      .finally(function () { busy = false; });
  });
})();
