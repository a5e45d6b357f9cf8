"""Link negotiation, both roles, as sans-IO state machines.

The first message in each direction of every non-local link is ``Link{LinkNegotiationPayload}``:
the dialer sends a request with a link id and an ephemeral X25519 key, the listener answers with
the same link id, its own key, and the requested connection type echoed. Both derive the link's
header-MAC key. The checks and their order follow the reference's ``run_negotiation``; the
driver owns the timeout (:data:`NEGOTIATION_TIMEOUT_S`) and the transport.

Strict mode (``require_mac``, the reference default) demands a 32-byte X25519 key from the peer.
Non-strict mode accepts a keyless peer and yields a link without a MAC. Hybrid mode (ML-KEM-768
next to X25519) is used when we ``enforce_pqc`` as a client, or when a client offers a 1184-byte
ML-KEM key to our server.
"""

from __future__ import annotations

import enum
import logging
import re
import uuid

from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from slimwire._constants import SLIM_VERSION
from slimwire._proto import data_plane_pb2 as pb
from slimwire.errors import LinkNegotiationError, LocalProtocolError
from slimwire.link._keys import (
    MLKEM768_CIPHERTEXT_LEN,
    MLKEM768_PUBLIC_KEY_LEN,
    X25519_PUBLIC_KEY_LEN,
    derive_link_key,
    mlkem_decapsulate,
    mlkem_encapsulate,
    mlkem_keypair,
    x25519_keypair,
    x25519_shared,
)
from slimwire.link._mac import HeaderMac
from slimwire.link._types import LinkConnectionType, LinkInfo

logger = logging.getLogger(__name__)

_NUM = r"(?:0|[1-9][0-9]*)"
_PRE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_BUILD_ID = r"[0-9A-Za-z-]+"
_SEMVER = re.compile(
    rf"({_NUM})\.({_NUM})\.({_NUM})(?:-{_PRE_ID}(?:\.{_PRE_ID})*)?(?:\+{_BUILD_ID}(?:\.{_BUILD_ID})*)?"
)
_U64_MAX = (1 << 64) - 1


def is_semver(text: str) -> bool:
    """Whether ``text`` is a SemVer 2.0.0 version as Rust's ``semver::Version::parse`` takes it.

    No leading ``v``, no surrounding space, no leading zeros in numeric parts, and
    major/minor/patch must fit in a u64.
    """
    m = _SEMVER.fullmatch(text)
    return m is not None and all(int(g) <= _U64_MAX for g in m.groups())


def _payload(msg: pb.Message, role: str) -> pb.LinkNegotiationPayload:
    if msg.WhichOneof("message_type") != "link":
        raise LinkNegotiationError(
            f"first message on a remote link is not a link negotiation ({role})"
        )
    if not msg.link.HasField("link_negotiation"):
        raise LinkNegotiationError("missing link negotiation payload")
    return msg.link.link_negotiation


def _check_version(payload: pb.LinkNegotiationPayload) -> None:
    if not is_semver(payload.slim_version):
        raise LinkNegotiationError(
            f"unparsable remote SLIM version {payload.slim_version!r} (not semver)"
        )


def _kem_len(payload: pb.LinkNegotiationPayload) -> int:
    return len(payload.link_kem_payload) if payload.HasField("link_kem_payload") else 0


def _build(
    *,
    link_id: str,
    version: str,
    is_reply: bool,
    public_key: bytes | None,
    kem_payload: bytes | None,
    connection_type: int,
    node_id: str,
    deployment_name: str,
) -> pb.Message:
    payload = pb.LinkNegotiationPayload(
        link_id=link_id,
        slim_version=version,
        is_reply=is_reply,
        connection_type=connection_type,  # type: ignore[arg-type]
        node_id=node_id,
        deployment_name=deployment_name,
    )
    if public_key is not None:
        payload.link_ecdh_public_key = public_key
    if kem_payload is not None:
        payload.link_kem_payload = kem_payload
    msg = pb.Message()
    msg.link.link_negotiation.CopyFrom(payload)
    return msg


class ClientState(enum.Enum):
    IDLE = "idle"
    AWAITING_REPLY = "awaiting-reply"
    DONE = "done"
    FAILED = "failed"


class ServerState(enum.Enum):
    AWAITING_REQUEST = "awaiting-request"
    DONE = "done"
    FAILED = "failed"


class ClientNegotiation:
    """The dialer's side: :meth:`request` to send, then :meth:`receive` the reply.

    ``link_id`` defaults to a fresh UUIDv4 (the reference's default); reuse the same id when
    re-dialling the same link.
    """

    def __init__(
        self,
        link_id: str | None = None,
        *,
        node_id: str,
        connection_type: LinkConnectionType = LinkConnectionType.EDGE,
        require_mac: bool = True,
        deployment_name: str = "",
        slim_version: str = SLIM_VERSION,
        enforce_pqc: bool = False,
    ) -> None:
        if link_id == "":
            raise ValueError("link_id must not be empty")
        self.link_id = link_id if link_id is not None else str(uuid.uuid4())
        self.node_id = node_id
        self.connection_type = LinkConnectionType(connection_type)
        self.require_mac = require_mac
        self.deployment_name = deployment_name
        self.slim_version = slim_version
        self.enforce_pqc = enforce_pqc
        self.state = ClientState.IDLE
        self._sk: X25519PrivateKey | None = None
        self._kem_sk: MLKEM768PrivateKey | None = None

    def __repr__(self) -> str:
        return f"ClientNegotiation(link_id={self.link_id!r}, state={self.state.value})"

    def request(self) -> pb.Message:
        """The request to send first on the new stream (with a fresh ephemeral key)."""
        if self.state is not ClientState.IDLE:
            raise LocalProtocolError(f"link negotiation request already made ({self.state.value})")
        self._sk, public = x25519_keypair()
        kem_public = None
        if self.enforce_pqc:
            self._kem_sk, kem_public = mlkem_keypair()
        self.state = ClientState.AWAITING_REPLY
        return _build(
            link_id=self.link_id,
            version=self.slim_version,
            is_reply=False,
            public_key=public,
            kem_payload=kem_public,
            connection_type=self.connection_type,
            node_id=self.node_id,
            deployment_name=self.deployment_name,
        )

    def receive(self, msg: pb.Message) -> LinkInfo:
        """Check the server's reply and derive the link key; raises LinkNegotiationError."""
        if self.state is not ClientState.AWAITING_REPLY:
            raise LocalProtocolError(f"no link negotiation reply expected ({self.state.value})")
        try:
            info = self._receive(msg)
        except LinkNegotiationError as exc:
            self.state = ClientState.FAILED
            logger.debug("link %s: negotiation failed: %s", self.link_id, exc)
            raise
        finally:
            self._sk = None
            self._kem_sk = None
        self.state = ClientState.DONE
        return info

    def _receive(self, msg: pb.Message) -> LinkInfo:
        p = _payload(msg, "client")
        if self.enforce_pqc and _kem_len(p) != MLKEM768_CIPHERTEXT_LEN:
            raise LinkNegotiationError(
                "enforce_pqc: responder did not return ML-KEM-768 ciphertext"
            )
        if not p.is_reply:
            raise LinkNegotiationError("received link negotiation request on outgoing connection")
        _check_version(p)
        key = p.link_ecdh_public_key
        if self.require_mac and len(key) != X25519_PUBLIC_KEY_LEN:
            raise LinkNegotiationError(
                f"public key length is invalid: {len(key)} bytes, expected {X25519_PUBLIC_KEY_LEN}"
            )
        if p.link_id != self.link_id:
            raise LinkNegotiationError(
                f"link negotiation reply rejected: link_id {p.link_id!r} is not ours "
                f"({self.link_id!r})"
            )
        mac = None
        if len(key) == X25519_PUBLIC_KEY_LEN:
            assert self._sk is not None
            shared = x25519_shared(self._sk, key)
            if self.enforce_pqc:
                assert self._kem_sk is not None
                shared += mlkem_decapsulate(self._kem_sk, p.link_kem_payload)
            mac = HeaderMac(
                derive_link_key(shared, self.link_id, hybrid=self.enforce_pqc), self.link_id
            )
        echoed = LinkConnectionType.from_wire(p.connection_type)
        if echoed is not self.connection_type:
            # The reference does not check the echo either; what governs this side (MACs on
            # REMOTE/EDGE) is the type we asked for, so a server cannot talk us out of MACs.
            logger.debug(
                "link %s: server echoed connection type %s, we asked for %s",
                self.link_id,
                echoed.name,
                self.connection_type.name,
            )
        return LinkInfo(
            link_id=self.link_id,
            peer_version=p.slim_version,
            peer_node_id=p.node_id,
            connection_type=self.connection_type,
            deployment_name=p.deployment_name,
            mac=mac,
        )


class ServerNegotiation:
    """The listener's side: :meth:`receive` the first message, send the reply it returns."""

    def __init__(
        self,
        node_id: str,
        *,
        require_mac: bool = True,
        deployment_name: str = "",
        slim_version: str = SLIM_VERSION,
        enforce_pqc: bool = False,
    ) -> None:
        self.node_id = node_id
        self.require_mac = require_mac
        self.deployment_name = deployment_name
        self.slim_version = slim_version
        self.enforce_pqc = enforce_pqc
        self.state = ServerState.AWAITING_REQUEST

    def __repr__(self) -> str:
        return f"ServerNegotiation(node_id={self.node_id!r}, state={self.state.value})"

    def receive(self, msg: pb.Message) -> tuple[pb.Message, LinkInfo]:
        """Check the client's request; returns the reply to send and the link's description.

        Raises LinkNegotiationError (send nothing, close the stream) when the request is
        invalid, or when a PEER link comes from ourselves or from another deployment.
        """
        if self.state is not ServerState.AWAITING_REQUEST:
            raise LocalProtocolError(f"link already negotiated ({self.state.value})")
        try:
            result = self._receive(msg)
        except LinkNegotiationError as exc:
            self.state = ServerState.FAILED
            logger.debug("link negotiation failed (server): %s", exc)
            raise
        self.state = ServerState.DONE
        return result

    def _receive(self, msg: pb.Message) -> tuple[pb.Message, LinkInfo]:
        p = _payload(msg, "server")
        kem_len = _kem_len(p)
        if self.enforce_pqc and kem_len != MLKEM768_PUBLIC_KEY_LEN:
            raise LinkNegotiationError("enforce_pqc: initiator did not send ML-KEM-768 public key")
        if p.is_reply:
            raise LinkNegotiationError("received link negotiation reply on incoming connection")
        _check_version(p)
        peer_key = p.link_ecdh_public_key
        if self.require_mac and len(peer_key) != X25519_PUBLIC_KEY_LEN:
            raise LinkNegotiationError(
                f"public key length is invalid: {len(peer_key)} bytes, expected "
                f"{X25519_PUBLIC_KEY_LEN}"
            )
        link_id = p.link_id
        if not link_id:
            raise LinkNegotiationError("link negotiation request rejected: empty link_id")
        ctype = LinkConnectionType.from_wire(p.connection_type)
        if ctype is LinkConnectionType.PEER:
            if p.node_id == self.node_id:
                raise LinkNegotiationError(
                    f"peer link from our own node_id {p.node_id!r} (self-connection)"
                )
            if p.deployment_name != self.deployment_name:
                raise LinkNegotiationError(
                    f"peer link from deployment {p.deployment_name!r}, ours is "
                    f"{self.deployment_name!r}"
                )
        mac = None
        our_public = None
        kem_reply = None
        if len(peer_key) == X25519_PUBLIC_KEY_LEN:
            hybrid = self.enforce_pqc or kem_len == MLKEM768_PUBLIC_KEY_LEN
            try:
                sk, public = x25519_keypair()
                shared = x25519_shared(sk, peer_key)
                if hybrid:
                    kem_reply, kem_shared = mlkem_encapsulate(p.link_kem_payload)
                    shared += kem_shared
                mac = HeaderMac(derive_link_key(shared, link_id, hybrid=hybrid), link_id)
                our_public = public
            except LinkNegotiationError:
                if self.require_mac or self.enforce_pqc:
                    raise
                logger.warning("link %s: key agreement failed; link has no header MAC", link_id)
                kem_reply = None
        reply = _build(
            link_id=link_id,
            version=self.slim_version,
            is_reply=True,
            public_key=our_public,
            kem_payload=kem_reply,
            connection_type=ctype,
            node_id=self.node_id,
            deployment_name=self.deployment_name,
        )
        info = LinkInfo(
            link_id=link_id,
            peer_version=p.slim_version,
            peer_node_id=p.node_id,
            connection_type=ctype,
            deployment_name=p.deployment_name,
            mac=mac,
        )
        return reply, info
