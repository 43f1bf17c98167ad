"""gunicorn's settings for the web service, read from the working directory by default (the image's
/app; compose's web service and the Dockerfile's CMD both start gunicorn there). Flags on the command
line (`--workers 2`, `--bind`) override what is set here.

Threads, not sync workers: a live progress stream (GET /api/v1/runs/{id}/events/) holds one web thread
for as long as its listener stays, up to RUN_EVENTS_MAX_SECONDS. A sync worker would be one listener
per process, and gunicorn kills a sync worker whose request outlasts `timeout`; a gthread worker serves
WEB_THREADS requests at once and its timeout is about the process's heartbeat, not a request's length.
So a host serves (workers x WEB_THREADS) requests at once, streams included: size WEB_THREADS for the
people watching runs, plus the API's ordinary traffic.
"""

import os

worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "8"))
