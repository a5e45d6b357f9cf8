"""The authentication service (``slimwire authority``): clients authenticate with a shared
secret or an mTLS certificate and receive a short-lived JWT binding their SLIM name, DID and
signature public key; verifiers fetch the signing keys from its JWKS endpoint.

Example::

    store = AuthorityStore("authority.db")
    store.add_client("agent-a", secret="...", names=["org/ns/*"], groups=["ops"])
    async with AuthorityServer(Authority(store, issuer="https://auth.example")) as srv:
        ...  # verifiers: JwtVerifier(JwksUrl(srv.url + "/.well-known/jwks.json"), audience="slim")

    # an app: tokens from the authority, renewed in the background
    async with AuthorityTokenProvider(identity, url, name="org/ns/a", client_id=..., ...) as p:
        app = await slimwire.client.connect(node, name="org/ns/a", provider=p, verifier=...)
"""

from slimwire.authority._client import AuthorityTokenProvider
from slimwire.authority._http import (
    AuthorityServer,
    HttpError,
    HttpRequest,
    http_request,
    parse_request,
    request_token,
)
from slimwire.authority._service import Authority, IssuedToken, RequestError, TokenRequest
from slimwire.authority._store import AuthorityStore, ClientRecord, KeyRecord

__all__ = [
    "Authority",
    "AuthorityServer",
    "AuthorityStore",
    "AuthorityTokenProvider",
    "ClientRecord",
    "HttpError",
    "HttpRequest",
    "IssuedToken",
    "KeyRecord",
    "RequestError",
    "TokenRequest",
    "http_request",
    "parse_request",
    "request_token",
]
