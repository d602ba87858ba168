/* An experience's page: the three charts over time from the "experience-charts" JSON
   (experiences.results.history). Chart.js, no framework. Conversion rate and chance to be
   best are one line per variant; the traffic split (data-stacked) is a stacked area, one band
   per variant, so every variant shows even when the shares are equal (equal lines would lie
   on top of each other and hide all but the last). */
(function () {
  "use strict";

  // The same colours as the .swatch[data-series] marks in the results table.
  var COLORS = ["#3b5a91", "#e07a1f", "#1e9e6a", "#b0306b", "#6d5bd0", "#0e8fa8"];

  function percent(v, digits) {
    return (v * 100).toFixed(digits === undefined ? 1 : digits) + " %";
  }

  var stamp = new Intl.DateTimeFormat("en-US", {month: "short", day: "numeric", hour: "2-digit",
                                                minute: "2-digit", hourCycle: "h23", timeZone: "UTC"});
  var day = new Intl.DateTimeFormat("en-US", {month: "short", day: "numeric", timeZone: "UTC"});

  function series(data, name) {
    if (name === "split") return {times: data.split.times, lines: data.split.series};
    return {times: data.times, lines: data[name]};
  }

  function draw(canvas, data) {
    var made = series(data, canvas.dataset.seriesChart);
    if (!made.times || !made.times.length) return;
    var xs = made.times.map(function (iso) { return new Date(iso).getTime(); });
    var span = xs[xs.length - 1] - xs[0];
    var stacked = Boolean(canvas.dataset.stacked);
    var datasets = Object.keys(made.lines).map(function (key, i) {
      var color = COLORS[i % COLORS.length];
      return {
        label: key,
        data: made.lines[key].map(function (y, j) {
          return {x: xs[j], y: stacked && (y === null || y === undefined) ? 0 : y};
        }),
        borderColor: color,
        backgroundColor: stacked ? color + "99" : color,  // 60 % opaque bands
        borderWidth: stacked ? 1 : 2,
        fill: stacked ? (i === 0 ? "origin" : "-1") : false,
        pointRadius: stacked ? 0 : (xs.length < 30 ? 2.5 : 0),
        stepped: canvas.dataset.stepped ? "before" : false,
        spanGaps: true,
        tension: canvas.dataset.stepped ? 0 : 0.2,
      };
    });
    canvas.chart = new window.Chart(canvas, {
      type: "line",
      data: {datasets: datasets},
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        parsing: false,
        interaction: {mode: "nearest", axis: "x", intersect: false},
        plugins: {
          legend: {display: true, position: "bottom", labels: {boxWidth: 10, boxHeight: 10}},
          filler: {propagate: false},
          tooltip: {callbacks: {
            title: function (items) { return stamp.format(new Date(items[0].parsed.x)) + " UTC"; },
            label: function (item) { return " " + item.dataset.label + ": " + percent(item.parsed.y, 2); },
          }},
        },
        scales: {
          x: {type: "linear", min: xs[0], max: xs[xs.length - 1], grid: {display: false},
              ticks: {color: "#6b7280", maxRotation: 0, autoSkip: true, maxTicksLimit: 6,
                      callback: function (v) {
                        return (span > 2 * 86400000 ? day : stamp).format(new Date(v));
                      }}},
          y: {beginAtZero: true, stacked: stacked,
              max: canvas.dataset.max ? Number(canvas.dataset.max) : undefined,
              grid: {color: "#eef1f5"}, border: {display: false},
              ticks: {color: "#6b7280", callback: function (v) { return percent(v, v < 0.1 && v > 0 ? 1 : 0); }}},
        },
      },
    });
  }

  function ready() {
    var source = document.getElementById("experience-charts");
    if (!source || !window.Chart) return;
    var data = JSON.parse(source.textContent);
    if (!data) return;
    document.querySelectorAll("canvas[data-series-chart]").forEach(function (canvas) {
      draw(canvas, data);
    });
  }

  if (document.readyState === "complete") ready();
  else document.addEventListener("DOMContentLoaded", ready);
})();
