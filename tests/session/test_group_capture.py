"""Our group flow against the captured reference group flow (``wire_group.jsonl``).

Three of our layers take the identities of the captured moderator, p0 and p1 (same token ids,
so the same app ids and the same derived channel ids), and replay the scenario: invite p0 and
p1, everybody publishes, remove p0, the moderator publishes again, close. The capture ran with
MLS; we compare with the MLS-only fields (key packages, commits, welcomes, mls settings,
encrypted blobs) blanked on both sides, and everything random or per-hop blanked as for p2p.
Each sender's publishes must equal the reference's as a multiset (arrival order of acks
differs between runs).
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path

from slimwire._proto import data_plane_pb2 as pb
from slimwire.auth import (
    Identity,
    SharedSecretProvider,
    SharedSecretVerifier,
    SigningKey,
    parse_token,
)
from slimwire.names import Name
from slimwire.session import SessionConfig, SessionLayer
from tests.session._net import SECRET, Net

CHANNEL = Name("org", "grp", "chat")


def _captured(captures_dir: Path) -> list[pb.Message]:
    out = []
    for line in (captures_dir / "wire_group.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["dir"] != "c2s":
            continue
        msg = pb.Message.FromString(base64.b64decode(rec["b64"]))
        if msg.WhichOneof("message_type") == "publish":
            out.append(msg)
    return out


def _normalize(msg: pb.Message) -> bytes:
    out = pb.Message()
    out.CopyFrom(msg)
    h = out.publish.header
    h.identity = "TOKEN"
    if h.HasField("e2e_header_sig"):
        h.e2e_header_sig = b"SIG"
    h.ClearField("header_mac")
    h.ClearField("incoming_conn")
    s = out.publish.session
    s.session_id = 1
    if s.session_message_type not in (1, 2, 3, 4):
        s.message_id = 7
    out.metadata.pop("slim-payload-sig", None)
    content = out.publish.msg
    if content.HasField("app_payload"):
        content.app_payload.blob = b""
    cp = content.command_payload
    kind = cp.WhichOneof("command_payload_type")
    if kind == "join_request":
        cp.join_request.ClearField("mls_settings")
    elif kind == "join_reply":
        cp.join_reply.ClearField("key_package")
    elif kind == "group_welcome":
        cp.group_welcome.ClearField("mls")
    elif kind == "group_update":
        cp.group_update.ClearField("mls")
    return out.SerializeToString(deterministic=True)


def _layer_like(token: str) -> SessionLayer:
    token_id = parse_token(token).token_id
    ident = Identity(token_id, SigningKey.generate())
    base = Name.parse(token_id.rsplit("_", 1)[0])
    return SessionLayer(
        base.with_id(ident.name_id),
        SharedSecretProvider(ident, SECRET),
        SharedSecretVerifier(SECRET),
    )


def test_group_flow_matches_capture(captures_dir: Path) -> None:
    ref = _captured(captures_dir)
    tokens: dict[str, str] = {}
    for msg in ref:
        h = msg.publish.header
        tokens.setdefault(h.source.str_name.str_component_2, h.identity)
    mod, p0, p1 = (_layer_like(tokens[n]) for n in ("moderator", "p0", "p1"))
    # the derived app ids are the captured ones
    for layer in (mod, p0, p1):
        sent_by = next(
            m
            for m in ref
            if m.publish.header.source.str_name.str_component_2 == layer.local.service
        )
        assert Name.from_proto(sent_by.publish.header.source) == layer.local

    net = Net([mod, p0, p1])
    sid = mod.create_group(CHANNEL, SessionConfig.group(reliable=True), net.now)
    mod.invite(sid, p0.local.without_id(), net.now)
    net.settle()
    mod.invite(sid, p1.local.without_id(), net.now)
    net.settle()
    for layer in (mod, p0, p1):
        layer.publish(sid, b"x", payload_type="text/plain", now=net.now)
    net.settle()
    mod.remove(sid, p0.local.without_id(), net.now)
    net.settle()
    mod.publish(sid, b"y", now=net.now)
    net.settle()
    mod.close(sid, net.now)
    net.settle()

    def by_sender(msgs: list[pb.Message]) -> dict[str, Counter[bytes]]:
        out: dict[str, Counter[bytes]] = {}
        for m in msgs:
            who = m.publish.header.source.str_name.str_component_2
            out.setdefault(who, Counter())[_normalize(m)] += 1
        return out

    ours, theirs = by_sender(net.sent), by_sender(ref)
    assert set(ours) == set(theirs) == {"moderator", "p0", "p1"}
    for who in theirs:
        missing = theirs[who] - ours[who]
        extra = ours[who] - theirs[who]
        assert not missing, f"{who}: reference sent, we did not:\n" + "\n".join(
            str(pb.Message.FromString(b)) for b in missing
        )
        assert not extra, f"{who}: we sent, reference did not:\n" + "\n".join(
            str(pb.Message.FromString(b)) for b in extra
        )
