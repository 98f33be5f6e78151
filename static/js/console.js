// The presenter's keyboard shortcuts: each console button names its key in data-shortcut, so the
// keys press the very button (form, HTMX and all) a click would. Typing in a field is left alone.
(function () {
  "use strict";
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) { return; }
    var target = event.target;
    // Typing in a field is left alone; a focused button (the one just clicked) is not a field.
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) { return; }
    var key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    var button = document.querySelector('[data-shortcut="' + key + '"]');
    if (!button || button.disabled) { return; }
    event.preventDefault();
    button.click();
  });
})();
