"""Decentralized identifiers: ``did:key`` (both ways) and ``did:web`` resolution.

``did:key`` (W3C CCG did:key method) puts the public key in the identifier itself:
``did:key:z<base58btc(varint(multicodec) || key)>``, with multicodec ``0xed`` (ed25519-pub, the
raw 32 bytes) or ``0x1200`` (p256-pub, the 33-byte compressed SEC1 point). The reference stamps
an identity's DID as JWT ``sub``/``kid`` in a did:key mesh (``jwt.rs``), so a verifier can take
the key straight from the subject.

``did:web`` names a DID document served over HTTPS: ``did:web:example.com:users:alice`` is
``https://example.com/users/alice/did.json``, ``did:web:example.com`` is
``https://example.com/.well-known/did.json`` (a port is written ``%3A``). The document's
verification methods give keys as ``publicKeyJwk`` or ``publicKeyMultibase`` (Multikey).

Keys come back in the SLIM signature-key encoding (:attr:`SigningKey.public_bytes`): 32 raw
bytes for Ed25519, the 65-byte uncompressed point for P-256, so they compare directly with a
token's ``pubkey`` claim.
"""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from slimwire.auth._jwks import JwkKey
from slimwire.errors import AuthError

__all__ = [
    "DidDocument",
    "VerificationMethod",
    "b58decode",
    "b58encode",
    "did_key_from_public_key",
    "did_web_url",
    "parse_did_document",
    "public_key_from_did_key",
    "public_key_from_multikey",
    "resolve_did_web",
]

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}
_ED25519_PUB = 0xED
_P256_PUB = 0x1200
_MAX_DID_LEN = 512
_MAX_DOC_BYTES = 256 * 1024


def b58encode(data: bytes) -> str:
    """Bitcoin-alphabet base58 (multibase ``z`` without the prefix)."""
    zeros = len(data) - len(data.lstrip(b"\x00"))
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    return "1" * zeros + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    if len(text) > _MAX_DID_LEN:
        raise ValueError("base58 text too long")
    n = 0
    for ch in text:
        if ch not in _B58_INDEX:
            raise ValueError(f"invalid base58 character {ch!r}")
        n = n * 58 + _B58_INDEX[ch]
    zeros = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\x00" * zeros + body


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data: bytes) -> tuple[int, int]:
    value = shift = 0
    for i, byte in enumerate(data[:4]):
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i + 1
        shift += 7
    raise ValueError("bad multicodec varint")


def _slim_bytes(key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey) -> bytes:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _load(public_key: bytes) -> ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey:
    if len(public_key) == 32:
        return ed25519.Ed25519PublicKey.from_public_bytes(public_key)
    if len(public_key) in (33, 65):
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_key)
    raise ValueError(f"public key of {len(public_key)} bytes is neither Ed25519 nor P-256")


def did_key_from_public_key(
    public_key: bytes | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey,
) -> str:
    """``did:key:z…`` for an Ed25519 or P-256 key (SLIM bytes or a ``cryptography`` key)."""
    key = _load(bytes(public_key)) if isinstance(public_key, bytes | bytearray) else public_key
    if isinstance(key, ed25519.Ed25519PublicKey):
        payload = _varint(_ED25519_PUB) + _slim_bytes(key)
    elif isinstance(key.curve, ec.SECP256R1):
        payload = _varint(_P256_PUB) + key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
        )
    else:
        raise ValueError(f"did:key supports Ed25519 and P-256 here, not {key.curve.name}")
    return "did:key:z" + b58encode(payload)


def public_key_from_multikey(multibase: str) -> bytes:
    """Decode a ``z…`` multibase multicodec key (a did:key fingerprint, a Multikey value)."""
    if not isinstance(multibase, str) or not multibase.startswith("z"):
        raise ValueError("only base58btc multibase ('z') keys are supported")
    raw = b58decode(multibase[1:])
    codec, n = _read_varint(raw)
    key = raw[n:]
    try:
        if codec == _ED25519_PUB and len(key) == 32:
            return _slim_bytes(ed25519.Ed25519PublicKey.from_public_bytes(key))
        if codec == _P256_PUB and len(key) == 33:
            return _slim_bytes(ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key))
    except ValueError as exc:
        raise ValueError(f"invalid key in multikey: {exc}") from None
    raise ValueError(f"unsupported multicodec 0x{codec:x} with a {len(key)}-byte key")


def public_key_from_did_key(did: str) -> bytes:
    """The SLIM-encoded public key inside a ``did:key``; raises :class:`AuthError`."""
    if not isinstance(did, str) or not did.startswith("did:key:") or len(did) > _MAX_DID_LEN:
        raise AuthError(f"not a did:key: {did!r}")
    fingerprint = did[len("did:key:") :].split("#", 1)[0]
    try:
        return public_key_from_multikey(fingerprint)
    except ValueError as exc:
        raise AuthError(f"invalid did:key: {exc}") from None


def did_web_url(did: str, *, scheme: str = "https") -> str:
    """The URL of a ``did:web`` document (``scheme="http"`` only for loopback tests)."""
    if not isinstance(did, str) or not did.startswith("did:web:") or len(did) > _MAX_DID_LEN:
        raise ValueError(f"not a did:web: {did!r}")
    parts = did[len("did:web:") :].split(":")
    host = urllib.parse.unquote(parts[0])
    if not host or any(c in host for c in "/?#@ "):
        raise ValueError(f"invalid did:web host {host!r}")
    path = [urllib.parse.unquote(p) for p in parts[1:]]
    if any(not p or p in (".", "..") or "/" in p for p in path):
        raise ValueError(f"invalid did:web path in {did!r}")
    suffix = "/".join(path) + "/did.json" if path else ".well-known/did.json"
    return f"{scheme}://{host}/{suffix}"


@dataclass(frozen=True, slots=True)
class VerificationMethod:
    """One key of a DID document, as SLIM signature-key bytes."""

    id: str
    type: str
    public_key: bytes


@dataclass(frozen=True, slots=True)
class DidDocument:
    id: str
    verification_methods: tuple[VerificationMethod, ...]

    def key(self, fragment: str | None = None) -> bytes:
        """The key with id ``<did>#<fragment>`` (or ``#fragment``), or the first key."""
        for vm in self.verification_methods:
            if fragment is None or vm.id in (f"{self.id}#{fragment}", f"#{fragment}"):
                return vm.public_key
        raise AuthError(f"DID document {self.id} has no key {fragment!r}")

    def has_key(self, public_key: bytes) -> bool:
        return any(vm.public_key == bytes(public_key) for vm in self.verification_methods)


def parse_did_document(data: bytes | str | Mapping[str, Any], did: str) -> DidDocument:
    """Parse a DID document and require its ``id`` to be ``did``. Unusable keys are skipped."""
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise AuthError(f"DID document is not JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise AuthError("DID document must be a JSON object")
    if data.get("id") != did:
        raise AuthError(f"DID document id {data.get('id')!r} is not {did!r}")
    methods = data.get("verificationMethod", [])
    if not isinstance(methods, list):
        raise AuthError("DID document verificationMethod must be a list")
    out: list[VerificationMethod] = []
    for vm in methods:
        if not isinstance(vm, Mapping):
            continue
        try:
            if "publicKeyJwk" in vm:
                jwk = JwkKey.from_jwk(vm["publicKeyJwk"])
                if not isinstance(jwk.key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
                    continue
                key = _slim_bytes(jwk.key)
            elif "publicKeyMultibase" in vm:
                key = public_key_from_multikey(vm["publicKeyMultibase"])
            else:
                continue
        except (ValueError, TypeError):
            continue
        out.append(VerificationMethod(str(vm.get("id", "")), str(vm.get("type", "")), key))
    if not out:
        raise AuthError(f"DID document {did} has no usable verification key")
    return DidDocument(did, tuple(out))


def _fetch(url: str, timeout: float) -> bytes:
    req = urllib.request.Request(url, headers={"Accept": "application/did+json, application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        data: bytes = resp.read(_MAX_DOC_BYTES + 1)
    if len(data) > _MAX_DOC_BYTES:
        raise OSError("DID document too large")
    return data


def resolve_did_web(
    did: str,
    *,
    file: str | os.PathLike[str] | None = None,
    scheme: str = "https",
    timeout: float = 5.0,
    fetch: Callable[[str, float], bytes] | None = None,
) -> DidDocument:
    """Resolve a ``did:web`` from a local ``file`` or over HTTP(S); blocking (use a thread
    from async code). Raises :class:`AuthError` when it cannot be resolved."""
    try:
        if file is not None:
            data = Path(file).read_bytes()[:_MAX_DOC_BYTES]
        else:
            data = (fetch or _fetch)(did_web_url(did, scheme=scheme), timeout)
    except (OSError, ValueError) as exc:
        raise AuthError(f"cannot resolve {did}: {exc}") from None
    return parse_did_document(data, did)
