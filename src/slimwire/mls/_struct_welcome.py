"""RFC 9420 wire structs, part 3: what a joiner receives (§12.4.3): ``GroupInfo``,
``GroupSecrets``, ``EncryptedGroupSecrets`` and ``Welcome``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from slimwire.mls._codec import Reader, Writer
from slimwire.mls._struct_content import PreSharedKeyID
from slimwire.mls._structs import (
    Extension,
    GroupContext,
    HPKECiphertext,
    Struct,
    read_extensions,
    write_extensions,
)


@dataclass(frozen=True, slots=True)
class GroupInfo(Struct):
    """``GroupInfo``: the group context of the new epoch, signed by the committer (``signer`` is
    its leaf index); the signature covers :meth:`tbs`."""

    group_context: GroupContext
    extensions: tuple[Extension, ...]
    confirmation_tag: bytes
    signer: int
    signature: bytes = b""

    def _encode_tbs(self, w: Writer) -> None:
        self.group_context.encode(w)
        write_extensions(w, self.extensions)
        w.opaque(self.confirmation_tag).u32(self.signer)

    def tbs(self) -> bytes:
        """``GroupInfoTBS``: everything but the signature."""
        w = Writer()
        self._encode_tbs(w)
        return bytes(w)

    def encode(self, w: Writer) -> None:
        self._encode_tbs(w)
        w.opaque(self.signature)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        return cls(GroupContext.decode(r), read_extensions(r), r.opaque(), r.u32(), r.opaque())


@dataclass(frozen=True, slots=True)
class GroupSecrets(Struct):
    """``GroupSecrets``, the plaintext HPKE-sealed to each joiner. ``path_secret`` is the
    ``optional<PathSecret>`` (a PathSecret is just ``opaque path_secret<V>``)."""

    joiner_secret: bytes
    path_secret: bytes | None = None
    psks: tuple[PreSharedKeyID, ...] = ()

    def encode(self, w: Writer) -> None:
        w.opaque(self.joiner_secret).optional(self.path_secret, Writer.opaque)
        w.vector(self.psks, lambda ww, p: p.encode(ww))

    @classmethod
    def decode(cls, r: Reader) -> Self:
        return cls(r.opaque(), r.optional(Reader.opaque), tuple(r.vector(PreSharedKeyID.decode)))

    def __repr__(self) -> str:
        # Secrets never reach logs or tracebacks.
        return f"GroupSecrets(psks={len(self.psks)}, path_secret={self.path_secret is not None})"


@dataclass(frozen=True, slots=True)
class EncryptedGroupSecrets(Struct):
    """One joiner's sealed ``GroupSecrets``; ``new_member`` is its KeyPackageRef."""

    new_member: bytes
    encrypted_group_secrets: HPKECiphertext

    def encode(self, w: Writer) -> None:
        w.opaque(self.new_member)
        self.encrypted_group_secrets.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        return cls(r.opaque(), HPKECiphertext.decode(r))


@dataclass(frozen=True, slots=True)
class Welcome(Struct):
    cipher_suite: int
    secrets: tuple[EncryptedGroupSecrets, ...]
    encrypted_group_info: bytes

    def encode(self, w: Writer) -> None:
        w.u16(self.cipher_suite)
        w.vector(self.secrets, lambda ww, s: s.encode(ww))
        w.opaque(self.encrypted_group_info)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        return cls(r.u16(), tuple(r.vector(EncryptedGroupSecrets.decode)), r.opaque())
