"""Hypothesis strategies for SLIM headers and routed messages (every optional field varies)."""

from __future__ import annotations

from hypothesis import strategies as st

from slimwire._proto import data_plane_pb2 as pb

U32 = st.integers(0, 2**32 - 1)
U64 = st.integers(0, 2**64 - 1)
TEXT = st.text(max_size=12)  # full unicode, including astral and combining characters


@st.composite
def names(draw: st.DrawFn) -> pb.Name | None:
    if draw(st.booleans()) and draw(st.booleans()):
        return None
    n = pb.Name()
    n.SetInParent()
    if draw(st.integers(0, 3)):
        enc = n.name
        enc.SetInParent()
        enc.component_0, enc.component_1, enc.component_2 = draw(st.tuples(U64, U64, U64))
        if draw(st.booleans()):
            enc.name_id.SetInParent()
            enc.name_id.id_0, enc.name_id.id_1 = draw(st.tuples(U64, U64))
    if draw(st.integers(0, 3)):
        s = n.str_name
        s.SetInParent()
        s.str_component_0, s.str_component_1, s.str_component_2 = draw(st.tuples(TEXT, TEXT, TEXT))
    return n


@st.composite
def headers(draw: st.DrawFn) -> pb.SLIMHeader:
    h = pb.SLIMHeader()
    src = draw(names())
    if src is not None:
        h.source.CopyFrom(src)
    dst = draw(names())
    if dst is not None:
        h.destination.CopyFrom(dst)
    h.identity = draw(st.text(max_size=300))
    h.fanout = draw(st.sampled_from([0, 1, 256]) | U32)
    h.version = draw(st.sampled_from(["", "3.4.6"]) | TEXT)
    h.ttl = draw(st.sampled_from([0, 1, 8]) | U32)
    for opt in ("recv_from", "forward_to", "incoming_conn"):
        if draw(st.booleans()):
            setattr(h, opt, draw(st.sampled_from([0, 1]) | U64))
    if draw(st.booleans()):
        h.error = draw(st.booleans())
    if draw(st.booleans()):
        h.header_mac = draw(st.binary(min_size=32, max_size=32) | st.binary(max_size=40))
    if draw(st.booleans()):
        h.e2e_header_sig = draw(st.binary(max_size=80))
    return h


def full_name(n: pb.Name) -> pb.Name:
    """Make a name routable (the reference drops messages whose names lack the encoded form)."""
    out = pb.Name()
    out.CopyFrom(n)
    out.name.SetInParent()
    return out


@st.composite
def routed_messages(draw: st.DrawFn) -> pb.Message:
    """A Publish/Subscribe/Unsubscribe the reference would accept, with random header fields."""
    h = draw(headers())
    h.source.CopyFrom(full_name(h.source))
    h.destination.CopyFrom(full_name(h.destination))
    m = pb.Message()
    kind = draw(st.sampled_from(["publish", "subscribe", "unsubscribe"]))
    body = getattr(m, kind)
    body.header.CopyFrom(h)
    if kind == "publish":
        body.session.SetInParent()
        body.session.session_id = draw(U32)
        body.session.message_id = draw(U32)
        if draw(st.booleans()):
            body.msg.app_payload.payload_type = draw(TEXT)
            body.msg.app_payload.blob = draw(st.binary(max_size=64))
    else:
        body.subscription_id = draw(U64)
    for k, v in draw(st.dictionaries(TEXT, TEXT, max_size=3)).items():
        m.metadata[k] = v
    return m
