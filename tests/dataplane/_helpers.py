"""Message builders and link MACs for the data-plane core tests."""

from __future__ import annotations

from slimwire._proto import data_plane_pb2 as pb
from slimwire.link import HeaderMac
from slimwire.names import Name


def TestMac(key: bytes) -> HeaderMac:
    """A real link MAC with a key and link id derived from ``key`` (one per test link)."""
    return HeaderMac(key.ljust(32, b"\x00"), f"link-{key.hex()}")


def publish(
    dst: Name,
    *,
    src: Name | None = None,
    fanout: int = 1,
    ttl: int = 8,
    mac: HeaderMac | None = None,
    payload: bytes = b"hi",
    forward_to: int | None = None,
    recv_from: int | None = None,
) -> bytes:
    msg = pb.Message()
    p = msg.publish
    h = p.header
    (src or Name("org", "ns", "src", 1)).fill_proto(h.source)
    dst.fill_proto(h.destination)
    h.fanout = fanout
    h.ttl = ttl
    h.version = "3.4.6"
    if forward_to is not None:
        h.forward_to = forward_to
    if recv_from is not None:
        h.recv_from = recv_from
    p.session.session_id = 7
    p.msg.app_payload.blob = payload
    if mac is not None:
        mac.sign(h)
    return msg.SerializeToString()


def subscription(
    name: Name,
    sid: int,
    *,
    add: bool = True,
    ttl: int = 8,
    mac: HeaderMac | None = None,
    recv_from: int | None = None,
    forward_to: int | None = None,
) -> bytes:
    msg = pb.Message()
    sub = msg.subscribe if add else msg.unsubscribe
    sub.subscription_id = sid
    h = sub.header
    name.fill_proto(h.source)
    name.fill_proto(h.destination)
    h.fanout = 1
    h.ttl = ttl
    if recv_from is not None:
        h.recv_from = recv_from
    if forward_to is not None:
        h.forward_to = forward_to
    if mac is not None:
        mac.sign(h)
    return msg.SerializeToString()


def decode(data: bytes) -> pb.Message:
    return pb.Message.FromString(data)
