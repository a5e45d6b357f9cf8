"""Node registration with a JWT from the authority (``slimwire.authority``).

The reference authenticates a registration with a per-domain shared secret, or with a SPIRE
JWT-SVID whose *trust domain* must be the node's domain. Our authority issues JWTs whose
``name`` claim is a SLIM name (``org/ns/svc``) the authority administrator allowed the client
(``AuthorityStore.add_client(..., names=[...])``), so that claim is what binds a node:

* the token verifies (signature against the authority's JWKS, ``exp``/``nbf``, audience and
  issuer when configured), and
* its ``name`` (or, without one, its ``sub``) is ``<domain>/.../<node_id>`` or
  ``<domain>/.../<node_id>_<suffix>``: the first component is the node's domain (the trust-domain
  rule) and the last names the node (the shared-secret rule's subject, ``<domain>/<node_id>``,
  is the two-component case).

So granting a client the names ``domain-a/nodes/*`` lets it register any node of ``domain-a``
and nothing else. A JWT is told from a shared-secret token by its shape (three base64url
segments whose header names an ``alg``); the verification itself runs through
:meth:`JwtVerifier.averify` so a JWKS URL fetch on a key miss never blocks the controller's loop.
"""

from __future__ import annotations

from slimwire.auth import JwtVerifier, TokenClaims, decode_unverified
from slimwire.errors import AuthError, RegistrationRefused

__all__ = ["check_node_binding", "looks_like_jwt", "verify_registration_jwt"]


def looks_like_jwt(credentials: str) -> bool:
    """Whether ``credentials`` has the shape of a JWS compact token (not verified)."""
    if credentials.count(".") != 2:
        return False
    try:
        header = decode_unverified(credentials)[0]
    except (AuthError, ValueError):
        return False
    return isinstance(header, dict) and "alg" in header


def check_node_binding(claims: TokenClaims, domain: str, node_id: str) -> None:
    """Refuse (:class:`RegistrationRefused`) unless the token names ``node_id`` in ``domain``
    (the rule of the module docstring)."""
    name = claims.custom.get("name")
    identity = name if isinstance(name, str) and name else claims.subject
    parts = identity.split("/")
    last = parts[-1]
    if (
        len(parts) < 2
        or parts[0] != domain
        or not (last == node_id or last.startswith(node_id + "_"))
    ):
        raise RegistrationRefused(
            f"token identity mismatch: expected '{domain}/.../{node_id}[_suffix]', got '{identity}'"
        )


async def verify_registration_jwt(
    verifier: JwtVerifier, credentials: str, domain: str, node_id: str
) -> TokenClaims:
    """Verify a registration JWT and its binding to the node; the claims, or
    :class:`RegistrationRefused` saying why."""
    try:
        claims = await verifier.averify(credentials)
    except AuthError as exc:
        raise RegistrationRefused(f"token verification failed: {exc}") from None
    check_node_binding(claims, domain, node_id)
    return claims
