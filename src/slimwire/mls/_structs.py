"""RFC 9420 wire structs, part 1: the enums and the group-state building blocks (credentials,
capabilities, leaf and parent nodes, key packages, the ratchet tree, update paths, group context).

Every struct is a frozen dataclass with ``encode(w)``/``decode(r)`` plus ``to_bytes()``/
``from_bytes()``. Decoding is strict and encoding canonical (minimal varints, fixed field order),
so ``X.from_bytes(b).to_bytes() == b`` for every input that decodes at all; signatures and hashes
can therefore be computed over re-encoded structs instead of carrying raw byte slices around.

Open registries (cipher suites, extension, proposal and credential types inside lists) stay plain
``int`` so that GREASE and unknown values round-trip; selectors that decide how the following bytes
are laid out are enums and an unknown value is a :class:`DecodeError`. Sequences are tuples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Self, TypeVar

from slimwire.mls._codec import DecodeError, Reader, Writer, decode_all

E = TypeVar("E", bound=IntEnum)


def read_enum(r: Reader, width: Callable[[Reader], int], enum: type[E]) -> E:
    """Read an integer selector; a value outside ``enum`` makes the rest unparseable."""
    value = width(r)
    try:
        return enum(value)
    except ValueError:
        raise DecodeError(f"unknown {enum.__name__} {value}") from None


class ProtocolVersion(IntEnum):
    RESERVED = 0
    MLS10 = 1


class WireFormat(IntEnum):
    PUBLIC_MESSAGE = 1
    PRIVATE_MESSAGE = 2
    WELCOME = 3
    GROUP_INFO = 4
    KEY_PACKAGE = 5


class ContentType(IntEnum):
    APPLICATION = 1
    PROPOSAL = 2
    COMMIT = 3


class SenderType(IntEnum):
    MEMBER = 1
    EXTERNAL = 2
    NEW_MEMBER_PROPOSAL = 3
    NEW_MEMBER_COMMIT = 4


class CredentialType(IntEnum):
    BASIC = 1
    X509 = 2


class LeafNodeSource(IntEnum):
    KEY_PACKAGE = 1
    UPDATE = 2
    COMMIT = 3


class NodeType(IntEnum):
    LEAF = 1
    PARENT = 2


class ProposalType(IntEnum):
    ADD = 1
    UPDATE = 2
    REMOVE = 3
    PSK = 4
    REINIT = 5
    EXTERNAL_INIT = 6
    GROUP_CONTEXT_EXTENSIONS = 7


class ExtensionType(IntEnum):
    APPLICATION_ID = 1
    RATCHET_TREE = 2
    REQUIRED_CAPABILITIES = 3
    EXTERNAL_PUB = 4
    EXTERNAL_SENDERS = 5


class Struct:
    """Shared ``to_bytes``/``from_bytes`` on top of each struct's ``encode``/``decode``."""

    __slots__ = ()

    def encode(self, w: Writer) -> None:
        raise NotImplementedError

    @classmethod
    def decode(cls, r: Reader) -> Self:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        w = Writer()
        self.encode(w)
        return bytes(w)

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Decode one value that must span all of ``data`` (raises :class:`DecodeError`)."""
        return decode_all(data, cls.decode)


def write_u16s(w: Writer, values: Sequence[int]) -> None:
    w.vector(values, Writer.u16)


def read_u16s(r: Reader) -> tuple[int, ...]:
    return tuple(r.vector(Reader.u16))


@dataclass(frozen=True, slots=True)
class Extension(Struct):
    """``Extension``: a type from an open registry and its opaque body."""

    extension_type: int
    extension_data: bytes

    def encode(self, w: Writer) -> None:
        w.u16(self.extension_type).opaque(self.extension_data)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        return cls(r.u16(), r.opaque())


def write_extensions(w: Writer, extensions: Sequence[Extension]) -> None:
    w.vector(extensions, lambda ww, e: e.encode(ww))


def read_extensions(r: Reader) -> tuple[Extension, ...]:
    return tuple(r.vector(Extension.decode))


@dataclass(frozen=True, slots=True)
class Credential(Struct):
    """``Credential``. ``identity`` holds a basic credential's identity; ``certificates`` an X.509
    chain. Other (custom) types are carried the way mls-rs carries them, as one opaque body, which
    is kept in ``identity`` so that they round-trip."""

    credential_type: int
    identity: bytes = b""
    certificates: tuple[bytes, ...] = ()

    @classmethod
    def basic(cls, identity: bytes) -> Credential:
        return cls(CredentialType.BASIC, identity)

    def encode(self, w: Writer) -> None:
        w.u16(self.credential_type)
        if self.credential_type == CredentialType.X509:
            w.vector(self.certificates, Writer.opaque)
        else:
            w.opaque(self.identity)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        credential_type = r.u16()
        if credential_type == CredentialType.X509:
            return cls(credential_type, b"", tuple(r.vector(Reader.opaque)))
        return cls(credential_type, r.opaque())


@dataclass(frozen=True, slots=True)
class Capabilities(Struct):
    """``Capabilities``: what a member's client supports (lists of open-registry ids)."""

    versions: tuple[int, ...] = ()
    cipher_suites: tuple[int, ...] = ()
    extensions: tuple[int, ...] = ()
    proposals: tuple[int, ...] = ()
    credentials: tuple[int, ...] = ()

    def encode(self, w: Writer) -> None:
        for values in (
            self.versions,
            self.cipher_suites,
            self.extensions,
            self.proposals,
            self.credentials,
        ):
            write_u16s(w, values)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        return cls(read_u16s(r), read_u16s(r), read_u16s(r), read_u16s(r), read_u16s(r))


@dataclass(frozen=True, slots=True)
class Lifetime(Struct):
    not_before: int
    not_after: int

    def encode(self, w: Writer) -> None:
        w.u64(self.not_before).u64(self.not_after)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        return cls(r.u64(), r.u64())


@dataclass(frozen=True, slots=True)
class LeafNode(Struct):
    """``LeafNode``. ``lifetime`` is present iff the source is a key package and ``parent_hash``
    only counts for a commit source; the signature covers :meth:`tbs`."""

    encryption_key: bytes
    signature_key: bytes
    credential: Credential
    capabilities: Capabilities
    leaf_node_source: LeafNodeSource
    lifetime: Lifetime | None = None
    parent_hash: bytes = b""
    extensions: tuple[Extension, ...] = ()
    signature: bytes = b""

    def __post_init__(self) -> None:
        if (self.leaf_node_source == LeafNodeSource.KEY_PACKAGE) != (self.lifetime is not None):
            raise ValueError("a lifetime goes with (and only with) leaf_node_source=key_package")

    def _encode_content(self, w: Writer) -> None:
        w.opaque(self.encryption_key).opaque(self.signature_key)
        self.credential.encode(w)
        self.capabilities.encode(w)
        w.u8(self.leaf_node_source)
        if self.lifetime is not None:
            self.lifetime.encode(w)
        elif self.leaf_node_source == LeafNodeSource.COMMIT:
            w.opaque(self.parent_hash)
        write_extensions(w, self.extensions)

    def tbs(self, group_id: bytes = b"", leaf_index: int = 0) -> bytes:
        """``LeafNodeTBS``: the content, plus the group id and leaf index for the update and
        commit sources (binding such a leaf to one position in one group)."""
        w = Writer()
        self._encode_content(w)
        if self.leaf_node_source != LeafNodeSource.KEY_PACKAGE:
            w.opaque(group_id).u32(leaf_index)
        return bytes(w)

    def encode(self, w: Writer) -> None:
        self._encode_content(w)
        w.opaque(self.signature)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        encryption_key = r.opaque()
        signature_key = r.opaque()
        credential = Credential.decode(r)
        capabilities = Capabilities.decode(r)
        source = read_enum(r, Reader.u8, LeafNodeSource)
        lifetime = Lifetime.decode(r) if source == LeafNodeSource.KEY_PACKAGE else None
        parent_hash = r.opaque() if source == LeafNodeSource.COMMIT else b""
        extensions = read_extensions(r)
        signature = r.opaque()
        return cls(
            encryption_key,
            signature_key,
            credential,
            capabilities,
            source,
            lifetime,
            parent_hash,
            extensions,
            signature,
        )


@dataclass(frozen=True, slots=True)
class KeyPackage(Struct):
    """``KeyPackage``: a client's offer to be added; the signature covers :meth:`tbs`."""

    version: int
    cipher_suite: int
    init_key: bytes
    leaf_node: LeafNode
    extensions: tuple[Extension, ...] = ()
    signature: bytes = b""

    def tbs(self) -> bytes:
        """``KeyPackageTBS``: everything but the signature."""
        w = Writer()
        self._encode_tbs(w)
        return bytes(w)

    def _encode_tbs(self, w: Writer) -> None:
        w.u16(self.version).u16(self.cipher_suite).opaque(self.init_key)
        self.leaf_node.encode(w)
        write_extensions(w, self.extensions)

    def encode(self, w: Writer) -> None:
        self._encode_tbs(w)
        w.opaque(self.signature)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        return cls(r.u16(), r.u16(), r.opaque(), LeafNode.decode(r), read_extensions(r), r.opaque())


@dataclass(frozen=True, slots=True)
class ParentNode(Struct):
    encryption_key: bytes
    parent_hash: bytes = b""
    unmerged_leaves: tuple[int, ...] = ()

    def encode(self, w: Writer) -> None:
        w.opaque(self.encryption_key).opaque(self.parent_hash)
        w.vector(self.unmerged_leaves, Writer.u32)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        return cls(r.opaque(), r.opaque(), tuple(r.vector(Reader.u32)))


Node = LeafNode | ParentNode
RatchetTree = tuple[Node | None, ...]


def encode_node(w: Writer, node: Node) -> None:
    """``Node``: a node-type selector then the leaf or parent body."""
    if isinstance(node, LeafNode):
        w.u8(NodeType.LEAF)
    else:
        w.u8(NodeType.PARENT)
    node.encode(w)


def decode_node(r: Reader) -> Node:
    node_type = read_enum(r, Reader.u8, NodeType)
    if node_type == NodeType.LEAF:
        return LeafNode.decode(r)
    return ParentNode.decode(r)


def encode_ratchet_tree(w: Writer, tree: Sequence[Node | None]) -> None:
    """``optional<Node> ratchet_tree<V>`` in array order (leaves at even indices). Whether the
    shape is a valid tree (odd length, no trailing blank) is the tree layer's check, not ours."""
    w.vector(tree, _encode_optional_node)


def _encode_optional_node(w: Writer, node: Node | None) -> None:
    if node is None:
        w.u8(0)
    else:
        w.u8(1)
        encode_node(w, node)


def decode_ratchet_tree(r: Reader) -> RatchetTree:
    return tuple(r.vector(lambda rr: rr.optional(decode_node)))


def ratchet_tree_to_bytes(tree: Sequence[Node | None]) -> bytes:
    w = Writer()
    encode_ratchet_tree(w, tree)
    return bytes(w)


def ratchet_tree_from_bytes(data: bytes) -> RatchetTree:
    return decode_all(data, decode_ratchet_tree)


@dataclass(frozen=True, slots=True)
class HPKECiphertext(Struct):
    kem_output: bytes
    ciphertext: bytes

    def encode(self, w: Writer) -> None:
        w.opaque(self.kem_output).opaque(self.ciphertext)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        return cls(r.opaque(), r.opaque())


@dataclass(frozen=True, slots=True)
class UpdatePathNode(Struct):
    """One parent on the committer's direct path: its new public key, and the path secret
    encrypted to each node of the copath child's resolution."""

    encryption_key: bytes
    encrypted_path_secret: tuple[HPKECiphertext, ...]

    def encode(self, w: Writer) -> None:
        w.opaque(self.encryption_key)
        w.vector(self.encrypted_path_secret, lambda ww, c: c.encode(ww))

    @classmethod
    def decode(cls, r: Reader) -> Self:
        return cls(r.opaque(), tuple(r.vector(HPKECiphertext.decode)))


@dataclass(frozen=True, slots=True)
class UpdatePath(Struct):
    leaf_node: LeafNode
    nodes: tuple[UpdatePathNode, ...]

    def encode(self, w: Writer) -> None:
        self.leaf_node.encode(w)
        w.vector(self.nodes, lambda ww, n: n.encode(ww))

    @classmethod
    def decode(cls, r: Reader) -> Self:
        return cls(LeafNode.decode(r), tuple(r.vector(UpdatePathNode.decode)))


@dataclass(frozen=True, slots=True)
class GroupContext(Struct):
    """``GroupContext``: the state every member agrees on in an epoch; it is mixed into the key
    schedule and signed along with member-sent content."""

    version: int
    cipher_suite: int
    group_id: bytes
    epoch: int
    tree_hash: bytes
    confirmed_transcript_hash: bytes
    extensions: tuple[Extension, ...] = ()

    def encode(self, w: Writer) -> None:
        w.u16(self.version).u16(self.cipher_suite).opaque(self.group_id).u64(self.epoch)
        w.opaque(self.tree_hash).opaque(self.confirmed_transcript_hash)
        write_extensions(w, self.extensions)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        return cls(
            r.u16(), r.u16(), r.opaque(), r.u64(), r.opaque(), r.opaque(), read_extensions(r)
        )


@dataclass(frozen=True, slots=True)
class ExternalSender(Struct):
    """An entry of the ``external_senders`` group-context extension."""

    signature_key: bytes
    credential: Credential

    def encode(self, w: Writer) -> None:
        w.opaque(self.signature_key)
        self.credential.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        return cls(r.opaque(), Credential.decode(r))


@dataclass(frozen=True, slots=True)
class RequiredCapabilities(Struct):
    """Body of the ``required_capabilities`` extension."""

    extension_types: tuple[int, ...] = ()
    proposal_types: tuple[int, ...] = ()
    credential_types: tuple[int, ...] = ()

    def encode(self, w: Writer) -> None:
        write_u16s(w, self.extension_types)
        write_u16s(w, self.proposal_types)
        write_u16s(w, self.credential_types)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        return cls(read_u16s(r), read_u16s(r), read_u16s(r))


def find_extension(extensions: Sequence[Extension], extension_type: int) -> bytes | None:
    """The body of the first extension of ``extension_type``, or None."""
    for ext in extensions:
        if ext.extension_type == extension_type:
            return ext.extension_data
    return None


def ratchet_tree_extension(tree: Sequence[Node | None]) -> Extension:
    """The ``ratchet_tree`` extension a GroupInfo carries so joiners get the tree in-band
    (the reference always sends it: mls-rs ``ratchet_tree_extension=true``)."""
    return Extension(ExtensionType.RATCHET_TREE, ratchet_tree_to_bytes(tree))


def ratchet_tree_from_extensions(extensions: Sequence[Extension]) -> RatchetTree | None:
    """The tree from a ``ratchet_tree`` extension, or None when it was not sent in-band."""
    data = find_extension(extensions, ExtensionType.RATCHET_TREE)
    return None if data is None else ratchet_tree_from_bytes(data)
