"""Groups linked to an older group by a resumption PSK (RFC 9420 §11.2 reinitialization, §11.3
subgroup branching): the link PSK a creator puts into the new group's first commit, the lookup a
joiner answers the Welcome's PSKs from, and the joiner's checks that the new group really is
what the old one agreed to.

The PSK is what makes the link cryptographic: only members of the old group at that epoch hold
its ``resumption_psk``, so a Welcome that names it (and decrypts with it) comes from one of
them. The remaining checks (§12.4.3.1) are about intent: for a reinit, the new group must have
exactly the parameters of the committed ReInit and every old member; for a branch, the old
group's version and suite and only old members.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from slimwire.errors import MlsError
from slimwire.mls._commit import LinkedPsk, ResumptionPskLookup
from slimwire.mls._group_state import GroupState
from slimwire.mls._struct_content import PreSharedKeyID, PSKType, ResumptionPSKUsage
from slimwire.mls._suites import CipherSuite
from slimwire.mls._welcome import WelcomeError

__all__ = [
    "IdentityMatch",
    "check_membership",
    "link_psk",
    "linked_psk_lookup",
    "same_identity",
    "verify_link",
]

IdentityMatch = Callable[[bytes, bytes], bool]
"""``(old credential identity, new credential identity) -> same member``: "according to the
application" (§12.4.3.1). SLIM identities are tokens naming a key, so an application whose
tokens change with the key (a new cipher suite means a new key) supplies its own."""


def same_identity(old: bytes, new: bytes) -> bool:
    """The default: the credentials' identities are equal."""
    return old == new


def link_psk(suite: CipherSuite, usage: ResumptionPSKUsage, old: GroupState) -> LinkedPsk:
    """The resumption PSK of ``old``'s current epoch, with a fresh nonce of the new group's
    ``suite`` length (§11.3: a random Nh-byte nonce avoids key reuse)."""
    psk_id = PreSharedKeyID(
        PSKType.RESUMPTION,
        os.urandom(suite.hash_len),
        usage=usage,
        psk_group_id=old.context.group_id,
        psk_epoch=old.epoch,
    )
    return psk_id, old.secrets.resumption_psk


def linked_psk_lookup(old: GroupState) -> ResumptionPskLookup:
    """The resumption PSKs a joiner can answer from a group it is in: a reinit PSK only for
    the epoch whose commit carried the ReInit (§11.2: "the epoch after the Commit covering the
    ReInit"), a branch PSK for the current or a remembered epoch of a group that is not
    suspended, an application PSK for any remembered epoch."""
    group_id = old.context.group_id

    def lookup(psk_id: PreSharedKeyID) -> bytes | None:
        if psk_id.psktype != PSKType.RESUMPTION or psk_id.psk_group_id != group_id:
            return None
        if psk_id.usage == ResumptionPSKUsage.REINIT:
            if old.pending_reinit is None or psk_id.psk_epoch != old.epoch:
                return None
            return old.secrets.resumption_psk
        if psk_id.usage == ResumptionPSKUsage.BRANCH and old.pending_reinit is not None:
            return None
        if psk_id.psk_epoch == old.epoch:
            return old.secrets.resumption_psk
        return old.resumption_psk(psk_id.psk_epoch)

    return lookup


def check_membership(
    old: GroupState,
    new_identities: Iterable[bytes],
    same: IdentityMatch,
    *,
    everyone: bool,
) -> None:
    """Every identity of the new group matches a member of ``old``; with ``everyone`` (a
    reinit: "the same membership"), every old member is matched too. :class:`MlsError`."""
    old_ids = [leaf.credential.identity for _, leaf in old.tree.leaves()]
    new_ids = list(new_identities)
    for new_id in new_ids:
        if not any(same(o, new_id) for o in old_ids):
            raise MlsError("a member of the new group is not a member of the old group")
    if everyone:
        for old_id in old_ids:
            if not any(same(old_id, n) for n in new_ids):
                raise MlsError("a member of the old group is missing from the new group")


def verify_link(
    old: GroupState,
    new: GroupState,
    psk_ids: Iterable[PreSharedKeyID],
    same: IdentityMatch,
) -> ResumptionPSKUsage:
    """§12.4.3.1 for a joiner that expected a group linked to ``old``: the Welcome named one
    reinit or branch PSK of ``old`` (its value was already needed to open the Welcome), and the
    new group matches it. Returns the usage; :class:`WelcomeError` otherwise."""
    linked = [
        p
        for p in psk_ids
        if p.psktype == PSKType.RESUMPTION
        and p.usage != ResumptionPSKUsage.APPLICATION
        and p.psk_group_id == old.context.group_id
    ]
    if not linked:
        raise WelcomeError("the Welcome names no reinit or branch PSK of that group")
    usage = linked[0].usage
    ctx = new.context
    new_ids = [leaf.credential.identity for _, leaf in new.tree.leaves()]
    try:
        if usage == ResumptionPSKUsage.REINIT:
            reinit = old.pending_reinit
            assert reinit is not None  # the lookup gave no reinit PSK otherwise
            if (ctx.group_id, ctx.version, ctx.cipher_suite, ctx.extensions) != (
                reinit.group_id,
                reinit.version,
                reinit.cipher_suite,
                reinit.extensions,
            ):
                raise WelcomeError("the new group's parameters differ from the ReInit's")
            check_membership(old, new_ids, same, everyone=True)
        else:
            if (ctx.version, ctx.cipher_suite) != (old.context.version, old.context.cipher_suite):
                raise WelcomeError("a branch keeps the old group's version and cipher suite")
            check_membership(old, new_ids, same, everyone=False)
    except WelcomeError:
        raise
    except MlsError as exc:
        raise WelcomeError(str(exc)) from None
    return usage
