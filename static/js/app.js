// Small progressive enhancements; every page works without this file.
(function () {
  "use strict";

  function pad(number) { return String(number).padStart(2, "0"); }

  // Deadlines are typed and shown in the browser's zone. Without this script the server reads and
  // shows them in UTC, and the label says so; with it, the label names the zone, the hidden `tz`
  // field tells the server, and a stored deadline (rendered in UTC) is rewritten in local time.
  function setBrowserTimeZone(root) {
    var zone = "";
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
    if (!zone) { return; }
    root.querySelectorAll("[data-browser-timezone]").forEach(function (input) { input.value = zone; });
    root.querySelectorAll("[data-time-zone-name]").forEach(function (span) { span.textContent = zone.replace(/_/g, " "); });
    root.querySelectorAll("input[data-utc-value]").forEach(function (input) {
      var when = new Date(input.dataset.utcValue);
      if (isNaN(when.getTime())) { return; }
      input.value = when.getFullYear() + "-" + pad(when.getMonth() + 1) + "-" + pad(when.getDate()) +
        "T" + pad(when.getHours()) + ":" + pad(when.getMinutes());
    });
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

  // The maximum of picks is hidden (by CSS) while multiple choice is off; disabled too, so a value left
  // in it can neither block the submit (an invalid hidden field) nor be sent.
  function syncMaxChoices() {
    var allow = document.getElementById("id_allow_multiple");
    var max = document.getElementById("id_max_choices");
    if (allow && max) { max.disabled = !allow.checked; }
  }

  document.addEventListener("DOMContentLoaded", function () {
    setBrowserTimeZone(document);
    enableCopyButtons(document);
    syncMaxChoices();
    var allow = document.getElementById("id_allow_multiple");
    if (allow) { allow.addEventListener("change", syncMaxChoices); }
  });

  // The browser's own limits, so a voter never ticks what the server would refuse (the server still checks):
  // once a "pick up to N" form has N ticks, the other boxes wait; the create form adds no row past the maximum.
  function limitPicks(root) {
    root.querySelectorAll("[data-max-choices]").forEach(function (fieldset) {
      var max = parseInt(fieldset.dataset.maxChoices, 10);
      var boxes = fieldset.querySelectorAll("input[type=checkbox]");
      var ticked = fieldset.querySelectorAll("input[type=checkbox]:checked").length;
      boxes.forEach(function (box) { box.disabled = !box.checked && ticked >= max; });
    });
  }

  function limitChoiceRows() {
    var list = document.getElementById("choice-list");
    var add = document.querySelector("[data-add-choice]");
    if (!list || !add) { return; }
    var full = list.querySelectorAll("input").length >= parseInt(add.dataset.maxRows, 10);
    add.disabled = full;
    add.setAttribute("aria-disabled", full ? "true" : "false");
  }

  document.addEventListener("change", function (event) {
    if (event.target.matches("[data-max-choices] input[type=checkbox]")) { limitPicks(document); }
  });
  document.addEventListener("DOMContentLoaded", function () { limitPicks(document); limitChoiceRows(); });

  // A new choice row was swapped in: give it its number, as the server does for the first rows, and put the cursor there.
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "choice-list") {
      var inputs = event.detail.target.querySelectorAll("input");
      inputs.forEach(function (input, index) { input.setAttribute("aria-label", "Choice " + (index + 1)); });
      if (inputs.length) { inputs[inputs.length - 1].focus(); }
      limitChoiceRows();
    }
    limitPicks(event.detail.target);
    enableCopyButtons(event.detail.target);
  });
})();
