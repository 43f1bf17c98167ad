"""Messages a serving loop sends to the broker (asking for help, handing over), sent from one thread
of their own: the event loop never waits on the broker. With Redis unreachable a send can block for
as long as its socket timeouts allow; the loop goes on starting and ending calls meanwhile, and a
request made while one is still on its way is dropped (the next cooldown, or the pump, asks again):
a broker outage only delays help."""

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


class BrokerMessages:
    def __init__(self) -> None:
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: concurrent.futures.Future[Any] | None = None

    @property
    def busy(self) -> bool:
        return self._pending is not None and not self._pending.done()

    def send(self, what: str, send: Callable[..., Any], /, **kwargs: Any) -> bool:
        """Send in the background, never awaited; False (and nothing sent) while one is on its way."""
        if self.busy:
            logger.warning("%s: the broker has not answered the last message yet; not sent", what)
            return False
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="serving-loop-messages")
        self._pending = self._executor.submit(self._send, what, send, kwargs)
        return True

    @staticmethod
    def _send(what: str, send: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        try:
            return send(**kwargs)
        except Exception:
            logger.warning("%s: could not send it to the broker", what, exc_info=True)
            return None

    def wait(self, timeout: float) -> bool:
        """Block (a thread, a test) until the last message is sent; False if it is still on its way."""
        if self._pending is None:
            return True
        done, _ = concurrent.futures.wait([self._pending], timeout=timeout)
        return bool(done)

    async def settle(self, timeout: float) -> None:
        """Give the last message up to `timeout` to go out, without blocking the loop; then leave it
        to its thread (the loop ends either way: the pump wakes loops again)."""
        if self.busy:
            assert self._pending is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(self._pending)), timeout)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False)
