"""The sans-IO gRPC-over-h2 core, client and server cores wired back to back (no sockets)."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimwire.errors import LocalProtocolError, MessageTooLarge, RemoteProtocolError
from slimwire.transport import GrpcConnection, Status, encode_messages
from slimwire.transport._events import (
    ConnectionTerminated,
    Event,
    MessagesReceived,
    PingAcked,
    RequestReceived,
    ResponseReceived,
    StreamEnded,
    StreamFailed,
    StreamReset,
    WindowUpdated,
)

PATH = "/dataplane.proto.v1.DataPlaneService/OpenChannel"


def pair(**server_kw: int) -> tuple[GrpcConnection, GrpcConnection]:
    client = GrpcConnection(client_side=True)
    server = GrpcConnection(client_side=False, **server_kw)
    client.initiate()
    server.initiate()
    pump(client, server)
    return client, server


def pump(client: GrpcConnection, server: GrpcConnection) -> tuple[list[Event], list[Event]]:
    """Move bytes both ways until quiet; return (client events, server events)."""
    cev: list[Event] = []
    sev: list[Event] = []
    for _ in range(100):
        a = client.flush()
        if a:
            sev += server.receive_data(a)
        b = server.flush()
        if b:
            cev += client.receive_data(b)
        if not a and not b:
            return cev, sev
    raise AssertionError("connection did not settle")


def messages(events: list[Event], sid: int) -> list[bytes]:
    out: list[bytes] = []
    for e in events:
        if isinstance(e, MessagesReceived) and e.stream_id == sid:
            out += e.messages
    return out


def test_bidi_call_round_trip() -> None:
    client, server = pair()
    sid, out = client.start_request(PATH, "localhost:1", headers=[("x-link", "a")])
    out.push(b"one")
    out.push_many([b"two", b"three"])
    client.mark_dirty(sid, out)
    client.end_stream(sid)
    cev, sev = pump(client, server)
    req = next(e for e in sev if isinstance(e, RequestReceived))
    assert req.path == PATH
    assert ("x-link", "a") in req.headers
    assert ("te", "trailers") in req.headers
    assert ("content-type", "application/grpc") in req.headers
    assert messages(sev, sid) == [b"one", b"two", b"three"]
    assert StreamEnded(sid) in sev  # client half-close: no status

    sout = server.send_response_headers(sid)
    sout.push(b"reply")
    server.mark_dirty(sid, sout)
    server.send_trailers(sid, Status.OK)
    cev, _ = pump(client, server)
    assert isinstance(cev[0], ResponseReceived)
    assert messages(cev, sid) == [b"reply"]
    end = next(e for e in cev if isinstance(e, StreamEnded))
    assert (end.status, end.message) == (0, "")
    assert client.open_streams == 0
    assert server.open_streams == 0


def test_response_headers_go_out_before_any_message() -> None:
    client, server = pair()
    sid, _ = client.start_request(PATH, "h")
    _, sev = pump(client, server)
    assert isinstance(sev[0], RequestReceived)
    server.send_response_headers(sid)
    cev, _ = pump(client, server)
    assert [type(e) for e in cev if not isinstance(e, WindowUpdated)] == [ResponseReceived]


def test_trailers_carry_percent_encoded_message() -> None:
    client, server = pair()
    sid, _ = client.start_request(PATH, "h")
    pump(client, server)
    server.send_response_headers(sid)
    server.send_trailers(sid, Status.PERMISSION_DENIED, "nope: 100% ☃")
    cev, _ = pump(client, server)
    end = next(e for e in cev if isinstance(e, StreamEnded))
    assert end.status == Status.PERMISSION_DENIED
    assert end.message == "nope: 100% ☃"
    assert ("grpc-message", "nope: 100%25 %E2%98%83") in end.trailers


def test_reject_is_trailers_only() -> None:
    client, server = pair()
    sid, _ = client.start_request(PATH, "h")
    pump(client, server)
    server.reject(sid, Status.UNIMPLEMENTED, "unknown method")
    cev, _ = pump(client, server)
    assert not any(isinstance(e, ResponseReceived) for e in cev)
    end = next(e for e in cev if isinstance(e, StreamEnded))
    assert (end.status, end.message) == (Status.UNIMPLEMENTED, "unknown method")


def test_big_message_spans_many_frames_and_windows() -> None:
    client, server = pair()
    big = bytes(range(256)) * 20_000  # 5 MB: several frames, past the 64 KiB initial window
    sid, out = client.start_request(PATH, "h")
    out.push(big)
    client.mark_dirty(sid, out)
    client.end_stream(sid)
    got: list[bytes] = []
    for _ in range(200):
        _, sev = pump(client, server)
        for e in sev:
            if isinstance(e, MessagesReceived):
                got += e.messages
                server.consumed(sid, e.flow_bytes)
        if got:
            break
    assert got == [big]


def test_flow_control_credit_only_when_consumed() -> None:
    window = 65535
    client, server = pair(window_size=window)
    sid, out = client.start_request(PATH, "h")
    payload = b"m" * 995
    out.push_many([payload] * 200)  # 200 KB, 3x the window
    client.mark_dirty(sid, out)
    _, sev = pump(client, server)
    first = messages(sev, sid)
    # Without consumption the server never receives more than its window.
    assert 0 < len(first) * 1000 <= window
    assert client.pending(sid) > 0
    _, sev2 = pump(client, server)
    assert messages(sev2, sid) == []
    flow = sum(e.flow_bytes for e in sev if isinstance(e, MessagesReceived))
    server.consumed(sid, flow)
    _, sev3 = pump(client, server)
    assert len(messages(sev3, sid)) > 0


def test_oversized_message_fails_only_that_stream() -> None:
    client, server = pair(max_message_size=100)
    bad, out = client.start_request(PATH, "h")
    out.push(b"x" * 101)
    client.mark_dirty(bad, out)
    cev, sev = pump(client, server)
    failed = next(e for e in sev if isinstance(e, StreamFailed))
    assert isinstance(failed.error, MessageTooLarge)
    assert failed.status == Status.RESOURCE_EXHAUSTED
    end = next(e for e in cev if isinstance(e, StreamEnded))
    assert end.status == Status.RESOURCE_EXHAUSTED
    assert not any(isinstance(e, ConnectionTerminated) for e in cev + sev)
    # The connection lives on.
    good, out2 = client.start_request(PATH, "h")
    out2.push(b"y" * 100)
    client.mark_dirty(good, out2)
    _, sev = pump(client, server)
    assert messages(sev, good) == [b"y" * 100]


def test_compressed_message_is_unimplemented() -> None:
    client, server = pair()
    sid, out = client.start_request(PATH, "h")
    out.chunks.append(b"\x01\x00\x00\x00\x02zz")
    out.size += 7
    client.mark_dirty(sid, out)
    cev, sev = pump(client, server)
    failed = next(e for e in sev if isinstance(e, StreamFailed))
    assert "compressed" in str(failed.error)
    end = next(e for e in cev if isinstance(e, StreamEnded))
    assert end.status == Status.UNIMPLEMENTED


def test_truncated_message_at_end_of_stream() -> None:
    client, server = pair()
    sid, out = client.start_request(PATH, "h")
    out.chunks.append(b"\x00\x00\x00\x00\x09abc")
    out.size += 8
    client.mark_dirty(sid, out)
    client.end_stream(sid)
    cev, sev = pump(client, server)
    assert any(isinstance(e, StreamFailed) for e in sev)
    end = next(e for e in cev if isinstance(e, StreamEnded))
    assert end.status == Status.INTERNAL


def test_client_reset_reaches_server() -> None:
    client, server = pair()
    sid, _ = client.start_request(PATH, "h")
    pump(client, server)
    client.abort(sid, Status.CANCELLED)
    _, sev = pump(client, server)
    assert StreamReset(sid, 8) in sev  # CANCEL


def test_ping_is_answered() -> None:
    client, server = pair()
    client.ping(b"12345678")
    cev, _ = pump(client, server)
    assert PingAcked(b"12345678") in cev


def test_goaway_lets_open_streams_finish() -> None:
    client, server = pair()
    sid, _ = client.start_request(PATH, "h")
    pump(client, server)
    server.close(0, "bye")
    cev, _ = pump(client, server)
    term = next(e for e in cev if isinstance(e, ConnectionTerminated))
    assert term.remote
    assert term.last_stream_id == sid
    assert term.reason == "bye"
    server.send_response_headers(sid)
    server.send_trailers(sid, Status.OK)
    cev, _ = pump(client, server)
    assert any(isinstance(e, StreamEnded) and e.status == 0 for e in cev)


def test_non_post_and_bad_content_type_get_http_errors() -> None:
    server = GrpcConnection(client_side=False)
    server.initiate()
    raw = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    raw.initiate_connection()
    raw.receive_data(server.flush())
    raw.send_headers(
        1, [(":method", "GET"), (":scheme", "http"), (":path", PATH), (":authority", "h")], True
    )
    base = [(":method", "POST"), (":scheme", "http"), (":path", PATH), (":authority", "h")]
    raw.send_headers(3, [*base, ("content-type", "text/plain")], True)
    sev = server.receive_data(raw.data_to_send())
    assert not any(isinstance(e, RequestReceived) for e in sev)
    statuses = {}
    for e in raw.receive_data(server.flush()):
        if isinstance(e, h2.events.ResponseReceived):
            statuses[e.stream_id] = dict(e.headers)[b":status"]
    assert statuses == {1: b"405", 3: b"415"}


# -- fuzzing: whatever a peer sends, the server core answers with events or a clean GOAWAY ----

_ALLOWED = (
    RequestReceived,
    MessagesReceived,
    StreamEnded,
    StreamReset,
    StreamFailed,
    WindowUpdated,
    PingAcked,
    ConnectionTerminated,
)


def _valid_client_bytes(msgs: list[bytes]) -> bytes:
    client = GrpcConnection(client_side=True)
    client.initiate()
    sid, out = client.start_request(PATH, "h")
    out.push_many(msgs)
    client.mark_dirty(sid, out)
    client.end_stream(sid)
    return client.flush()


def _feed(
    server: GrpcConnection, data: bytes, cuts: list[int], sent: bytearray | None = None
) -> list[Event]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    events: list[Event] = []
    prev = 0
    for p in [*points, len(data)]:
        events += server.receive_data(data[prev:p])
        out = server.flush()
        if sent is not None:
            sent += out
        prev = p
    return events


def _frame_lengths(data: bytes) -> list[int]:
    lengths, pos = [], 0
    while pos + 9 <= len(data):
        lengths.append(int.from_bytes(data[pos : pos + 3], "big"))
        pos += 9 + lengths[-1]
    return lengths


def _frame_types(data: bytes) -> list[int]:
    types, pos = [], 0
    while pos + 9 <= len(data):
        types.append(data[pos + 3])
        pos += 9 + int.from_bytes(data[pos : pos + 3], "big")
    return types


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    msgs=st.lists(st.binary(max_size=200), max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=100_000), max_size=12),
)
def test_server_core_any_split_points(msgs: list[bytes], cuts: list[int]) -> None:
    data = _valid_client_bytes(msgs)
    server = GrpcConnection(client_side=False)
    server.initiate()
    events = _feed(server, data, cuts)
    assert messages(events, 1) == msgs
    assert StreamEnded(1) in events
    assert not any(isinstance(e, ConnectionTerminated | StreamFailed) for e in events)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prefix_valid=st.booleans(),
    garbage=st.binary(max_size=300),
    cuts=st.lists(st.integers(min_value=0, max_value=1000), max_size=8),
)
def test_server_core_survives_arbitrary_bytes(
    prefix_valid: bool, garbage: bytes, cuts: list[int]
) -> None:
    head = _valid_client_bytes([b"hello"])[:-9] if prefix_valid else b""
    server = GrpcConnection(client_side=False, max_message_size=64)
    server.initiate()
    server.flush()
    events = _feed(server, head + garbage, cuts)
    assert all(isinstance(e, _ALLOWED) for e in events)
    terms = [e for e in events if isinstance(e, ConnectionTerminated)]
    if terms:
        assert not terms[0].remote
        assert server.terminated
        assert server.receive_data(b"more") == []
    for e in events:
        if isinstance(e, StreamFailed):
            assert isinstance(e.error, RemoteProtocolError)
        if isinstance(e, MessagesReceived):
            assert all(len(m) <= 64 for m in e.messages)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbage=st.binary(max_size=300))
def test_client_core_survives_arbitrary_server_bytes(garbage: bytes) -> None:
    client = GrpcConnection(client_side=True)
    client.initiate()
    client.start_request(PATH, "h")
    client.flush()
    server = GrpcConnection(client_side=False)
    server.initiate()
    events = client.receive_data(server.flush() + garbage)
    assert all(isinstance(e, (*_ALLOWED, ResponseReceived)) for e in events)  # never an exception


def test_framing_helper_matches_core_output() -> None:
    # The core's OutQueue framing is the plain gRPC framing.
    client, _server = pair()
    _sid, out = client.start_request(PATH, "h")
    out.push_many([b"a", b"bb"])
    assert b"".join(out.chunks) == encode_messages([b"a", b"bb"])


_frames = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=10),  # frame type (0-9 are defined)
        st.integers(min_value=0, max_value=255),  # flags
        st.sampled_from([0, 1, 2, 3, 5, 2**31 - 1]),  # stream id
        st.binary(max_size=40),  # payload
    ),
    max_size=12,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=_frames, cuts=st.lists(st.integers(min_value=0, max_value=1000), max_size=6))
def test_server_core_survives_arbitrary_frames(
    frames: list[tuple[int, int, int, bytes]], cuts: list[int]
) -> None:
    """Well-delimited frames of every type with random flags and payloads, after a valid start."""
    head = _valid_client_bytes([b"hello"])
    raw = b"".join(
        len(p).to_bytes(3, "big") + bytes([t, f]) + sid.to_bytes(4, "big") + p
        for t, f, sid, p in frames
    )
    server = GrpcConnection(client_side=False, max_message_size=64)
    server.initiate()
    server.flush()
    sent = bytearray()
    events = _feed(server, head + raw, cuts, sent)
    assert all(isinstance(e, _ALLOWED) for e in events)
    if any(isinstance(e, ConnectionTerminated) and not e.remote for e in events):
        # A connection error discards the rest of that read; a GOAWAY goes out.
        assert server.terminated
        assert 0x7 in _frame_types(bytes(sent))
    else:
        assert messages(events, 1)[:1] == [b"hello"]


def test_call_ended_by_server_while_client_still_open_is_forgotten() -> None:
    client, server = pair()
    sid, _ = client.start_request(PATH, "h")
    pump(client, server)
    server.send_response_headers(sid)
    server.send_trailers(sid, Status.OK)
    cev, _ = pump(client, server)
    assert any(isinstance(e, StreamEnded) and e.status == 0 for e in cev)
    assert client.open_streams == 0
    assert server.open_streams == 0


def test_peer_stream_limit_is_a_local_error() -> None:
    client = GrpcConnection(client_side=True)
    server = GrpcConnection(client_side=False, max_concurrent_streams=2)
    client.initiate()
    server.initiate()
    pump(client, server)
    client.start_request(PATH, "h")
    client.start_request(PATH, "h")
    with pytest.raises(LocalProtocolError):
        client.start_request(PATH, "h")


def test_oversized_frame_header_rejected_before_its_body() -> None:
    server = GrpcConnection(client_side=False, max_frame_size=16384)
    server.initiate()
    server.flush()
    preface = _valid_client_bytes([])
    header = (16385).to_bytes(3, "big") + b"\x00\x00" + (1).to_bytes(4, "big")
    events = server.receive_data(preface + header)  # no body sent at all
    (term,) = [e for e in events if isinstance(e, ConnectionTerminated)]
    assert term.error_code == 6  # FRAME_SIZE_ERROR
    assert not term.remote
    assert 0x7 in _frame_types(server.flush())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=70_000), min_size=1, max_size=4),
    cuts=st.lists(st.integers(min_value=0, max_value=300_000), max_size=30),
)
def test_frame_walk_never_rejects_valid_big_frames(sizes: list[int], cuts: list[int]) -> None:
    msgs = [bytes([i % 256]) * n for i, n in enumerate(sizes)]
    client, server = pair()  # settings exchanged: the client may now send frames up to 4 MiB
    sid, out = client.start_request(PATH, "h")
    out.push_many(msgs)
    client.mark_dirty(sid, out)
    client.end_stream(sid)
    data = client.flush()
    assert max(sizes) < 16384 or max(_frame_lengths(data)) > 16384
    events = _feed(server, data, cuts)
    assert not any(isinstance(e, ConnectionTerminated) for e in events)
    assert messages(events, sid) == msgs


@settings(max_examples=200, deadline=None)
@given(
    status=st.text(max_size=12),
    grpc_status=st.one_of(st.none(), st.text(max_size=12)),
    message=st.text(max_size=40),
)
def test_client_core_any_response_and_trailer_values(
    status: str, grpc_status: str | None, message: str
) -> None:
    """Whatever a server puts in :status / grpc-status / grpc-message, the call ends cleanly."""
    client = GrpcConnection(client_side=True)
    client.initiate()
    sid, _ = client.start_request(PATH, "h")
    raw = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, validate_outbound_headers=False)
    )
    raw.initiate_connection()
    raw.receive_data(client.flush())
    raw.send_headers(sid, [(":status", status.encode("utf-8", "surrogatepass"))])
    trailers = [(b"grpc-message", message.encode("utf-8", "surrogatepass"))]
    if grpc_status is not None:
        trailers.append((b"grpc-status", grpc_status.encode("utf-8", "surrogatepass")))
    raw.send_headers(sid, trailers, end_stream=True)
    events = client.receive_data(raw.data_to_send())
    ends = [e for e in events if isinstance(e, StreamEnded)]
    terms = [e for e in events if isinstance(e, ConnectionTerminated)]
    assert len(ends) == 1 or terms
    if ends and (status != "200" or grpc_status is None or not grpc_status.isascii()):
        assert ends[0].status != 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(min_value=0, max_value=40_000), min_size=1, max_size=6))
def test_direct_data_frames_match_h2s_own(sizes: list[int]) -> None:
    """DATA written without h2's copies: the same bytes on the wire and the same windows left
    as h2's own send_data (frames cut at the peer's 16 KiB max frame size)."""
    msgs = [bytes([i % 256]) * n for i, n in enumerate(sizes)]
    ours, theirs = GrpcConnection(client_side=True), GrpcConnection(client_side=True)
    ref = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    for conn in (ours, theirs):
        conn.initiate()
        ref.initiate_connection()
        ref.receive_data(conn.flush())
        conn.receive_data(ref.data_to_send())  # default settings: 16 KiB frames, 64 KiB window
        ref = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    wire = []
    for conn, direct in ((ours, True), (theirs, False)):
        sid, out = conn.start_request(PATH, "h")
        out.push_many(msgs)
        if direct:
            conn.mark_dirty(sid, out)
            data = conn.flush()
        else:  # h2's own path, frame by frame
            h2c = conn._h2
            while out.size and h2c.local_flow_control_window(sid) > 0:
                chunk = out.take(min(h2c.local_flow_control_window(sid), 16384))
                h2c.send_data(sid, chunk)
            data = h2c.data_to_send()
        wire.append(data)
        assert conn._h2.local_flow_control_window(sid) == max(
            0, 65535 - sum(sizes) - 5 * len(sizes)
        )
    assert wire[0] == wire[1]
