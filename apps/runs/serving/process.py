"""What a process does once before it serves: done when a worker's pool process starts (Celery's
worker_process_init), so the first run a fresh worker serves does not wait for it; a serving loop
started elsewhere (the demo, tests) does it before its first turn.

It also says how many calls the process can hold at all: every call in flight is a socket, so the
open-files limit (raised here from its soft value to the hard one) less what the process needs for
everything else (`open_files_capacity`) bounds the serving loop's ceiling (slots.py)."""

import functools
import gc
import importlib
import logging
import resource

from apps.providers.transport import shared_ssl_context

logger = logging.getLogger(__name__)

# Young-generation collections this far apart (CPython's default is 700 allocations).
GC_YOUNG_THRESHOLD = 10_000
# Imported by the SDK's HTTP stack on the first request, not before (~20-40 ms with every call
# waiting): anyio's asyncio backend.
FIRST_REQUEST_IMPORTS = ("anyio._backends._asyncio",)
# A hard limit of "unlimited" is taken as this many (the kernel's usual nr_open is 1,048,576).
UNLIMITED_OPEN_FILES = 1 << 20
# Open files a serving process keeps for everything but its provider calls: the database and Redis
# connections, the broker's, log files, the modules and libraries mapped, and the idle keep-alive
# connections of clients being replaced. Measured: a serving worker holds ~40-60 before its first call.
OPEN_FILES_RESERVE = 256


def raise_open_files_limit() -> int:
    """Raise the soft open-files limit to the hard one (Linux ships 1,024 soft, which would cap a
    process at a few hundred calls in flight: each call is a socket); returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_OPEN_FILES if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY or soft >= target:
        return UNLIMITED_OPEN_FILES if soft == resource.RLIM_INFINITY else soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):  # a container may refuse it: keep what we have, say so
        logger.warning("could not raise the open-files limit from %d to %d", soft, target, exc_info=True)
        return soft
    return target


def open_files_capacity() -> int:
    """The most calls this process can hold in flight by its open-files limit (as it is now)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = UNLIMITED_OPEN_FILES if soft == resource.RLIM_INFINITY else soft
    return max(1, soft - OPEN_FILES_RESERVE)


@functools.cache
def prepare_process_for_serving() -> None:
    """Once per process (~0.15-0.2 s measured on a fresh worker):
    - the soft open-files limit is raised to the hard one (`raise_open_files_limit`);
    - everything loaded so far (Django, the SDK, every module: ~250,000 objects) is moved out of
      the collector's sight, and young collections are made rarer. Measured in the loop at cap 100:
      CPython's full collections scanned all of it every ~6 s, 250-370 ms each with every call in
      flight waiting (3.3 s of a 35 s run); after this, 1.1 s in all. Garbage is collected first,
      so none of it is kept for good;
    - the TLS context every provider connection shares is built (loads the CA bundle), and what the
      SDK imports at its first request is imported."""
    raise_open_files_limit()
    shared_ssl_context()
    for module in FIRST_REQUEST_IMPORTS:
        importlib.import_module(module)
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)
