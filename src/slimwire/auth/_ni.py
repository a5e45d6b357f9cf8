"""Self-certifying names: RFC 6920 ``ni`` URIs of public keys, and SLIM name ids derived from them.

An app that names itself after its key needs no authority to prove the name: whoever verifies
a signature with the key can recompute the name. RFC 6920 gives the text form,
``ni:///sha-256;<base64url(SHA-256(SubjectPublicKeyInfo DER))>`` (§3, hashing the SPKI as in
its §8 example), and the human-speakable ``nih:`` form with a Luhn mod 16 check digit (§7).

**Mapping to a SLIM name id** (128 bits, the fourth name component): the first 16 bytes of the
same SHA-256, read big-endian - i.e. the ``sha-256-128`` truncation of RFC 6920 §9.4, so the id
and the ``ni`` URI are two views of one hash. Ids at or above ``MAX_ID - RESERVED_IDS`` are
reserved by the reference; such a value is folded below the reserved range with the same modulo
``names.app_id_from_token_id`` uses. A verifier checks a self-certifying app with
:func:`check_self_certifying_name`: ``name_id == name_id_from_public_key(pubkey)``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from slimwire.auth._jwks import b64url, b64url_decode
from slimwire.errors import AuthError
from slimwire.names import MAX_ID, RESERVED_IDS

__all__ = [
    "NiName",
    "check_self_certifying_name",
    "name_id_from_ni",
    "name_id_from_public_key",
    "ni_for_public_key",
    "ni_uri",
    "nih_uri",
    "parse_ni",
    "spki_der",
]

# RFC 6920 §9.4 "Named Information Hash Algorithm Registry": name -> (suite id, bits).
_SUITES: dict[str, tuple[int, int]] = {
    "sha-256": (1, 256),
    "sha-256-128": (2, 128),
    "sha-256-120": (3, 120),
    "sha-256-96": (4, 96),
    "sha-256-64": (5, 64),
    "sha-256-32": (6, 32),
}
_NI_RE = re.compile(r"ni://([^/?#]*)/([A-Za-z0-9-]+);([A-Za-z0-9_-]+)(\?[^#]*)?")
_HEX = "0123456789abcdef"

PublicKeyInput = bytes | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


@dataclass(frozen=True, slots=True)
class NiName:
    """A parsed ``ni`` URI: authority (often empty), hash algorithm, digest, query."""

    authority: str
    algorithm: str
    digest: bytes
    query: str = ""

    def __str__(self) -> str:
        q = f"?{self.query}" if self.query else ""
        return f"ni://{self.authority}/{self.algorithm};{b64url(self.digest)}{q}"

    def matches(self, data: bytes) -> bool:
        """Whether ``data`` hashes to this name (truncation honoured)."""
        return hashlib.sha256(data).digest()[: len(self.digest)] == self.digest


def _digest(data: bytes, algorithm: str) -> bytes:
    if algorithm not in _SUITES:
        raise ValueError(f"unsupported ni hash algorithm {algorithm!r}")
    return hashlib.sha256(data).digest()[: _SUITES[algorithm][1] // 8]


def ni_uri(data: bytes, *, algorithm: str = "sha-256", authority: str = "") -> str:
    """``ni://<authority>/<alg>;<b64url digest>`` of ``data`` (RFC 6920 §3)."""
    return str(NiName(authority, algorithm, _digest(data, algorithm)))


def parse_ni(uri: str) -> NiName:
    """Parse an ``ni`` URI; raises ``ValueError`` if malformed or the digest length is wrong."""
    m = _NI_RE.fullmatch(uri) if isinstance(uri, str) else None
    if m is None:
        raise ValueError(f"not an ni URI: {uri!r}")
    authority, algorithm, value, query = m.groups()
    if algorithm not in _SUITES:
        raise ValueError(f"unsupported ni hash algorithm {algorithm!r}")
    digest = b64url_decode(value)
    if len(digest) * 8 != _SUITES[algorithm][1]:
        raise ValueError(f"{algorithm} digest must be {_SUITES[algorithm][1]} bits")
    return NiName(authority, algorithm, digest, (query or "")[1:])


def _luhn16(hex_digits: str) -> str:
    # Luhn mod N (N = 16) over the hex digits, as RFC 6920 §7 specifies for nih check digits.
    factor, total = 2, 0
    for ch in reversed(hex_digits):
        addend = factor * _HEX.index(ch)
        factor = 1 if factor == 2 else 2
        total += addend // 16 + addend % 16
    return _HEX[(16 - total % 16) % 16]


def nih_uri(data: bytes, *, algorithm: str = "sha-256-120", dashes: bool = True) -> str:
    """The human-speakable ``nih:<alg>;<hex, dash every 4>;<check digit>`` form (RFC 6920 §7)."""
    hex_digits = _digest(data, algorithm).hex()
    body = "-".join(hex_digits[i : i + 4] for i in range(0, len(hex_digits), 4))
    return f"nih:{algorithm};{body if dashes else hex_digits};{_luhn16(hex_digits)}"


def spki_der(public_key: PublicKeyInput) -> bytes:
    """SubjectPublicKeyInfo DER of a key; raw bytes are read as SLIM signature keys (32 bytes
    Ed25519, 33/65 bytes SEC1 P-256), or as DER SPKI when they start with a SEQUENCE."""
    key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
    if isinstance(public_key, bytes | bytearray):
        raw = bytes(public_key)
        if len(raw) == 32:
            key = ed25519.Ed25519PublicKey.from_public_bytes(raw)
        elif len(raw) in (33, 65) and raw[0] in (2, 3, 4):
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
        elif raw[:1] == b"\x30":
            loaded = serialization.load_der_public_key(raw)
            if not isinstance(
                loaded, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
            ):
                raise ValueError(f"unsupported SPKI key type {type(loaded).__name__}")
            key = loaded
        else:
            raise ValueError(f"public key of {len(raw)} bytes is neither Ed25519 nor P-256")
    else:
        key = public_key
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def ni_for_public_key(public_key: PublicKeyInput) -> str:
    """``ni:///sha-256;…`` of the key's SPKI DER."""
    return ni_uri(spki_der(public_key))


def _id_from_digest(digest: bytes) -> int:
    value = int.from_bytes(digest[:16], "big")
    limit = MAX_ID - RESERVED_IDS
    return value % limit if value >= limit else value


def name_id_from_public_key(public_key: PublicKeyInput) -> int:
    """The 128-bit SLIM name id of a self-certifying app (see the module docstring)."""
    return _id_from_digest(hashlib.sha256(spki_der(public_key)).digest())


def name_id_from_ni(uri: str) -> int:
    """The name id for an ``ni`` URI of a key (``sha-256`` or ``sha-256-128``)."""
    name = parse_ni(uri)
    if len(name.digest) < 16:
        raise ValueError(f"{name.algorithm} is too short for a 128-bit name id")
    return _id_from_digest(name.digest)


def check_self_certifying_name(name_id: int, public_key: PublicKeyInput) -> None:
    """Require that ``name_id`` is the key's self-certifying id; raises :class:`AuthError`.

    Use it on a message whose sender claims a self-certifying name, with the key that signed it
    (the token's ``pubkey`` after :func:`check_token_key`, or the MLS leaf key).
    """
    try:
        expected = name_id_from_public_key(public_key)
    except ValueError as exc:
        raise AuthError(f"invalid public key for a self-certifying name: {exc}") from None
    if expected != name_id:
        raise AuthError(
            f"name id {name_id:032x} is not the self-certifying id of the key ({expected:032x})"
        )
