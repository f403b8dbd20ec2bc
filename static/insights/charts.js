/* Renders every chart of a page from its JSON spec (json_script) with ECharts, with a text
   alternative (aria) and a table view; re-runs on content htmx swaps in. */
(function () {
  "use strict";
  var PALETTE = ["#4f46e5", "#0ea5e9", "#10b981", "#f59e0b", "#ef4444", "#8b5cf6", "#14b8a6",
    "#ec4899", "#84cc16", "#64748b", "#a16207"];

  function base(spec) {
    return {
      color: PALETTE,
      aria: { enabled: true, decal: { show: false }, label: { description: spec.description || undefined } },
      animationDuration: 400,
      grid: { left: 48, right: 24, top: 36, bottom: 40, containLabel: true },
      tooltip: { trigger: "axis" },
      legend: spec.series && spec.series.length > 1 ? { type: "scroll", top: 0 } : undefined,
    };
  }

  function cartesian(spec, kind) {
    var opt = base(spec);
    opt.xAxis = { type: "category", data: spec.x, boundaryGap: kind === "bar" };
    opt.yAxis = { type: "value" };
    opt.series = spec.series.map(function (s) {
      return {
        name: s.name, data: s.data, type: kind === "bar" ? "bar" : "line",
        smooth: kind !== "bar", showSymbol: spec.x.length < 40, stack: kind === "area" ? "total" : undefined,
        areaStyle: kind === "area" ? { opacity: 0.25 } : undefined,
        lineStyle: s.dashed ? { type: "dashed" } : undefined, emphasis: { focus: "series" },
      };
    });
    return opt;
  }

  function funnel(spec) {
    var opt = base(spec);
    opt.tooltip = { trigger: "axis", axisPointer: { type: "shadow" } };
    opt.xAxis = { type: "category", data: spec.x, axisLabel: { interval: 0, width: 110, overflow: "truncate" } };
    opt.yAxis = { type: "value", max: 100, axisLabel: { formatter: "{value}%" } };
    opt.series = spec.series.map(function (s) {
      return { name: s.name, type: "bar", data: s.data, barMaxWidth: 60,
        label: { show: true, position: "top", formatter: "{c}%" } };
    });
    return opt;
  }

  function heatmap(spec) {
    var opt = base(spec);
    opt.tooltip = { position: "top" };
    opt.grid = { left: 90, right: 24, top: 10, bottom: 60 };
    opt.xAxis = { type: "category", data: spec.x, splitArea: { show: true } };
    opt.yAxis = { type: "category", data: spec.y, inverse: true, splitArea: { show: true } };
    opt.visualMap = { min: 0, max: 100, calculable: true, orient: "horizontal", left: "center", bottom: 0,
      inRange: { color: ["#eef0ff", "#4f46e5"] }, text: ["100%", "0%"] };
    opt.series = [{ type: "heatmap", data: spec.cells, label: { show: true, formatter: function (p) { return p.value[2] + "%"; } } }];
    return opt;
  }

  function stepless(name) { return String(name).replace(/^\d+_/, ""); }

  function sankey(spec) {
    var opt = base(spec);
    opt.tooltip = { trigger: "item", formatter: function (p) {
      if (p.dataType === "edge") { return stepless(p.data.source) + " → " + stepless(p.data.target) + ": " + p.data.value; }
      return stepless(p.name) + ": " + (p.value || ""); } };
    opt.series = [{ type: "sankey", data: spec.nodes, links: spec.links, emphasis: { focus: "adjacency" },
      nodeGap: 10, left: 10, right: 140, lineStyle: { color: "gradient", curveness: 0.5, opacity: 0.35 },
      label: { fontSize: 11, formatter: function (p) { return stepless(p.name); } } }];
    return opt;
  }

  function pie(spec) {
    var opt = base(spec);
    opt.tooltip = { trigger: "item" };
    opt.series = [{ type: "pie", radius: ["40%", "70%"], data: spec.series[0].data.map(function (v, i) {
      return { name: spec.x[i], value: v }; }) }];
    return opt;
  }

  var BUILDERS = { line: cartesian, bar: cartesian, area: cartesian, funnel: funnel, heatmap: heatmap, sankey: sankey, pie: pie };

  function draw(el) {
    var source = document.getElementById(el.dataset.spec);
    if (!source || !window.echarts) { return; }
    var spec = JSON.parse(source.textContent);
    var kind = el.dataset.view || spec.type;
    var old = echarts.getInstanceByDom(el);
    if (old) { old.dispose(); }
    if (kind === "number") {
      el.innerHTML = "";
      var n = document.createElement("div");
      n.className = "big-number";
      n.setAttribute("role", "img");
      n.setAttribute("aria-label", spec.description || "");
      n.textContent = (spec.total !== undefined ? spec.total : 0).toLocaleString();
      el.appendChild(n);
      return;
    }
    if (spec.height) { el.style.height = spec.height + "px"; }
    var chart = echarts.init(el, null, { renderer: el.dataset.renderer || "canvas" });
    chart.setOption((BUILDERS[kind] || cartesian)(spec, kind));
    if (spec.click) {
      chart.on("click", function (p) {
        var url = spec.click.url.replace("__INDEX__", p.dataIndex).replace("__SERIES__", p.seriesIndex || 0);
        if (p.value && p.value.length === 3) {
          url = url.replace("__X__", p.value[0]).replace("__Y__", p.value[1]);
        }
        htmx.ajax("GET", url, { target: spec.click.target || "#people-panel", swap: "innerHTML" });
      });
    }
  }

  function init(root) {
    (root || document).querySelectorAll("[data-spec]").forEach(draw);
    (root || document).querySelectorAll(".chart-tabs").forEach(function (tabs) {
      if (tabs.dataset.bound) { return; }
      tabs.dataset.bound = "1";
      tabs.addEventListener("click", function (e) {
        var b = e.target.closest("button[data-view]");
        if (!b) { return; }
        var box = tabs.parentElement;
        tabs.querySelectorAll("button").forEach(function (x) { x.classList.toggle("active", x === b); });
        var chart = box.querySelector("[data-spec]");
        var table = box.querySelector(".table-view");
        var hidden = b.dataset.view === "table";
        if (table) { table.hidden = !hidden; }
        if (chart) {
          chart.hidden = hidden;
          if (!hidden) { chart.dataset.view = b.dataset.view; draw(chart); }
        }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:afterSettle", function (e) { init(e.target); });
  window.addEventListener("resize", function () {
    document.querySelectorAll("[data-spec]").forEach(function (el) {
      var c = window.echarts && echarts.getInstanceByDom(el);
      if (c) { c.resize(); }
    });
  });
})();
