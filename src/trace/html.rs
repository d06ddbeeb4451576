//! `ballast rehearse --report FILE.html`: one self-contained page (no network) with a
//! timeline per table of the locks each statement held, for the change request. The
//! rehearsal's report is embedded as JSON; the page's script draws one bar per lock
//! held (`rect.lock`), coloured by how much it blocks.

use super::report::Report;

/// The page for `report`; `heading`: what was rehearsed (database, backup), `verdict`:
/// one line per limit exceeded or failure (none: within the limits).
pub fn page(report: &Report, heading: &str, verdict: &[String]) -> String {
    let data = serde_json::json!({
        "heading": heading,
        "verdict": verdict,
        "report": report,
    });
    // Inside <script>, `</` would end the element: JSON allows `<\/`.
    let data = data.to_string().replace("</", "<\\/");
    TEMPLATE
        .replace("{{title}}", &escape(heading))
        .replace("{{data}}", &data)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const TEMPLATE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>ballast rehearsal: {{title}}</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
  h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin-top: 1.5em; }
  .ok { color: #1a7f37; } .bad { color: #b42318; }
  table { border-collapse: collapse; margin: .5em 0; }
  td, th { border-bottom: 1px solid #ddd; padding: 3px 10px; text-align: left; vertical-align: top; }
  td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
  svg text.bar { font-size: 11px; fill: #fff; }
  code { font-size: 12px; }
  svg text { font: 12px system-ui, sans-serif; }
  .legend span { display: inline-block; margin-right: 1.5em; }
  .legend i { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -1px; }
</style>
</head>
<body>
<h1 id="heading"></h1>
<div id="verdict"></div>
<h2>Locks per table</h2>
<div class="legend">
  <span><i style="background:#b42318"></i>AccessExclusiveLock: blocks reads and writes</span>
  <span><i style="background:#e8891c"></i>blocks writes</span>
  <span><i style="background:#7a9cc6"></i>blocks neither</span>
</div>
<div id="timeline"></div>
<h2>Statements</h2>
<table id="statements"><thead><tr><th>migration</th><th>line</th><th>statement</th><th>time</th><th>rows</th><th>locks held</th><th>rewrites</th></tr></thead><tbody></tbody></table>
<script type="application/json" id="data">{{data}}</script>
<script>
(function () {
  var data = JSON.parse(document.getElementById("data").textContent);
  var report = data.report;
  var fmt = function (ms) { return ms >= 1000 ? (ms / 1000).toFixed(ms >= 10000 ? 0 : 1) + " s" : ms + " ms"; };
  var el = function (tag, attrs, text) {
    var ns = ["svg", "rect", "text", "line", "title", "g"].indexOf(tag) >= 0;
    var e = ns ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  document.getElementById("heading").textContent = data.heading;
  var verdict = document.getElementById("verdict");
  if (data.verdict.length === 0) {
    verdict.appendChild(el("p", { "class": "ok" }, "Within the limits. The whole plan took " + fmt(report.duration_ms) + "."));
  } else {
    data.verdict.forEach(function (line) { verdict.appendChild(el("p", { "class": "bad" }, line)); });
  }
  var colour = function (mode) {
    if (mode === "AccessExclusiveLock") return "#b42318";
    if (["ShareLock", "ShareRowExclusiveLock", "ExclusiveLock"].indexOf(mode) >= 0) return "#e8891c";
    return "#7a9cc6";
  };
  var tables = [], bars = [];
  report.statements.forEach(function (s) {
    s.locks.forEach(function (l) {
      if (tables.indexOf(l.relation) < 0) tables.push(l.relation);
      bars.push({ s: s, l: l });
    });
  });
  var total = Math.max(report.duration_ms, 1);
  bars.forEach(function (b) { total = Math.max(total, b.l.from_ms + b.l.held_ms); });
  var label = 220, width = 900, row = 34, lane = 8;
  var lanes = {};
  var svg = el("svg", { width: label + width + 20, height: tables.length * row + 30, role: "img" });
  tables.forEach(function (t, i) {
    svg.appendChild(el("text", { x: 0, y: i * row + 17 }, t));
    svg.appendChild(el("line", { x1: label, x2: label + width, y1: i * row + row - 2, y2: i * row + row - 2, stroke: "#eee" }));
  });
  bars.forEach(function (b) {
    var i = tables.indexOf(b.l.relation);
    var n = lanes[b.l.relation] = (lanes[b.l.relation] || 0) + 1;
    var x = label + width * b.l.from_ms / total;
    var w = Math.max(2, width * b.l.held_ms / total);
    var r = el("rect", {
      "class": "lock", x: x, y: i * row + 3 + ((n - 1) % 2) * lane, width: w, height: row - 8 - lane,
      fill: colour(b.l.mode), "data-relation": b.l.relation, "data-mode": b.l.mode, "data-held-ms": b.l.held_ms
    });
    r.appendChild(el("title", {}, b.l.mode + " on " + b.l.relation + " for " + fmt(b.l.held_ms) +
      ", taken by " + b.s.migration + (b.s.line ? " line " + b.s.line : "") + ": " + b.s.sql +
      (b.l.until ? " (held until " + b.l.until + " committed)" : "")));
    svg.appendChild(r);
    var text = b.s.migration + " " + fmt(b.l.held_ms);
    if (w > text.length * 6.5 + 8) {
      svg.appendChild(el("text", { "class": "bar", x: x + 4, y: i * row + 3 + ((n - 1) % 2) * lane + 13 }, text));
    }
  });
  svg.appendChild(el("text", { x: label, y: tables.length * row + 20 }, "0"));
  svg.appendChild(el("text", { x: label + width - 40, y: tables.length * row + 20 }, fmt(total)));
  document.getElementById("timeline").appendChild(tables.length ? svg : el("p", {}, "No table lock was held."));
  var body = document.querySelector("#statements tbody");
  report.statements.forEach(function (s) {
    var tr = el("tr");
    tr.appendChild(el("td", {}, s.migration));
    tr.appendChild(el("td", { "class": "n" }, s.line === null ? "" : String(s.line)));
    var code = el("td"); code.appendChild(el("code", {}, s.sql)); tr.appendChild(code);
    tr.appendChild(el("td", { "class": "n" }, fmt(s.duration_ms)));
    tr.appendChild(el("td", { "class": "n" }, s.rows === null ? "" : String(s.rows)));
    tr.appendChild(el("td", {}, s.locks.map(function (l) { return l.mode + " " + l.relation + " " + fmt(l.held_ms) + (l.until ? " (until " + l.until + ")" : ""); }).join("; ")));
    tr.appendChild(el("td", {}, s.rewrites.join(", ")));
    body.appendChild(tr);
  });
})();
</script>
</body>
</html>
"##;
