"""Pre-shared keys in the key schedule (RFC 9420 §8.4).

PSKs are chained: each one is extracted, expanded with a ``PSKLabel`` that binds its id, its
position and the total count, and extracted into the running secret, so the result commits to
the exact list in order. A PSK the caller cannot supply is an error, never a stand-in value:
a derived placeholder would silently fork the group's key schedule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from slimwire.errors import MlsError
from slimwire.mls._codec import Writer
from slimwire.mls._struct_content import PreSharedKeyID
from slimwire.mls._suites import CipherSuite

__all__ = ["MissingPskError", "psk_secret", "resolve_psks"]


class MissingPskError(MlsError):
    """A proposal or Welcome names a PSK this client does not hold."""


def psk_secret(suite: CipherSuite, psks: Sequence[tuple[PreSharedKeyID, bytes]]) -> bytes:
    """``psk_secret`` for an ordered list of (id, psk value); all zeros for no PSKs."""
    zero = bytes(suite.hash_len)
    secret = zero
    count = len(psks)
    for index, (psk_id, psk) in enumerate(psks):
        w = Writer()
        psk_id.encode(w)
        label = bytes(w.u16(index).u16(count))
        extracted = suite.kdf_extract(zero, psk)
        psk_input = suite.expand_with_label(extracted, b"derived psk", label, suite.hash_len)
        secret = suite.kdf_extract(psk_input, secret)
    return secret


def resolve_psks(
    ids: Sequence[PreSharedKeyID], lookup: Callable[[PreSharedKeyID], bytes | None]
) -> list[tuple[PreSharedKeyID, bytes]]:
    """Pair each id with its value from ``lookup``; :class:`MissingPskError` if one is absent."""
    out: list[tuple[PreSharedKeyID, bytes]] = []
    for psk_id in ids:
        value = lookup(psk_id)
        if value is None:
            raise MissingPskError(f"unknown PSK (type {psk_id.psktype.name})")
        out.append((psk_id, value))
    return out
