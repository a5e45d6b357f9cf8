"""Values produced by link negotiation."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from slimwire._constants import NEGOTIATION_TIMEOUT_S
from slimwire._proto import data_plane_pb2 as pb

if TYPE_CHECKING:
    from slimwire.link._mac import HeaderMac

__all__ = ["NEGOTIATION_TIMEOUT_S", "LinkConnectionType", "LinkInfo"]


class LinkConnectionType(enum.IntEnum):
    """What a link is for, as announced in negotiation (values are the proto's).

    REMOTE links are made by the control plane between deployments, PEER links join replicas of
    one deployment (never MAC'd, one-hop rule), EDGE links are an app's link to its first node.
    """

    REMOTE = pb.LINK_CONNECTION_TYPE_REMOTE
    PEER = pb.LINK_CONNECTION_TYPE_PEER
    EDGE = pb.LINK_CONNECTION_TYPE_EDGE

    @classmethod
    def from_wire(cls, value: int) -> LinkConnectionType:
        """Unknown values mean REMOTE, as in the reference (an open proto3 enum)."""
        try:
            return cls(value)
        except ValueError:
            return cls.REMOTE


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """The outcome of a successful negotiation, from this side's point of view.

    ``mac`` is None only on a non-strict link whose peer offered no usable key; every
    Publish/Subscribe/Unsubscribe on a REMOTE or EDGE link with a ``mac`` must be verified on
    receipt and signed on send.
    """

    link_id: str
    peer_version: str
    peer_node_id: str
    connection_type: LinkConnectionType
    deployment_name: str
    mac: HeaderMac | None

    @property
    def needs_mac(self) -> bool:
        """Whether messages on this link carry header MACs (REMOTE and EDGE links with a key)."""
        return self.mac is not None and self.connection_type is not LinkConnectionType.PEER
