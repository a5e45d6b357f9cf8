"""RFC 9420 Messaging Layer Security, sans-IO, on ``cryptography``.

The session layer needs only :class:`MlsClient` (an identity: key packages, create and join
groups) and :class:`Group` (add/remove/rejoin/self_update, process, encrypt/decrypt, exporter,
persistence). Reinitialization (``Group.commit_reinit``/``propose_reinit``, then
``MlsClient.reinit`` and ``MlsClient.join(welcome, old_group=...)``), subgroup branching
(``MlsClient.branch``) and resumption PSKs (``Group.commit_psk``) complete RFC 9420.
Everything below them (wire structs, ratchet tree, TreeKEM, key schedule, framing) lives in
private modules. Every failure is an :class:`~slimwire.errors.MlsError` and leaves the group
unchanged.
"""

from slimwire.mls._commit import CommitError
from slimwire.mls._group import (
    ApplicationMessage,
    CommitProcessed,
    Group,
    GroupEvent,
    GroupSuspendedError,
    Member,
    ProposalReceived,
)
from slimwire.mls._group_client import DEFAULT_SUITE, MlsClient
from slimwire.mls._proposals import CredentialValidator, InvalidProposalError
from slimwire.mls._struct_content import ReInit
from slimwire.mls._structs import Extension
from slimwire.mls._suites import supported_suites

__all__ = [
    "DEFAULT_SUITE",
    "ApplicationMessage",
    "CommitError",
    "CommitProcessed",
    "CredentialValidator",
    "Extension",
    "Group",
    "GroupEvent",
    "GroupSuspendedError",
    "InvalidProposalError",
    "Member",
    "MlsClient",
    "ProposalReceived",
    "ReInit",
    "supported_suites",
]
