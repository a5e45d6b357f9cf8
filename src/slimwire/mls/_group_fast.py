"""The application-message hot path: sealing and opening a PrivateMessage without building the
general struct objects.

An MLS receiver is bound by one signature verification per message (about 43 µs for P-256 on
an idle core); everything else should be small beside it. The general path (MLSMessage →
PrivateMessage → SenderData → PrivateMessageContent → AuthenticatedContent →
FramedContentTBS) builds a dozen frozen objects and re-encodes the GroupContext for every
message. Here one method walks the bytes once with plain offsets and everything that depends
only on the epoch is computed once per group state: the sender-data HMAC pads, the
ExpandWithLabel prefixes, the AADs (which are slices of the message itself), the TBS head and
the GroupContext encoding, and one signature verifier per sender (its public key decoded once).

It is an optimisation, not a second parser with its own rules: it accepts only the exact shape
of a member's application PrivateMessage for this group and epoch and answers ``None`` for
anything else, which the caller then hands to the general path (and its error messages). The
cryptographic checks are the same, in the same order, and the message key is consumed from the
secret tree only once everything (signature and expected AAD included) has passed; tests check
both paths agree.

Sending is the mirror image (:meth:`FastPath.encrypt`): the FramedContentTBS, the
PrivateMessageContent, both AADs and the MLSMessage are joined from per-epoch byte strings and
the two per-message fields (authenticated data and application data), with the signing key
loaded once. There is nothing to fall back from: every application message of an active group
has this one shape, and the bytes are exactly those of :func:`_framing.protect_private` (a
test compares them under a deterministic signature scheme).
"""

from __future__ import annotations

import hmac
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from slimwire.errors import MlsError
from slimwire.mls._codec import DecodeError, Writer, encode_varint
from slimwire.mls._framing import DecryptionError, FramingError, SignatureError, padding_for
from slimwire.mls._group_state import GroupState
from slimwire.mls._hmac import HmacKey
from slimwire.mls._hpke import AeadId
from slimwire.mls._secret_tree import RatchetType
from slimwire.mls._suites import Signer, Verifier, encoded_label, expand_info_prefix

__all__ = ["FastPath", "check_aad"]

_HEADER = b"\x00\x01\x00\x02"  # MLS 1.0, private_message
_APPLICATION = b"\x01"  # ContentType.application
_MEMBER = b"\x01"  # SenderType.member
_TBS_LABEL = b"FramedContentTBS"
_SENDER_DATA = struct.Struct(">III")  # leaf_index, generation, reuse_guard
_SEALED_SENDER_DATA_LEN = _SENDER_DATA.size + 16  # every MLS AEAD has a 16-byte tag
_APP = RatchetType.APPLICATION


def check_aad(carried: bytes, expected: bytes | None) -> None:
    """Refuse a message whose authenticated data is not what the receiver expects, before
    its key is consumed."""
    if expected is not None and not hmac.compare_digest(carried, expected):
        raise FramingError("authenticated data does not match what the receiver expects")


def _span(data: bytes, pos: int) -> tuple[int, int]:
    """(start, end) of the ``opaque<V>`` at ``pos``: minimal varint, in bounds."""
    first = data[pos]
    prefix = first >> 6
    if prefix == 0:
        start, n = pos + 1, first
    elif prefix == 1:
        start, n = pos + 2, ((first & 0x3F) << 8) | data[pos + 1]
        if n < 0x40:
            raise DecodeError("non-minimal varint")
    elif prefix == 2:
        start, n = pos + 4, int.from_bytes(data[pos : pos + 4], "big") & 0x3FFF_FFFF
        if n < 0x4000:
            raise DecodeError("non-minimal varint")
    else:
        raise DecodeError("invalid varint prefix 0b11")
    end = start + n
    if end > len(data):
        raise DecodeError("truncated input")
    return start, end


class FastPath:
    """Per-group-state constants of the hot path, and its entry points :meth:`encrypt` and
    :meth:`decrypt`."""

    __slots__ = (
        "_cipher",
        "_context",
        "_guard_shift",
        "_head",
        "_leaf",
        "_leaf_field",
        "_sample_field",
        "_sample_len",
        "_sd_aad",
        "_sd_key_mac",
        "_sd_nonce_mac",
        "_send_head",
        "_send_len",
        "_signer",
        "_sizes",
        "_tbs_head",
        "_tbs_len",
        "_tree",
        "_verifiers",
        "state",
    )

    def __init__(self, state: GroupState) -> None:
        suite, context = state.suite, state.context
        self.state = state
        self._tree = state.secret_tree
        group_field = bytes(Writer().opaque(context.group_id).u64(context.epoch))
        # version, wire format, group_id, epoch, content type: every application
        # PrivateMessage of this epoch starts so; from byte 4 on it is also the sender-data
        # AAD, and, with the authenticated_data field that follows, the content AAD
        self._head = _HEADER + group_field + _APPLICATION
        self._sd_aad = self._head[4:]
        # ExpandWithLabel(sender_data_secret, "key" / "nonce", sample, Nk / Nn): the HMAC
        # pads and the KDFLabel up to the sample absorbed once per epoch
        mac = HmacKey(suite.kdf.hash_name, state.secrets.sender_data_secret)
        self._sd_key_mac = mac.with_prefix(expand_info_prefix(b"key", suite.aead_key_len))
        self._sd_nonce_mac = mac.with_prefix(expand_info_prefix(b"nonce", suite.aead_nonce_len))
        self._sample_len = suite.hash_len
        self._sample_field = encode_varint(suite.hash_len)  # the sample's opaque<V> length
        self._sizes = (suite.aead_key_len, suite.aead_nonce_len)
        self._guard_shift = 8 * (suite.aead_nonce_len - 4)
        self._context = context.to_bytes()
        # SignContent: label, then FramedContentTBS up to the sender's leaf index
        self._tbs_head = encoded_label(_TBS_LABEL), _HEADER + group_field + _MEMBER
        # the TBS length without the authenticated and application data fields
        self._tbs_len = len(self._tbs_head[1]) + 4 + len(_APPLICATION) + len(self._context)
        self._cipher: type[AESGCM] | type[ChaCha20Poly1305] = (
            ChaCha20Poly1305 if suite.aead.id == AeadId.CHACHA20_POLY1305 else AESGCM
        )
        self._verifiers: dict[int, Verifier] = {}
        # sending: our leaf, the TBS head with it as the sender, the signing key (loaded on
        # the first send: a member that only receives never pays for it)
        self._leaf = state.leaf_index
        self._leaf_field = self._leaf.to_bytes(4, "big")
        self._send_head = _HEADER + group_field + _MEMBER + self._leaf_field
        self._send_len = len(self._send_head) + len(_APPLICATION) + len(self._context)
        self._signer: Signer | None = None

    def _verifier(self, leaf: int) -> Verifier:
        verify = self._verifiers.get(leaf)
        if verify is None:
            tree = self.state.tree
            node = tree.leaf(leaf) if leaf < tree.n_leaves else None
            if node is None:
                raise FramingError(f"sender leaf {leaf} is not a member")
            try:
                verify = self.state.suite.verifier(node.signature_key)
            except MlsError:  # a malformed key is a failed verification
                verify = _refuse
            self._verifiers[leaf] = verify
        return verify

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        """The MLSMessage (PrivateMessage) carrying ``plaintext`` with ``aad`` as its
        authenticated data, from our leaf, under our next application key (consumed first:
        a key is never used twice, even if something below fails)."""
        key = self._tree.next_key(self._leaf, _APP)
        sign = self._signer
        if sign is None:
            state = self.state
            sign = self._signer = state.suite.signer(state.signature_private_key)
        aad_field = encode_varint(len(aad)) + aad
        app_field = encode_varint(len(plaintext)) + plaintext
        label, _ = self._tbs_head
        signature = sign(
            b"".join(
                (
                    label,
                    encode_varint(self._send_len + len(aad_field) + len(app_field)),
                    self._send_head,
                    aad_field,
                    _APPLICATION,
                    app_field,
                    self._context,
                )
            )
        )
        # PrivateMessageContent: application data, signature (no confirmation tag), padding
        content = app_field + encode_varint(len(signature)) + signature
        content += bytes(padding_for(len(content)))
        guard = os.urandom(4)
        nk, nn = self._sizes
        nonce = int.from_bytes(key.nonce, "big") ^ int.from_bytes(guard, "big") << self._guard_shift
        cipher = self._cipher
        # PrivateContentAAD: group id, epoch, content type (the sender-data AAD), then ours
        ciphertext = cipher(key.key).encrypt(
            nonce.to_bytes(nn, "big"), content, self._sd_aad + aad_field
        )
        sample = ciphertext[: self._sample_len]
        tail = encode_varint(len(sample)) + sample + b"\x01"
        sender_data = cipher(self._sd_key_mac.digest(tail)[:nk]).encrypt(
            self._sd_nonce_mac.digest(tail)[:nn],
            self._leaf_field + key.generation.to_bytes(4, "big") + guard,
            self._sd_aad,
        )
        return b"".join(
            (
                self._head,
                aad_field,
                encode_varint(len(sender_data)),
                sender_data,
                encode_varint(len(ciphertext)),
                ciphertext,
            )
        )

    def decrypt(self, data: bytes, expected_aad: bytes | None) -> tuple[bytes, bytes, int] | None:
        """(application data, authenticated data, sender leaf) of an application
        PrivateMessage of this group and epoch, its key consumed; ``None`` for anything of
        another shape (nothing is consumed). Raises :class:`MlsError` for a message of this
        shape that fails a check, with the secret tree unchanged."""
        head = self._head
        n = len(head)
        if data[:n] != head:
            return None
        # the three length fields, the usual sizes read inline (a call per field costs more
        # than the reading): authenticated data (a header AAD of a few hundred bytes, a 2-byte
        # length), the encrypted sender data (12 bytes and a 16-byte tag with every MLS AEAD),
        # the ciphertext (everything after it)
        try:
            first = data[n]
            if first < 0x40:
                aad_start = n + 1
                aad_end = aad_start + first
            elif first < 0x80 and (length := (first & 0x3F) << 8 | data[n + 1]) >= 0x40:
                aad_start = n + 2
                aad_end = aad_start + length
            else:
                aad_start, aad_end = _span(data, n)
            if data[aad_end] != _SEALED_SENDER_DATA_LEN:
                return None
            sd_start = aad_end + 1
            sd_end = sd_start + _SEALED_SENDER_DATA_LEN
            first = data[sd_end]
            if 0x40 <= first < 0x80 and (length := (first & 0x3F) << 8 | data[sd_end + 1]) >= 0x40:
                ct_start = sd_end + 2
                ct_end = ct_start + length
            else:
                ct_start, ct_end = _span(data, sd_end)
        except (DecodeError, IndexError):
            return None
        if ct_end != len(data):
            return None
        nk, nn = self._sizes
        cipher = self._cipher

        # sender data: key and nonce from the ciphertext's first Nh bytes (§6.3.2)
        sample_len = self._sample_len
        sample = data[ct_start : ct_start + sample_len]
        if len(sample) == sample_len:
            tail = self._sample_field + sample + b"\x01"
        else:  # a ciphertext shorter than Nh is its own sample
            tail = encode_varint(len(sample)) + sample + b"\x01"
        try:
            sender_data = cipher(self._sd_key_mac.digest(tail)[:nk]).decrypt(
                self._sd_nonce_mac.digest(tail)[:nn], data[sd_start:sd_end], self._sd_aad
            )
        except InvalidTag:
            raise DecryptionError("sender data does not decrypt") from None
        if len(sender_data) != _SENDER_DATA.size:
            raise DecodeError("malformed sender data")
        leaf, generation, guard = _SENDER_DATA.unpack(sender_data)
        verify = self._verifiers.get(leaf) or self._verifier(leaf)

        # content: the key of the sender's generation, taken but not yet consumed
        tree = self._tree
        pending = tree.prepare(leaf, _APP, generation)
        key = pending.key
        nonce = (int.from_bytes(key.nonce, "big") ^ guard << self._guard_shift).to_bytes(nn, "big")
        try:
            plain = cipher(key.key).decrypt(nonce, data[ct_start:ct_end], data[4:aad_end])
        except InvalidTag:
            raise DecryptionError("content does not decrypt") from None
        try:
            app_start, app_end = _span(plain, 0)
            sig_start, sig_end = _span(plain, app_end)
        except IndexError:
            raise DecodeError("truncated PrivateMessageContent") from None
        if plain.count(0, sig_end) != len(plain) - sig_end:  # counted in place, no copy
            raise DecodeError("non-zero padding in PrivateMessageContent")

        # SignContent over FramedContentTBS: version, wire format, group_id, epoch, sender,
        # authenticated data, content type, application data, and the GroupContext (a
        # member sender); the data fields are slices of the message, the rest per epoch
        label, tbs_head = self._tbs_head
        signed = b"".join(
            (
                label,
                encode_varint(self._tbs_len + (aad_end - n) + app_end),
                tbs_head,
                leaf.to_bytes(4, "big"),
                data[n:aad_end],
                _APPLICATION,
                plain[:app_end],
                self._context,
            )
        )
        if not verify(signed, plain[sig_start:sig_end]):
            raise SignatureError("content signature does not verify")
        aad = data[aad_start:aad_end]
        if expected_aad is not None and aad != expected_aad:  # check_aad, inline
            check_aad(aad, expected_aad)
        tree.consume(pending)
        return plain[app_start:app_end], aad, leaf


def _refuse(message: bytes, signature: bytes) -> bool:
    return False
