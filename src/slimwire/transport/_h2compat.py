"""``h2`` adapted to gRPC's needs (private hooks of ``h2.connection.H2Connection``).

Two things in ``h2`` 4.x get in the way of a gRPC peer and are fixed here, in one place:

* a GOAWAY, sent or received, closes the whole connection state machine, while gRPC's graceful
  shutdown lets streams at or below ``last_stream_id`` finish after it;
* every received frame is ``repr``-ed for a trace log even with logging off, and a DATA frame's
  repr hex-encodes its whole payload;
* sending DATA copies the payload four times (frame body, frame bytes, the connection's send
  buffer, ``data_to_send``): :meth:`H2Connection.send_data_into` keeps h2's checks and
  flow-control accounting but hands the payload on untouched, behind its 9-byte frame header;
* receiving one small DATA frame costs ~10 µs in h2 (frame buffer, hyperframe objects, two state
  machines, event objects): :meth:`H2Connection.take_data` does the same bookkeeping for the
  common DATA frame directly, and :meth:`H2Connection.acknowledge_received_data` returns credit
  without h2's per-call logging and lookups.

These reach into h2 internals (``incoming_buffer``'s ``_data``/``_headers_buffer``/
``_preamble_len``, the ``WindowManager`` objects, the state machines and ``STREAM_OPEN``,
``_expected_content_length``/``_actual_content_length``) as they are in h2 4.4 (tested with
4.4.1): ``h2`` should be pinned to ``>=4.4,<4.5`` until a newer minor is checked, and
``tests/transport/test_fastpath.py`` compares the fast path against h2's own result. With any
other h2 the fast path stays off (:data:`FAST_PATH_SUPPORTED`) and everything goes through h2.
"""

from __future__ import annotations

import struct

import h2
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.stream
import hyperframe.frame
from h2.connection import ConnectionState
from h2.stream import STREAM_OPEN, StreamState

__all__ = ["FAST_PATH_SUPPORTED", "H2Connection"]

FAST_PATH_SUPPORTED = h2.__version__.split(".")[:2] == ["4", "4"]
"""Whether :meth:`H2Connection.take_data` knows this h2's internals (the minor it was checked
against); the transport's inbound fast path is used only then."""

_DATA_HEADER = struct.Struct(">BHBBI").pack  # length (24 bits), type 0 (DATA), flags, stream
_SEND_DATA = h2.connection.ConnectionInputs.SEND_DATA
_STREAM_SEND_DATA = h2.stream.StreamInputs.SEND_DATA
_CLIENT_OPEN, _SERVER_OPEN = ConnectionState.CLIENT_OPEN, ConnectionState.SERVER_OPEN
_OPEN, _HALF_CLOSED_LOCAL = StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL
_HALF_CLOSED_REMOTE = StreamState.HALF_CLOSED_REMOTE


class H2Connection(h2.connection.H2Connection):
    """``h2`` with a graceful GOAWAY and a cheap frame repr.

    ``h2`` treats any GOAWAY, sent or received, as the end of the connection and refuses every
    later frame. gRPC servers (tonic, grpcio, ours) shut down gracefully by sending GOAWAY with
    NO_ERROR and then finishing the streams at or below ``last_stream_id``, so a NO_ERROR GOAWAY
    here is reported as an event but leaves the connection open for those streams.
    """

    def _receive_frame(self, frame: hyperframe.frame.Frame) -> list[h2.events.Event]:
        # h2 formats ``repr(frame)`` for its trace log on every frame, even with logging off,
        # and a DATA frame's repr hex-encodes the whole payload: a quarter of the receive CPU
        # at 560-byte messages. A per-frame override keeps the repr short and cheap.
        if type(frame) is hyperframe.frame.DataFrame:
            size = len(frame.data)
            frame.__dict__["_body_repr"] = lambda: f"<{size} bytes>"
        return super()._receive_frame(frame)

    def _receive_goaway_frame(
        self, frame: hyperframe.frame.GoAwayFrame
    ) -> tuple[list[hyperframe.frame.Frame], list[h2.events.Event]]:
        if frame.error_code:
            return super()._receive_goaway_frame(frame)
        ev = h2.events.ConnectionTerminated()
        ev.error_code = h2.errors.ErrorCodes.NO_ERROR
        ev.last_stream_id = frame.last_stream_id
        ev.additional_data = frame.additional_data or None
        return [], [ev]

    def graceful_goaway(self, last_stream_id: int, additional_data: bytes | None) -> None:
        """Send GOAWAY(NO_ERROR) and keep the connection usable for the streams below it."""
        state = self.state_machine.state
        self.close_connection(0, additional_data=additional_data, last_stream_id=last_stream_id)
        self.state_machine.state = state

    def send_data_into(self, stream_id: int, data: bytes, out: list[bytes]) -> None:
        """``send_data(stream_id, data)`` without copying ``data``: append to ``out`` whatever
        h2 had queued before (so frames keep their order), then the DATA frame's header and
        ``data`` itself. The caller writes ``out`` to the socket before calling h2's
        :meth:`data_to_send` again. Same checks and exceptions as ``send_data``.
        """
        size = len(data)
        # The common case, with h2's checks done directly: an open connection and a stream
        # open for sending, where h2's two state machines would only confirm their states
        # (SEND_DATA changes neither), within both windows and the frame size.
        stream = self.streams.get(stream_id)
        state = self.state_machine.state
        fast = (
            stream is not None
            and (state is _SERVER_OPEN or state is _CLIENT_OPEN)
            and ((sstate := stream.state_machine.state) is _OPEN or sstate is _HALF_CLOSED_REMOTE)
            and size <= stream.outbound_flow_control_window
            and size <= self.outbound_flow_control_window
            and size <= self.max_outbound_frame_size
        )
        if not fast:
            window = self.local_flow_control_window(stream_id)  # raises for a closed stream
            if size > window:
                raise h2.exceptions.FlowControlError(
                    f"Cannot send {size} bytes, flow control window is {window}"
                )
            if size > self.max_outbound_frame_size:
                raise h2.exceptions.FrameTooLargeError(
                    f"Cannot send frame size {size}, max frame size is "
                    f"{self.max_outbound_frame_size}"
                )
            self.state_machine.process_input(_SEND_DATA)
            stream = self.streams[stream_id]
            stream.state_machine.process_input(_STREAM_SEND_DATA)
        assert stream is not None
        stream.outbound_flow_control_window -= size
        self.outbound_flow_control_window -= size
        if self._data_to_send:
            out.append(bytes(self._data_to_send))
            self._data_to_send = bytearray()
        out.append(_DATA_HEADER(size >> 16, size & 0xFFFF, 0, 0, stream_id))
        out.append(data)

    def take_data(self, stream_id: int, length: int) -> bool:
        """Account for a received DATA frame (unpadded, no END_STREAM, ``length`` payload
        bytes) exactly as h2's ``_receive_data_frame`` would, when h2 would accept it with
        nothing to report but its ``DataReceived``; return False, changing nothing, otherwise.

        The caller must already have checked the frame's length against the max frame size
        and must have handed h2 every earlier byte. Everything h2 treats specially (its buffer
        holding a partial frame or an unfinished header block, the connection not open, an
        unknown, closed or half-closed(remote) stream, data before headers, a content-length
        to check, a window overrun) is left to h2 itself, which raises or resets as it does.
        """
        state = self.state_machine.state
        if state is not _SERVER_OPEN and state is not _CLIENT_OPEN:
            return False
        buf = self.incoming_buffer
        if buf._data or buf._headers_buffer or buf._preamble_len:
            return False
        stream = self.streams.get(stream_id)
        if stream is None:
            return False
        machine = stream.state_machine
        sstate = machine.state
        if (
            (sstate is not _OPEN and sstate is not _HALF_CLOSED_LOCAL)
            or not machine.headers_received
            or stream._expected_content_length is not None
        ):
            return False
        conn_window = self._inbound_flow_control_window_manager
        stream_window = stream._inbound_window_manager
        if length > conn_window.current_window_size or length > stream_window.current_window_size:
            return False
        conn_window.current_window_size -= length
        stream_window.current_window_size -= length
        stream._actual_content_length += length
        return True

    def acknowledge_received_data(self, acknowledged_size: int, stream_id: int) -> None:
        """h2's ``acknowledge_received_data`` (same window arithmetic, same WINDOW_UPDATE
        frames, same errors) without its debug logging, validation and stream-closed lookup
        for the common case: a positive size on a stream h2 still holds; and without a call
        into either window manager when neither would send an update (credit returned per
        read, so that is nearly every call)."""
        stream = self.streams.get(stream_id)
        if stream is None or acknowledged_size <= 0:
            super().acknowledge_received_data(acknowledged_size, stream_id)
            return
        conn_window = self._inbound_flow_control_window_manager
        if STREAM_OPEN[stream.state_machine.state]:
            # Most reads: both windows still open and under half of each processed, where
            # h2's WindowManager.process_bytes only adds to its count (no WINDOW_UPDATE).
            stream_window = stream._inbound_window_manager
            conn_done = conn_window._bytes_processed + acknowledged_size
            stream_done = stream_window._bytes_processed + acknowledged_size
            if (
                conn_window.current_window_size
                and stream_window.current_window_size
                and conn_done < conn_window.max_window_size // 2
                and stream_done < stream_window.max_window_size // 2
            ):
                conn_window._bytes_processed = conn_done
                stream_window._bytes_processed = stream_done
                return
        conn_increment = conn_window.process_bytes(acknowledged_size)
        stream_increment = (
            stream._inbound_window_manager.process_bytes(acknowledged_size)
            if STREAM_OPEN[stream.state_machine.state]
            else None
        )
        if conn_increment or stream_increment:
            frames: list[hyperframe.frame.Frame] = []
            if conn_increment:
                frame = hyperframe.frame.WindowUpdateFrame(0)
                frame.window_increment = conn_increment
                frames.append(frame)
            if stream_increment:
                frame = hyperframe.frame.WindowUpdateFrame(stream_id)
                frame.window_increment = stream_increment
                frames.append(frame)
            self._prepare_for_sending(frames)
