"""The authorization pre-filter, as the forwarder's mixin.

A node policy (``slimwire.policy``) is checked on a whole received batch of an app link before
routing sees it, so what it refuses is answered and counted in one place and the forwarding
rules stay free of policy code. Without an authorizer the forwarder never calls in here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slimwire.link import FrameKind

from ._connections import Conn
from ._types import ConnState, DropReason

if TYPE_CHECKING:
    from slimwire.policy import Decision, NodeAuthorizer

__all__ = ["PolicyPreFilter"]


class PolicyPreFilter:
    """``_authorize``: filter an app link's batch through ``self.authorizer``."""

    authorizer: NodeAuthorizer | None

    def _emit(self, conn: Conn, data: bytes) -> None:  # pragma: no cover - the forwarder's
        raise NotImplementedError

    def _authorize(self, conn: Conn, batch: list[bytes]) -> list[bytes]:
        """The policy pre-filter for an app link (``slimwire.policy._enforce``): what it
        refuses is answered and counted here and never reaches routing."""
        authorizer = self.authorizer
        assert authorizer is not None
        mac = conn.mac if conn.verifies else None

        def refuse(decision: Decision, kind: FrameKind, reply: bytes | None) -> None:
            conn.count_drop(DropReason.DENIED, f"policy: {decision.reason}")
            if reply is not None and conn.state is ConnState.UP:
                self._emit(conn, reply)

        return authorizer.filter_batch(
            conn.conn_id, batch, refuse, mac.verify_frame if mac is not None else None
        )
