"""Sans-IO gRPC over HTTP/2: one connection, server or client role, on top of ``h2``.

The object takes bytes in (:meth:`GrpcConnection.receive_data`) and returns events; calls queue
outbound work and :meth:`GrpcConnection.flush` turns everything queued into bytes for the socket.
It owns the gRPC rules the asyncio driver should not have to know: request validation, the
5-byte message framing in both directions, trailers, per-stream size limits, flow control.

Outbound messages are *queued*, not written: :class:`OutQueue` collects prefix+payload chunks,
and one ``flush`` per event-loop tick packs them into as few DATA frames as the peer's window and
max frame size allow. That coalescing is where the throughput comes from (many gRPC messages per
DATA frame, one socket write per tick).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence

import h2.config
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from slimwire.errors import LocalProtocolError, MessageTooLarge, RemoteProtocolError
from slimwire.transport._events import (
    ConnectionTerminated,
    Event,
    Headers,
    MessagesReceived,
    PingAcked,
    RequestReceived,
    ResponseReceived,
    StreamEnded,
    StreamFailed,
    StreamReset,
    WindowUpdated,
)
from slimwire.transport._frames import FRAME_HEADER, FastData, FrameSplitter
from slimwire.transport._framing import (
    DEFAULT_MAX_MESSAGE_SIZE,
    PREFIX_STRUCT,
    MessageDecoder,
    OutQueue,
)
from slimwire.transport._h2compat import FAST_PATH_SUPPORTED, H2Connection
from slimwire.transport._status import (
    Status,
    decode_grpc_message,
    encode_grpc_message,
    status_from_http,
)

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_WINDOW_SIZE",
    "GrpcConnection",
    "OutQueue",
]

log = logging.getLogger(__name__)

DEFAULT_WINDOW_SIZE = 8 * 1024 * 1024
"""Per-stream receive window we advertise; the connection window is twice that."""
DEFAULT_MAX_FRAME_SIZE = 4 * 1024 * 1024
"""MAX_FRAME_SIZE we advertise (the reference node advertises 4 MiB too)."""
_MAX_WINDOW = 2**31 - 1
_MIN_FRAME, _MAX_FRAME = 16384, 2**24 - 1

_GRPC_CT = "application/grpc"
_PREFIX = PREFIX_STRUCT.unpack_from
_ONE_MESSAGE_MIN = 9 + 5
"""A DATA frame header and a gRPC prefix: the shortest read the whole-frame shortcut takes."""
_H2_ONLY_DATA_FLAGS = 0x01 | 0x08  # END_STREAM, PADDED: such DATA frames go through h2

_new_event = object.__new__
_SET_SID, _SET_MSGS, _SET_FLOW = (
    getattr(MessagesReceived, f).__set__ for f in ("stream_id", "messages", "flow_bytes")
)


def _messages_received(stream_id: int, messages: list[bytes], flow: int) -> MessagesReceived:
    """``MessagesReceived(...)`` at a third of the cost (one per read): the frozen dataclass's
    __init__ goes through object.__setattr__ per field, the slots' descriptors do not."""
    ev: MessagesReceived = _new_event(MessagesReceived)
    _SET_SID(ev, stream_id)
    _SET_MSGS(ev, messages)
    _SET_FLOW(ev, flow)
    return ev


USER_AGENT = "slimwire-grpc/0.1 (h2)"


def _decode(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


def _is_number(text: str) -> bool:
    # str.isdigit() alone accepts "²" and other digits int() rejects.
    return text.isascii() and text.isdigit() and len(text) <= 9


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> Headers:
    return tuple((_decode(k), _decode(v)) for k, v in raw)


class _StreamState:
    """Per-stream bookkeeping (mutable, private to the connection)."""

    __slots__ = (
        "dead",
        "decoder",
        "end_pending",
        "headers_sent",
        "out",
        "remote_closed",
        "response_headers",
        "stream_id",
        "trailers",
        "trailers_pending",
    )

    def __init__(self, stream_id: int, max_message_size: int) -> None:
        self.stream_id = stream_id
        self.decoder = MessageDecoder(max_message_size)
        self.out = OutQueue()
        self.end_pending = False  # client: END_STREAM after the queued data
        self.trailers_pending: list[tuple[str, str]] | None = None  # server: trailers after data
        self.headers_sent = False
        self.remote_closed = False
        self.dead = False  # failed or reset: inbound data is dropped (and its credit returned)
        self.response_headers: Headers = ()
        self.trailers: Headers | None = None


class GrpcConnection:
    """One HTTP/2 connection speaking gRPC (sans-IO).

    ``client_side`` picks the role. Windows and frame sizes are what we *advertise*; what we send
    follows the peer's settings, read from ``h2``.
    """

    def __init__(
        self,
        *,
        client_side: bool,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        window_size: int = DEFAULT_WINDOW_SIZE,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_concurrent_streams: int = 1000,
    ) -> None:
        if not 65535 <= window_size <= _MAX_WINDOW:
            raise ValueError("window_size must be in [65535, 2**31-1]")
        if not _MIN_FRAME <= max_frame_size <= _MAX_FRAME:
            raise ValueError("max_frame_size must be in [16384, 2**24-1]")
        self.client_side = client_side
        self.max_message_size = max_message_size
        self.window_size = window_size
        config = h2.config.H2Configuration(client_side=client_side, header_encoding=None)
        self._h2 = H2Connection(config=config)
        values = {
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window_size,
            h2.settings.SettingCodes.MAX_FRAME_SIZE: max_frame_size,
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_concurrent_streams,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 65536,
        }
        if client_side:
            values[h2.settings.SettingCodes.ENABLE_PUSH] = 0
        self._h2.local_settings = h2.settings.Settings(client=client_side, initial_values=values)
        self._h2.max_inbound_frame_size = max_frame_size
        self._frames = FrameSplitter(server_side=not client_side)
        # Messages completed so far inside a DATA frame the fast path is reading across reads,
        # and their credit: reported when the frame is complete (one batch per frame, as h2).
        self._rx_held: list[bytes] = []
        self._rx_held_flow = 0
        self._streams: dict[int, _StreamState] = {}
        self._dirty: dict[int, _StreamState] = {}
        self._last_inbound_id = 0
        self.fast_path = FAST_PATH_SUPPORTED
        """Account plain DATA frames ourselves instead of through h2 (see FrameSplitter); off
        with an h2 minor it was not checked against, and to compare the two paths in tests."""
        self.terminated = False
        self.goaway_received = False
        self.goaway_sent = False
        self._initiated = False

    # -- setup -------------------------------------------------------------------------------

    def initiate(self) -> None:
        """Queue the connection preface and our settings (call once, first)."""
        if self._initiated:
            return
        self._initiated = True
        self._h2.initiate_connection()
        extra = min(2 * self.window_size, _MAX_WINDOW) - 65535
        if extra > 0:
            self._h2.increment_flow_control_window(extra)

    # -- inbound -----------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes read from the socket; return what happened."""
        if self.terminated:
            return []
        frames = self._frames
        n = len(data)
        if n >= _ONE_MESSAGE_MIN and self.fast_path and frames.at_boundary:
            # The read of a request/reply exchange: one plain DATA frame holding whole gRPC
            # messages (mostly one). Taken here in a few checks, where the general walk below
            # spends several calls and lists on it; anything else about it (a cut message, a
            # bad prefix, a stream h2 must look at) falls through to that walk, unchanged.
            hi, lo, ftype, flags, sid = FRAME_HEADER(data, 0)
            length = hi << 16 | lo
            if ftype == 0 and not flags & _H2_ONLY_DATA_FLAGS and length + 9 == n:
                sid &= 0x7FFFFFFF
                st = self._streams.get(sid)
                if (
                    st is not None
                    and not st.dead
                    and not st.decoder.buffered
                    and not self._rx_held_flow
                    and length <= self._h2.max_inbound_frame_size
                ):
                    limit = self.max_message_size
                    msgs: list[bytes] = []
                    pos = 9
                    while n - pos >= 5:
                        flag, size = _PREFIX(data, pos)
                        end = pos + 5 + size
                        if flag or size > limit or end > n:
                            break
                        msgs.append(data[pos + 5 : end])
                        pos = end
                    if pos == n and self._h2.take_data(sid, length):
                        return [_messages_received(sid, msgs, length)]
        boundary = frames.check_lengths(data, self._h2.max_inbound_frame_size)
        if boundary < 0:
            return self._fail_connection(
                h2.errors.ErrorCodes.FRAME_SIZE_ERROR, "peer announced an oversized frame"
            )
        items: Sequence[h2.events.Event | FastData]
        try:
            if self.fast_path and (boundary < len(data) or frames.rx_left):
                items = frames.split(data, boundary, self._h2)
            else:
                items = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            code = getattr(exc, "error_code", h2.errors.ErrorCodes.PROTOCOL_ERROR)
            return self._fail_connection(int(code), f"HTTP/2 protocol error: {exc}")
        out: list[Event] = []
        window = False
        for ev in items:
            if type(ev) is tuple:
                sid, payload, complete = ev
                if complete:
                    self._on_data(sid, payload, len(payload), out)
                else:
                    self._on_partial_data(sid, payload, out)
            elif isinstance(ev, h2.events.DataReceived):
                self._on_data(
                    ev.stream_id or 0, ev.data or b"", ev.flow_controlled_length or 0, out
                )
            elif isinstance(ev, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
                window = True
            elif isinstance(ev, h2.events.RequestReceived):
                self._on_request(ev, out)
            elif isinstance(ev, h2.events.ResponseReceived):
                self._on_response(ev, out)
            elif isinstance(ev, h2.events.TrailersReceived):
                st = self._streams.get(ev.stream_id or 0)
                if st is not None:
                    st.trailers = _headers(ev.headers or ())
            elif isinstance(ev, h2.events.StreamEnded):
                self._on_end(ev.stream_id or 0, out)
            elif isinstance(ev, h2.events.StreamReset):
                self._on_reset(ev.stream_id or 0, int(ev.error_code or 0), out)
            elif isinstance(ev, h2.events.PingAckReceived):
                out.append(PingAcked(ev.ping_data or b""))
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self._on_goaway(ev, out)
        if window:
            out.append(WindowUpdated())
        return out

    def _fail_connection(self, code: int, reason: str) -> list[Event]:
        log.debug("closing connection: %s", reason)
        self.terminated = True
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self._h2.close_connection(error_code=code, last_stream_id=self._last_inbound_id)
        return [ConnectionTerminated(code, self._last_inbound_id, reason, remote=False)]

    def _on_request(self, ev: h2.events.RequestReceived, out: list[Event]) -> None:
        sid = ev.stream_id or 0
        headers = _headers(ev.headers or ())
        st = _StreamState(sid, self.max_message_size)
        self._streams[sid] = st
        if self.goaway_sent:  # after our GOAWAY: never processed, the client may retry
            st.dead = True
            self._reset(st, h2.errors.ErrorCodes.REFUSED_STREAM)
            self._streams.pop(sid, None)
            return
        self._last_inbound_id = max(self._last_inbound_id, sid)
        method = path = content_type = ""
        for k, v in headers:
            if k == ":method":
                method = v
            elif k == ":path":
                path = v
            elif k == "content-type":
                content_type = v
        if method != "POST":
            self._http_error(st, 405)
            return
        if not content_type.startswith(_GRPC_CT):
            self._http_error(st, 415)
            return
        out.append(RequestReceived(sid, path, headers))

    def _http_error(self, st: _StreamState, http_status: int) -> None:
        st.dead = True
        self._send_headers(st, [(":status", str(http_status))], end_stream=True)

    def _on_response(self, ev: h2.events.ResponseReceived, out: list[Event]) -> None:
        st = self._streams.get(ev.stream_id or 0)
        if st is None:
            return
        headers = _headers(ev.headers or ())
        st.response_headers = headers
        status = next((v for k, v in headers if k == ":status"), "")
        if status != "200":
            code = status_from_http(int(status)) if _is_number(status) else Status.UNKNOWN
            st.trailers = (("grpc-status", str(int(code))), ("grpc-message", f"HTTP {status}"))
            if ev.stream_ended is None:
                self._reset(st, h2.errors.ErrorCodes.CANCEL)
                self._finish_client(st, out)
            return
        if ev.stream_ended is not None:
            st.trailers = headers  # trailers-only response
            return
        out.append(ResponseReceived(st.stream_id, headers))

    def _on_partial_data(self, sid: int, data: bytes, out: list[Event]) -> None:
        """The start or middle of a DATA frame the fast path is streaming: split messages as
        bytes arrive (no frame buffer) but hold them until the frame is complete."""
        st = self._streams.get(sid)
        if st is None or st.dead:
            self._on_data(sid, data, len(data), out)
            return
        msgs = st.decoder.feed(data)
        self._rx_held += msgs
        self._rx_held_flow += len(data)
        if st.decoder.error is not None:  # report what came before, then fail the stream
            self._on_data(sid, b"", 0, out)

    def _on_data(self, sid: int, data: bytes, flow: int, out: list[Event]) -> None:
        if self._rx_held_flow:  # the end of a frame streamed by the fast path
            held, self._rx_held = self._rx_held, []
            flow += self._rx_held_flow
            self._rx_held_flow = 0
        else:
            held = None
        st = self._streams.get(sid)
        if st is None or st.dead:
            if flow:
                self._ack(sid, flow)
            return
        msgs = st.decoder.feed(data)
        if held:
            msgs = held + msgs if msgs else held
        if msgs:
            out.append(_messages_received(sid, msgs, flow))
        elif flow:
            self._ack(sid, flow)  # absorbed into a partial message: bounded by max_message_size
        err = st.decoder.error
        if err is not None:
            code = (
                Status.RESOURCE_EXHAUSTED
                if isinstance(err, MessageTooLarge)
                else (Status.UNIMPLEMENTED if "compressed" in str(err) else Status.INTERNAL)
            )
            self._fail_stream(st, err, code, out)

    def _fail_stream(
        self, st: _StreamState, err: RemoteProtocolError, code: Status, out: list[Event]
    ) -> None:
        st.dead = True
        st.out.clear()
        self._dirty.pop(st.stream_id, None)
        if self.client_side:
            self._reset(st, h2.errors.ErrorCodes.CANCEL)
            self._streams.pop(st.stream_id, None)
        else:
            st.trailers_pending = None
            self._trailers_now(st, code, str(err))
        out.append(StreamFailed(st.stream_id, err, int(code)))

    def _on_end(self, sid: int, out: list[Event]) -> None:
        st = self._streams.get(sid)
        if st is None:
            return
        st.remote_closed = True
        if st.dead:
            self._maybe_forget(st)
            return
        if st.decoder.buffered:
            err = RemoteProtocolError("stream ended inside a gRPC message")
            self._fail_stream(st, err, Status.INTERNAL, out)
            return
        if self.client_side:
            self._finish_client(st, out)
        else:
            out.append(StreamEnded(sid))
            self._maybe_forget(st)

    def _finish_client(self, st: _StreamState, out: list[Event]) -> None:
        st.remote_closed = True
        trailers = st.trailers or ()
        raw_status = next((v for k, v in trailers if k == "grpc-status"), None)
        message = decode_grpc_message(next((v for k, v in trailers if k == "grpc-message"), ""))
        if raw_status is None:
            status, message = int(Status.UNKNOWN), message or "response ended without grpc-status"
        elif _is_number(raw_status):
            status = int(raw_status)
        else:
            status, message = int(Status.UNKNOWN), f"invalid grpc-status {raw_status!r}"
        st.dead = True
        out.append(StreamEnded(st.stream_id, status, message, trailers))
        # The call is over: anything we still had queued is moot; end our half if still open
        # so that both h2 and we can forget the stream.
        st.out.clear()
        st.end_pending = False
        self._dirty.pop(st.stream_id, None)
        h2_stream = self._h2.streams.get(st.stream_id)
        if h2_stream is not None and not h2_stream.closed:
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self._h2.end_stream(st.stream_id)
        self._maybe_forget(st)

    def _on_reset(self, sid: int, code: int, out: list[Event]) -> None:
        st = self._streams.pop(sid, None)
        self._dirty.pop(sid, None)
        if st is None:
            return
        finished = st.dead and st.remote_closed
        st.dead = True
        st.out.clear()
        if not finished:
            out.append(StreamReset(sid, code))

    def _on_goaway(self, ev: h2.events.ConnectionTerminated, out: list[Event]) -> None:
        self.goaway_received = True
        last = ev.last_stream_id
        code = int(ev.error_code or 0)
        reason = (ev.additional_data or b"").decode("utf-8", "replace")
        out.append(ConnectionTerminated(code, last, reason, remote=True))
        if last is None:
            return
        for sid in [s for s in self._streams if s > last and (s % 2 == 1) == self.client_side]:
            self._on_reset(sid, int(h2.errors.ErrorCodes.REFUSED_STREAM), out)

    # -- outbound ----------------------------------------------------------------------------

    def start_request(
        self,
        path: str,
        authority: str,
        scheme: str = "http",
        headers: Iterable[tuple[str, str]] = (),
    ) -> tuple[int, OutQueue]:
        """Client: open a stream for a call on ``path``; returns its id and outbound queue."""
        if not self.client_side:
            raise LocalProtocolError("only a client opens streams")
        if self.terminated or self.goaway_received:
            raise LocalProtocolError("the connection is closing")
        sid = self._h2.get_next_available_stream_id()
        st = _StreamState(sid, self.max_message_size)
        self._streams[sid] = st
        hdrs = [
            (":method", "POST"),
            (":scheme", scheme),
            (":path", path),
            (":authority", authority),
            ("content-type", _GRPC_CT),
            ("te", "trailers"),
            ("user-agent", USER_AGENT),
            ("grpc-accept-encoding", "identity"),
        ]
        hdrs.extend((k.lower(), v) for k, v in headers)
        error = self._send_headers(st, hdrs, end_stream=False)
        if error is not None:
            raise LocalProtocolError(f"cannot open a stream: {error}")
        return sid, st.out

    def send_response_headers(
        self, stream_id: int, headers: Iterable[tuple[str, str]] = ()
    ) -> OutQueue:
        """Server: answer a request with 200 + gRPC headers now; returns the outbound queue."""
        st = self._streams.get(stream_id)
        if st is None:
            # Already over (e.g. failed later in the same read): the driver learns from the
            # event that follows; give it a queue that goes nowhere.
            return OutQueue()
        if not st.headers_sent:
            hdrs = [
                (":status", "200"),
                ("content-type", _GRPC_CT),
                ("grpc-accept-encoding", "identity"),
            ]
            hdrs.extend((k.lower(), v) for k, v in headers)
            self._send_headers(st, hdrs, end_stream=False)
        return st.out

    def reject(self, stream_id: int, status: int, message: str = "") -> None:
        """Server: end a call at once with a trailers-only response (e.g. UNIMPLEMENTED)."""
        st = self._streams.get(stream_id)
        if st is None or st.dead:
            return
        st.dead = True
        st.out.clear()
        self._dirty.pop(stream_id, None)
        self._trailers_now(st, status, message)

    def end_stream(self, stream_id: int) -> None:
        """Client: half-close after everything queued so far is sent."""
        st = self._streams.get(stream_id)
        if st is None or st.end_pending:
            return
        st.end_pending = True
        self._dirty[stream_id] = st

    def send_trailers(self, stream_id: int, status: int, message: str = "") -> None:
        """Server: end the call with ``status`` after everything queued so far is sent."""
        st = self._streams.get(stream_id)
        if st is None or st.trailers_pending is not None:
            return
        st.trailers_pending = self._trailer_list(st, status, message)
        self._dirty[stream_id] = st

    def abort(self, stream_id: int, status: int, message: str = "") -> None:
        """End a call now, dropping queued data: trailers (server) or RST_STREAM CANCEL (client)."""
        st = self._streams.get(stream_id)
        if st is None:
            return
        st.out.clear()
        self._dirty.pop(stream_id, None)
        if self.client_side:
            st.dead = True
            self._reset(st, h2.errors.ErrorCodes.CANCEL)
            self._streams.pop(stream_id, None)
        else:
            self.reject(stream_id, status, message)

    def reset(self, stream_id: int, error_code: int = h2.errors.ErrorCodes.CANCEL) -> None:
        st = self._streams.pop(stream_id, None)
        self._dirty.pop(stream_id, None)
        if st is not None:
            st.dead = True
            st.out.clear()
            self._reset(st, error_code)

    def mark_dirty(self, stream_id: int, queue: OutQueue) -> None:
        """Note that ``queue`` (of ``stream_id``) has data; the next flush writes it."""
        if stream_id not in self._dirty:
            st = self._streams.get(stream_id)
            if st is not None and st.out is queue and not st.dead:
                self._dirty[stream_id] = st

    def consumed(self, stream_id: int, nbytes: int) -> None:
        """The application took messages worth ``nbytes`` of flow-control credit: return it."""
        if nbytes > 0 and not self.terminated:
            self._ack(stream_id, nbytes)

    def ping(self, data: bytes) -> None:
        if not self.terminated:
            self._h2.ping(data)

    def close(self, error_code: int = 0, reason: str = "") -> None:
        """Queue a GOAWAY; streams already open may finish."""
        if self.terminated:
            return
        self.goaway_sent = True
        try:
            if error_code:
                self.terminated = True
                self._h2.close_connection(
                    error_code=error_code,
                    additional_data=reason.encode() or None,
                    last_stream_id=self._last_inbound_id,
                )
            else:
                self._h2.graceful_goaway(self._last_inbound_id, reason.encode() or None)
        except h2.exceptions.ProtocolError:  # pragma: no cover
            self.terminated = True

    def flush(self) -> bytes:
        """Move queued stream data into DATA frames (as far as windows allow); return bytes to
        write. Call once per loop tick."""
        return b"".join(self.flush_chunks())

    def flush_chunks(self) -> list[bytes]:
        """:meth:`flush` as a list of byte strings to write in order (``writelines``): the
        payloads go out as they were queued, without being copied into h2's send buffer."""
        chunks: list[bytes] = []
        if self._dirty and not self.terminated:
            h2c = self._h2
            for sid, st in list(self._dirty.items()):
                out = st.out
                try:
                    while out.size:
                        window = h2c.local_flow_control_window(sid)
                        if window <= 0:
                            break
                        data = out.take(window)
                        frame = h2c.max_outbound_frame_size
                        if len(data) <= frame:
                            h2c.send_data_into(sid, data, chunks)
                        else:
                            for off in range(0, len(data), frame):
                                h2c.send_data_into(sid, data[off : off + frame], chunks)
                    if not out.size:
                        del self._dirty[sid]
                        self._send_end(st)
                except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                    out.clear()
                    st.dead = True
                    self._dirty.pop(sid, None)
                    self._streams.pop(sid, None)
        if self._h2._data_to_send:  # (data_to_send() allocates even when there is nothing)
            chunks.append(self._h2.data_to_send())
        return chunks

    def flush_control(self) -> bytes:
        """Bytes to write without moving stream data (used while the socket is backed up)."""
        return self._h2.data_to_send()

    def pending(self, stream_id: int) -> int:
        st = self._streams.get(stream_id)
        return st.out.size if st is not None else 0

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    @property
    def wants_flush(self) -> bool:
        """Whether :meth:`flush` has anything to do: control frames queued in h2, stream data
        queued, or a failed connection for the driver to close. Drivers flush only then."""
        return bool(self._dirty) or bool(self._h2._data_to_send) or self.terminated

    @property
    def has_pending_output(self) -> bool:
        return bool(self._dirty)

    # -- internals ---------------------------------------------------------------------------

    def _send_end(self, st: _StreamState) -> None:
        if st.end_pending:
            st.end_pending = False
            self._h2.end_stream(st.stream_id)
            self._maybe_forget(st)
        elif st.trailers_pending is not None:
            trailers, st.trailers_pending = st.trailers_pending, None
            st.dead = True
            self._h2.send_headers(st.stream_id, trailers, end_stream=True)
            self._after_server_end(st)

    def _trailer_list(self, st: _StreamState, status: int, message: str) -> list[tuple[str, str]]:
        trailers = [("grpc-status", str(int(status)))]
        if message:
            trailers.append(("grpc-message", encode_grpc_message(message)))
        if not st.headers_sent:  # trailers-only response
            st.headers_sent = True
            trailers = [(":status", "200"), ("content-type", _GRPC_CT), *trailers]
        return trailers

    def _trailers_now(self, st: _StreamState, status: int, message: str) -> None:
        try:
            self._h2.send_headers(
                st.stream_id, self._trailer_list(st, status, message), end_stream=True
            )
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self._streams.pop(st.stream_id, None)
            return
        self._after_server_end(st)

    def _after_server_end(self, st: _StreamState) -> None:
        # The response is complete; if the client is still sending, ask it to stop (RFC 9113
        # 8.1: RST_STREAM NO_ERROR after a complete response).
        if not st.remote_closed:
            self._reset(st, h2.errors.ErrorCodes.NO_ERROR)
        self._streams.pop(st.stream_id, None)

    def _send_headers(
        self, st: _StreamState, headers: list[tuple[str, str]], end_stream: bool
    ) -> Exception | None:
        st.headers_sent = True
        try:
            self._h2.send_headers(st.stream_id, headers, end_stream=end_stream)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError) as exc:
            st.dead = True
            self._streams.pop(st.stream_id, None)
            return exc
        if end_stream and not self.client_side:
            self._after_server_end(st)
        return None

    def _reset(self, st: _StreamState, code: int) -> None:
        with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self._h2.reset_stream(st.stream_id, error_code=code)

    def _ack(self, stream_id: int, nbytes: int) -> None:
        # try/except, not contextlib.suppress: this runs once per received batch.
        try:  # noqa: SIM105
            self._h2.acknowledge_received_data(nbytes, stream_id)
        except (h2.exceptions.ProtocolError, ValueError, KeyError):
            pass

    def _maybe_forget(self, st: _StreamState) -> None:
        sid = st.stream_id
        if st.remote_closed and sid not in self._dirty:
            try:
                closed = self._h2.streams[sid].closed
            except KeyError:
                closed = True
            if closed:
                self._streams.pop(sid, None)
