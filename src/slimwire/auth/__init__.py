"""Identity for apps: shared-secret tokens, signature keys and end-to-end header signatures.

Nodes never look at identities; apps do. Every session message carries a fresh token in
``SLIMHeader.identity`` whose ``pubkey`` claim names the key that signs the message's header
(``e2e_header_sig``), so a receiver that trusts the token issuer can trust the header.
"""

from slimwire.auth._header_sig import header_aad, sign_header, verify_header
from slimwire.auth._identity import Identity, random_token_id
from slimwire.auth._keys import KeyAlgorithm, SigningKey, verify_signature
from slimwire.auth._shared_secret import (
    DEFAULT_CLOCK_SKEW,
    DEFAULT_VALIDITY_WINDOW,
    MIN_SECRET_LEN,
    ParsedToken,
    SharedSecretProvider,
    SharedSecretVerifier,
    TokenClaims,
    parse_token,
)
from slimwire.auth._types import TokenProvider, TokenVerifier

__all__ = [
    "DEFAULT_CLOCK_SKEW",
    "DEFAULT_VALIDITY_WINDOW",
    "MIN_SECRET_LEN",
    "Identity",
    "KeyAlgorithm",
    "ParsedToken",
    "SharedSecretProvider",
    "SharedSecretVerifier",
    "SigningKey",
    "TokenClaims",
    "TokenProvider",
    "TokenVerifier",
    "header_aad",
    "parse_token",
    "random_token_id",
    "sign_header",
    "verify_header",
    "verify_signature",
]
