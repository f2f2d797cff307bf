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
  // Live throughput: poll end-offset samples, keep a bounded ring, chart
  // the rates between consecutive samples as SVG polylines.
  var tp = document.getElementById("throughput");
  if (tp) throughput(tp);

  function throughput(root) {
    var source = root.getAttribute("data-source");
    var interval = parseInt(root.getAttribute("data-interval"), 10) || 5000;
    var maxSamples = parseInt(root.getAttribute("data-max-samples"), 10) || 60;
    var maxTopics = parseInt(root.getAttribute("data-max-topics"), 10) || 8;
    var status = document.getElementById("throughput-status");
    var samples = [];
    var colors = ["#2457c5", "#b42318", "#137333", "#9a6700", "#7b2cbf", "#0b7285", "#c2255c", "#5f6b7a"];
    var SVG = "http://www.w3.org/2000/svg";

    function el(name, attrs, parent) {
      var e = document.createElementNS(SVG, name);
      Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
      if (parent) parent.appendChild(e);
      return e;
    }

    // Rates (records/s) of each key between consecutive samples.
    function rates(pick) {
      var series = {};
      for (var i = 1; i < samples.length; i++) {
        var a = samples[i - 1], b = samples[i];
        var dt = (b.at_ms - a.at_ms) / 1000;
        if (dt <= 0) continue;
        var now = pick(b), before = pick(a);
        Object.keys(now).forEach(function (k) {
          if (!(k in before)) return;
          var r = Math.max(0, (now[k] - before[k]) / dt);
          (series[k] = series[k] || []).push([b.at_ms, r]);
        });
      }
      return series;
    }

    function chart(id, series, keys, label, prefix) {
      var box = document.getElementById(id);
      while (box.firstChild) box.removeChild(box.firstChild);
      var W = 720, H = 180, L = 56, B = 20;
      var svg = el("svg", { viewBox: "0 0 " + W + " " + H, width: W, height: H, role: "img" }, box);
      var t0 = samples[0].at_ms, t1 = samples[samples.length - 1].at_ms;
      var max = 1;
      keys.forEach(function (k) { series[k].forEach(function (p) { max = Math.max(max, p[1]); }); });
      el("line", { x1: L, y1: H - B, x2: W, y2: H - B, stroke: "#dde1e7" }, svg);
      el("line", { x1: L, y1: 4, x2: L, y2: H - B, stroke: "#dde1e7" }, svg);
      var top = el("text", { x: L - 4, y: 12, "text-anchor": "end", "font-size": 11, fill: "#5f6b7a" }, svg);
      top.textContent = max >= 100 ? Math.round(max) : max.toFixed(1);
      var zero = el("text", { x: L - 4, y: H - B, "text-anchor": "end", "font-size": 11, fill: "#5f6b7a" }, svg);
      zero.textContent = "0";
      var span = el("text", { x: W, y: H - 4, "text-anchor": "end", "font-size": 11, fill: "#5f6b7a" }, svg);
      span.textContent = "last " + Math.round((t1 - t0) / 1000) + " s, " + label;
      var legend = document.createElement("div");
      legend.className = "legend";
      keys.forEach(function (k, i) {
        var pts = series[k].map(function (p) {
          var x = L + (t1 > t0 ? (p[0] - t0) / (t1 - t0) : 1) * (W - L);
          var y = (H - B) - (p[1] / max) * (H - B - 8);
          return x.toFixed(1) + "," + y.toFixed(1);
        });
        var line = el("polyline", { points: pts.join(" "), fill: "none", stroke: colors[i % colors.length], "stroke-width": 2 }, svg);
        line.setAttribute("data-key", k);
        var item = document.createElement("span");
        var sw = document.createElement("i");
        sw.style.background = colors[i % colors.length];
        item.appendChild(sw);
        item.appendChild(document.createTextNode(prefix + k));
        legend.appendChild(item);
      });
      box.appendChild(legend);
    }

    function latest(series, k) {
      var s = series[k];
      return s && s.length ? s[s.length - 1][1] : 0;
    }

    function draw() {
      if (samples.length < 2) return;
      var brokers = rates(function (s) { return s.brokers; });
      chart("chart-brokers", brokers, Object.keys(brokers).sort(), "records/s", "broker ");
      var topics = rates(function (s) { return s.topics; });
      var busiest = Object.keys(topics).sort(function (a, b) {
        return latest(topics, b) - latest(topics, a) || (a < b ? -1 : 1);
      });
      chart("chart-topics", topics, busiest.slice(0, maxTopics), "records/s", "");
      var body = document.querySelector("#rates-table tbody");
      while (body.firstChild) body.removeChild(body.firstChild);
      var last = samples[samples.length - 1].topics;
      busiest.forEach(function (k) {
        var tr = document.createElement("tr");
        tr.setAttribute("data-name", k);
        [k, latest(topics, k).toFixed(1), String(last[k])].forEach(function (v, i) {
          var td = document.createElement("td");
          if (i > 0) td.className = "num";
          td.textContent = v;
          tr.appendChild(td);
        });
        body.appendChild(tr);
      });
    }

    function poll() {
      fetch(source, { cache: "no-store" }).then(function (r) {
        return r.json().then(function (j) { return [r.ok, j]; });
      }).then(function (res) {
        if (!res[0]) {
          status.textContent = "Sampling failed: " + (res[1].error || "unknown error");
          status.className = "bad";
          return;
        }
        samples.push(res[1]);
        if (samples.length > maxSamples) samples.shift();
        status.className = "";
        status.textContent = samples.length + " samples";
        draw();
      }).catch(function (e) {
        status.textContent = "Sampling failed: " + e;
        status.className = "bad";
      }).then(function () { setTimeout(poll, interval); });
    }
    poll();
  }
})();
