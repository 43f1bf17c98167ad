// A run's admin page, while the run is active: the "live" row follows the run's progress stream
// (GET /api/v1/runs/{id}/events/, Server-Sent Events, with the admin's session) without reloading.
// When the run settles the page reloads once, so every field shows how it ended. A separate file
// because the Content-Security-Policy allows no inline script.
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
  const render = (progress) => {
    const counts = progress.counts;
    show("status", progress.status);
    show("worked", `${counts.succeeded + counts.failed}/${counts.total} worked`);
    show("failed", `${counts.failed} failed`);
    show("canceled", `${counts.canceled} canceled`);
    show("rate", progress.rate === null ? "- blocks/s" : `${progress.rate.toFixed(1)} blocks/s`);
    show("in_flight", progress.in_flight === null ? "- in flight" : `${progress.in_flight} in flight`);
    const lane = progress.lane;
    show("lane", lane ? `lane ${Math.round(lane.rate_rpm)}${lane.rpm_limit ? "/" + lane.rpm_limit : ""} rpm` : "");
    show("cost", `$${Number(progress.cost_usd).toFixed(4)}`);
    show("waiting", progress.waiting_reason || "");
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
