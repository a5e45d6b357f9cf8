"""MLS blobs in real reference traffic (slim-bindings 3.3.8 / mls-rs) decode as MLSMessage and
re-encode byte for byte: key packages in JoinReply, Welcomes in GroupWelcome and RejoinReply,
commits in GroupUpdate, PrivateMessages in the blobs of MLS-protected MSG publishes."""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import NamedTuple

import pytest

from slimwire._proto.data_plane_pb2 import Message
from slimwire.mls._struct_content import Add, Commit
from slimwire.mls._struct_framing import MLSMessage, PrivateMessage, PublicMessage
from slimwire.mls._struct_welcome import Welcome
from slimwire.mls._structs import (
    ContentType,
    CredentialType,
    KeyPackage,
    LeafNodeSource,
    SenderType,
    WireFormat,
)
from slimwire.mls._suites import cipher_suite
from slimwire.mls._welcome import verify_key_package, verify_leaf_node_signature
from tests.conftest import CAPTURES

_MSG = 1  # SessionMessageType MSG
_SUITE_P256 = 0x0002  # what the reference configures (spec/mls.md)


class Blob(NamedTuple):
    where: str  # file:line and the carrier field
    kind: str  # key_package, welcome, commit, application
    data: bytes


def _blobs(path: Path) -> list[Blob]:
    out: list[Blob] = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        msg = Message.FromString(base64.b64decode(json.loads(line)["b64"]))
        if not msg.HasField("publish"):
            continue
        pub = msg.publish
        where = f"{path.name}:{lineno}"
        if pub.msg.HasField("app_payload"):
            if pub.session.session_message_type == _MSG and pub.msg.app_payload.blob:
                out.append(Blob(f"{where}:app", "application", pub.msg.app_payload.blob))
            continue
        cmd = pub.msg.command_payload
        kind = cmd.WhichOneof("command_payload_type")
        if kind == "join_reply" and cmd.join_reply.HasField("key_package"):
            out.append(Blob(f"{where}:join_reply", "key_package", cmd.join_reply.key_package))
        elif kind == "rejoin_request" and cmd.rejoin_request.key_package:
            out.append(Blob(f"{where}:rejoin", "key_package", cmd.rejoin_request.key_package))
        elif kind == "group_welcome" and cmd.group_welcome.HasField("mls"):
            out.append(Blob(f"{where}:welcome", "welcome", cmd.group_welcome.mls.mls_content))
        elif kind == "rejoin_reply" and cmd.rejoin_reply.mls_content:
            out.append(Blob(f"{where}:rejoin_reply", "welcome", cmd.rejoin_reply.mls_content))
        elif kind == "group_update" and cmd.group_update.HasField("mls"):
            out.append(Blob(f"{where}:update", "commit", cmd.group_update.mls.mls_content))
    return out


def _token_pubkey(token: bytes) -> bytes:
    """The ``pubkey`` claim of a SLIM shared-secret token ``id:ts:nonce:claims:hmac`` (the
    reference's MLS credential identity), which must be the leaf's signature key."""
    claims_b64 = token.decode().rsplit(":", 4)[-2]
    claims = json.loads(base64.urlsafe_b64decode(claims_b64 + "=" * (-len(claims_b64) % 4)))
    try:
        return base64.b64decode(claims["pubkey"], validate=True)
    except binascii.Error:
        return b""


BLOBS = _blobs(CAPTURES / "wire_mls.jsonl") + _blobs(CAPTURES / "wire_group.jsonl")


def test_captures_carry_every_kind() -> None:
    kinds = {b.kind for b in BLOBS}
    assert kinds == {"key_package", "welcome", "commit", "application"}
    assert len(BLOBS) >= 30
    commits = [MLSMessage.from_bytes(b.data).body for b in BLOBS if b.kind == "commit"]
    with_path = [
        m
        for m in commits
        if isinstance(m, PublicMessage)
        and isinstance(m.content.content, Commit)
        and m.content.content.path is not None
    ]
    assert with_path, "the group capture has a Remove commit with an UpdatePath"


@pytest.mark.parametrize("blob", BLOBS, ids=[b.where for b in BLOBS])
def test_capture_blob_round_trips(blob: Blob) -> None:
    msg = MLSMessage.from_bytes(blob.data)
    assert msg.to_bytes() == blob.data
    body = msg.body
    if blob.kind == "key_package":
        assert msg.wire_format == WireFormat.KEY_PACKAGE
        assert isinstance(body, KeyPackage)
        assert body.cipher_suite == _SUITE_P256
        leaf = body.leaf_node
        assert leaf.leaf_node_source == LeafNodeSource.KEY_PACKAGE
        assert leaf.credential.credential_type == CredentialType.BASIC
        assert len(leaf.signature_key) == 65  # SEC1 uncompressed P-256
        assert leaf.signature_key[0] == 4
        # mls-rs signed it; our verification (KeyPackageTBS and LeafNodeTBS) must agree.
        verify_key_package(cipher_suite(_SUITE_P256), body)
        assert _token_pubkey(leaf.credential.identity) == leaf.signature_key
    elif blob.kind == "welcome":
        assert isinstance(body, Welcome)
        assert body.cipher_suite == _SUITE_P256
        assert len(body.secrets) >= 1
    elif blob.kind == "commit":
        # encrypt_control_messages=false in the reference: commits travel as PublicMessage.
        assert isinstance(body, PublicMessage)
        assert body.content.sender.sender_type == SenderType.MEMBER
        assert isinstance(body.content.content, Commit)
        assert body.auth.confirmation_tag is not None
        assert body.membership_tag is not None
        suite = cipher_suite(_SUITE_P256)
        commit = body.content.content
        for proposal in commit.proposals:
            if isinstance(proposal, Add):
                verify_key_package(suite, proposal.key_package)
        if commit.path is not None:
            # A commit's new leaf is signed over LeafNodeTBS with the group id and the
            # committer's leaf index.
            leaf = commit.path.leaf_node
            assert leaf.leaf_node_source == LeafNodeSource.COMMIT
            assert verify_leaf_node_signature(
                suite, leaf, body.content.group_id, body.content.sender.index
            )
            assert not verify_leaf_node_signature(
                suite, leaf, body.content.group_id, body.content.sender.index + 1
            )
    else:
        assert isinstance(body, PrivateMessage)
        assert body.content_type == ContentType.APPLICATION
