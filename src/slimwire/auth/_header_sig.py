"""End-to-end header signatures (``SLIMHeader.e2e_header_sig``).

The signed bytes are the protobuf encoding of ``HeaderIntegrityAad`` rebuilt from the publish:
version 1, both names (encoded and string forms), the identity token, the session header's four
fields and the application payload type ("" for commands). The same bytes are the MLS AAD. The
receiver rebuilds them from what it received, so any change to those fields in transit breaks
the signature, while ttl, MACs and metadata (hop-by-hop) are free to change.
"""

from __future__ import annotations

from slimwire._proto import data_plane_pb2 as pb
from slimwire.auth._keys import SigningKey, verify_signature
from slimwire.auth._shared_secret import TokenClaims
from slimwire.auth._types import TokenVerifier
from slimwire.errors import AuthError

__all__ = ["header_aad", "sign_header", "verify_header"]

AAD_VERSION = 1


def header_aad(publish: pb.Publish) -> bytes:
    """The ``HeaderIntegrityAad`` bytes of a publish, exactly as the reference builds them."""
    header = publish.header
    session = publish.session
    content = publish.msg
    aad = pb.HeaderIntegrityAad(
        version=AAD_VERSION,
        identity=header.identity,
        session_type=session.session_type,
        session_message_type=session.session_message_type,
        session_id=session.session_id,
        message_id=session.message_id,
        payload_type=(
            content.app_payload.payload_type
            if content.WhichOneof("content_type") == "app_payload"
            else ""
        ),
    )
    if header.HasField("source"):
        aad.source.CopyFrom(header.source)
    if header.HasField("destination"):
        aad.destination.CopyFrom(header.destination)
    return aad.SerializeToString()


def sign_header(publish: pb.Publish, key: SigningKey) -> None:
    """Set ``e2e_header_sig``; call it after the identity token is in the header."""
    publish.header.e2e_header_sig = key.sign(header_aad(publish))


def verify_header(publish: pb.Publish, verifier: TokenVerifier) -> TokenClaims:
    """Check the token, then the signature with the token's ``pubkey``; return the claims.

    Raises :class:`AuthError` if the token is refused, carries no key, or the signature is
    missing or wrong.
    """
    claims = verifier.verify(publish.header.identity)
    if not publish.header.HasField("e2e_header_sig"):
        raise AuthError("command message without e2e_header_sig")
    public_key = claims.public_key
    if public_key is None:
        raise AuthError(f"token of {claims.subject!r} carries no pubkey claim")
    verify_signature(public_key, publish.header.e2e_header_sig, header_aad(publish))
    return claims
