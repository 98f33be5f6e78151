// Small progressive enhancements; every page works without this file.
(function () {
  "use strict";

  function setBrowserTimeZone(root) {
    var zone = "";
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
    root.querySelectorAll("[data-browser-timezone]").forEach(function (input) { input.value = zone; });
  }

  function enableCopyButtons(root) {
    root.querySelectorAll("[data-copy]").forEach(function (button) {
      if (!navigator.clipboard) { return; }
      button.hidden = false;
      button.addEventListener("click", function () {
        navigator.clipboard.writeText(button.dataset.copy).then(function () {
          var label = button.textContent;
          button.textContent = "Copied";
          setTimeout(function () { button.textContent = label; }, 1500);
        });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setBrowserTimeZone(document);
    enableCopyButtons(document);
  });

  // A new choice row was swapped in: put the cursor there.
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "choice-list") {
      var inputs = event.detail.target.querySelectorAll("input");
      if (inputs.length) { inputs[inputs.length - 1].focus(); }
    }
    enableCopyButtons(event.detail.target);
  });
})();
