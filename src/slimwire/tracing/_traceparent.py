"""W3C Trace Context ``traceparent`` values, without OpenTelemetry.

SLIM carries trace context in ``Message.metadata`` (slim-wire.md §2.9), which is end to end and
outside the header MAC, so a node can read and rewrite it. This module only parses and formats
the header value (https://www.w3.org/TR/trace-context/#traceparent-header): the node uses it to
decide, without the SDK, whether a message is traced at all, and the reader is fed by the
network, so it is strict and never raises.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["TRACEPARENT", "TRACESTATE", "TraceParent", "parse_traceparent"]

TRACEPARENT = "traceparent"
"""The metadata key (the W3C header name, lower case, as the reference's propagator writes)."""
TRACESTATE = "tracestate"

_HEX = re.compile(r"[0-9a-f]+")


class TraceParent(NamedTuple):
    """A parsed ``traceparent``: 128-bit trace id, 64-bit parent span id, 8 flag bits."""

    trace_id: int
    span_id: int
    flags: int = 1
    version: int = 0

    @property
    def sampled(self) -> bool:
        return bool(self.flags & 1)

    def format(self) -> str:
        """The version-00 header value (a newer version is written as 00, as W3C asks)."""
        return f"00-{self.trace_id:032x}-{self.span_id:016x}-{self.flags:02x}"

    def child(self, span_id: int) -> TraceParent:
        """The value a hop that made span ``span_id`` under this parent passes on."""
        return TraceParent(self.trace_id, span_id, self.flags)


def parse_traceparent(value: str) -> TraceParent | None:
    """``value`` parsed, or None when it is not a valid ``traceparent``.

    Version 00 must be exactly ``00-<32 hex>-<16 hex>-<2 hex>``; a higher version (not ff)
    may carry more fields after a ``-``, which are ignored. All-zero ids are invalid.
    """
    if not isinstance(value, str) or len(value) < 55 or not value.isascii():
        return None
    version, trace, span, flags = value[0:2], value[3:35], value[36:52], value[53:55]
    if value[2] != "-" or value[35] != "-" or value[52] != "-":
        return None
    if not all(_HEX.fullmatch(part) for part in (version, trace, span, flags)):
        return None
    v = int(version, 16)
    if v == 0xFF or (v == 0 and len(value) != 55) or (len(value) > 55 and value[55] != "-"):
        return None
    trace_id = int(trace, 16)
    span_id = int(span, 16)
    if trace_id == 0 or span_id == 0:
        return None
    return TraceParent(trace_id, span_id, int(flags, 16), v)
