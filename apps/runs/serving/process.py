"""What a process does once before it serves: done when a worker's pool process starts (Celery's
worker_process_init), so the first run a fresh worker serves does not wait for it; a serving loop
started elsewhere (the demo, tests) does it before its first turn."""

import functools
import gc
import importlib

from apps.providers.transport import shared_ssl_context

# Young-generation collections this far apart (CPython's default is 700 allocations).
GC_YOUNG_THRESHOLD = 10_000
# Imported by the SDK's HTTP stack on the first request, not before (~20-40 ms with every call
# waiting): anyio's asyncio backend.
FIRST_REQUEST_IMPORTS = ("anyio._backends._asyncio",)


@functools.cache
def prepare_process_for_serving() -> None:
    """Once per process (~0.15-0.2 s measured on a fresh worker):
    - everything loaded so far (Django, the SDK, every module: ~250,000 objects) is moved out of
      the collector's sight, and young collections are made rarer. Measured in the loop at cap 100:
      CPython's full collections scanned all of it every ~6 s, 250-370 ms each with every call in
      flight waiting (3.3 s of a 35 s run); after this, 1.1 s in all. Garbage is collected first,
      so none of it is kept for good;
    - the TLS context every provider connection shares is built (loads the CA bundle), and what the
      SDK imports at its first request is imported."""
    shared_ssl_context()
    for module in FIRST_REQUEST_IMPORTS:
        importlib.import_module(module)
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)
