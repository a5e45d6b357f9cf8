"""Protocol constants shared by every layer (values as the reference uses them)."""

from __future__ import annotations

SLIM_VERSION = "3.4.6"
"""The SLIM protocol version we announce in link negotiation and in every header's ``version``.

It is the version the reference 3.3.8 bindings announce; the reference only checks that it is
valid semver, and peers compare nothing else."""

DATAPLANE_PATH = "/dataplane.proto.v1.DataPlaneService/OpenChannel"
CONTROLLER_PATH = "/controller.proto.v1.ControllerService/OpenControlChannel"

DEFAULT_TTL = 8
"""Hops a message may take; proto3's default 0 would be dropped at the first node."""
UNICAST_FANOUT = 1
MULTICAST_FANOUT = 256
"""Any fanout other than 1 means "all matches"; the reference sends 256."""

DEFAULT_DATAPLANE_PORT = 46357
DEFAULT_NODE_CONTROL_PORT = 46358
DEFAULT_CONTROLLER_NORTH_PORT = 50051
DEFAULT_CONTROLLER_SOUTH_PORT = 50052

NEGOTIATION_TIMEOUT_S = 5.0
MAC_LEN = 32
