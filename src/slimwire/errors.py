"""One exception tree for the whole package.

Everything slimwire raises on purpose derives from :class:`SlimwireError`, so callers can catch
one type. Errors carry context (a peer, a name, a session id) as attributes, never secrets.
Misuse of the API (a bad argument) raises the built-in ``ValueError``/``TypeError`` instead: that
is a bug in the caller, not a condition to handle.
"""

from __future__ import annotations


class SlimwireError(Exception):
    """Base of every error slimwire raises on purpose."""


class ConfigError(SlimwireError):
    """A configuration file or value is invalid; the message says which key and why."""


class TransportError(SlimwireError):
    """The byte transport failed: connect refused, TLS failed, connection reset."""


class ConnectionClosed(TransportError):
    """The connection or stream was closed, by us or by the peer."""


class ProtocolError(SlimwireError):
    """A peer broke the protocol, or we were asked to."""


class LocalProtocolError(ProtocolError):
    """We tried to do something the protocol forbids in the current state."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something invalid: a malformed frame, a bad message, a bad MAC."""


class LinkNegotiationError(RemoteProtocolError):
    """Link negotiation failed or timed out; the link is not usable."""


class HeaderMacError(RemoteProtocolError):
    """A message's header MAC is missing or does not verify."""


class MessageTooLarge(RemoteProtocolError):
    """A message exceeds the configured size limit."""


class GrpcError(RemoteProtocolError):
    """The peer ended a gRPC call with a non-OK status."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(f"grpc status {status}: {message}" if message else f"grpc status {status}")
        self.status = status
        self.grpc_message = message


class RoutingError(SlimwireError):
    """A node could not route a message (no subscriber for its destination)."""


class SubscriptionError(SlimwireError):
    """A subscribe or unsubscribe was refused; ``reason`` is the node's error text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SessionError(SlimwireError):
    """A session failed: closed, peer gone, delivery failed."""


class SessionClosed(SessionError):
    """The session was closed, locally or by the peer."""


class DeliveryFailed(SessionError):
    """A reliable message was not acknowledged after every retry."""


class AuthError(SlimwireError):
    """An identity token or credential is invalid, expired, forged or not allowed."""


class MlsError(SlimwireError):
    """An MLS message or operation failed; the group state is unchanged."""


class SlimwireTimeout(SlimwireError, TimeoutError):
    """A wait with ``timeout=`` ran out. Also a ``TimeoutError``."""


class ControlPlaneError(SlimwireError):
    """The control plane refused or failed an operation: a bad topology, a conflicting link,
    an unknown node, or a controller that answered with an error."""


class RegistrationRefused(ControlPlaneError, AuthError):
    """A controller refused a node's registration (wrong or missing domain credentials)."""


class PublishDenied(SessionError):
    """A node's policy refused one of our publishes (its *denial notice*). ``reason`` is the
    node's text; ``session_id`` and ``message_id`` name the refused message when the node knew
    them (None otherwise)."""

    def __init__(
        self, reason: str, session_id: int | None = None, message_id: int | None = None
    ) -> None:
        where = f" (session {session_id}, message {message_id})" if session_id is not None else ""
        super().__init__(f"publish denied by the node: {reason}{where}")
        self.reason = reason
        self.session_id = session_id
        self.message_id = message_id
