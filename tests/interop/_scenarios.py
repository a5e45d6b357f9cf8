"""The interop scenarios (which apps, on which nodes) and what their reports must show.

A scenario only names endpoints, so the same scenario runs with every app on one node, or with
apps spread over a chain of nodes of different kinds. The checks are strict: every payload, its
order, its sender, its payload type and user metadata, session close and group removal.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ._harness import AppResult, AppSpec, run_apps, unique

PAYLOAD_TYPE = "interop"  # what _ref_app.py sends


def _flags(*, mls: bool, reliable: bool) -> tuple[str, ...]:
    return (*(("--mls",) if mls else ()), *(("--reliable",) if reliable else ()))


async def p2p(
    log_dir: Path,
    *,
    initiator_endpoint: str,
    responder_endpoint: str,
    mls: bool,
    reliable: bool,
    direction: str,
    count: int = 5,
) -> tuple[AppResult, AppResult]:
    """A point-to-point session: K request/reply rounds in ``direction``, then close."""
    alice, bob = f"org/ns/{unique('alice')}", f"org/ns/{unique('bob')}"
    nonce = unique("n")
    common = (*_flags(mls=mls, reliable=reliable), "--direction", direction)
    common += ("--count", str(count), "--nonce", nonce)
    responder = AppSpec("p2p-responder", bob, responder_endpoint, common)
    initiator = AppSpec("p2p-initiator", alice, initiator_endpoint, (*common, "--peer", bob))
    results = await run_apps(log_dir, [responder], [initiator])
    return results[alice], results[bob]


def check_p2p(
    initiator: AppResult, responder: AppResult, *, mls: bool, direction: str, count: int = 5
) -> None:
    """Both sides completed every round with the exact payloads, in order, from the right peer."""
    for app in (initiator, responder):
        assert app.ok, app.explain()
    nonce = _flag_value(initiator, "--nonce")
    requests = [f"req-{i}-{nonce}" for i in range(count)]
    echoes = [f"echo:{r}" for r in requests]
    # forward: alice sends requests, bob echoes; reverse: bob sends, alice echoes
    at_initiator = echoes if direction == "forward" else requests
    at_responder = requests if direction == "forward" else echoes
    got_i = [m["payload"] for m in initiator["replies"]]
    got_r = [m["payload"] for m in responder["received"]]
    assert got_i == at_initiator, initiator.explain()
    assert got_r == at_responder, responder.explain()
    for app, peer in ((initiator, responder), (responder, initiator)):
        messages = app["replies"] if "replies" in app.report else app["received"]
        for i, m in enumerate(messages):
            assert m["source"] == peer.spec.name, app.explain()
            assert m["payload_type"] == PAYLOAD_TYPE, app.explain()
            assert m["metadata"].get("seq") == str(i), app.explain()
            # with MLS the reference adds the authenticated sender's identity to the metadata
            subject = m["metadata"].get("slim-peer-subject", "")
            if mls:
                assert subject.startswith(peer.spec.name + "_"), app.explain()
            else:
                assert subject == "", app.explain()
    assert responder["session_source"] == responder.spec.name, responder.explain()
    assert responder["session_metadata"].get("interop") == "1", responder.explain()
    # the initiator deleted the session: the responder must be told
    assert responder["closed_by_peer"] is True, responder.explain()


async def group(
    log_dir: Path,
    *,
    moderator_endpoint: str,
    participant_endpoints: Sequence[str],
    mls: bool = True,
    reliable: bool = True,
    remove_index: int | None = 0,
) -> tuple[AppResult, list[AppResult]]:
    """A group: invite every participant, all-to-all messages, remove one, messages again."""
    tag = unique("g")
    moderator = f"org/{tag}/moderator"
    names = [f"org/{tag}/p{i}" for i in range(len(participant_endpoints))]
    removed = names[remove_index] if remove_index is not None else ""
    flags = (*_flags(mls=mls, reliable=reliable), "--channel", f"org/{tag}/chat")
    participants = [
        AppSpec("group-participant", n, ep, (*flags, "--moderator", moderator))
        for n, ep in zip(names, participant_endpoints, strict=True)
    ]
    mod = AppSpec(
        "group-moderator",
        moderator,
        moderator_endpoint,
        (*flags, "--invite", ",".join(names), "--remove", removed),
    )
    results = await run_apps(log_dir, participants, [mod])
    return results[moderator], [results[n] for n in names]


def check_group(moderator: AppResult, participants: Sequence[AppResult]) -> None:
    """Every member heard every other member; the removed one was told and heard no more; the
    others still received after the removal; the roster no longer lists the removed one."""
    apps = (moderator, *participants)
    why = "\n\n".join(app.explain() for app in apps)  # a group fails as a whole: show it all
    for app in apps:
        assert app.ok, f"{app.spec.name} failed\n{why}"
    removed = moderator["removed"]
    everyone = [app.spec.name for app in apps]
    remaining = {n for n in everyone if n != removed}
    for app in apps:
        phase1 = app["phase1"]
        assert set(phase1) == set(everyone) - {app.spec.name}, why
        # the sender named in the payload is the authenticated source of the message
        assert all(src == sender for sender, src in phase1.items()), why
    channel = _flag_value(moderator, "--channel")
    for p in participants:
        assert p["channel"] == channel, why
        assert p["closed"] is True, why
        if p.spec.name == removed:
            assert p["phase2"] == {}, why
        else:
            assert moderator.spec.name in p["phase2"], why
            assert removed not in p["phase2"], why
    assert set(moderator["phase2"]) == remaining - {moderator.spec.name}, why
    if removed:
        assert set(moderator["members_after_remove"]) == remaining, why


def _flag_value(app: AppResult, flag: str) -> str:
    args = app.spec.flags
    return args[args.index(flag) + 1]
