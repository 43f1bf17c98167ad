// A run's admin page, while the run is active: the summary at the top of the page (status, progress bar,
// counts, rate, cost, why it waits) follows the run's progress stream (GET /api/v1/runs/{id}/events/,
// Server-Sent Events, with the admin's session) without reloading. When the run settles the page reloads
// once, so every field shows how it ended. A separate file because the Content-Security-Policy allows no
// inline script.
"use strict";
(function () {
  const root = document.getElementById("run-live");
  if (!root || !window.EventSource) {
    return;
  }
  const show = (name, text) => {
    const element = root.querySelector(`[data-live="${name}"]`);
    if (element) {
      element.textContent = text;
    }
  };
  const bar = (name, count, total) => {
    const element = root.querySelector(`[data-live-bar="${name}"]`);
    if (element) {
      element.style.width = `${(100 * count / (total || 1)).toFixed(2)}%`;
    }
  };
  const render = (progress) => {
    const counts = progress.counts;
    const worked = counts.succeeded + counts.failed;
    show("status", progress.status);
    show("worked", `${worked}/${counts.total}`);
    show("percent", `${Math.floor(100 * worked / (counts.total || 1))}%`);
    show("succeeded", `${counts.succeeded}`);
    show("failed", `${counts.failed}`);
    show("canceled", `${counts.canceled}`);
    show("open", `${Math.max(0, counts.total - worked - counts.canceled)}`);
    for (const name of ["succeeded", "failed", "canceled"]) {
      bar(name, counts[name], counts.total);
    }
    show("rate", progress.rate === null ? "- blocks/s" : `${progress.rate.toFixed(1)} blocks/s`);
    show("in_flight", progress.in_flight === null ? "" : `${progress.in_flight} in flight`);
    const lane = progress.lane;
    show("lane", lane ? `lane ${Math.round(lane.rate_rpm)}${lane.rpm_limit ? "/" + lane.rpm_limit : ""} rpm` : "");
    show("cost", `$${Number(progress.cost_usd).toFixed(4)}`);
    show("waiting", progress.waiting_reason ? `why it is not moving: ${progress.waiting_reason}` : "");
    root.dataset.state = "live";
  };
  const source = new EventSource(root.dataset.events);
  source.addEventListener("progress", (event) => render(JSON.parse(event.data)));
  source.addEventListener("end", (event) => {
    render(JSON.parse(event.data));
    source.close();
    window.location.reload();
  });
  source.addEventListener("error", () => {
    // A closed source will not reconnect (the run is gone, or the session ended): say so.
    if (source.readyState === EventSource.CLOSED) {
      show("note", "live updates stopped: reload the page");
      root.dataset.state = "stopped";
    }
  });
})();
