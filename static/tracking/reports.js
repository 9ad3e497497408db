// Draws the report charts from the JSON the page embeds (no network requests).
(function () {
  "use strict";
  function draw() {
    var source = document.getElementById("ct-report-data");
    if (!source || typeof Chart === "undefined") { return; }
    var data = JSON.parse(source.textContent);
    var palette = ["#417690", "#79aec8", "#e0a526", "#ba2121", "#5b8a3c", "#8e5ea2",
                   "#3cba9f", "#c45850", "#999999", "#264b5d", "#d9822b", "#6c757d", "#00897b"];
    var common = { responsive: true, animation: false, interaction: { mode: "index", intersect: false } };
    window.clicktrailCharts = [];

    window.clicktrailCharts.push(new Chart(document.getElementById("ct-chart-counts"), {
      type: "bar",
      data: { labels: data.days, datasets: [
        { label: "conversions", data: data.conversions, backgroundColor: palette[0] },
        { label: "events", data: data.events, backgroundColor: palette[1] }
      ] },
      options: common
    }));

    document.querySelectorAll(".ct-chart-money").forEach(function (canvas) {
      var series = data.money[canvas.dataset.currency];
      window.clicktrailCharts.push(new Chart(canvas, {
        type: "line",
        data: { labels: data.days, datasets: ["revenue", "payout", "profit"].map(function (key, i) {
          return { label: key + " (" + canvas.dataset.currency + ")", data: series[key].map(Number),
                   borderColor: palette[i], backgroundColor: palette[i], tension: 0.2 };
        }) },
        options: common
      }));
    });

    var reasons = Object.keys(data.outcomes).sort(function (a, b) {
      return a === "accepted" ? -1 : b === "accepted" ? 1 : a.localeCompare(b);
    });
    window.clicktrailCharts.push(new Chart(document.getElementById("ct-chart-outcomes"), {
      type: "bar",
      data: { labels: data.days, datasets: reasons.map(function (reason, i) {
        return { label: reason, data: data.outcomes[reason],
                 backgroundColor: reason === "accepted" ? "#5b8a3c" : palette[(i + 2) % palette.length] };
      }) },
      options: Object.assign({}, common, { scales: { x: { stacked: true }, y: { stacked: true } } })
    }));
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", draw); } else { draw(); }
}());
