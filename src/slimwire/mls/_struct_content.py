"""RFC 9420 wire structs, part 2: proposals, pre-shared-key ids and commits (§12).

A ``Proposal`` is one of the body classes below; :func:`encode_proposal`/:func:`decode_proposal`
add the ``proposal_type`` selector. A proposal type outside the RFC's seven decodes as a
:class:`CustomProposal` with an opaque body, the way mls-rs (the reference's MLS library) frames
custom proposals, so that such messages still parse and round-trip.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Self

from slimwire.mls._codec import Reader, Writer, decode_all
from slimwire.mls._structs import (
    Extension,
    KeyPackage,
    LeafNode,
    ProposalType,
    Struct,
    UpdatePath,
    read_enum,
    read_extensions,
    write_extensions,
)


class PSKType(IntEnum):
    EXTERNAL = 1
    RESUMPTION = 2


class ResumptionPSKUsage(IntEnum):
    APPLICATION = 1
    REINIT = 2
    BRANCH = 3


class ProposalOrRefType(IntEnum):
    PROPOSAL = 1
    REFERENCE = 2


@dataclass(frozen=True, slots=True)
class PreSharedKeyID(Struct):
    """``PreSharedKeyID``: an external PSK (``psk_id``) or a resumption PSK (usage, group id,
    epoch), plus the nonce that makes each use distinct."""

    psktype: PSKType
    psk_nonce: bytes
    psk_id: bytes = b""
    usage: ResumptionPSKUsage = ResumptionPSKUsage.APPLICATION
    psk_group_id: bytes = b""
    psk_epoch: int = 0

    def encode(self, w: Writer) -> None:
        w.u8(self.psktype)
        if self.psktype == PSKType.EXTERNAL:
            w.opaque(self.psk_id)
        else:
            w.u8(self.usage).opaque(self.psk_group_id).u64(self.psk_epoch)
        w.opaque(self.psk_nonce)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        psktype = read_enum(r, Reader.u8, PSKType)
        if psktype == PSKType.EXTERNAL:
            psk_id = r.opaque()
            return cls(psktype, r.opaque(), psk_id=psk_id)
        usage = read_enum(r, Reader.u8, ResumptionPSKUsage)
        group_id = r.opaque()
        epoch = r.u64()
        return cls(psktype, r.opaque(), usage=usage, psk_group_id=group_id, psk_epoch=epoch)


@dataclass(frozen=True, slots=True)
class Add(Struct):
    proposal_type: ClassVar[int] = ProposalType.ADD
    key_package: KeyPackage

    def encode(self, w: Writer) -> None:
        self.key_package.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        return cls(KeyPackage.decode(r))


@dataclass(frozen=True, slots=True)
class Update(Struct):
    proposal_type: ClassVar[int] = ProposalType.UPDATE
    leaf_node: LeafNode

    def encode(self, w: Writer) -> None:
        self.leaf_node.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        return cls(LeafNode.decode(r))


@dataclass(frozen=True, slots=True)
class Remove(Struct):
    proposal_type: ClassVar[int] = ProposalType.REMOVE
    removed: int

    def encode(self, w: Writer) -> None:
        w.u32(self.removed)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        return cls(r.u32())


@dataclass(frozen=True, slots=True)
class PreSharedKey(Struct):
    proposal_type: ClassVar[int] = ProposalType.PSK
    psk: PreSharedKeyID

    def encode(self, w: Writer) -> None:
        self.psk.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        return cls(PreSharedKeyID.decode(r))


@dataclass(frozen=True, slots=True)
class ReInit(Struct):
    proposal_type: ClassVar[int] = ProposalType.REINIT
    group_id: bytes
    version: int
    cipher_suite: int
    extensions: tuple[Extension, ...] = ()

    def encode(self, w: Writer) -> None:
        w.opaque(self.group_id).u16(self.version).u16(self.cipher_suite)
        write_extensions(w, self.extensions)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        return cls(r.opaque(), r.u16(), r.u16(), read_extensions(r))


@dataclass(frozen=True, slots=True)
class ExternalInit(Struct):
    proposal_type: ClassVar[int] = ProposalType.EXTERNAL_INIT
    kem_output: bytes

    def encode(self, w: Writer) -> None:
        w.opaque(self.kem_output)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        return cls(r.opaque())


@dataclass(frozen=True, slots=True)
class GroupContextExtensions(Struct):
    proposal_type: ClassVar[int] = ProposalType.GROUP_CONTEXT_EXTENSIONS
    extensions: tuple[Extension, ...] = ()

    def encode(self, w: Writer) -> None:
        write_extensions(w, self.extensions)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        return cls(read_extensions(r))


@dataclass(frozen=True, slots=True)
class CustomProposal:
    """A proposal of a type this library does not know, kept as its opaque body."""

    custom_type: int
    data: bytes

    @property
    def proposal_type(self) -> int:
        return self.custom_type


Proposal = (
    Add
    | Update
    | Remove
    | PreSharedKey
    | ReInit
    | ExternalInit
    | GroupContextExtensions
    | CustomProposal
)

_PROPOSAL_BODIES: dict[
    int,
    type[Add]
    | type[Update]
    | type[Remove]
    | type[PreSharedKey]
    | type[ReInit]
    | type[ExternalInit]
    | type[GroupContextExtensions],
] = {
    ProposalType.ADD: Add,
    ProposalType.UPDATE: Update,
    ProposalType.REMOVE: Remove,
    ProposalType.PSK: PreSharedKey,
    ProposalType.REINIT: ReInit,
    ProposalType.EXTERNAL_INIT: ExternalInit,
    ProposalType.GROUP_CONTEXT_EXTENSIONS: GroupContextExtensions,
}


def encode_proposal(w: Writer, proposal: Proposal) -> None:
    """``Proposal``: the type selector then the body."""
    if isinstance(proposal, CustomProposal):
        w.u16(proposal.custom_type).opaque(proposal.data)
        return
    w.u16(proposal.proposal_type)
    proposal.encode(w)


def decode_proposal(r: Reader) -> Proposal:
    proposal_type = r.u16()
    body = _PROPOSAL_BODIES.get(proposal_type)
    if body is None:
        return CustomProposal(proposal_type, r.opaque())
    return body.decode(r)


def proposal_to_bytes(proposal: Proposal) -> bytes:
    w = Writer()
    encode_proposal(w, proposal)
    return bytes(w)


def proposal_from_bytes(data: bytes) -> Proposal:
    return decode_all(data, decode_proposal)


@dataclass(frozen=True, slots=True)
class ProposalRef:
    """A proposal by reference: ``RefHash("MLS 1.0 Proposal Reference", AuthenticatedContent)``."""

    value: bytes


ProposalOrRef = Proposal | ProposalRef


def encode_proposal_or_ref(w: Writer, item: ProposalOrRef) -> None:
    if isinstance(item, ProposalRef):
        w.u8(ProposalOrRefType.REFERENCE).opaque(item.value)
    else:
        w.u8(ProposalOrRefType.PROPOSAL)
        encode_proposal(w, item)


def decode_proposal_or_ref(r: Reader) -> ProposalOrRef:
    kind = read_enum(r, Reader.u8, ProposalOrRefType)
    if kind == ProposalOrRefType.REFERENCE:
        return ProposalRef(r.opaque())
    return decode_proposal(r)


@dataclass(frozen=True, slots=True)
class Commit(Struct):
    """``Commit``: the proposals it applies (by value or reference) and an optional path."""

    proposals: tuple[ProposalOrRef, ...] = ()
    path: UpdatePath | None = None

    def encode(self, w: Writer) -> None:
        w.vector(self.proposals, encode_proposal_or_ref)
        w.optional(self.path, lambda ww, p: p.encode(ww))

    @classmethod
    def decode(cls, r: Reader) -> Self:
        return cls(tuple(r.vector(decode_proposal_or_ref)), r.optional(UpdatePath.decode))
