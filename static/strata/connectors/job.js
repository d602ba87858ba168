// The job page's metrics chart: added, removed, omitted and errors per run (Chart.js).
(function () {
  "use strict";
  function draw() {
    var source = document.getElementById("runs-data");
    var canvas = document.getElementById("runs-chart");
    if (!source || !canvas || typeof Chart === "undefined") return;
    var data = JSON.parse(source.textContent);
    if (!data.labels.length) return;
    var series = [["added", "#15803d"], ["removed", "#b45309"], ["omitted", "#6b7280"],
                  ["errors", "#b91c1c"]];
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: series.map(function (s) {
          return {label: s[0], data: data[s[0]], backgroundColor: s[1]};
        })
      },
      options: {animation: false, responsive: true, maintainAspectRatio: false,
                scales: {x: {stacked: true}, y: {stacked: true, beginAtZero: true}}}
    });
  }
  document.addEventListener("DOMContentLoaded", draw);
})();
