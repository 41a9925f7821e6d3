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

  // The model: pre-selected from the file's header by the server's rule (best held-out ROC AUC among the models
  // whose every feature the file has). The server applies the same rule to a file sent without a model.
  const modelSelect = document.getElementById("upload-model");
  const fitLine = document.getElementById("model-fit");
  const aliases = JSON.parse(modelSelect.dataset.aliases);
  let chosenByScript = false;

  function headerFields(text) {
    const line = text.replace(/^\ufeff/, "").split(/\r\n|\n|\r/)[0];
    const delimiter = line.includes(",") ? "," : line.includes(";") ? ";" : line.includes("\t") ? "\t" : ",";
    return line.split(delimiter).map(function (name) { return name.trim().replace(/^"(.*)"$/, "$1"); });
  }

  function bestFit(present) {
    const fits = Array.from(modelSelect.options).filter(function (option) {
      return option.value && JSON.parse(option.dataset.features).every(function (f) { return present.has(f); });
    });
    fits.sort(function (a, b) {
      const auc = Number(b.dataset.rocAuc) - Number(a.dataset.rocAuc);
      const width = JSON.parse(a.dataset.features).length - JSON.parse(b.dataset.features).length;
      return auc || width || (a.value < b.value ? -1 : 1);
    });
    return fits[0] || null;
  }

  async function preselect() {
    const file = input.files[0];
    if (!file || (modelSelect.value && !chosenByScript)) return; // a person's choice stands
    if (/\.xlsx$/i.test(file.name)) {
      modelSelect.value = "";
      fitLine.textContent = "A workbook's columns are read when it arrives; the best model that fits it is used.";
      return;
    }
    const fields = headerFields(await file.slice(0, 65536).text());
    const present = new Set(fields.map(function (name) { return aliases[name.trim().toLowerCase()]; }));
    const best = bestFit(present);
    chosenByScript = true;
    modelSelect.value = best ? best.value : "";
    fitLine.textContent = best
      ? "Chosen for " + file.name + ": " + best.value + ", the best held-out ROC AUC among the models whose columns it has."
      : file.name + " lacks columns that every model needs; it will be refused with the list of missing columns.";
  }

  modelSelect.addEventListener("change", function () { chosenByScript = false; });
  input.addEventListener("change", function () { preselect().catch(function () {}); });
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
    preselect().catch(function () {});
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
