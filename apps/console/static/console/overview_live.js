// The admin's overview: its list of open runs follows them. Every few seconds the list is fetched again
// from the server (GET overview/runs/, the same template the page was rendered with) and swapped in;
// when a run starts or ends the rest of the page (spend, charts) is reloaded once. A separate file
// because the Content-Security-Policy allows no inline script.
"use strict";
(function () {
  const root = document.getElementById("open-runs");
  if (!root || !window.fetch) {
    return;
  }
  const seconds = Number(root.dataset.poll) || 3;
  const runIds = () => Array.from(root.querySelectorAll("[data-run]"), (row) => row.dataset.run).sort().join(",");
  let shown = runIds();
  const refresh = async () => {
    if (document.hidden) {
      return;
    }
    try {
      const response = await fetch(root.dataset.url, { credentials: "same-origin", redirect: "manual",
                                                       headers: { Accept: "text/html" } });
      if (!response.ok) {
        // Logged out (a redirect to the login page) or refused: stop, and say so by dimming the list.
        root.classList.add("console-stale");
        window.clearInterval(timer);
        return;
      }
      root.innerHTML = await response.text();
      root.classList.remove("console-stale");
      const now = runIds();
      if (now !== shown) {
        window.location.reload();
      }
      shown = now;
    } catch (error) {
      root.classList.add("console-stale");
    }
  };
  const timer = window.setInterval(refresh, seconds * 1000);
})();
