"""The policy in force, replaced atomically on reload; a polling file watcher.

A reload either installs a fully validated policy or changes nothing: a bad edit to the file
leaves the previous policy in force and is reported (``ReloadResult.error`` and a warning log), so
an operator's typo can never open or close the whole mesh. Every successful change bumps
``generation``, which is what decision caches key their validity on.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from slimwire._tasks import BackgroundTask
from slimwire.errors import ConfigError
from slimwire.policy._load import load_policy_file
from slimwire.policy._model import Policy

__all__ = ["PolicyFileWatcher", "PolicyStore", "ReloadResult"]

log = logging.getLogger(__name__)


class ReloadResult(NamedTuple):
    """``ok``: the file was valid; ``changed``: the policy differs from the previous one;
    ``error``: why the file was refused (the old policy stays)."""

    ok: bool
    changed: bool
    generation: int
    error: str | None = None


class PolicyStore:
    """Holds the current :class:`Policy`; optionally backed by a file (``reload()``)."""

    __slots__ = ("_loader", "_policy", "generation", "path")

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        loader: Callable[[Path], Policy] = load_policy_file,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self._loader = loader
        self.generation = 0
        if policy is None:
            if self.path is None:
                raise ValueError("a PolicyStore needs a policy or a path")
            policy = loader(self.path)  # a bad file at start-up is fatal: ConfigError
        self._policy = policy

    @property
    def policy(self) -> Policy:
        return self._policy

    def replace(self, policy: Policy) -> bool:
        """Install ``policy``; returns whether it differs from the current one."""
        if policy == self._policy:
            return False
        self._policy = policy
        self.generation += 1
        log.info("policy %s installed (generation %d)", policy.source, self.generation)
        return True

    def reload(self) -> ReloadResult:
        """Re-read the file; keep the old policy if the new one does not validate."""
        if self.path is None:
            return ReloadResult(False, False, self.generation, "this store has no policy file")
        try:
            policy = self._loader(self.path)
        except ConfigError as exc:
            log.warning("policy reload refused, previous policy stays in force: %s", exc)
            return ReloadResult(False, False, self.generation, str(exc))
        changed = self.replace(policy)
        return ReloadResult(True, changed, self.generation)

    def __repr__(self) -> str:
        return (
            f"PolicyStore({self._policy.source!r}, rules={len(self._policy.rules)}, "
            f"generation={self.generation})"
        )


class PolicyFileWatcher:
    """Polls the store's file (mtime and size) and reloads it when it changes.

    :meth:`poll` is the sans-IO step (one ``stat``); :meth:`start` runs it every ``interval``
    seconds on the event loop. Polling, not inotify: portable, no dependency, and a policy file
    changes rarely enough that a second of latency is fine.
    """

    __slots__ = ("_poller", "_seen", "interval", "on_reload", "store")

    def __init__(
        self,
        store: PolicyStore,
        *,
        interval: float = 1.0,
        on_reload: Callable[[ReloadResult], None] | None = None,
    ) -> None:
        if store.path is None:
            raise ValueError("the store has no policy file to watch")
        self.store = store
        self.interval = interval
        self.on_reload = on_reload
        self._seen = self._stamp()
        self._poller = BackgroundTask(self.run, f"policy file watcher ({store.path})", log)

    def _stamp(self) -> tuple[int, int] | None:
        assert self.store.path is not None
        try:
            st = self.store.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def poll(self) -> ReloadResult | None:
        """Reload if the file changed since the last poll; None when it did not."""
        stamp = self._stamp()
        if stamp == self._seen or stamp is None:
            return None
        self._seen = stamp
        result = self.store.reload()
        if self.on_reload is not None:
            self.on_reload(result)
        return result

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.poll()

    def start(self) -> asyncio.Task[None]:
        """Poll in the background (idempotent); the polling task."""
        return self._poller.start()

    async def stop(self) -> None:
        """Stop polling (idempotent)."""
        await self._poller.stop()
