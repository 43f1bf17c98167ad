// Runs static/console/overview_live.js against a fake page, a fake fetch answering the given responses
// in turn, and fake timers; prints what the open-runs part holds after each tick, and whether the page
// reloaded or went stale.
"use strict";
const fs = require("fs");
const vm = require("vm");

const [scriptPath, responsesJson] = process.argv.slice(2);
const responses = JSON.parse(responsesJson);
const parseIds = (html) => Array.from(html.matchAll(/data-run="([^"]+)"/g), (m) => ({ dataset: { run: m[1] } }));
const classes = new Set();
const root = {
  dataset: { url: "/admin/overview/runs/", poll: "3" },
  _html: '<tr data-run="a"></tr>',
  set innerHTML(value) { this._html = value; },
  get innerHTML() { return this._html; },
  querySelectorAll() { return parseIds(this._html); },
  classList: { add: (c) => classes.add(c), remove: (c) => classes.delete(c) },
};
let tick = null;
let reloaded = false;
const fetched = [];
const window = {
  fetch: async (url) => {
    fetched.push(url);
    const [status, body] = responses.shift();
    return { ok: status === 200, status, text: async () => body };
  },
  setInterval: (fn) => { tick = fn; return 1; },
  clearInterval: () => { tick = null; },
  location: { reload() { reloaded = true; } },
};
const context = { window, fetch: window.fetch, document: { hidden: false, getElementById: () => root }, Array };
vm.runInNewContext(fs.readFileSync(scriptPath, "utf8"), context);
(async () => {
  const seen = [];
  for (let turn = 0; tick && responses.length && turn < 10; turn += 1) {
    await tick();
    seen.push(root.innerHTML);
  }
  console.log(JSON.stringify({ fetched, seen, reloaded, stale: classes.has("console-stale"), polling: tick !== null }));
})();
