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

  // Times in the viewer's own zone, and countdowns that move. The server writes UTC (it cannot know
  // the zone); a <time data-local="time|datetime"> is rewritten in the browser's zone, and a
  // <time data-until> counts down to its moment every second ("4 min 05 s"), instead of a static
  // "closes in 4 minutes" that reads "0 minutes" for the last one.
  function showLocalTimes(root) {
    root.querySelectorAll("time[data-local]").forEach(function (time) {
      var when = new Date(time.getAttribute("datetime"));
      if (isNaN(when.getTime())) { return; }
      time.textContent = time.dataset.local === "time"
        ? when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
        : when.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
      time.title = when.toString();
    });
  }

  function untilText(ms) {
    var seconds = Math.max(0, Math.round(ms / 1000));
    var days = Math.floor(seconds / 86400), hours = Math.floor(seconds % 86400 / 3600);
    var minutes = Math.floor(seconds % 3600 / 60), rest = seconds % 60;
    if (days) { return days + " d " + hours + " h"; }
    if (hours) { return hours + " h " + pad(minutes) + " min"; }
    return minutes + " min " + pad(rest) + " s";
  }

  function countDown() {
    document.querySelectorAll("time[data-until]").forEach(function (time) {
      var left = Date.parse(time.getAttribute("datetime")) - Date.now();
      if (isNaN(left)) { return; }
      time.textContent = left > 0 ? untilText(left) : "a moment";
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    showLocalTimes(document);
    countDown();
    setInterval(countDown, 1000);
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    setBrowserTimeZone(event.detail.target);
    showLocalTimes(event.detail.target);
    countDown();
  });
  document.addEventListener("htmx:wsAfterMessage", function () { showLocalTimes(document); countDown(); });

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
