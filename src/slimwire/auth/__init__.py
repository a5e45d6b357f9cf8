"""Identity: shared-secret and JWT tokens, signature keys, end-to-end header signatures, DIDs and
self-certifying (RFC 6920) names.

Apps check identities end to end; a slimwire node checks them too when it enforces a policy
(``slimwire.policy``), which reference nodes never do. Every session message carries a token in
``SLIMHeader.identity`` whose ``pubkey`` claim names the key that signs the message's header
(``e2e_header_sig``), so a receiver that trusts the token issuer can trust the header.
"""

from slimwire.auth._did import (
    DidDocument,
    VerificationMethod,
    did_key_from_public_key,
    did_web_url,
    public_key_from_did_key,
    resolve_did_web,
)
from slimwire.auth._header_sig import header_aad, sign_header, verify_header
from slimwire.auth._identity import Identity, random_token_id
from slimwire.auth._jwks import (
    JwkKey,
    JwksFile,
    JwksUrl,
    JwsAlgorithm,
    KeySource,
    StaticKeys,
    jwks_document,
    parse_jwks,
    prefetch_keys,
)
from slimwire.auth._jwt import (
    DEFAULT_JWT_LIFETIME,
    JwtProvider,
    JwtSigner,
    JwtVerifier,
    check_token_key,
    decode_unverified,
    token_public_key,
)
from slimwire.auth._keys import KeyAlgorithm, SigningKey, verify_signature
from slimwire.auth._ni import (
    NiName,
    check_self_certifying_name,
    name_id_from_ni,
    name_id_from_public_key,
    ni_for_public_key,
    ni_uri,
    nih_uri,
    parse_ni,
)
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
from slimwire.auth._spiffe import (
    SpiffeId,
    SpiffeVerifier,
    encode_claims_audience,
)
from slimwire.auth._types import TokenProvider, TokenVerifier

__all__ = [
    "DEFAULT_CLOCK_SKEW",
    "DEFAULT_JWT_LIFETIME",
    "DEFAULT_VALIDITY_WINDOW",
    "MIN_SECRET_LEN",
    "DidDocument",
    "Identity",
    "JwkKey",
    "JwksFile",
    "JwksUrl",
    "JwsAlgorithm",
    "JwtProvider",
    "JwtSigner",
    "JwtVerifier",
    "KeyAlgorithm",
    "KeySource",
    "NiName",
    "ParsedToken",
    "SharedSecretProvider",
    "SharedSecretVerifier",
    "SigningKey",
    "SpiffeId",
    "SpiffeVerifier",
    "StaticKeys",
    "TokenClaims",
    "TokenProvider",
    "TokenVerifier",
    "VerificationMethod",
    "check_self_certifying_name",
    "check_token_key",
    "decode_unverified",
    "did_key_from_public_key",
    "did_web_url",
    "encode_claims_audience",
    "header_aad",
    "jwks_document",
    "name_id_from_ni",
    "name_id_from_public_key",
    "ni_for_public_key",
    "ni_uri",
    "nih_uri",
    "parse_jwks",
    "parse_ni",
    "parse_token",
    "prefetch_keys",
    "public_key_from_did_key",
    "random_token_id",
    "resolve_did_web",
    "sign_header",
    "token_public_key",
    "verify_header",
    "verify_signature",
]
