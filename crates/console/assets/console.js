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
  // Live throughput: poll samples, keep a bounded ring, chart the rates
  // between consecutive samples as SVG polylines, in records or bytes.
  var tp = document.getElementById("throughput");
  if (tp) throughput(tp);

  function throughput(root) {
    var source = root.getAttribute("data-source");
    var interval = parseInt(root.getAttribute("data-interval"), 10) || 5000;
    var maxSamples = parseInt(root.getAttribute("data-max-samples"), 10) || 60;
    var maxTopics = parseInt(root.getAttribute("data-max-topics"), 10) || 8;
    var status = document.getElementById("throughput-status");
    var samples = [];
    var unit = "records";
    var colors = ["#2457c5", "#b42318", "#137333", "#9a6700", "#7b2cbf", "#0b7285", "#c2255c", "#5f6b7a"];
    var SVG = "http://www.w3.org/2000/svg";

    document.querySelectorAll("input[name=unit]").forEach(function (r) {
      if (r.checked) unit = r.value;
      r.addEventListener("change", function () {
        if (r.checked) { unit = r.value; draw(); }
      });
    });

    function el(name, attrs, parent) {
      var e = document.createElementNS(SVG, name);
      Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
      if (parent) parent.appendChild(e);
      return e;
    }

    function fmt(v, bytes) {
      if (!bytes) return v >= 100 ? String(Math.round(v)) : v.toFixed(1);
      var units = ["B", "KB", "MB", "GB"], i = 0;
      while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
      return (v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)) + " " + units[i];
    }

    // Per key, [time, rate] points: f(a, b, seconds) gives the rates of
    // one interval between consecutive samples.
    function series(f) {
      var out = {};
      for (var i = 1; i < samples.length; i++) {
        var a = samples[i - 1], b = samples[i];
        var dt = (b.at_ms - a.at_ms) / 1000;
        if (dt <= 0) continue;
        var m = f(a, b, dt);
        Object.keys(m).forEach(function (k) { (out[k] = out[k] || []).push([b.at_ms, m[k]]); });
      }
      return out;
    }

    // The rates of keys present in both maps; ok(k) false leaves a gap
    // (a sum jumped: leadership moved, the bytes' source changed).
    function diff(now, before, dt, ok) {
      var out = {};
      Object.keys(now || {}).forEach(function (k) {
        if (!before || !(k in before) || (ok && !ok(k))) return;
        out[k] = Math.max(0, (now[k] - before[k]) / dt);
      });
      return out;
    }

    function sameLed(a, b) {
      return function (k) { return (a.led || {})[k] === (b.led || {})[k]; };
    }

    function inBrokers(a, b, dt) {
      if (unit === "records") return diff(b.brokers, a.brokers, dt, sameLed(a, b));
      if (a.bytes_in.source !== b.bytes_in.source) return {};
      return diff(b.bytes_in.brokers, a.bytes_in.brokers, dt, sameLed(a, b));
    }

    function inTopics(a, b, dt, u) {
      if ((u || unit) === "records") return diff(b.topics, a.topics, dt);
      if (a.bytes_in.source !== b.bytes_in.source) return {};
      return diff(b.bytes_in.topics, a.bytes_in.topics, dt);
    }

    // Consumption from committed offsets, per group or per topic; bytes
    // are records times the topic's mean record size.
    function consumed(by, u) {
      return function (a, b, dt) {
        var out = {}, ga = a.consumption.groups, gb = b.consumption.groups;
        Object.keys(gb).forEach(function (g) {
          if (!ga[g]) return;
          Object.keys(gb[g]).forEach(function (t) {
            var x = ga[g][t], y = gb[g][t];
            if (!x || x.partitions !== y.partitions) return;
            var r = Math.max(0, (y.offsets - x.offsets) / dt);
            if ((u || unit) === "bytes") {
              if (!(t in b.record_bytes)) return;
              r *= b.record_bytes[t];
            }
            var k = by === "group" ? g : t;
            out[k] = (out[k] || 0) + r;
          });
        });
        return out;
      };
    }

    function chart(id, data, keys, prefix) {
      var box = document.getElementById(id);
      while (box.firstChild) box.removeChild(box.firstChild);
      var bytes = unit === "bytes";
      var W = 720, H = 180, L = 64, B = 20;
      var svg = el("svg", { viewBox: "0 0 " + W + " " + H, width: W, height: H, role: "img" }, box);
      var t0 = samples[0].at_ms, t1 = samples[samples.length - 1].at_ms;
      var max = 1;
      keys.forEach(function (k) { data[k].forEach(function (p) { max = Math.max(max, p[1]); }); });
      el("line", { x1: L, y1: H - B, x2: W, y2: H - B, stroke: "#dde1e7" }, svg);
      el("line", { x1: L, y1: 4, x2: L, y2: H - B, stroke: "#dde1e7" }, svg);
      var top = el("text", { x: L - 4, y: 12, "text-anchor": "end", "font-size": 11, fill: "#5f6b7a" }, svg);
      top.textContent = fmt(max, bytes);
      var zero = el("text", { x: L - 4, y: H - B, "text-anchor": "end", "font-size": 11, fill: "#5f6b7a" }, svg);
      zero.textContent = "0";
      var span = el("text", { x: W, y: H - 4, "text-anchor": "end", "font-size": 11, fill: "#5f6b7a" }, svg);
      span.textContent = "last " + Math.round((t1 - t0) / 1000) + " s, " + (bytes ? "bytes/s" : "records/s");
      var legend = document.createElement("div");
      legend.className = "legend";
      if (!keys.length) legend.textContent = "nothing to chart yet";
      keys.forEach(function (k, i) {
        var pts = data[k].map(function (p) {
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

    function latest(data, k) {
      var s = data[k];
      return s && s.length ? s[s.length - 1][1] : 0;
    }

    function busiest(data) {
      return Object.keys(data).sort(function (a, b) {
        return latest(data, b) - latest(data, a) || (a < b ? -1 : 1);
      });
    }

    function explain(last) {
      document.querySelectorAll("#bytes-source [data-source]").forEach(function (s) {
        s.hidden = s.getAttribute("data-source") !== last.bytes_in.source;
      });
      document.getElementById("bytes-note").textContent = last.bytes_in.note ? "(" + last.bytes_in.note + ")" : "";
      var c = last.consumption, more = [];
      if (c.left_out) more.push(c.left_out + " more were left out");
      if (c.unavailable) more.push(c.unavailable + " could not be read this time");
      if (last.consumption_error) more.push("sampling groups failed: " + last.consumption_error);
      document.getElementById("groups-left-out").textContent = more.length ? "; " + more.join("; ") : "";
    }

    function draw() {
      if (!samples.length) return;
      explain(samples[samples.length - 1]);
      if (samples.length < 2) return;
      var brokers = series(inBrokers);
      chart("chart-brokers", brokers, Object.keys(brokers).sort(), "broker ");
      var topics = series(inTopics);
      var order = busiest(topics);
      chart("chart-topics", topics, order.slice(0, maxTopics), "");
      var groups = series(consumed("group"));
      chart("chart-groups", groups, busiest(groups).slice(0, maxTopics), "");
      var cols = [
        series(function (a, b, dt) { return inTopics(a, b, dt, "records"); }),
        series(function (a, b, dt) { return inTopics(a, b, dt, "bytes"); }),
        series(consumed("topic", "records")),
        series(consumed("topic", "bytes"))
      ];
      var body = document.querySelector("#rates-table tbody");
      while (body.firstChild) body.removeChild(body.firstChild);
      var last = samples[samples.length - 1].topics;
      order.forEach(function (k) {
        var tr = document.createElement("tr");
        tr.setAttribute("data-name", k);
        var cells = [k].concat(cols.map(function (c, i) {
          return k in c ? fmt(latest(c, k), i % 2 === 1) : "–";
        }), [String(last[k])]);
        cells.forEach(function (v, i) {
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
