/* Strata's pages: small behaviours shared by every page (no build step, no framework).
   - <time data-relative> stays "3 minutes ago" while a page stays open;
   - the account menu closes on Escape or a click elsewhere;
   - the top bar's Menu button (narrow screens) opens and closes the sections;
   - [data-toggle-row] buttons show and hide the detail row that follows their row;
   - canvas[data-chart] draws a bar chart from a <script type="application/json"> (Chart.js);
   - form[data-confirm] asks before sending, select[data-autosubmit] sends on change. */
(function () {
  "use strict";

  var UNITS = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400],
               ["hour", 3600], ["minute", 60]];

  function relative(date) {
    var seconds = (Date.now() - date.getTime()) / 1000;
    var future = seconds < 0;
    seconds = Math.abs(seconds);
    if (seconds < 45) return "just now";
    for (var i = 0; i < UNITS.length; i++) {
      if (seconds >= UNITS[i][1]) {
        var n = Math.floor(seconds / UNITS[i][1]);
        var text = n + " " + UNITS[i][0] + (n === 1 ? "" : "s");
        return future ? "in " + text : text + " ago";
      }
    }
    return future ? "in 1 minute" : "1 minute ago";
  }

  function refreshTimes(root) {
    (root || document).querySelectorAll("time[data-relative]").forEach(function (el) {
      var date = new Date(el.getAttribute("datetime"));
      if (!isNaN(date)) el.textContent = relative(date);
    });
  }

  function formatNumber(n) {
    return Number(n).toLocaleString("en-US");
  }

  function formatter(zone, options) {
    try {
      return new Intl.DateTimeFormat("en-US", Object.assign({timeZone: zone || "UTC"}, options));
    } catch (e) {
      return new Intl.DateTimeFormat("en-US", Object.assign({timeZone: "UTC"}, options));
    }
  }

  // Axis labels and tooltip titles for bucket starts (ISO strings) in the account's zone.
  function chartLabels(starts, bucket, zone) {
    var day = formatter(zone, {month: "short", day: "numeric"});
    var long = formatter(zone, {weekday: "short", month: "short", day: "numeric", year: "numeric"});
    var hour = formatter(zone, {hour: "2-digit", minute: "2-digit", hourCycle: "h23"});
    var labels = [], tooltips = [];
    starts.forEach(function (iso) {
      var d = new Date(iso);
      if (bucket === "hour") {
        var h = hour.format(d);
        labels.push(h === "00:00" ? day.format(d) : h);
        tooltips.push(long.format(d) + ", " + h);
      } else if (bucket === "week") {
        labels.push(day.format(d));
        tooltips.push("Week of " + long.format(d));
      } else {
        labels.push(day.format(d));
        tooltips.push(long.format(d));
      }
    });
    return {labels: labels, tooltips: tooltips};
  }

  function drawCharts(root) {
    if (!window.Chart) return;
    (root || document).querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      if (canvas.dataset.drawn) return;
      var source = document.getElementById(canvas.dataset.chart);
      if (!source) return;
      var spec = JSON.parse(source.textContent);
      canvas.dataset.drawn = "1";
      if (spec.starts) {
        var made = chartLabels(spec.starts, spec.bucket, spec.timezone);
        spec.labels = made.labels;
        spec.tooltips = made.tooltips;
      }
      var chart = new window.Chart(canvas, {
        type: spec.type || "bar",
        data: {
          labels: spec.labels,
          datasets: [{
            label: spec.label || "Events",
            data: spec.values,
            backgroundColor: spec.type === "line" ? (spec.area || "rgba(59, 90, 145, 0.14)")
                                                 : (spec.color || "rgba(59, 90, 145, 0.85)"),
            hoverBackgroundColor: "#1d3154",
            borderColor: spec.color || "#3b5a91",
            borderRadius: 3,
            maxBarThickness: 36,
            fill: spec.type === "line",
            tension: 0.25,
            pointRadius: 0,
            borderWidth: spec.type === "line" ? 2 : 0,
          }],
        },
        options: {
          responsive: true,
          maintainAspectRatio: false,
          animation: false,
          interaction: { mode: "index", intersect: false },
          plugins: {
            legend: { display: false },
            tooltip: {
              callbacks: {
                title: function (items) {
                  var tips = canvas.tooltips || spec.tooltips;
                  return tips ? tips[items[0].dataIndex] : items[0].label;
                },
                label: function (item) { return " " + formatNumber(item.parsed.y) + " " + (spec.unit || "events"); },
              },
            },
          },
          scales: {
            x: { grid: { display: false }, ticks: { color: "#6b7280", maxRotation: 0, autoSkip: true,
                                                   autoSkipPadding: 14 } },
            y: { beginAtZero: true, grid: { color: "#eef1f5" }, border: { display: false },
                 ticks: { color: "#6b7280", precision: 0,
                          callback: function (v) { return formatNumber(v); } } },
          },
        },
      });
      canvas.chart = chart;
    });
  }

  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.switcher[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) menu.removeAttribute("open");
    });
    var toggle = event.target.closest("[data-toggle-row]");
    if (toggle) {
      var row = toggle.closest("tr");
      var detail = row && row.nextElementSibling;
      if (detail && detail.classList.contains("detail")) {
        var open = detail.hidden;
        detail.hidden = !open;
        toggle.setAttribute("aria-expanded", open ? "true" : "false");
      }
    }
  });
  // A search box that updates as one types must not also fire its form's "change" request
  // when it loses focus (that request could land after, and undo, a later change).
  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("[data-keep-change]")) event.stopPropagation();
  }, true);
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      document.querySelectorAll("details.switcher[open]").forEach(function (m) {
        m.removeAttribute("open");
      });
    }
  });

  // No inline handlers (the Content-Security-Policy allows none): a form[data-confirm] asks
  // before it is sent, a select[data-autosubmit] sends its form when it changes.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });
  document.addEventListener("change", function (event) {
    var field = event.target;
    if (field.dataset && "autosubmit" in field.dataset && field.form) field.form.submit();
  });

  function ready() {
    refreshTimes();
    drawCharts();
    setInterval(refreshTimes, 30000);
  }
  // Deferred scripts run before DOMContentLoaded, so Chart.js (deferred too) is there by then.
  if (document.readyState === "complete") ready();
  else document.addEventListener("DOMContentLoaded", ready);

  // The top bar's menu button (narrow screens): shows and hides the sections.
  document.addEventListener("click", function (event) {
    var toggle = event.target.closest && event.target.closest(".nav-toggle");
    if (!toggle) return;
    var open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    toggle.closest(".topbar").classList.toggle("nav-open", open);
  });

  window.Strata = Object.assign(window.Strata || {}, {
    refreshTimes: refreshTimes, drawCharts: drawCharts, relative: relative,
    chartLabels: chartLabels});
})();
