"""Links: negotiation, per-link keys and the header MAC, and the forwarder's fast message path.

Sans-IO: the asyncio drivers in ``transport``/``dataplane`` feed messages in and send what comes
out. Typical use::

    client = ClientNegotiation(node_id="me")
    send(client.request())
    info = client.receive(await recv())          # LinkInfo, info.mac is the link's HeaderMac

    frame = info.mac.verify_message(raw)         # fast path: Frame, or None (then parse fully)
    out = frame.forward(ttl=frame.header.ttl - 1, incoming_conn=conn)
    for link in targets:
        link.send(out.signed(link.mac) if link.mac else out.unsigned())
"""

from slimwire.link._frame import Frame, FrameKind, Outbound, parse_frame
from slimwire.link._keys import (
    HKDF_INFO,
    HKDF_INFO_PQ,
    MLKEM768_CIPHERTEXT_LEN,
    MLKEM768_PUBLIC_KEY_LEN,
    X25519_PUBLIC_KEY_LEN,
    derive_link_key,
)
from slimwire.link._mac import DOMAIN, HeaderMac, link_prefix
from slimwire.link._negotiation import (
    ClientNegotiation,
    ClientState,
    ServerNegotiation,
    ServerState,
    is_semver,
)
from slimwire.link._types import NEGOTIATION_TIMEOUT_S, LinkConnectionType, LinkInfo
from slimwire.link._wire import (
    NAME_CACHE_MAX,
    HeaderFields,
    NameKey,
    encode_name,
    header_fields,
    name_cache_clear,
    walk_header,
)

__all__ = [
    "DOMAIN",
    "HKDF_INFO",
    "HKDF_INFO_PQ",
    "MLKEM768_CIPHERTEXT_LEN",
    "MLKEM768_PUBLIC_KEY_LEN",
    "NAME_CACHE_MAX",
    "NEGOTIATION_TIMEOUT_S",
    "X25519_PUBLIC_KEY_LEN",
    "ClientNegotiation",
    "ClientState",
    "Frame",
    "FrameKind",
    "HeaderFields",
    "HeaderMac",
    "LinkConnectionType",
    "LinkInfo",
    "NameKey",
    "Outbound",
    "ServerNegotiation",
    "ServerState",
    "derive_link_key",
    "encode_name",
    "header_fields",
    "is_semver",
    "link_prefix",
    "name_cache_clear",
    "parse_frame",
    "walk_header",
]
