// The "Print this case" button: shown only where a script can open the browser's print dialog.
"use strict";
(function () {
  const button = document.getElementById("print-report");
  if (!button || !window.print) return;
  button.hidden = false;
  button.addEventListener("click", function () { window.print(); });
})();
