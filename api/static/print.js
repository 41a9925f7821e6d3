// The case's own buttons, shown only where a script can do what they say: "Print this case" opens the browser's
// print dialog; "Copy a summary for the record" puts the server's one-paragraph summary (the answer, the model
// that gave it, the notice) on the clipboard, to paste into the patient's record.
"use strict";
(function () {
  const print = document.getElementById("print-report");
  if (print && window.print) {
    print.hidden = false;
    print.addEventListener("click", function () { window.print(); });
  }
  const copy = document.getElementById("copy-summary");
  const status = document.getElementById("copy-status");
  if (copy && navigator.clipboard && window.isSecureContext) {
    copy.hidden = false;
    copy.addEventListener("click", function () {
      navigator.clipboard.writeText(copy.dataset.summary).then(
        function () { status.textContent = "Copied: paste it into the record."; },
        function () { status.textContent = "The browser did not allow copying; select the text of the case instead."; }
      );
    });
  }
})();
