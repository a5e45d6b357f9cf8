"""``h2`` adapted to gRPC's needs (private hooks of ``h2.connection.H2Connection``).

Two things in ``h2`` 4.x get in the way of a gRPC peer and are fixed here, in one place:

* a GOAWAY, sent or received, closes the whole connection state machine, while gRPC's graceful
  shutdown lets streams at or below ``last_stream_id`` finish after it;
* every received frame is ``repr``-ed for a trace log even with logging off, and a DATA frame's
  repr hex-encodes its whole payload.
"""

from __future__ import annotations

import h2.connection
import h2.errors
import h2.events
import hyperframe.frame

__all__ = ["H2Connection"]


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
