"""Running the mock: on a background thread for tests (`MockServer.start`), or in the foreground for the
`mock_provider` command (`MockServer.serve`). Port 0 picks a free ephemeral port.
"""

import asyncio
import socket
import threading
from collections.abc import Callable

from aiohttp import web

from mock_provider.config import MockConfig
from mock_provider.routes import create_app
from mock_provider.state import MockClock, MockState

BACKLOG = 2048  # benchmarks open hundreds of connections at once
SHUTDOWN_SECONDS = 0.5  # in-flight requests (a `hang` can last an hour) get this long, then are cut


def _base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class MockServer:
    def __init__(self, config: MockConfig | None = None, *, clock: MockClock | None = None) -> None:
        self.state = MockState(config or MockConfig(), clock)
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    async def _open(self, host: str, port: int) -> str:
        # handler_cancellation: when a client disconnects (it timed out on a `hang`), its handler is
        # cancelled instead of sleeping on; access_log=None: logging every request halves throughput.
        self._runner = web.AppRunner(create_app(self.state), access_log=None, handler_cancellation=True,
                                     shutdown_timeout=SHUTDOWN_SECONDS)
        await self._runner.setup()
        # Binding the socket ourselves is how we learn which port 0 became.
        sock = socket.create_server((host, port), backlog=BACKLOG)
        await web.SockSite(self._runner, sock).start()
        self.base_url = _base_url(sock)
        return self.base_url

    async def _close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- foreground (the management command) ---

    async def serve(self, host: str, port: int, *, ready: Callable[[str], None] | None = None,
                    stop: asyncio.Event | None = None) -> None:
        """Serve until `stop` is set (forever without one)."""
        base_url = await self._open(host, port)
        try:
            if ready is not None:
                ready(base_url)
            await (stop or asyncio.Event()).wait()
        finally:
            await self._close()

    # --- background thread (tests, the demo, benchmarks) ---

    def start(self, host: str = "127.0.0.1", port: int = 0, timeout: float = 10.0) -> str:
        if self._thread is not None:
            raise RuntimeError("mock server already started")
        started = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._open(host, port))
            except BaseException as exc:
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._close())
                loop.close()

        self._thread = threading.Thread(target=run, name="mock-anthropic-api", daemon=True)
        self._thread.start()
        if not started.wait(timeout):
            raise RuntimeError("mock server did not start in time")
        if failure:
            self._thread = None
            raise failure[0]
        return self.base_url

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self._thread = None
        self._loop = None
