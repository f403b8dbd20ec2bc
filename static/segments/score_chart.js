/* The admin's chart of a score's holdout evaluation: the ROC curve (against the diagonal of a
   guess of the base rate) and the calibration (predicted chance against the share observed). */
(function () {
  "use strict";
  var source = document.getElementById("score-chart-data");
  if (!source || typeof echarts === "undefined") { return; }
  var data = JSON.parse(source.textContent);
  var axis = function (name) {
    return { type: "value", min: 0, max: 1, name: name, nameLocation: "middle", nameGap: 28 };
  };
  document.querySelectorAll("[data-score-chart]").forEach(function (el) {
    var chart = echarts.init(el);
    if (el.dataset.scoreChart === "roc") {
      chart.setOption({
        title: { text: "ROC curve", left: "center", textStyle: { fontSize: 13 } },
        tooltip: { trigger: "axis" },
        xAxis: axis("False positive rate"),
        yAxis: axis("True positive rate"),
        series: [
          { name: "Model", type: "line", showSymbol: false, data: data.roc },
          { name: "Base rate (AUC 0.5)", type: "line", showSymbol: false,
            lineStyle: { type: "dashed" }, data: [[0, 0], [1, 1]] }
        ]
      });
    } else {
      chart.setOption({
        title: { text: "Calibration", left: "center", textStyle: { fontSize: 13 } },
        tooltip: { trigger: "item" },
        xAxis: axis("Predicted chance"),
        yAxis: axis("Share that converted"),
        series: [
          { name: "Model", type: "line", data: data.calibration.map(function (row) {
              return [row.predicted, row.observed, row.count];
            }), symbolSize: 8 },
          { name: "Perfect", type: "line", showSymbol: false,
            lineStyle: { type: "dashed" }, data: [[0, 0], [1, 1]] }
        ]
      });
    }
  });
})();
