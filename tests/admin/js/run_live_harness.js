// Runs static/runs/run_live.js against a fake page and a fake EventSource, feeds it the events given
// as JSON on the command line, and prints what the page's live row says (and whether it reloaded).
"use strict";
const fs = require("fs");
const vm = require("vm");

const [scriptPath, eventsJson] = process.argv.slice(2);
const parts = {};
const bars = {};
const root = {
  dataset: { events: "/api/v1/runs/r/events/" },
  querySelector(selector) {
    const bar = /data-live-bar="([^"]+)"/.exec(selector);
    if (bar) {
      bars[bar[1]] = bars[bar[1]] || { style: { width: "" } };
      return bars[bar[1]];
    }
    const name = /data-live="([^"]+)"/.exec(selector)[1];
    parts[name] = parts[name] || { textContent: "" };
    return parts[name];
  },
};
const sources = [];
class FakeEventSource {
  constructor(url) { this.url = url; this.listeners = {}; this.readyState = 1; sources.push(this); }
  addEventListener(type, listener) { this.listeners[type] = listener; }
  close() { this.readyState = FakeEventSource.CLOSED; }
}
FakeEventSource.CLOSED = 2;
let reloaded = false;
const window = { EventSource: FakeEventSource, location: { reload() { reloaded = true; } } };
const context = { window, EventSource: FakeEventSource, document: { getElementById: () => root } };
vm.runInNewContext(fs.readFileSync(scriptPath, "utf8"), context);
for (const [type, data] of JSON.parse(eventsJson)) {
  sources[0].listeners[type]({ data: JSON.stringify(data) });
}
const text = Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, v.textContent]));
const widths = Object.fromEntries(Object.entries(bars).map(([k, v]) => [k, v.style.width]));
console.log(JSON.stringify({ url: sources[0].url, text, bars: widths, reloaded, closed: sources[0].readyState === 2 }));
