"""slimwire._tasks.BackgroundTask: idempotent start/stop, crashes logged, restart after a
crash, and a cancelled stop() that stays cancelled."""

from __future__ import annotations

import asyncio
import logging

import pytest

from slimwire._tasks import BackgroundTask


async def test_start_and_stop_are_idempotent() -> None:
    ticks: list[int] = []
    ended = asyncio.Event()

    async def loop() -> None:
        try:
            while True:
                ticks.append(1)
                await asyncio.sleep(0.001)
        finally:
            ended.set()

    bg = BackgroundTask(loop, "ticker")
    await bg.stop()  # not started: nothing to do
    first = bg.start()
    assert bg.start() is first
    assert bg.running
    async with asyncio.timeout(5):
        while len(ticks) < 3:
            await asyncio.sleep(0.001)
    await bg.stop()
    assert ended.is_set()  # stop() waited for the loop's cleanup
    assert first.cancelled()
    assert not bg.running
    await bg.stop()
    second = bg.start()
    assert second is not first
    await bg.stop()


async def test_a_crash_is_logged_at_once_and_start_runs_it_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[int] = []

    async def crash() -> None:
        runs.append(1)
        raise RuntimeError("boom")

    owner = logging.getLogger("tests.owner")
    bg = BackgroundTask(crash, "crasher", owner)
    with caplog.at_level(logging.ERROR, logger="tests.owner"):
        task = bg.start()
        async with asyncio.timeout(5):
            while not task.done():
                await asyncio.sleep(0)
        await asyncio.sleep(0)  # let the done callback run
    [record] = [r for r in caplog.records if r.name == "tests.owner"]
    assert "crasher crashed" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    assert not bg.running
    again = bg.start()  # a crashed run is replaced
    assert again is not task
    async with asyncio.timeout(5):
        while not again.done():
            await asyncio.sleep(0)
    await bg.stop()  # the crash is not raised again
    assert len(runs) == 2


async def test_cancelling_the_caller_of_stop_is_not_swallowed() -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await release.wait()  # slow cleanup: stop() has to wait for it

    bg = BackgroundTask(stubborn, "stubborn")
    bg.start()
    await asyncio.sleep(0)
    stopper = asyncio.create_task(bg.stop())
    await asyncio.sleep(0.01)
    stopper.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):
            await stopper
    assert stopper.cancelled()
    release.set()
