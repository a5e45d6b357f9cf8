"""messages.json: every struct of every case decodes and re-encodes byte for byte (RFC 9420
interop vectors; one test item per case)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from slimwire.mls._codec import DecodeError, decode_all
from slimwire.mls._struct_content import (
    Add,
    Commit,
    ExternalInit,
    GroupContextExtensions,
    PreSharedKey,
    ReInit,
    Remove,
    Update,
)
from slimwire.mls._struct_framing import MLSMessage, PrivateMessage, PublicMessage
from slimwire.mls._struct_welcome import GroupInfo, GroupSecrets, Welcome
from slimwire.mls._structs import (
    ContentType,
    KeyPackage,
    LeafNode,
    ParentNode,
    decode_ratchet_tree,
    ratchet_tree_to_bytes,
)
from tests.mls._vectors import cases, load

CASES: list[dict[str, str]] = load("messages")


def _mls(body_type: type[object]) -> Callable[[bytes], bytes]:
    def check(data: bytes) -> bytes:
        msg = MLSMessage.from_bytes(data)
        assert isinstance(msg.body, body_type)
        return msg.to_bytes()

    return check


def _public(content_type: ContentType) -> Callable[[bytes], bytes]:
    def check(data: bytes) -> bytes:
        msg = MLSMessage.from_bytes(data)
        assert isinstance(msg.body, PublicMessage)
        assert msg.body.content.content_type == content_type
        return msg.to_bytes()

    return check


def _struct(cls: Any) -> Callable[[bytes], bytes]:
    def check(data: bytes) -> bytes:
        value = cls.from_bytes(data)
        assert type(value) is cls
        out: bytes = value.to_bytes()
        return out

    return check


def _tree(data: bytes) -> bytes:
    tree = decode_all(data, decode_ratchet_tree)
    assert tree, "empty tree"
    assert all(n is None or isinstance(n, LeafNode | ParentNode) for n in tree)
    assert all(isinstance(n, LeafNode) for n in tree[::2] if n is not None)
    assert all(isinstance(n, ParentNode) for n in tree[1::2] if n is not None)
    return ratchet_tree_to_bytes(tree)


FIELDS: dict[str, Callable[[bytes], bytes]] = {
    "mls_welcome": _mls(Welcome),
    "mls_group_info": _mls(GroupInfo),
    "mls_key_package": _mls(KeyPackage),
    "ratchet_tree": _tree,
    "group_secrets": _struct(GroupSecrets),
    "add_proposal": _struct(Add),
    "update_proposal": _struct(Update),
    "remove_proposal": _struct(Remove),
    "pre_shared_key_proposal": _struct(PreSharedKey),
    "re_init_proposal": _struct(ReInit),
    "external_init_proposal": _struct(ExternalInit),
    "group_context_extensions_proposal": _struct(GroupContextExtensions),
    "commit": _struct(Commit),
    "public_message_application": _public(ContentType.APPLICATION),
    "public_message_proposal": _public(ContentType.PROPOSAL),
    "public_message_commit": _public(ContentType.COMMIT),
    "private_message": _mls(PrivateMessage),
}


def test_every_field_is_covered() -> None:
    assert len(CASES) == 300
    for case in CASES:
        assert set(case) == set(FIELDS)


@pytest.mark.parametrize("case", cases("messages"))
def test_messages_round_trip(case: dict[str, str]) -> None:
    for field, check in FIELDS.items():
        data = bytes.fromhex(case[field])
        assert check(data) == data, field


def test_truncated_messages_are_rejected() -> None:
    """Every proper prefix of a message is a DecodeError, never a crash or a silent success."""
    data = bytes.fromhex(CASES[0]["public_message_commit"])
    for cut in range(len(data)):
        with pytest.raises(DecodeError):
            MLSMessage.from_bytes(data[:cut])
