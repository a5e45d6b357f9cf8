"""Byte-exactness against real reference traffic: tokens and e2e header signatures."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from slimwire._proto import data_plane_pb2 as pb
from slimwire.auth import header_aad, parse_token, verify_signature
from slimwire.errors import AuthError

CAPTURES = ["wire_nomls.jsonl", "wire_mls.jsonl", "wire_group.jsonl"]


def _publishes(path: Path) -> list[pb.Message]:
    out = []
    for line in path.read_text().splitlines():
        msg = pb.Message.FromString(base64.b64decode(json.loads(line)["b64"]))
        if msg.WhichOneof("message_type") == "publish":
            out.append(msg)
    return out


@pytest.mark.parametrize("capture", CAPTURES)
def test_captured_tokens_parse(captures_dir: Path, capture: str) -> None:
    msgs = _publishes(captures_dir / capture)
    assert msgs
    for msg in msgs:
        token = parse_token(msg.publish.header.identity)
        assert len(token.nonce) == 12
        assert len(token.mac) == 32
        pubkey = base64.b64decode(token.claims["pubkey"])
        assert len(pubkey) == 65


@pytest.mark.parametrize("capture", CAPTURES)
def test_captured_e2e_signatures_verify(captures_dir: Path, capture: str) -> None:
    signed = 0
    for msg in _publishes(captures_dir / capture):
        pub = msg.publish
        if not pub.header.HasField("e2e_header_sig"):
            # only command messages are signed
            assert pub.session.session_message_type in (1, 2, 3, 4)
            continue
        pubkey = base64.b64decode(parse_token(pub.header.identity).claims["pubkey"])
        verify_signature(pubkey, pub.header.e2e_header_sig, header_aad(pub))
        signed += 1
        # any change to a covered field breaks it
        tampered = pb.Publish()
        tampered.CopyFrom(pub)
        tampered.session.message_id ^= 1
        with pytest.raises(AuthError):
            verify_signature(pubkey, pub.header.e2e_header_sig, header_aad(tampered))
        # hop-by-hop fields are not covered
        hop = pb.Publish()
        hop.CopyFrom(pub)
        hop.header.ttl = 3
        hop.header.ClearField("header_mac")
        verify_signature(pubkey, pub.header.e2e_header_sig, header_aad(hop))
    assert signed >= 8
