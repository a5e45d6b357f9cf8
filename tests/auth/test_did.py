"""did:key both ways (published examples) and did:web resolution over loopback and from a file."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimwire.auth import KeyAlgorithm, SigningKey
from slimwire.auth._did import (
    b58decode,
    b58encode,
    did_key_from_public_key,
    did_web_url,
    parse_did_document,
    public_key_from_did_key,
    resolve_did_web,
)
from slimwire.auth._jwks import JwkKey, b64url
from slimwire.errors import AuthError

# W3C CCG "The did:key Method" specification examples.
SPEC_ED25519 = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
SPEC_P256 = "did:key:zDnaerDaTF5BXEavCrfRZEk316dpbLsfPDZ3WJ5hRTPFU2169"
# Its P-256 key as a JWK, as published with that example (x/y of the uncompressed point).
SPEC_P256_X = "fyNYMN0976ci7xqiSdag3buk-ZCwgXU4kz9XNkBlNUI"
SPEC_P256_Y = "hW2ojTNfH7Jbi8--CJUo3OCbH3y5n91g-IMA9MLMbTU"


def test_spec_p256_example_decodes_to_published_point() -> None:
    key = public_key_from_did_key(SPEC_P256)
    assert len(key) == 65
    assert key[0] == 4
    assert b64url(key[1:33]) == SPEC_P256_X
    assert b64url(key[33:]) == SPEC_P256_Y
    assert did_key_from_public_key(key) == SPEC_P256


def test_spec_ed25519_example_roundtrips() -> None:
    key = public_key_from_did_key(SPEC_ED25519)
    assert len(key) == 32
    assert b58decode(SPEC_ED25519[len("did:key:z") :])[:2] == b"\xed\x01"
    assert did_key_from_public_key(key) == SPEC_ED25519
    assert public_key_from_did_key(SPEC_ED25519 + "#z6Mk") == key  # fragment ignored


@pytest.mark.parametrize(
    ("algorithm", "prefix"), [(KeyAlgorithm.ED25519, "z6Mk"), (KeyAlgorithm.P256, "zDn")]
)
def test_generated_keys_have_the_spec_prefixes(algorithm: KeyAlgorithm, prefix: str) -> None:
    # The spec notes every Ed25519 did:key starts z6Mk and every P-256 one zDn.
    key = SigningKey.generate(algorithm)
    did = did_key_from_public_key(key.public_bytes)
    assert did.startswith("did:key:" + prefix)
    assert public_key_from_did_key(did) == key.public_bytes


@pytest.mark.parametrize(
    "bad",
    [
        "did:web:example.com",
        "did:key:6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
        "did:key:z0OIl",
        "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme",  # secp256k1: unsupported
        "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2do",  # truncated
    ],
)
def test_bad_did_keys(bad: str) -> None:
    with pytest.raises(AuthError, match="did:key"):
        public_key_from_did_key(bad)


def test_base58_leading_zeros() -> None:
    assert b58encode(b"\x00\x00\x01") == "112"
    assert b58decode("112") == b"\x00\x00\x01"


@given(st.binary(max_size=80))
def test_base58_roundtrip(data: bytes) -> None:
    assert b58decode(b58encode(data)) == data


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_fuzz_did_key_parser(text: str) -> None:
    try:
        key = public_key_from_did_key("did:key:" + text)
    except AuthError:
        return
    assert len(key) in (32, 65)


# ---- did:web ---------------------------------------------------------------------------------


def test_did_web_urls() -> None:
    assert (
        did_web_url("did:web:w3c-ccg.github.io") == "https://w3c-ccg.github.io/.well-known/did.json"
    )
    assert (
        did_web_url("did:web:w3c-ccg.github.io:user:alice")
        == "https://w3c-ccg.github.io/user/alice/did.json"
    )
    assert (
        did_web_url("did:web:example.com%3A3000:user:alice")
        == "https://example.com:3000/user/alice/did.json"
    )
    for bad in ("did:web:", "did:web:a:..:b", "did:key:x", "did:web:ev/il"):
        with pytest.raises(ValueError, match=r"did:web"):
            did_web_url(bad)


def _document(did: str, p256: SigningKey, ed: SigningKey) -> dict[str, object]:
    from cryptography.hazmat.primitives.asymmetric import ec

    p_pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256.public_bytes)
    return {
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": did,
        "verificationMethod": [
            {
                "id": f"{did}#key-1",
                "type": "JsonWebKey2020",
                "controller": did,
                "publicKeyJwk": {
                    k: v for k, v in JwkKey.of("key-1", p_pub).to_jwk().items() if k != "kid"
                },
            },
            {
                "id": f"{did}#key-2",
                "type": "Multikey",
                "controller": did,
                "publicKeyMultibase": did_key_from_public_key(ed.public_bytes)[len("did:key:") :],
            },
            {"id": f"{did}#junk", "type": "Unknown", "publicKeyBase58": "abc"},
        ],
    }


class _DocHandler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, bytes] = {}

    def do_GET(self) -> None:
        body = self.routes.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def doc_server() -> Iterator[tuple[int, dict[str, bytes]]]:
    routes: dict[str, bytes] = {}
    handler = type("H", (_DocHandler,), {"routes": routes})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_address[1], routes
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_did_web_over_loopback(doc_server: tuple[int, dict[str, bytes]]) -> None:
    port, routes = doc_server
    did = f"did:web:127.0.0.1%3A{port}:agents:alice"
    p256, ed = SigningKey.generate(KeyAlgorithm.P256), SigningKey.generate(KeyAlgorithm.ED25519)
    routes["/agents/alice/did.json"] = json.dumps(_document(did, p256, ed)).encode()
    doc = resolve_did_web(did, scheme="http")
    assert doc.key("key-1") == p256.public_bytes
    assert doc.key("key-2") == ed.public_bytes
    assert doc.has_key(ed.public_bytes)
    assert not doc.has_key(SigningKey.generate().public_bytes)
    assert len(doc.verification_methods) == 2
    with pytest.raises(AuthError, match="cannot resolve"):
        resolve_did_web(f"did:web:127.0.0.1%3A{port}:agents:bob", scheme="http")


def test_did_web_from_file_and_id_mismatch(tmp_path: Path) -> None:
    did = "did:web:example.com"
    ed = SigningKey.generate(KeyAlgorithm.ED25519)
    path = tmp_path / "did.json"
    path.write_text(json.dumps(_document(did, SigningKey.generate(), ed)))
    assert resolve_did_web(did, file=path).key("key-2") == ed.public_bytes
    with pytest.raises(AuthError, match="is not"):
        resolve_did_web("did:web:evil.com", file=path)


def test_document_without_keys_refused() -> None:
    with pytest.raises(AuthError, match="no usable"):
        parse_did_document({"id": "did:web:x", "verificationMethod": []}, "did:web:x")


_VM = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=10),
        "type": st.sampled_from(["Multikey", "JsonWebKey2020"]),
        "publicKeyMultibase": st.text(max_size=60) | st.just(SPEC_ED25519[8:]),
        "publicKeyJwk": st.dictionaries(
            st.sampled_from(["kty", "crv", "x", "y"]), st.text(max_size=44)
        ),
    },
)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {"id": st.sampled_from(["did:web:x", "did:web:y"])},
        optional={"verificationMethod": st.lists(_VM, max_size=3)},
    )
)
def test_fuzz_did_document(doc: dict[str, object]) -> None:
    # DID documents come from the network: parsed keys are valid SLIM keys, or AuthError.
    try:
        parsed = parse_did_document(json.dumps(doc), "did:web:x")
    except AuthError:
        return
    assert doc["id"] == "did:web:x"
    for vm in parsed.verification_methods:
        assert len(vm.public_key) in (32, 65)
