// Sluice console: keyboard shortcuts and live table filters. No framework,
// no inline script (the pages' Content-Security-Policy forbids it).
"use strict";
(function () {
  function typing(el) {
    return el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT");
  }
  // "/" focuses the search box; "g" then o/t/g goes to a page.
  var pendingG = false;
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(document.activeElement)) return;
    var search = document.getElementById("search");
    if (e.key === "/" && search) {
      e.preventDefault();
      search.focus();
      search.select();
      return;
    }
    if (pendingG) {
      pendingG = false;
      var link = document.querySelector('header nav a[data-key="' + e.key + '"]');
      if (link) window.location.href = link.getAttribute("href");
      return;
    }
    if (e.key === "g") pendingG = true;
  });
  // Live filter of a table's rows by their data-name.
  document.querySelectorAll("input[data-filter]").forEach(function (input) {
    var table = document.getElementById(input.getAttribute("data-filter"));
    if (!table) return;
    var form = input.form;
    if (form && !form.getAttribute("action")) {
      form.addEventListener("submit", function (e) { e.preventDefault(); });
    }
    input.addEventListener("input", function () {
      var q = input.value.trim().toLowerCase();
      table.querySelectorAll("tbody tr").forEach(function (tr) {
        var name = (tr.getAttribute("data-name") || "").toLowerCase();
        tr.hidden = q !== "" && name.indexOf(q) < 0;
      });
    });
  });
  // Configs: only the values set on the topic.
  var only = document.getElementById("overrides-only");
  var configs = document.getElementById("configs-table");
  if (only && configs) {
    only.addEventListener("change", function () {
      configs.classList.toggle("overrides-only", only.checked);
    });
  }
})();
