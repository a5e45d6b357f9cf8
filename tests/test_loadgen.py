"""The load generator: its sans-IO pieces, and ``slimwire bench --json`` against a real node."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import hpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from slimwire._constants import DEFAULT_TTL, MULTICAST_FANOUT, SLIM_VERSION, UNICAST_FANOUT
from slimwire._proto import data_plane_pb2 as pb
from slimwire.errors import RemoteProtocolError
from slimwire.loadgen._config import BenchConfig, plan
from slimwire.loadgen._rawh2 import (
    DATA,
    HEADERS,
    PING,
    PREFACE,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    ClientCore,
    GrpcCounter,
    encode_frame,
    grpc_stream,
    split_grpc,
)
from slimwire.loadgen._stats import (
    ConsumerReport,
    LatencySummary,
    ProducerReport,
    format_text,
    percentile,
    summarize,
)
from slimwire.loadgen._wire import (
    FIRST_MESSAGE_ID,
    STAMP_LEN,
    LatencyTally,
    build_pool,
    build_subscribe,
    identity_token,
    read_stamp,
)
from slimwire.names import NULL_ID, Name

SRC = Name("org", "ns", "prod0", 12345)
DST = Name("org", "ns", "cons0", 67890)


def _split(buffer: bytes | bytearray) -> list[bytes]:
    """Independent gRPC de-framing for the tests."""
    out, pos = [], 0
    while pos < len(buffer):
        flag, length = struct.unpack_from(">BI", buffer, pos)
        assert flag == 0
        out.append(bytes(buffer[pos + 5 : pos + 5 + length]))
        pos += 5 + length
    assert pos == len(buffer)
    return out


def _fake_signer(header: pb.SLIMHeader) -> None:
    header.header_mac = b"\xaa" * 32


# ------------------------------------------------------------------------------- wire


def test_identity_token_is_sdk_shaped():
    token = identity_token("prod0", random.Random(1))
    parts = token.split(":")
    assert len(parts) == 5
    assert parts[0].startswith("prod0_")
    assert len(parts[0]) == len("prod0_") + 8
    assert parts[1].isdigit()
    assert len(parts[4]) == 43  # b64url of a 32-byte HMAC, no padding
    assert 210 <= len(token) <= 250


@pytest.mark.parametrize("multicast", [False, True])
def test_pool_messages_are_fixed_length_publishes(multicast: bool):
    dst = Name("org", "ns", "mcast", NULL_ID) if multicast else DST
    pool = build_pool(
        SRC,
        dst,
        identity=identity_token("prod0"),
        payload_size=100,
        multicast=multicast,
        signer=_fake_signer,
        count=300,
        sample_every=64,
    )
    messages = _split(pool.framed())
    assert messages == pool.messages
    assert len(messages) == pool.count == 300
    assert {len(m) for m in messages} == {pool.message_len}
    assert pool.frame_len == pool.message_len + 5
    session_ids = set()
    for i, raw in enumerate(messages):
        msg = pb.Message.FromString(raw)
        assert msg.WhichOneof("message_type") == "publish"
        h = msg.publish.header
        assert Name.from_proto(h.source) == SRC
        assert Name.from_proto(h.destination) == dst
        assert h.fanout == (MULTICAST_FANOUT if multicast else UNICAST_FANOUT)
        assert h.ttl == DEFAULT_TTL
        assert h.version == SLIM_VERSION
        assert h.header_mac == b"\xaa" * 32
        s = msg.publish.session
        assert s.message_id == FIRST_MESSAGE_ID + i
        assert s.session_message_type == pb.SESSION_MESSAGE_TYPE_MSG
        assert s.session_type == (
            pb.SESSION_TYPE_MULTICAST if multicast else pb.SESSION_TYPE_POINT_TO_POINT
        )
        session_ids.add(s.session_id)
        app = msg.publish.msg.app_payload
        assert app.payload_type == "msg"
        assert len(app.blob) == 100
        # The stamp area is the very end of the message, whatever precedes it.
        assert raw.endswith(app.blob)
        assert app.blob[-1] == (1 if i % 64 == 0 else 0)
    assert len(session_ids) == 1


def test_pool_message_size_matches_the_reference_method():
    """100 B payload with an SDK-shaped token: about the reference's 562-byte message."""
    rng = random.Random(7)
    pool = build_pool(
        Name("org", "ns", "prod0", rng.getrandbits(120)),
        Name("org", "ns", "cons0", rng.getrandbits(120)),
        identity=identity_token("bench-prod0", rng),
        payload_size=100,
        multicast=False,
        signer=_fake_signer,
        count=1,
    )
    assert 550 <= pool.message_len <= 575


def test_stamp_patches_only_sampled_slots_in_range():
    pool = build_pool(
        SRC,
        DST,
        identity="x",
        payload_size=50,
        multicast=False,
        signer=None,
        count=200,
        sample_every=10,
    )
    before = list(pool.messages)
    pool.stamp(15, 95, 123_456_789)
    after = pool.messages
    for i, (b, a) in enumerate(zip(before, after, strict=True)):
        if i % 10 == 0 and 15 <= i < 95:
            assert read_stamp(a) == 123_456_789
            assert a[:-STAMP_LEN] == b[:-STAMP_LEN]
        else:
            assert a == b
    assert len(pool.framed(20, 22)) == 2 * pool.frame_len


def test_small_payload_disables_sampling():
    pool = build_pool(SRC, DST, identity="", payload_size=4, multicast=False, signer=None, count=8)
    assert pool.sample_every == 0
    pool.stamp(0, 8, 99)  # a no-op, not an error
    assert all(read_stamp(m) is None for m in pool.messages)


def test_subscribe_message():
    raw = build_subscribe(DST, 42, "tok", _fake_signer)
    msg = pb.Message.FromString(raw)
    sub = msg.subscribe
    assert sub.subscription_id == 42
    assert Name.from_proto(sub.header.source) == DST == Name.from_proto(sub.header.destination)
    assert sub.header.fanout == 1
    assert sub.header.ttl == DEFAULT_TTL
    assert sub.header.identity == "tok"
    assert len(sub.header.header_mac) == 32


def _stamped(payload: bytes, stamp: int | None) -> bytes:
    if stamp is None:
        return payload + bytes(STAMP_LEN)
    return payload + struct.pack("<Q", stamp) + b"\x01"


def test_tally_counts_and_samples():
    tally = LatencyTally(not_before_ns=1_000)
    batch = [
        _stamped(b"a" * 10, 1_500),
        _stamped(b"b" * 10, None),
        _stamped(b"c", 5_000),  # from the future: corrupt
        _stamped(b"", 10),  # before the run: corrupt
        b"\x01",  # too short to carry a stamp
    ]
    tally.feed(batch, now_ns=2_000)
    assert tally.count == 5
    assert tally.bytes == sum(map(len, batch))
    assert tally.samples == [500]
    assert tally.bad_stamps == 2


@given(
    st.lists(st.binary(max_size=40), max_size=30),
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**64 - 1),
)
def test_tally_accepts_any_bytes(messages: list[bytes], not_before: int, now: int):
    """Whatever the network delivers, the tally counts it and never raises."""
    tally = LatencyTally(not_before_ns=not_before)
    tally.feed(messages, now)
    assert tally.count == len(messages)
    assert tally.bytes == sum(map(len, messages))
    flagged = [m for m in messages if len(m) >= STAMP_LEN and m[-1] == 1]
    assert len(tally.samples) + tally.bad_stamps == len(flagged)
    assert all(0 <= s <= now - not_before for s in tally.samples)
    for m in messages:
        stamp = read_stamp(m)
        assert (stamp is not None) == (m in flagged)


# ------------------------------------------------------------------------------- stats


@given(st.lists(st.integers(0, 10**12), min_size=1, max_size=200), st.floats(0, 100))
def test_percentile_is_nearest_rank(values: list[int], q: float):
    ordered = sorted(values)
    p = percentile(ordered, q)
    assert p in ordered
    at_most = sum(1 for v in ordered if v <= p)
    assert at_most >= q / 100 * len(ordered)  # at least q % of samples are <= p
    below = sum(1 for v in ordered if v < p)
    assert below < max(1, q / 100 * len(ordered)) or q == 0


def test_percentile_edges():
    assert percentile([], 50) == 0
    assert percentile([5], 0) == 5
    assert percentile(list(range(1, 101)), 99) == 99
    assert percentile(list(range(1, 101)), 100) == 100
    with pytest.raises(ValueError, match="out of range"):
        percentile([1], 101)


def test_latency_summary_in_ms():
    s = LatencySummary.from_ns([1_000_000, 2_000_000, 3_000_000, 4_000_000])
    assert s.samples == 4
    assert (s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms) == (2.0, 4.0, 4.0, 4.0)


def _consumer(index: int, expected: int, received: int, last_ns: int) -> ConsumerReport:
    return ConsumerReport(index, expected, received, received * 500, 0, last_ns, (10, 20))


def test_summarize_unicast_and_fanout_loss():
    go = 1_000_000_000
    producers = [ProducerReport(0, 600, go, go + 10**9), ProducerReport(1, 400, go, go + 10**9)]
    uni = summarize(
        endpoint="e",
        fanout=False,
        payload_bytes=100,
        message_bytes=500,
        go_ns=go,
        producers=producers,
        consumers=[_consumer(0, 600, 600, go + 2 * 10**9), _consumer(1, 400, 390, go + 10**9)],
    )
    assert (uni.published, uni.expected, uni.delivered, uni.lost) == (1000, 1000, 990, 10)
    assert uni.elapsed_s == 2.0
    assert uni.msgs_per_s == 495.0
    assert uni.mb_per_s == round(990 * 500 / 2 / 1e6, 3)
    assert uni.latency.samples == 4
    fan = summarize(
        endpoint="e",
        fanout=True,
        payload_bytes=100,
        message_bytes=500,
        go_ns=go,
        producers=producers[:1],
        consumers=[_consumer(i, 600, 600, go + 10**9) for i in range(3)],
    )
    assert (fan.expected, fan.delivered, fan.lost) == (1800, 1800, 0)
    data = json.loads(fan.to_json())
    assert data["latency"]["samples"] == 6
    assert data["fanout"] is True
    assert "1,800" in format_text(fan)


# ------------------------------------------------------------------------------- plan


def test_plan_unicast_pairs_producers_with_consumers():
    cfg = BenchConfig("http://x", messages=1001, size=10, producers=3, consumers=2)
    consumers, producers = plan(cfg, random.Random(0))
    assert sum(p.messages for p in producers) == 1001
    assert [p.messages for p in producers] == [334, 334, 333]
    assert [c.expected for c in consumers] == [334 + 333, 334]
    assert producers[2].destination == consumers[0].name
    assert all(c.name.has_id and c.name.service == f"cons{c.index}" for c in consumers)
    assert all(not p.multicast for p in producers)


def test_plan_fanout_uses_one_multicast_name():
    cfg = BenchConfig("http://x", messages=500, size=10, producers=1, consumers=8, fanout=True)
    consumers, producers = plan(cfg)
    assert {c.name.without_id() for c in consumers} == {Name("org", "ns", "mcast")}
    assert len({c.name.id for c in consumers}) == 8
    assert all(c.expected == 500 for c in consumers)
    assert producers[0].destination == Name("org", "ns", "mcast")
    assert producers[0].multicast


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"messages": -1}, "messages"),
        ({"producers": 0}, "at least one"),
        ({"consumers": 2}, "producers >= consumers"),  # unicast needs a producer per consumer
        ({"timeout": 0}, "positive"),
        ({"sample_every": -1}, "sample_every"),
        ({"link": "carrier-pigeon"}, "link must be"),
    ],
)
def test_config_rejects_nonsense(kwargs: dict[str, object], match: str):
    base: dict[str, object] = {"messages": 10, "size": 10}
    with pytest.raises(ValueError, match=match):
        BenchConfig("http://x", **{**base, **kwargs})  # type: ignore[arg-type]


def test_config_raw_link_is_h2c_only():
    with pytest.raises(ValueError, match="h2c only"):
        BenchConfig("https://x:1", messages=1, size=1)
    assert BenchConfig("https://x:1", messages=1, size=1, link="transport").link == "transport"


# ------------------------------------------------------------------------------- end to end

REPO = Path(__file__).resolve().parent.parent
REF_NODE = REPO / "tests" / "interop" / "_ref_node.py"
READY_TIMEOUT = 30.0


def _slimwire_node_exists() -> bool:
    return importlib.util.find_spec("slimwire.cli._node") is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_line(proc: subprocess.Popen[bytes], needle: bytes) -> bytes:
    """Read the node's output until a line containing ``needle`` (with a deadline)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            for line in buf.splitlines():
                if needle in line:
                    return line
    raise AssertionError(f"node not ready: {buf[-2000:]!r}")


@pytest.fixture(params=["reference", "slimwire"])
def node_endpoint(request: pytest.FixtureRequest) -> Iterator[str]:
    """A real node on loopback, ended by its PID afterwards (and bounded by its own lifetime)."""
    kind = request.param
    if kind == "slimwire" and not _slimwire_node_exists():
        pytest.skip("the slimwire node (slimwire.cli._node) is not there yet")
    port = _free_port()
    if kind == "reference":
        cmd = [sys.executable, str(REF_NODE), "--port", str(port), "--max-lifetime", "120"]
    else:
        cmd = [sys.executable, "-m", "slimwire", "node", "--listen", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,  # the reference node exits when this closes
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL if kind == "reference" else subprocess.STDOUT,
    )
    try:
        _wait_line(proc, b"ready")
        if proc.stdout is not None and kind != "reference":
            # Keep the pipe from filling up while the node logs.
            threading.Thread(target=proc.stdout.read, daemon=True).start()
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _bench(endpoint: str, *args: str) -> dict[str, object]:
    cmd = [sys.executable, "-m", "slimwire", "bench", "--endpoint", endpoint, "--json"]
    cmd += ["--timeout", "20", "--idle", "3", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout  # --json prints exactly one object
    return dict(json.loads(lines[0]))


def test_bench_json_unicast(node_endpoint: str):
    r = _bench(node_endpoint, "--messages", "3000", "--size", "100")
    assert (r["producers"], r["consumers"], r["fanout"]) == (1, 1, False)
    assert r["published"] == r["expected"] == r["delivered"] == 3000
    assert r["lost"] == 0
    assert r["errors"] == []
    assert r["bad_stamps"] == 0
    assert r["validated"] is True  # a Publish for us, ttl 8 -> 7, incoming_conn, node's MAC
    assert 550 <= r["message_bytes"] <= 575  # type: ignore[operator]
    assert r["msgs_per_s"] > 0
    assert r["mb_per_s"] > 0
    assert r["last_arrival_ns"] > r["go_ns"]  # type: ignore[operator]
    lat = r["latency"]
    assert isinstance(lat, dict)
    assert lat["samples"] == 3000 // 64 + 1
    assert 0 < lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"] <= lat["max_ms"]


def test_bench_json_over_slimwire_transport(node_endpoint: str):
    """The same run on the general-purpose transport (``--link transport``)."""
    # --no-uvloop: the transport's protocol asserts an asyncio.Transport, which uvloop's is not.
    r = _bench(
        node_endpoint, "--messages", "2000", "--size", "100", "--link", "transport", "--no-uvloop"
    )
    assert r["published"] == r["delivered"] == 2000
    assert r["lost"] == 0
    assert r["validated"] is True
    assert r["errors"] == []


def test_bench_json_fanout_and_two_producers(node_endpoint: str):
    r = _bench(node_endpoint, "--messages", "1000", "--size", "64", "-c", "3", "--fanout")
    assert (r["consumers"], r["fanout"], r["published"]) == (3, True, 1000)
    assert r["expected"] == r["delivered"] == 3000
    assert r["lost"] == 0
    assert r["validated"] is True
    assert r["errors"] == []
    r = _bench(node_endpoint, "--messages", "2001", "--size", "1024", "-p", "2", "-c", "2")
    assert r["published"] == r["delivered"] == 2001
    assert r["lost"] == 0
    assert r["message_bytes"] > 1024  # type: ignore[operator]


def test_stamp_keeps_both_pool_views_identical():
    pool = build_pool(
        SRC,
        DST,
        identity="tok",
        payload_size=30,
        multicast=False,
        signer=None,
        count=50,
        sample_every=7,
    )
    pool.stamp(3, 40, 987_654_321)
    assert _split(pool.buffer) == pool.messages
    assert bytes(pool.view(7, 8))[5:] == pool.messages[7]
    assert read_stamp(pool.messages[7]) == 987_654_321
    assert read_stamp(pool.messages[1]) is None


# ------------------------------------------------------------------------------- raw h2c link


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for p in [*points, len(data)]:
        out.append(data[prev:p])
        prev = p
    return out


_messages = st.lists(
    st.tuples(st.binary(max_size=60), st.one_of(st.none(), st.integers(0, 2**40))),
    min_size=1,
    max_size=25,
)


@given(_messages, st.lists(st.integers(0, 10**6), max_size=8))
def test_grpc_counter_matches_the_messages_however_split(
    items: list[tuple[bytes, int | None]], cuts: list[int]
):
    messages = [_stamped(body, stamp) for body, stamp in items]
    counter = GrpcCounter(not_before_ns=0)
    now = 2**41
    for chunk in _chunks(grpc_stream(messages), cuts):
        counter.feed(chunk, now)
    assert counter.count == len(messages)
    assert counter.bytes == sum(map(len, messages))
    assert sorted(counter.samples) == sorted(now - s for _, s in items if s is not None)
    assert counter.bad_stamps == 0
    assert counter.first == messages[0]


@given(st.binary(max_size=300), st.lists(st.integers(0, 400), max_size=5))
def test_grpc_counter_rejects_garbage_cleanly(data: bytes, cuts: list[int]):
    counter = GrpcCounter(max_message=1000)
    try:
        for chunk in _chunks(data, cuts):
            counter.feed(chunk, 10)
    except RemoteProtocolError:
        return
    assert counter.count >= 0


def _server_frames(payload_messages: list[bytes], pad: int) -> bytes:
    enc = hpack.Encoder()
    grpc = grpc_stream(payload_messages)
    half = len(grpc) // 2
    padded = bytes([pad]) + grpc[half:] + bytes(pad)
    return b"".join(
        [
            encode_frame(
                SETTINGS, 0, 0, struct.pack(">HI", 4, 1 << 20) + struct.pack(">HI", 5, 1 << 22)
            ),
            encode_frame(PING, 0, 0, b"12345678"),
            encode_frame(HEADERS, 0x4, 1, enc.encode([(":status", "200"), ("date", "x")])),
            encode_frame(DATA, 0, 1, grpc[:half]),
            encode_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1000)),
            encode_frame(DATA, 0x8, 1, padded),
            encode_frame(0x42, 0, 0, b"unknown frame types are ignored"),
        ]
    )


@given(
    st.lists(st.binary(min_size=STAMP_LEN, max_size=80), min_size=1, max_size=10),
    st.integers(0, 20),
    st.lists(st.integers(0, 10**5), max_size=10),
)
def test_client_core_parses_frames_however_split(messages: list[bytes], pad: int, cuts: list[int]):
    wire = _server_frames(messages, pad)
    core = ClientCore("127.0.0.1:1", "/p", window=1 << 20)
    initial = core.take_output()
    assert initial.startswith(PREFACE)
    flow = sum(core.receive(chunk) for chunk in _chunks(wire, cuts))
    assert core.response_headers == [(":status", "200"), ("date", "x")]
    assert split_grpc(core.grpc_buffer) == messages
    grpc_len = len(grpc_stream(messages))
    assert flow == grpc_len + 1 + pad  # padding counts against flow control
    assert core.peer_max_frame == 1 << 22
    assert core.send_stream_window == 1 << 20
    assert core.send_conn_window == 65535 + 1000
    out = core.take_output()
    assert encode_frame(PING, 1, 0, b"12345678") in out  # PING acked
    assert encode_frame(SETTINGS, 1, 0) in out  # SETTINGS acked
    assert not core.ended


@given(st.binary(max_size=400), st.lists(st.integers(0, 500), max_size=6))
def test_client_core_rejects_garbage_cleanly(data: bytes, cuts: list[int]):
    """Whatever the peer sends, the core either copes or raises RemoteProtocolError."""
    core = ClientCore("h", "/p")
    core.max_frame = 300
    try:
        for chunk in _chunks(data, cuts):
            core.receive(chunk)
    except RemoteProtocolError:
        return


def test_client_core_send_respects_windows_and_frame_size():
    core = ClientCore("h", "/p")
    core.take_output()
    data = bytes(range(256)) * 1000  # 256,000 bytes
    assert core.send_data(data) == 65535  # the default initial windows
    assert core.send_data(data) == 0
    frames = core.take_output()
    sizes = []
    pos = 0
    while pos < len(frames):
        hi, lo, ftype, _flags, sid = struct.unpack_from(">BHBBI", frames, pos)
        length = hi << 16 | lo
        assert (ftype, sid) == (DATA, 1)
        assert length <= 16384
        sizes.append(length)
        pos += 9 + length
    assert sum(sizes) == 65535
    core.receive(encode_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 100)))
    assert core.send_data(data) == 0  # the stream window is still closed
    core.receive(encode_frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 500)))
    assert core.send_data(data) == 100


def test_client_core_reports_reset_and_grpc_status():
    core = ClientCore("h", "/p")
    enc = hpack.Encoder()
    core.receive(encode_frame(HEADERS, 0x4, 1, enc.encode([(":status", "200")])))
    core.receive(
        encode_frame(HEADERS, 0x5, 1, enc.encode([("grpc-status", "14"), ("grpc-message", "x")]))
    )
    assert core.ended
    assert "grpc-status 14" in core.error
    core = ClientCore("h", "/p")
    core.receive(encode_frame(RST_STREAM, 0, 1, struct.pack(">I", 8)))
    assert core.ended
    assert "reset" in core.error


def test_bench_fails_fast_and_cleanly_without_a_node():
    port = _free_port()  # nothing listens there
    cmd = [sys.executable, "-m", "slimwire", "bench", "--endpoint", f"http://127.0.0.1:{port}"]
    proc = subprocess.run(
        [*cmd, "--messages", "10", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "cannot connect" in proc.stderr
