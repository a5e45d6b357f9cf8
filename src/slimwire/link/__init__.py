"""Links: negotiation, per-link keys and the header MAC, and the forwarder's fast message path.

Sans-IO: the asyncio drivers in ``transport``/``dataplane`` feed messages in and send what comes
out. Typical use::

    client = ClientNegotiation(node_id="me")
    send(client.request())
    info = client.receive(await recv())          # LinkInfo; info.mac is the link's HeaderMac

    # A node's hot path, on the received bytes (no protobuf parse, no re-serialization):
    frame = info.mac.verify_message(raw)         # Frame, or None: then parse with protobuf
    data = frame.forward_signed(frame.ttl - 1, conn_id, out_link.mac)     # unicast
    out = frame.forward(frame.ttl - 1, conn_id)                           # multicast:
    copies = [out.signed(link.mac) if link.mac else out.unsigned() for link in targets]

    # Messages built as protobuf objects (apps, control traffic):
    info.mac.sign(msg.publish.header)            # after clearing recv_from/forward_to
    info.mac.verify(msg.publish.header)
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
from slimwire.link._relay import Relay, Sink
from slimwire.link._types import NEGOTIATION_TIMEOUT_S, LinkConnectionType, LinkInfo
from slimwire.link._wire import (
    NAME_CACHE_MAX,
    HeaderFields,
    NameKey,
    encode_name,
    header_fields,
    name_cache_clear,
    read_varint,
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
    "Relay",
    "ServerNegotiation",
    "ServerState",
    "Sink",
    "derive_link_key",
    "encode_name",
    "header_fields",
    "is_semver",
    "link_prefix",
    "name_cache_clear",
    "parse_frame",
    "read_varint",
    "walk_header",
]
