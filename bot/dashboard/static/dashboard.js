// Draws the dashboard's charts with Chart.js (served as /static/chart.umd.js) from the JSON
// the page carries in #dashboard-data. Sets document.body.dataset.charts = "ready" when done.
(function () {
  "use strict";

  var COLORS = ["#0b7a5a", "#3aa17e", "#7cc4a6", "#f0a202", "#5b6b77", "#c8553d", "#2e6fa7",
                "#9c6ade"];
  var money = new Intl.NumberFormat("es-MX", { style: "currency", currency: "MXN" });

  function color(i) { return COLORS[i % COLORS.length]; }

  function datasets(series) {
    return series.map(function (one, i) {
      return { label: one.label, data: one.data, backgroundColor: color(i), borderColor: color(i) };
    });
  }

  function draw(id, config) {
    var canvas = document.getElementById(id);
    if (!canvas) { return null; }
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false,
                                     animation: false }, config.options || {});
    return new Chart(canvas, config);
  }

  function empty(values) {
    return !values.some(function (v) { return v; });
  }

  function note(id, text) {
    var canvas = document.getElementById(id);
    var p = document.createElement("p");
    p.className = "muted empty";
    p.textContent = text;
    canvas.parentNode.replaceChild(p, canvas);
  }

  function start() {
    var data = JSON.parse(document.getElementById("dashboard-data").textContent);
    Chart.defaults.font.family = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';

    draw("chart-messages", {
      type: "bar",
      data: { labels: data.days, datasets: datasets(data.messages) },
      options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
    });
    draw("chart-recovered", {
      type: "bar",
      data: { labels: data.days,
              datasets: [{ label: "Recuperado", data: data.recovered, backgroundColor: color(0) }] },
      options: { plugins: { legend: { display: false },
                            tooltip: { callbacks: { label: function (c) {
                              return money.format(c.parsed.y); } } } },
                 scales: { y: { beginAtZero: true, ticks: { callback: function (v) {
                   return money.format(v); } } } } }
    });
    draw("chart-containment", {
      type: "bar",
      data: { labels: data.days,
              datasets: [{ label: "Contención (%)", data: data.containment,
                           backgroundColor: color(6) }] },
      options: { plugins: { legend: { display: false } },
                 scales: { y: { min: 0, max: 100, ticks: { callback: function (v) {
                   return v + " %"; } } } } }
    });
    draw("chart-promises", {
      type: "bar",
      data: { labels: data.steps, datasets: datasets(data.promises) },
      options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
    });
    if (empty(data.handoffs.values)) {
      note("chart-handoffs", "Sin canalizaciones en este periodo.");
    } else {
      draw("chart-handoffs", {
        type: "doughnut",
        data: { labels: data.handoffs.labels,
                datasets: [{ data: data.handoffs.values,
                             backgroundColor: data.handoffs.values.map(function (_, i) {
                               return color(i); }) }] },
        options: { plugins: { legend: { position: "bottom" } } }
      });
    }
    if (empty(data.suppressed.values)) {
      note("chart-suppressed", "Ningún mensaje suprimido en este periodo.");
    } else {
      draw("chart-suppressed", {
        type: "bar",
        data: { labels: data.suppressed.labels,
                datasets: [{ label: "Suprimidos", data: data.suppressed.values,
                             backgroundColor: color(5) }] },
        options: { indexAxis: "y", plugins: { legend: { display: false } },
                   scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } }
      });
    }
    document.body.dataset.charts = "ready";
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
