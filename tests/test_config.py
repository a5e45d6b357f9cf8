"""Node configuration: the reference's YAML shape, env substitution, strict keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from slimwire.config import (
    BackoffConfig,
    default_config,
    load_config,
    parse_config,
    parse_duration,
)
from slimwire.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_embedded_default() -> None:
    cfg = default_config()
    (server,) = cfg.servers
    assert (server.host, server.port) == ("127.0.0.1", 46357)
    assert server.tls.insecure
    assert server.require_header_mac
    assert server.negotiation_timeout == 5.0
    assert cfg.clients == ()


def test_example_file_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODE_ID", "from-env")
    cfg = load_config(EXAMPLES / "node.yaml")
    assert cfg.node_id == "from-env"
    (client,) = cfg.clients
    assert client.endpoint == "http://127.0.0.1:46367"
    assert client.connection_type == "remote"
    assert client.backoff.delay(5) == 2.0
    assert cfg.slow_consumer_timeout == 30.0


MINIMAL = """
services:
  slim/0:
    node_id: n1
    dataplane:
      servers:
        - endpoint: "[::1]:0"
          tls: {insecure: true}
          keepalive: {time: 30s, timeout: 5s, max_connection_idle: 3600s}
      clients:
        - endpoint: http://127.0.0.1:1234
          link_id: fixed
          connection_type: edge
          require_header_mac: false
          backoff: {type: exponential, base: 100ms, factor: 2, max_delay: 1s}
          keepalive: {http2_keepalive: 15s, timeout: 3s, tcp_keepalive: 60s}
"""


def test_reference_shape_fields() -> None:
    cfg = parse_config(MINIMAL)
    assert cfg.node_id == "n1"
    assert (cfg.servers[0].host, cfg.servers[0].port) == ("::1", 0)
    assert cfg.servers[0].endpoint == "[::1]:0"
    assert (cfg.servers[0].keepalive_time, cfg.servers[0].keepalive_timeout) == (30.0, 5.0)
    c = cfg.clients[0]
    assert (c.link_id, c.connection_type, c.require_header_mac) == ("fixed", "edge", False)
    assert [c.backoff.delay(i) for i in range(5)] == [0.1, 0.2, 0.4, 0.8, 1.0]
    assert (c.keepalive_time, c.keepalive_timeout) == (15.0, 3.0)


def test_env_substitution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT_X", "4711")
    cfg = parse_config(
        "services:\n  slim/0:\n    dataplane:\n"
        "      servers: [{endpoint: '127.0.0.1:${env:PORT_X}'}]\n"
        "      clients: []\n    node_id: ${env:MISSING_ID_X:-dflt}\n"
        "tracing: {log_level: warn}\n"
    )
    assert cfg.servers[0].port == 4711
    assert cfg.node_id == "dflt"
    assert cfg.log_level == "warning"
    with pytest.raises(ConfigError, match="MISSING_VAR_Y is not set"):
        parse_config("services:\n  slim/0:\n    node_id: ${env:MISSING_VAR_Y}\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bogus: 1\nservices: {slim/0: {}}", "unknown key config.bogus"),
        ("services: {slim/0: {nodeid: x}}", r"unknown key services.slim/0.nodeid"),
        (
            "services: {slim/0: {dataplane: {servers: [{endpoint: 'a:1', tlss: {}}]}}}",
            r"unknown key services.slim/0.dataplane.servers\[0\].tlss",
        ),
        (
            "services: {slim/0: {dataplane: {clients: [{endpoint: 'http://a:1', foo: 1}]}}}",
            r"unknown key services.slim/0.dataplane.clients\[0\].foo",
        ),
        ("services: {gateway/0: {}}", "unknown key services.gateway/0"),
        ("services: {}", "no services configured"),
        ("services: {slim/0: {dataplane: {servers: [{tls: {}}]}}}", "endpoint is required"),
        ("services: {slim/0: {dataplane: {servers: [{endpoint: 'nope'}]}}}", "host:port"),
        ("services: {slim/0: {dataplane: {clients: [{endpoint: 'a:1'}]}}}", "http://host:port"),
        (
            "services: {slim/0: {dataplane: {servers: [{endpoint: 'a:1', "
            "tls: {insecure: false}}]}}}",
            "no cert_file",
        ),
        ("services: {slim/0: {dataplane: {enforce_pqc: 3}}}", "expected true or false"),
        ("tracing: {log_level: loud}\nservices: {slim/0: {}}", "unknown level"),
        ("services: [", "invalid YAML"),
    ],
)
def test_errors_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(text)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config("/nonexistent/slimwire.yaml")


def test_durations() -> None:
    assert parse_duration("10s") == 10.0
    assert parse_duration("250ms") == 0.25
    assert parse_duration("2m") == 120.0
    assert parse_duration(3) == 3.0
    assert parse_duration({"secs": 1, "nanos": 500_000_000}) == 1.5
    with pytest.raises(ConfigError):
        parse_duration("soon")
    assert BackoffConfig().delay(0) == 2.0
