"""What the workers count for /metrics (calls, refusals, tokens, cost, blocks finished, packs, call
latency): in memory as it happens, then into one Redis hash that apps.metrics reads at scrape time.
Below the run engine, which records into it; apps.metrics, which reads every app, sits on top."""
