"""Notices a client that goes away and cancels the work done for it, upstream call included.

uvicorn's `send` silently drops writes to a closed connection, so the only reliable signal is
`http.disconnect` from `receive`; a small watcher task waits for it.
"""

from __future__ import annotations

import asyncio

from gateway.asgi import Receive

# Most answers through a fast upstream finish sooner than this; they never pay for a watcher
# task (about 10% of the gateway's CPU per request). Work that takes longer, which is the work
# worth cancelling, is watched from this age on.
WATCH_AFTER_S = 0.05


class ClientWatch:
    """Cancels the task that created it when the client disconnects, until `stop()`."""

    __slots__ = ("_receive", "_serving", "_stopped", "_timer", "_watcher", "gone")

    def __init__(self, receive: Receive, after_s: float = WATCH_AFTER_S) -> None:
        serving = asyncio.current_task()
        assert serving is not None, "ClientWatch must be created inside a task"
        self._serving = serving
        self._receive = receive
        self._stopped = False
        self._watcher: asyncio.Task[None] | None = None
        self.gone = False
        self._timer = asyncio.get_running_loop().call_later(after_s, self._start)

    def _start(self) -> None:
        if not self._stopped:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        # Once the response is complete the server reports a disconnect too: not a cancellation.
        if not self._stopped:
            self.gone = True
            self._serving.cancel()

    def stop(self) -> None:
        """The response is complete (or failed): a disconnect from now on changes nothing."""
        self._stopped = True
        self._timer.cancel()
        if self._watcher is not None:
            self._watcher.cancel()

    def absorb_cancel(self) -> bool:
        """In an `except CancelledError`: True if the cancel was ours and is now withdrawn."""
        if not self.gone:
            return False
        self._serving.uncancel()
        return True
