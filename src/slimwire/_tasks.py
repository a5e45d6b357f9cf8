"""One background coroutine with an idempotent start and stop (token renewal, file polling,
housekeeping ticks).

The pattern was written out by hand in several places, each with a slightly different edge:
a loop that crashed died silently (its exception surfaced only as "Task exception was never
retrieved" at garbage collection, if at all), and ``stop()`` swallowed the CancelledError of the
task *calling* it, so cancelling a shutdown did not cancel it. :class:`BackgroundTask` does it
once: ``start()`` runs the coroutine unless it is already running (a finished or crashed run is
replaced), ``stop()`` cancels it and waits until it has really ended, a crash is logged with its
traceback the moment it happens, and only the caller's own cancellation propagates from
``stop()``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["BackgroundTask"]

log = logging.getLogger(__name__)


class BackgroundTask:
    """Runs ``factory()`` (a fresh coroutine each start) as an asyncio task named ``name``;
    crashes are logged on ``logger`` (the owner's, so the message says whose loop died)."""

    __slots__ = ("_factory", "_log", "_task", "name")

    def __init__(
        self,
        factory: Callable[[], Coroutine[Any, Any, None]],
        name: str,
        logger: logging.Logger | None = None,
    ) -> None:
        self._factory = factory
        self.name = name
        self._log = logger or log
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"BackgroundTask({self.name!r}, running={self.running})"

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> asyncio.Task[None]:
        """Start the coroutine unless it runs already; the running task either way. Needs a
        running event loop."""
        if self._task is None or self._task.done():
            task = asyncio.get_running_loop().create_task(self._factory(), name=self.name)
            task.add_done_callback(self._ended)
            self._task = task
        return self._task

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()  # also marks it retrieved: no second report at GC time
        if exc is not None:
            self._log.error("%s crashed", self.name, exc_info=exc)

    async def stop(self) -> None:
        """Cancel the coroutine and wait until it has ended; nothing if it is not running.
        A crash was already logged and is not raised again here."""
        task, self._task = self._task, None
        if task is None:
            return
        current = asyncio.current_task()
        task.cancel()
        if task is current:
            return  # stopping from inside: the cancel takes effect at its next await
        try:
            await task
        except asyncio.CancelledError:
            if current is not None and current.cancelling():
                raise  # we were cancelled while waiting: that must not be swallowed
        except Exception:  # already logged by _ended
            pass
