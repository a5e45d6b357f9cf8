"""``services.slim/N.controller`` in a node config: kept for start_node_control, checked."""

from __future__ import annotations

import pytest

from slimwire.config import parse_config
from slimwire.errors import ConfigError

BASE = """
services:
  slim/0:
    node_id: a
    domain_name: d1
    dataplane: {servers: [{endpoint: "127.0.0.1:0", tls: {insecure: true}}]}
"""


def test_a_controller_section_is_kept_with_auth_and_not_ignored() -> None:
    cfg = parse_config(
        BASE
        + """
    auth: {type: shared_secret, secret: "s"}
    controller:
      clients: [{endpoint: "http://127.0.0.1:50052", tls: {insecure: true}}]
      servers: [{endpoint: "127.0.0.1:46358"}]
"""
    )
    assert cfg.control is not None
    assert cfg.control["controller"]["clients"][0]["endpoint"] == "http://127.0.0.1:50052"
    assert cfg.control["domain_name"] == "d1"
    assert cfg.ignored == ()


def test_without_a_controller_auth_stays_ignored() -> None:
    cfg = parse_config(BASE + '    auth: {type: shared_secret, secret: "s"}\n')
    assert cfg.control is None
    assert cfg.ignored == ("services.slim/0.auth",)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("controller: {client: []}", "unknown key services.slim/0.controller.client"),
        ("controller: {clients: {endpoint: x}}", "expected a list of mappings"),
        ("controller: {clients: [{tls: {}}]}", "clients[0].endpoint"),
    ],
)
def test_bad_controller_sections_are_config_errors(section: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config(BASE + "    " + section + "\n")
