"""Our .proto is wire-identical to the reference: every captured message round-trips."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from slimwire._proto import data_plane_pb2 as pb

from .conftest import CAPTURES, REPO

CAPTURE_FILES = ["wire_nomls.jsonl", "wire_mls.jsonl", "wire_group.jsonl"]


def _records(name: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in (CAPTURES / name).read_text().splitlines() if line]


def _no_unknown_fields(msg: object) -> None:
    from google.protobuf.message import Message
    from google.protobuf.unknown_fields import UnknownFieldSet

    assert isinstance(msg, Message)
    assert len(UnknownFieldSet(msg)) == 0, f"unknown fields in {type(msg).__name__}"
    for fd, value in msg.ListFields():
        if fd.message_type is None:
            continue
        if fd.message_type.GetOptions().map_entry:
            continue
        if fd.is_repeated:
            for v in value:
                _no_unknown_fields(v)
        else:
            _no_unknown_fields(value)


@pytest.mark.parametrize("name", CAPTURE_FILES)
def test_captures_round_trip_byte_for_byte(name: str) -> None:
    records = _records(name)
    assert records
    for rec in records:
        raw = base64.b64decode(str(rec["b64"]))
        assert len(raw) == rec["len"]
        msg = pb.Message.FromString(raw)
        _no_unknown_fields(msg)
        # deterministic=True orders map entries; the reference (prost) writes them in its own
        # order, so messages with several metadata entries may legitimately differ in order only.
        again = msg.SerializeToString()
        if again != raw:
            assert len(msg.metadata) > 1, f"{name} #{rec['n']} does not re-serialize identically"
            assert pb.Message.FromString(again) == msg


def test_generated_modules_are_current() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_proto.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_proto_package_and_method_path() -> None:
    svc = pb.DESCRIPTOR.services_by_name["DataPlaneService"]
    assert svc.full_name == "dataplane.proto.v1.DataPlaneService"
    assert svc.methods_by_name["OpenChannel"].client_streaming
    assert Path(pb.__file__).name == "data_plane_pb2.py"


def test_control_plane_services() -> None:
    from slimwire._proto import controller_pb2, controlplane_pb2

    ctl = controller_pb2.DESCRIPTOR.services_by_name["ControllerService"]
    assert ctl.full_name == "controller.proto.v1.ControllerService"
    assert ctl.methods_by_name["OpenControlChannel"].client_streaming
    north = controlplane_pb2.DESCRIPTOR.services_by_name["ControlPlaneService"]
    assert north.methods_by_name["ListNodes"].server_streaming
    # Field numbers that differ from declaration order must survive (reference wire layout).
    fields = controller_pb2.ControlMessage.DESCRIPTOR.fields_by_name
    assert fields["config_command_ack"].number == 20
    assert controlplane_pb2.NodeEntry.DESCRIPTOR.fields_by_name["status"].number == 4
