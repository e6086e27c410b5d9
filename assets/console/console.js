// simvault console: progressive enhancement only; every page works without this script.
// Later pages hang their behaviour here (hiding a revealed PUK after its time, polling a
// task's progress), found by data- attributes, never by inline handlers.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-hide-after]").forEach(function (el) {
    var seconds = parseInt(el.getAttribute("data-hide-after"), 10);
    if (seconds > 0) {
      window.setTimeout(function () { el.textContent = "(hidden)"; }, seconds * 1000);
    }
  });
});
