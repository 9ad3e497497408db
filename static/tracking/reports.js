// Draws the report charts from the JSON the page embeds (no network requests).
(function () {
  "use strict";
  // One colour per outcome, always the same: accepted green; the duplicates (the endpoint
  // working as meant, a resend refused) in muted ambers; real failures in reds, purples and
  // blues an operator should look into.
  var OUTCOME_COLOURS = {
    accepted: "#2e7d32",
    duplicate_conversion: "#e0a526",
    duplicate_event: "#b8860b",
    missing_parameter: "#6c757d",
    invalid_parameter: "#495057",
    invalid_secure: "#b42318",
    unknown_transaction: "#e8590c",
    offer_mismatch: "#8e5ea2",
    amount_required: "#d9822b",
    unknown_event: "#c2185b",
    event_mismatch: "#5e35b1",
    no_conversion: "#1f77b4",
    unavailable: "#212529"
  };
  var FALLBACK = ["#00897b", "#795548", "#607d8b"];
  function outcomeColour(reason, i) { return OUTCOME_COLOURS[reason] || FALLBACK[i % FALLBACK.length]; }
  window.clicktrailOutcomeColour = outcomeColour;

  function draw() {
    document.querySelectorAll(".ct-swatch[data-reason]").forEach(function (swatch, i) {
      swatch.style.background = outcomeColour(swatch.getAttribute("data-reason"), i);
    });
    var source = document.getElementById("ct-report-data");
    if (!source || typeof Chart === "undefined") { return; }
    var data = JSON.parse(source.textContent);
    var palette = ["#417690", "#79aec8", "#e0a526", "#ba2121", "#5b8a3c"];
    var money = { revenue: "#2c6ea5", payout: "#e0a526", profit: "#2e7d32" };
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
        data: { labels: data.days, datasets: ["revenue", "payout", "profit"].map(function (key) {
          return { label: key + " (" + canvas.dataset.currency + ")", data: series[key].map(Number),
                   borderColor: money[key], backgroundColor: money[key], tension: 0.2 };
        }) },
        options: common
      }));
    });

    var reasons = Object.keys(data.outcomes).sort(function (a, b) {
      return a === "accepted" ? -1 : b === "accepted" ? 1 : a.localeCompare(b);
    });
    var labels = data.outcome_labels || {};
    window.clicktrailCharts.push(new Chart(document.getElementById("ct-chart-outcomes"), {
      type: "bar",
      data: { labels: data.days, datasets: reasons.map(function (reason, i) {
        return { label: labels[reason] || reason, reason: reason, data: data.outcomes[reason],
                 backgroundColor: outcomeColour(reason, i) };
      }) },
      options: Object.assign({}, common, { scales: { x: { stacked: true }, y: { stacked: true } } })
    }));
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", draw); } else { draw(); }
}());
