"""RFC 9420 wire structs, part 4: message framing (§6) and the ``MLSMessage`` envelope.

``FramedContent.content`` is the application data (``bytes``), a proposal or a :class:`Commit`;
the content type is derived from it so the two can never disagree. Structs whose layout depends
on a content type or sender type they do not carry themselves (``FramedContentAuthData``,
``PrivateMessageContent``) take it as an argument to ``decode``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from slimwire.mls._codec import DecodeError, Reader, Writer, decode_all
from slimwire.mls._struct_content import Commit, Proposal, decode_proposal, encode_proposal
from slimwire.mls._struct_welcome import GroupInfo, Welcome
from slimwire.mls._structs import (
    ContentType,
    GroupContext,
    KeyPackage,
    ProtocolVersion,
    SenderType,
    Struct,
    WireFormat,
    read_enum,
)

Content = bytes | Proposal | Commit


def content_type_of(content: Content) -> ContentType:
    if isinstance(content, bytes):
        return ContentType.APPLICATION
    if isinstance(content, Commit):
        return ContentType.COMMIT
    return ContentType.PROPOSAL


def encode_content(w: Writer, content: Content) -> None:
    """The content body alone (no type selector), as it sits in FramedContent after the type."""
    if isinstance(content, bytes):
        w.opaque(content)
    elif isinstance(content, Commit):
        content.encode(w)
    else:
        encode_proposal(w, content)


def decode_content(r: Reader, content_type: ContentType) -> Content:
    if content_type == ContentType.APPLICATION:
        return r.opaque()
    if content_type == ContentType.COMMIT:
        return Commit.decode(r)
    return decode_proposal(r)


@dataclass(frozen=True, slots=True)
class Sender(Struct):
    """``Sender``; ``index`` is the leaf index (member) or the external-sender index (external)
    and is not on the wire for the two new-member kinds."""

    sender_type: SenderType
    index: int = 0

    def __post_init__(self) -> None:
        if not self.has_index and self.index:
            raise ValueError(f"a {self.sender_type.name} sender has no index")

    @classmethod
    def member(cls, leaf_index: int) -> Sender:
        return cls(SenderType.MEMBER, leaf_index)

    @property
    def has_index(self) -> bool:
        return self.sender_type in (SenderType.MEMBER, SenderType.EXTERNAL)

    def encode(self, w: Writer) -> None:
        w.u8(self.sender_type)
        if self.has_index:
            w.u32(self.index)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        sender_type = read_enum(r, Reader.u8, SenderType)
        if sender_type in (SenderType.MEMBER, SenderType.EXTERNAL):
            return cls(sender_type, r.u32())
        return cls(sender_type)


@dataclass(frozen=True, slots=True)
class FramedContent(Struct):
    group_id: bytes
    epoch: int
    sender: Sender
    authenticated_data: bytes
    content: Content

    @property
    def content_type(self) -> ContentType:
        return content_type_of(self.content)

    def encode(self, w: Writer) -> None:
        w.opaque(self.group_id).u64(self.epoch)
        self.sender.encode(w)
        w.opaque(self.authenticated_data).u8(self.content_type)
        encode_content(w, self.content)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        group_id = r.opaque()
        epoch = r.u64()
        sender = Sender.decode(r)
        authenticated_data = r.opaque()
        content_type = read_enum(r, Reader.u8, ContentType)
        return cls(group_id, epoch, sender, authenticated_data, decode_content(r, content_type))


def framed_content_tbs(
    wire_format: WireFormat, content: FramedContent, context: GroupContext | None
) -> bytes:
    """``FramedContentTBS``: what a sender signs. Member and new-member-commit senders bind the
    signature to the group context; the other sender types have none to bind to."""
    w = Writer().u16(ProtocolVersion.MLS10).u16(wire_format)
    content.encode(w)
    if content.sender.sender_type in (SenderType.MEMBER, SenderType.NEW_MEMBER_COMMIT):
        if context is None:
            raise ValueError("member and new_member_commit senders sign over the group context")
        context.encode(w)
    return bytes(w)


@dataclass(frozen=True, slots=True)
class FramedContentAuthData:
    """``FramedContentAuthData``: the signature, plus the confirmation tag of a commit."""

    signature: bytes
    confirmation_tag: bytes | None = None

    def encode(self, w: Writer) -> None:
        w.opaque(self.signature)
        if self.confirmation_tag is not None:
            w.opaque(self.confirmation_tag)

    @classmethod
    def decode(cls, r: Reader, content_type: ContentType) -> Self:
        signature = r.opaque()
        if content_type == ContentType.COMMIT:
            return cls(signature, r.opaque())
        return cls(signature)


def _check_auth(content: FramedContent, auth: FramedContentAuthData) -> None:
    if (content.content_type == ContentType.COMMIT) != (auth.confirmation_tag is not None):
        raise ValueError("a confirmation tag goes with (and only with) a commit")


@dataclass(frozen=True, slots=True)
class AuthenticatedContent(Struct):
    """``AuthenticatedContent``: content plus its auth data, as signed (and as hashed into the
    transcript and into proposal references)."""

    wire_format: WireFormat
    content: FramedContent
    auth: FramedContentAuthData

    def __post_init__(self) -> None:
        _check_auth(self.content, self.auth)

    def encode(self, w: Writer) -> None:
        w.u16(self.wire_format)
        self.content.encode(w)
        self.auth.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        wire_format = read_enum(r, Reader.u16, WireFormat)
        content = FramedContent.decode(r)
        return cls(wire_format, content, FramedContentAuthData.decode(r, content.content_type))


@dataclass(frozen=True, slots=True)
class PublicMessage(Struct):
    """``PublicMessage``; ``membership_tag`` is present iff the sender is a member."""

    content: FramedContent
    auth: FramedContentAuthData
    membership_tag: bytes | None = None

    def __post_init__(self) -> None:
        _check_auth(self.content, self.auth)
        is_member = self.content.sender.sender_type == SenderType.MEMBER
        if is_member != (self.membership_tag is not None):
            raise ValueError("a membership tag goes with (and only with) a member sender")

    def encode(self, w: Writer) -> None:
        self.content.encode(w)
        self.auth.encode(w)
        if self.membership_tag is not None:
            w.opaque(self.membership_tag)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        content = FramedContent.decode(r)
        auth = FramedContentAuthData.decode(r, content.content_type)
        tag = r.opaque() if content.sender.sender_type == SenderType.MEMBER else None
        return cls(content, auth, tag)


@dataclass(frozen=True, slots=True)
class PrivateMessage(Struct):
    group_id: bytes
    epoch: int
    content_type: ContentType
    authenticated_data: bytes
    encrypted_sender_data: bytes
    ciphertext: bytes

    def encode(self, w: Writer) -> None:
        w.opaque(self.group_id).u64(self.epoch).u8(self.content_type)
        w.opaque(self.authenticated_data).opaque(self.encrypted_sender_data)
        w.opaque(self.ciphertext)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        return cls(
            r.opaque(),
            r.u64(),
            read_enum(r, Reader.u8, ContentType),
            r.opaque(),
            r.opaque(),
            r.opaque(),
        )


@dataclass(frozen=True, slots=True)
class PrivateMessageContent:
    """The plaintext of a PrivateMessage: content body, auth data, then zero padding."""

    content: Content
    auth: FramedContentAuthData
    padding: int = 0

    def __post_init__(self) -> None:
        if (content_type_of(self.content) == ContentType.COMMIT) != (
            self.auth.confirmation_tag is not None
        ):
            raise ValueError("a confirmation tag goes with (and only with) a commit")

    def to_bytes(self) -> bytes:
        w = Writer()
        encode_content(w, self.content)
        self.auth.encode(w)
        return bytes(w) + bytes(self.padding)

    @classmethod
    def from_bytes(cls, data: bytes, content_type: ContentType) -> Self:
        """Parse, requiring the padding to be all zeros (RFC 9420 §6.3.1)."""
        r = Reader(data)
        content = decode_content(r, content_type)
        auth = FramedContentAuthData.decode(r, content_type)
        padding = r.raw(r.remaining)
        if padding.count(0) != len(padding):
            raise DecodeError("non-zero padding in PrivateMessageContent")
        return cls(content, auth, len(padding))


@dataclass(frozen=True, slots=True)
class SenderData(Struct):
    """``SenderData``: who sent a PrivateMessage, with which generation, and the reuse guard."""

    leaf_index: int
    generation: int
    reuse_guard: bytes

    def __post_init__(self) -> None:
        if len(self.reuse_guard) != 4:
            raise ValueError("reuse_guard is 4 bytes")

    def encode(self, w: Writer) -> None:
        w.u32(self.leaf_index).u32(self.generation).raw(self.reuse_guard)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        return cls(r.u32(), r.u32(), r.raw(4))


MessageBody = PublicMessage | PrivateMessage | Welcome | GroupInfo | KeyPackage

_WIRE_FORMATS: dict[type[Struct], WireFormat] = {
    PublicMessage: WireFormat.PUBLIC_MESSAGE,
    PrivateMessage: WireFormat.PRIVATE_MESSAGE,
    Welcome: WireFormat.WELCOME,
    GroupInfo: WireFormat.GROUP_INFO,
    KeyPackage: WireFormat.KEY_PACKAGE,
}


@dataclass(frozen=True, slots=True)
class MLSMessage(Struct):
    """``MLSMessage``: the envelope every MLS blob on the wire comes in."""

    body: MessageBody
    version: int = ProtocolVersion.MLS10

    @property
    def wire_format(self) -> WireFormat:
        return _WIRE_FORMATS[type(self.body)]

    def encode(self, w: Writer) -> None:
        w.u16(self.version).u16(self.wire_format)
        self.body.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        version = r.u16()
        if version != ProtocolVersion.MLS10:
            raise DecodeError(f"unsupported MLS protocol version {version}")
        wire_format = read_enum(r, Reader.u16, WireFormat)
        body: MessageBody
        if wire_format == WireFormat.PUBLIC_MESSAGE:
            body = PublicMessage.decode(r)
        elif wire_format == WireFormat.PRIVATE_MESSAGE:
            body = PrivateMessage.decode(r)
        elif wire_format == WireFormat.WELCOME:
            body = Welcome.decode(r)
        elif wire_format == WireFormat.GROUP_INFO:
            body = GroupInfo.decode(r)
        else:
            body = KeyPackage.decode(r)
        return cls(body, version)


def mls_message_from_bytes(data: bytes) -> MLSMessage:
    return decode_all(data, MLSMessage.decode)
