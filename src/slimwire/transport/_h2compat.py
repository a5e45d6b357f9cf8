"""``h2`` adapted to gRPC's needs (private hooks of ``h2.connection.H2Connection``).

Two things in ``h2`` 4.x get in the way of a gRPC peer and are fixed here, in one place:

* a GOAWAY, sent or received, closes the whole connection state machine, while gRPC's graceful
  shutdown lets streams at or below ``last_stream_id`` finish after it;
* every received frame is ``repr``-ed for a trace log even with logging off, and a DATA frame's
  repr hex-encodes its whole payload;
* sending DATA copies the payload four times (frame body, frame bytes, the connection's send
  buffer, ``data_to_send``): :meth:`H2Connection.send_data_into` keeps h2's checks and
  flow-control accounting but hands the payload on untouched, behind its 9-byte frame header.
"""

from __future__ import annotations

import struct

import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.stream
import hyperframe.frame

__all__ = ["H2Connection"]

_DATA_HEADER = struct.Struct(">BHBBI").pack  # length (24 bits), type 0 (DATA), flags, stream
_SEND_DATA = h2.connection.ConnectionInputs.SEND_DATA
_STREAM_SEND_DATA = h2.stream.StreamInputs.SEND_DATA


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
        window = self.local_flow_control_window(stream_id)  # raises for a closed stream
        if size > window:
            raise h2.exceptions.FlowControlError(
                f"Cannot send {size} bytes, flow control window is {window}"
            )
        if size > self.max_outbound_frame_size:
            raise h2.exceptions.FrameTooLargeError(
                f"Cannot send frame size {size}, max frame size is {self.max_outbound_frame_size}"
            )
        self.state_machine.process_input(_SEND_DATA)
        stream = self.streams[stream_id]
        stream.state_machine.process_input(_STREAM_SEND_DATA)
        stream.outbound_flow_control_window -= size
        self.outbound_flow_control_window -= size
        if self._data_to_send:
            out.append(bytes(self._data_to_send))
            self._data_to_send = bytearray()
        out.append(_DATA_HEADER(size >> 16, size & 0xFFFF, 0, 0, stream_id))
        out.append(data)
