"""A JWKS URL never blocks the event loop: background fetches, stale-while-revalidate, retries.

Every test talks to a real HTTP server on 127.0.0.1 whose answers can be held back (a gate the
test opens), so "the loop stayed responsive" is observed directly: a ticker task kept ticking
while the server still held the JWKS request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterator

import pytest

from slimwire.auth import JwksUrl, JwsAlgorithm, JwtSigner, JwtVerifier, jwks_document
from slimwire.errors import AuthError
from tests.auth._jwks_server import JwksServer, running

NOW = 1_700_000_000.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server() -> Iterator[JwksServer]:
    with running() as srv:
        yield srv


def _claims(**extra: object) -> dict[str, object]:
    claims: dict[str, object] = {"sub": "alice", "aud": "slim", "iat": NOW, "exp": NOW + 600}
    claims.update(extra)
    return claims


def _verifier(source: JwksUrl) -> JwtVerifier:
    return JwtVerifier(source, audience="slim", clock=Clock(NOW))


async def _until(condition: Callable[[], bool], what: str, limit: float = 5.0) -> None:
    """Wait (yielding to the loop) until ``condition`` holds; fail after ``limit`` seconds."""
    try:
        async with asyncio.timeout(limit):
            while not condition():
                await asyncio.sleep(0.005)
    except TimeoutError:
        pytest.fail(f"timed out waiting until {what}")


class _Ticker:
    """A task that ticks every 10 ms: the proof that the loop kept running."""

    def __init__(self) -> None:
        self.ticks = 0
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0.01)
            self.ticks += 1

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def test_unknown_kid_on_the_loop_is_refused_at_once_and_fetched_behind(
    server: JwksServer,
) -> None:
    k1 = JwtSigner.generate(JwsAlgorithm.ES256, "k1")
    k2 = JwtSigner.generate(JwsAlgorithm.EDDSA, "k2")
    server.publish(k1)
    source = JwksUrl(server.url, min_interval=0, timeout=5)
    verifier = _verifier(source)
    await verifier.prefetch()
    assert server.hits == 1
    assert verifier.verify(k1.sign(_claims())).subject == "alice"

    # The authority rotates to k2; its JWKS answers slowly (held until we open the gate).
    server.publish(k1, k2)
    server.gate.clear()
    ticker = _Ticker()
    try:
        rotated = k2.sign(_claims())
        with pytest.raises(AuthError, match=r"unknown key id 'k2'.*JWKS refresh scheduled"):
            verifier.verify(rotated)
        assert source.refreshing
        await _until(lambda: server.held == 1, "the server holds the JWKS request")
        # More tokens with the new kid while the fetch is in flight: refused at once, and no
        # second request (one fetch in flight at most).
        for _ in range(5):
            with pytest.raises(AuthError, match="refresh scheduled"):
                verifier.verify(rotated)
        base = ticker.ticks
        await _until(lambda: ticker.ticks >= base + 10, "the loop ticked 10 times")
        # The loop ticked while the JWKS request was still unanswered: the fetch is not on it.
        assert server.held == 1
        assert source.refreshing
        assert server.hits == 2
        server.gate.set()
        await _until(lambda: not source.refreshing, "the background fetch ended")
        # The sender's retry now verifies, and the old key still works.
        assert verifier.verify(rotated).subject == "alice"
        assert verifier.verify(k1.sign(_claims(jti="x"))).subject == "alice"
        assert server.hits == 2
    finally:
        await ticker.stop()


async def test_first_use_on_the_loop_without_prefetch_fetches_in_background(
    server: JwksServer,
) -> None:
    k1 = JwtSigner.generate(JwsAlgorithm.ES256, "k1")
    server.publish(k1)
    server.gate.clear()
    source = JwksUrl(server.url, min_interval=5)
    verifier = _verifier(source)
    token = k1.sign(_claims())
    with pytest.raises(AuthError, match="refresh scheduled"):
        verifier.verify(token)
    server.gate.set()
    await _until(lambda: not source.refreshing, "the background fetch ended")
    assert verifier.verify(token).subject == "alice"
    assert server.hits == 1


async def test_stale_keys_are_served_while_revalidating(server: JwksServer) -> None:
    old = JwtSigner.generate(JwsAlgorithm.ES256, "old")
    new = JwtSigner.generate(JwsAlgorithm.ES256, "new")
    server.publish(old)
    mono = Clock(0.0)
    source = JwksUrl(server.url, ttl=60, min_interval=5, clock=mono)
    verifier = _verifier(source)
    await source.prefetch()
    # Past the ttl the old key set is still served, and a fetch starts behind it.
    mono.now = 61.0
    server.publish(new)
    server.gate.clear()
    assert verifier.verify(old.sign(_claims(jti="1"))).subject == "alice"
    assert source.refreshing
    # A second stale read does not start a second fetch.
    assert verifier.verify(old.sign(_claims(jti="2"))).subject == "alice"
    await _until(lambda: server.held == 1, "the server holds the JWKS request")
    server.gate.set()
    await _until(lambda: not source.refreshing, "the background fetch ended")
    assert server.hits == 2
    # The new set replaced the old: the dropped key no longer verifies, the new one does.
    assert verifier.verify(new.sign(_claims())).subject == "alice"
    with pytest.raises(AuthError, match="no ES256 key for kid 'old'"):
        verifier.verify(old.sign(_claims(jti="3")))


async def test_failed_fetch_is_logged_and_retried_only_after_min_interval(
    server: JwksServer, caplog: pytest.LogCaptureFixture
) -> None:
    k1 = JwtSigner.generate(JwsAlgorithm.ES256, "k1")
    server.publish(k1)
    server.status = 500
    server.gate.clear()
    mono = Clock(100.0)
    source = JwksUrl(server.url, min_interval=5, clock=mono)
    verifier = _verifier(source)
    token = k1.sign(_claims())
    with caplog.at_level(logging.WARNING, logger="slimwire.auth._jwks"):
        with pytest.raises(AuthError, match="refresh scheduled"):
            verifier.verify(token)
        server.gate.set()
        await _until(lambda: not source.refreshing, "the failed fetch ended")
    assert server.hits == 1
    assert any("not fetched" in r.getMessage() and "500" in r.getMessage() for r in caplog.records)
    # Within min_interval: refused with the reason, and no new request is even started.
    for t in (101.0, 104.9):
        mono.now = t
        with pytest.raises(AuthError, match=r"last JWKS fetch failed \(.*500.*\); next attempt"):
            verifier.verify(token)
        assert not source.refreshing
    assert server.hits == 1
    # After min_interval the next token starts one retry, which now succeeds.
    server.status = 200
    server.gate.clear()
    mono.now = 105.0
    with pytest.raises(AuthError, match="refresh scheduled"):
        verifier.verify(token)
    server.gate.set()
    await _until(lambda: not source.refreshing, "the retry ended")
    assert server.hits == 2
    assert verifier.verify(token).subject == "alice"


async def test_random_kids_cause_at_most_one_fetch_per_min_interval(server: JwksServer) -> None:
    k1 = JwtSigner.generate(JwsAlgorithm.ES256, "k1")
    server.publish(k1)
    mono = Clock(0.0)
    source = JwksUrl(server.url, min_interval=5, clock=mono)
    verifier = _verifier(source)
    await verifier.prefetch()
    mono.now = 10.0
    for i in range(20):
        forged = JwtSigner.generate(JwsAlgorithm.ES256, f"forged-{i}")
        with pytest.raises(AuthError, match=f"'forged-{i}'"):
            verifier.verify(forged.sign(_claims()))
        await _until(lambda: not source.refreshing, "the fetch ended")
    assert server.hits == 2  # the prefetch, then one refresh for the whole burst


async def test_prefetch_reports_failure_and_joins_a_fetch_in_flight(server: JwksServer) -> None:
    k1 = JwtSigner.generate(JwsAlgorithm.ES256, "k1")
    server.status = 404
    source = JwksUrl(server.url)
    with pytest.raises(AuthError, match=r"not fetched.*404"):
        await source.prefetch()
    # Not rate limited (an explicit call), and it joins what is in flight.
    server.status = 200
    server.publish(k1)
    server.gate.clear()
    first = asyncio.create_task(source.prefetch())
    await _until(lambda: server.held == 1, "the server holds the JWKS request")
    second = asyncio.create_task(source.prefetch())
    await asyncio.sleep(0.02)
    assert not first.done()
    assert not second.done()
    server.gate.set()
    async with asyncio.timeout(5):
        await asyncio.gather(first, second)
    assert server.hits == 2
    assert [k.kid for k in source.keys("k1")] == ["k1"]


async def test_cancelled_prefetch_leaves_the_fetch_running(server: JwksServer) -> None:
    k1 = JwtSigner.generate(JwsAlgorithm.ES256, "k1")
    server.publish(k1)
    server.gate.clear()
    source = JwksUrl(server.url)
    task = asyncio.create_task(source.prefetch())
    await _until(lambda: server.held == 1, "the server holds the JWKS request")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    server.gate.set()
    await _until(lambda: not source.refreshing, "the fetch ended")
    assert _verifier(source).verify(k1.sign(_claims())).subject == "alice"


def test_without_a_loop_a_fetch_blocks_as_before(server: JwksServer) -> None:
    k1 = JwtSigner.generate(JwsAlgorithm.ES256, "k1")
    k2 = JwtSigner.generate(JwsAlgorithm.ES256, "k2")
    server.publish(k1)
    mono = Clock(0.0)
    source = JwksUrl(server.url, ttl=60, min_interval=5, clock=mono)
    verifier = _verifier(source)
    # First use fetches inline, and the very first token verifies.
    assert verifier.verify(k1.sign(_claims())).subject == "alice"
    assert server.hits == 1
    assert not source.refreshing
    # Rotation: the unknown kid refetches inline and the same call succeeds.
    server.publish(k1, k2)
    mono.now = 10.0
    assert verifier.verify(k2.sign(_claims())).subject == "alice"
    assert server.hits == 2
    # Past the ttl the fetch is inline too (no stale-while-revalidate off the loop).
    server.publish(k2)
    mono.now = 100.0
    with pytest.raises(AuthError, match="no ES256 key for kid 'k1'"):
        verifier.verify(k1.sign(_claims(jti="late")))
    assert server.hits == 3


def test_a_worker_thread_blocks_even_while_a_loop_runs_elsewhere(server: JwksServer) -> None:
    """The choice is per thread: a worker thread of an app whose main thread runs a loop (what
    ``averify`` uses) still fetches inline."""
    k1 = JwtSigner.generate(JwsAlgorithm.EDDSA, "k1")
    server.publish(k1)
    source = JwksUrl(server.url)
    verifier = _verifier(source)

    async def main() -> str:
        return (await asyncio.to_thread(verifier.verify, k1.sign(_claims()))).subject

    assert asyncio.run(main()) == "alice"
    assert server.hits == 1


async def test_averify_on_the_loop_waits_for_the_keys(server: JwksServer) -> None:
    k1 = JwtSigner.generate(JwsAlgorithm.ES256, "k1")
    server.publish(k1)
    server.gate.clear()
    verifier = _verifier(JwksUrl(server.url))
    ticker = _Ticker()
    try:
        task = asyncio.create_task(verifier.averify(k1.sign(_claims())))
        await _until(lambda: server.held == 1, "the server holds the JWKS request")
        base = ticker.ticks
        await _until(lambda: ticker.ticks >= base + 5, "the loop ticked 5 times")
        assert not task.done()
        server.gate.set()
        async with asyncio.timeout(5):
            assert (await task).subject == "alice"
    finally:
        await ticker.stop()


def test_blocking_can_be_forced_either_way(server: JwksServer) -> None:
    k1 = JwtSigner.generate(JwsAlgorithm.ES256, "k1")
    server.publish(k1)
    token = k1.sign(_claims())
    # blocking=False off a loop: background, as on a loop.
    source = JwksUrl(server.url, blocking=False)
    verifier = _verifier(source)
    server.gate.clear()
    with pytest.raises(AuthError, match="refresh scheduled"):
        verifier.verify(token)
    server.gate.set()
    deadline = time.monotonic() + 5
    while source.refreshing and time.monotonic() < deadline:
        time.sleep(0.005)
    assert verifier.verify(token).subject == "alice"

    # blocking=True on a loop: inline (for callers that accept the stall).
    async def on_loop() -> str:
        return _verifier(JwksUrl(server.url, blocking=True)).verify(token).subject

    assert asyncio.run(on_loop()) == "alice"
    assert server.hits == 2


def test_a_dead_endpoint_fails_cleanly_in_both_modes() -> None:
    # A port nobody listens on (bound, then closed) refuses the connection.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/jwks.json"
    k1 = JwtSigner.generate(JwsAlgorithm.ES256, "k1")
    token = k1.sign(_claims())
    with pytest.raises(AuthError, match="no ES256 key"):
        _verifier(JwksUrl(url, timeout=2)).verify(token)

    async def on_loop() -> None:
        source = JwksUrl(url, timeout=2)
        # a refused connection may fail before the verifier even looks again
        with pytest.raises(AuthError, match=r"refresh scheduled|last JWKS fetch failed"):
            _verifier(source).verify(token)
        await _until(lambda: not source.refreshing, "the fetch ended")
        with pytest.raises(AuthError, match="last JWKS fetch failed"):
            _verifier(source).verify(token)

    asyncio.run(on_loop())


async def test_averify_joins_the_background_fetch_in_flight(server: JwksServer) -> None:
    k1 = JwtSigner.generate(JwsAlgorithm.ES256, "k1")
    server.publish(k1)
    server.gate.clear()
    source = JwksUrl(server.url)
    verifier = _verifier(source)
    token = k1.sign(_claims())
    with pytest.raises(AuthError, match="refresh scheduled"):
        verifier.verify(token)
    await _until(lambda: server.held == 1, "the server holds the JWKS request")
    # averify's worker thread may block: it waits for the fetch in flight, not a second one.
    task = asyncio.create_task(verifier.averify(token))
    await asyncio.sleep(0.02)
    assert not task.done()
    server.gate.set()
    async with asyncio.timeout(5):
        assert (await task).subject == "alice"
    assert server.hits == 1


async def test_an_opener_bug_does_not_wedge_the_source(caplog: pytest.LogCaptureFixture) -> None:
    """An unexpected exception (not a network failure) ends the fetch all the same: it is
    logged, raised to a blocking caller, and the next fetch can start."""
    k1 = JwtSigner.generate(JwsAlgorithm.ES256, "k1")
    calls: list[str] = []

    def opener(url: str, timeout: float) -> bytes:
        calls.append(url)
        if len(calls) < 3:
            raise RuntimeError("opener bug")
        return json.dumps(jwks_document([k1.public])).encode()

    mono = Clock(0.0)
    source = JwksUrl("http://127.0.0.1:9/jwks.json", min_interval=5, clock=mono, opener=opener)
    verifier = _verifier(source)
    token = k1.sign(_claims())
    with caplog.at_level(logging.ERROR, logger="slimwire.auth._jwks"):
        with pytest.raises(AuthError, match=r"refresh scheduled|unexpected RuntimeError"):
            verifier.verify(token)
        await _until(lambda: not source.refreshing, "the failed fetch ended")
    assert "fetch failed unexpectedly" in caplog.text
    with pytest.raises(AuthError, match=r"last JWKS fetch failed \(unexpected RuntimeError"):
        verifier.verify(token)
    mono.now = 5.0
    with pytest.raises(RuntimeError, match="opener bug"):
        await asyncio.to_thread(source.refresh)
    assert not source.refreshing
    mono.now = 10.0
    assert (await verifier.averify(token)).subject == "alice"
    assert len(calls) == 3
