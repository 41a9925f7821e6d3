// The upload form: drag and drop onto the file picker, the size limit checked before sending, and a refused
// file's problems shown in place. With this script several files may be chosen or dropped at once: each is sent
// as its own upload, one after the other, and the page lists what became of each. Without it the form posts one
// file as usual.
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
  const sent = document.getElementById("upload-results");
  let busy = false;
  input.multiple = true;
  const hint = document.getElementById("file-hint");
  hint.textContent = hint.textContent.replace("Choose a file or drop it here.", "Choose one or more files, or drop them here.");

  // A size as people read it: 22 bytes, 20 KiB, 3.4 MiB (a small file is never "0.0 MiB").
  function mib(bytes) {
    if (bytes < 1024) return bytes + (bytes === 1 ? " byte" : " bytes");
    return bytes < 1048576 ? Math.round(bytes / 1024) + " KiB" : (bytes / 1048576).toFixed(1) + " MiB";
  }
  function say(text) { statusLine.textContent = text; }

  function describe() {
    const files = Array.from(input.files);
    chosen.textContent = files.length ? "Chosen: " + files.map(function (file) {
      return file.name + " (" + mib(file.size) + ")";
    }).join(", ") : "";
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

  // A workbook's header, as the server reads it: the first row with a value of its only sheet (or the one named
  // "cases"). Only the zip's directory, the small workbook parts and the start of the sheet's XML are read: the
  // browser inflates the sheet as a stream and stops at that row, so a 19 MB workbook costs milliseconds.
  const MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main";

  async function zipEntries(file) {
    const tailSize = Math.min(file.size, 65557); // the end-of-directory record, and a comment of at most 64 KiB
    const tail = new DataView(await file.slice(file.size - tailSize).arrayBuffer());
    let end = -1;
    for (let i = tailSize - 22; i >= 0 && end < 0; i--) if (tail.getUint32(i, true) === 0x06054b50) end = i;
    if (end < 0) throw new Error("not a zip");
    const count = tail.getUint16(end + 10, true);
    const start = tail.getUint32(end + 16, true);
    const dir = new DataView(await file.slice(start, start + tail.getUint32(end + 12, true)).arrayBuffer());
    const entries = new Map();
    const names = new TextDecoder();
    for (let n = 0, p = 0; n < count; n++) {
      const nameLength = dir.getUint16(p + 28, true);
      const name = names.decode(new Uint8Array(dir.buffer, p + 46, nameLength));
      entries.set(name, { method: dir.getUint16(p + 10, true), size: dir.getUint32(p + 20, true), at: dir.getUint32(p + 42, true) });
      p += 46 + nameLength + dir.getUint16(p + 30, true) + dir.getUint16(p + 32, true);
    }
    return entries;
  }

  // An entry's text, up to the index `enough(text)` gives (-1: read on), or whole.
  async function entryText(file, entry, enough) {
    const local = new DataView(await file.slice(entry.at, entry.at + 30).arrayBuffer());
    const begin = entry.at + 30 + local.getUint16(26, true) + local.getUint16(28, true);
    let stream = file.slice(begin, begin + entry.size).stream();
    if (entry.method === 8) stream = stream.pipeThrough(new DecompressionStream("deflate-raw"));
    const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return text;
      text += value;
      const at = enough ? enough(text) : -1;
      if (at >= 0) { reader.cancel(); return text.slice(0, at); }
    }
  }

  function parsed(xml) { return new DOMParser().parseFromString(xml, "application/xml"); }

  function fragment(xml) { // elements cut from the main namespace's XML, parsed on their own
    return parsed('<x xmlns="' + MAIN + '">' + xml + "</x>").documentElement;
  }

  function columnOf(ref, at) {
    const letters = /^[A-Z]+/.exec(ref || "");
    if (!letters) return at;
    return letters[0].split("").reduce(function (n, c) { return n * 26 + c.charCodeAt(0) - 64; }, 0) - 1;
  }

  async function workbookHeader(file) {
    const entries = await zipEntries(file);
    const part = function (name) {
      if (!entries.has(name)) throw new Error("no " + name);
      return entryText(file, entries.get(name));
    };
    const sheets = Array.from(parsed(await part("xl/workbook.xml")).getElementsByTagNameNS(MAIN, "sheet"));
    const chosen = sheets.length === 1 ? sheets : sheets.filter(function (s) {
      return s.getAttribute("name").trim().toLowerCase() === "cases";
    });
    if (chosen.length !== 1) return null; // the server will say why
    const id = Array.from(chosen[0].attributes).find(function (a) { return a.localName === "id"; }).value;
    const rels = Array.from(parsed(await part("xl/_rels/workbook.xml.rels")).getElementsByTagName("Relationship"));
    const target = rels.find(function (r) { return r.getAttribute("Id") === id; }).getAttribute("Target");
    const member = target.startsWith("/") ? target.slice(1) : "xl/" + target.replace(/^\.\//, "");
    const sheet = await entryText(file, entries.get(member), function (text) {
      const rows = text.match(/<row\b[\s\S]*?<\/row>/g) || [];
      const first = rows.find(function (row) { return /<v>|<is>/.test(row); });
      return first ? text.indexOf(first) + first.length : -1;
    });
    const row = /<row\b[\s\S]*?<\/row>/g;
    let cells = [];
    for (let found = row.exec(sheet); found; found = row.exec(sheet)) {
      cells = Array.from(fragment(found[0]).getElementsByTagNameNS(MAIN, "c"));
      if (cells.some(function (c) { return c.getElementsByTagNameNS(MAIN, "v").length || c.getElementsByTagNameNS(MAIN, "is").length; })) break;
    }
    if (!cells.length) return null; // a sheet this script cannot follow (say, prefixed XML): the server reads it
    const wanted = cells.filter(function (c) { return c.getAttribute("t") === "s"; }).map(function (c) {
      return Number(c.getElementsByTagNameNS(MAIN, "v")[0].textContent);
    });
    let strings = [];
    if (wanted.length && entries.has("xl/sharedStrings.xml")) {
      const last = Math.max.apply(null, wanted);
      const sst = await entryText(file, entries.get("xl/sharedStrings.xml"), function (text) {
        const items = text.match(/<\/si>/g) || [];
        return items.length > last ? text.split("</si>", last + 1).join("</si>").length + 5 : -1;
      });
      strings = Array.from(fragment(sst.slice(sst.indexOf("<si"))).getElementsByTagNameNS(MAIN, "si")).map(function (si) {
        const plain = Array.from(si.children).find(function (e) { return e.localName === "t"; });
        const runs = plain ? [plain] : Array.from(si.children).filter(function (e) { return e.localName === "r"; })
          .map(function (r) { return Array.from(r.children).find(function (e) { return e.localName === "t"; }); });
        return runs.map(function (t) { return t ? t.textContent : ""; }).join("");
      });
    }
    const header = [];
    cells.forEach(function (c, at) {
      const v = c.getElementsByTagNameNS(MAIN, "v")[0];
      const type = c.getAttribute("t");
      header[columnOf(c.getAttribute("r"), at)] = type === "s" ? strings[Number(v.textContent)]
        : type === "inlineStr" ? Array.from(c.getElementsByTagNameNS(MAIN, "t")).map(function (t) { return t.textContent; }).join("")
          : v ? v.textContent : "";
    });
    return Array.from(header, function (name) { return name || ""; });
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
    if (input.files.length > 1) { // each file gets the best model its own columns fit, as the server chooses it
      chosenByScript = true;
      modelSelect.value = "";
      fitLine.textContent = "Each file is scored with the best held-out ROC AUC among the models whose columns it has.";
      return;
    }
    let fields;
    if (/\.xlsx$/i.test(file.name)) {
      fields = await workbookHeader(file).catch(function () { return null; });
      if (!fields) { // not a workbook this script can read: the server reads it, and says why if it cannot
        modelSelect.value = "";
        fitLine.textContent = "The workbook's columns are read when it arrives; the best model that fits it is used.";
        return;
      }
    } else {
      fields = headerFields(await file.slice(0, 65536).text());
    }
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

  // One file as its own upload: {job} when accepted, {problems} when refused (what the server said, or why not sent).
  async function upload(file) {
    if (file.size > maxBytes) {
      return { problems: ["it is " + mib(file.size) + ", over the limit of " + mib(maxBytes) + "; it was not sent"] };
    }
    const data = new FormData(form); // every field, so a CSRF token added to the form rides along
    data.delete("file");
    data.append("file", file); // last, as the server reads it
    const response = await fetch(form.action, {
      method: "POST", body: data, headers: { Accept: "application/json" }, credentials: "same-origin",
    });
    if (window.Cytoscore && window.Cytoscore.sessionUsed) window.Cytoscore.sessionUsed(); // session.js
    if (response.status === 413) return { problems: ["it is over the limit of " + mib(maxBytes)] };
    const body = await response.json().catch(function () { return null; });
    if (response.status === 202 && body && body.job) return { job: body.job };
    if (body && body.problems) return { problems: body.problems };
    throw new Error(window.Cytoscore ? window.Cytoscore.refusal(response.status) : "HTTP " + response.status);
  }

  async function sendOne(file) {
    box.hidden = true;
    say("Uploading and checking " + file.name + "…");
    const outcome = await upload(file);
    if (outcome.job) {
      say("Accepted; opening the job page…");
      window.location.assign(outcome.job);
      return;
    }
    const summary = file.size > maxBytes ? file.name + " was not sent." : file.name + " was refused; nothing was created.";
    showProblems(summary, outcome.problems);
  }

  // Several files, one after the other; a refused one stops none of the others.
  async function sendEach(files) {
    box.hidden = true;
    const list = sent.querySelector("ul");
    let accepted = 0;
    list.replaceChildren();
    sent.hidden = false;
    for (const [at, file] of files.entries()) {
      say("Uploading and checking " + file.name + " (" + (at + 1) + " of " + files.length + ")…");
      const item = document.createElement("li");
      const outcome = await upload(file).catch(function (err) { return { problems: [err.message] }; });
      if (outcome.job) {
        const link = document.createElement("a");
        link.href = outcome.job;
        link.textContent = file.name + ": accepted, see its job";
        item.append(link);
        accepted += 1;
      } else {
        item.className = "refused";
        item.append(file.name + " was refused; nothing was created: " + outcome.problems.join("; "));
      }
      list.append(item);
    }
    say(accepted + " of " + files.length + " files accepted" + (accepted ? "; they are on the Jobs page too." : "."));
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (busy) return;
    const files = Array.from(input.files);
    if (!files.length) { showProblems("Nothing was uploaded.", ["choose a CSV or XLSX file to upload"]); return; }
    busy = true;
    (files.length === 1 ? sendOne(files[0]) : sendEach(files))
      .catch(function (err) { showProblems("The upload did not complete: " + err.message + ".", []); })
      .finally(function () { busy = false; });
  });
})();
