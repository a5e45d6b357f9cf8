"""Transport security against the reference (``slim-bindings``), both directions.

A reference app connects to our node with channel auth and TLS; our node links to a reference
node whose server has basic auth, JWT auth or mTLS.

The bindings' ``ClientConfig`` carries ``auth`` (BASIC, STATIC_JWT, JWT, ...) and ``tls``
(``TlsClientConfig`` with a CA source and a cert/key source), so the reference client side of
basic, static bearer JWT, TLS and mTLS can all be driven against our listener. Each app runs in
its own process (the Rust runtime is global), connects, subscribes, and reports; the test checks
our node's tables (a refused app never becomes a connection or a subscription).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from slimwire.config import AuthConfig, NodeConfig, ServerConfig, TlsConfig
from slimwire.dataplane import Node

from .test_transport_security import Pki, _jwt_server, _token, make_jwt_keys, make_pki

slim_bindings = pytest.importorskip("slim_bindings")

_SCRIPT = r"""
import asyncio, json, os, sys
import slim_bindings as slim

spec = json.loads(sys.argv[1])
# JSON on the real stdout; fd 1 (where the Rust runtime logs) goes to stderr
JSON_OUT = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)


def out(**kw):
    JSON_OUT.write(json.dumps(kw) + "\n")
    JSON_OUT.flush()


async def main():
    tracing = slim.new_tracing_config()
    tracing.log_level = "error"
    slim.initialize_with_configs(
        runtime_config=slim.new_runtime_config(),
        tracing_config=tracing,
        service_config=[slim.new_service_config()],
    )
    svc = slim.get_global_service()
    app = svc.create_app_with_secret(slim.Name.from_string(spec["name"]), "s" * 40)
    cfg = slim.new_insecure_client_config(spec["endpoint"])
    if "basic" in spec:
        user, password = spec["basic"]
        cfg.auth = slim.ClientAuthenticationConfig.BASIC(
            config=slim.BasicAuth(username=user, password=password)
        )
    if "token_file" in spec:
        import datetime

        cfg.auth = slim.ClientAuthenticationConfig.STATIC_JWT(
            config=slim.StaticJwtAuth(
                token_file=spec["token_file"], duration=datetime.timedelta(seconds=3600)
            )
        )
    if "ca" in spec:
        source = slim.TlsSource.NONE()
        if "cert" in spec:
            source = slim.TlsSource.FILE(cert=spec["cert"], key=spec["key"])
        cfg.tls = slim.TlsClientConfig(
            insecure=False,
            insecure_skip_verify=False,
            source=source,
            ca_source=slim.CaSource.FILE(path=spec["ca"]),
            include_system_ca_certs_pool=False,
            tls_version="tls1.3",
        )
    try:
        conn = await asyncio.wait_for(svc.connect_async(cfg), spec["timeout"])
        await asyncio.wait_for(app.subscribe_async(app.name(), conn), spec["timeout"])
    except BaseException as exc:
        out(ok=False, error=f"{type(exc).__name__}: {exc}")
        return
    out(ok=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


asyncio.run(main())
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def jwt_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_jwt_keys(tmp_path_factory.mktemp("jwt"))


class RefApp:
    """One reference app process; ``result`` is its first JSON line."""

    def __init__(self, proc: asyncio.subprocess.Process, result: dict[str, Any]) -> None:
        self.proc = proc
        self.result = result

    @classmethod
    async def start(cls, tmp: Path, **spec: Any) -> RefApp:
        script = tmp / "ref_auth_app.py"
        script.write_text(_SCRIPT)
        spec.setdefault("timeout", 8)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            json.dumps(spec),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(30):
                line = await proc.stdout.readline()
                while line and not line.startswith(b"{"):
                    line = await proc.stdout.readline()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        result = json.loads(line) if line else {"ok": False, "error": "no output"}
        return cls(proc, result)

    async def stop(self) -> None:
        if self.proc.returncode is None and self.proc.stdin is not None:
            self.proc.stdin.write(b"\n")
            self.proc.stdin.close()
        try:
            async with asyncio.timeout(10):
                await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


def _subscribed(node: Node, service: str) -> bool:
    return any(e.strings[2] == service for e in node.subscriptions())


async def _connect(node: Node, tmp: Path, service: str, **spec: Any) -> dict[str, Any]:
    """Start a reference app; if it connected, check our node has its subscription."""
    app = await RefApp.start(tmp, name=f"org/ns/{service}", **spec)
    try:
        if app.result["ok"]:
            await node.wait_for(lambda n: _subscribed(n, service), timeout=10)
        return app.result
    finally:
        await app.stop()


def _node(**kw: Any) -> NodeConfig:
    return NodeConfig(node_id="sw", servers=(ServerConfig(host="127.0.0.1", port=0, **kw),))


async def test_reference_app_basic_auth(tmp_path: Path) -> None:
    auth = AuthConfig(kind="basic", username="admin", password="s3cret")
    async with Node(_node(auth=auth)) as node:
        good = await _connect(
            node, tmp_path, "ref-good", endpoint=node.url, basic=["admin", "s3cret"]
        )
        assert good["ok"], good
        bad = await _connect(
            node, tmp_path, "ref-bad", endpoint=node.url, basic=["admin", "wrong"], timeout=4
        )
        assert not bad["ok"], bad
        assert not _subscribed(node, "ref-bad")
        none = await _connect(node, tmp_path, "ref-none", endpoint=node.url, timeout=4)
        assert not none["ok"], none


async def test_reference_app_static_jwt(tmp_path: Path, jwt_keys: dict[str, Path]) -> None:
    good_file, bad_file = tmp_path / "good.jwt", tmp_path / "bad.jwt"
    good_file.write_text(_token(jwt_keys["private"], exp=int(time.time()) + 600))
    bad_file.write_text(_token(jwt_keys["other_private"]))
    async with Node(_node(auth=_jwt_server(jwt_keys))) as node:
        good = await _connect(
            node, tmp_path, "ref-jwt", endpoint=node.url, token_file=str(good_file)
        )
        assert good["ok"], good
        bad = await _connect(
            node, tmp_path, "ref-badjwt", endpoint=node.url, token_file=str(bad_file), timeout=4
        )
        assert not bad["ok"], bad


async def test_reference_app_tls_and_mtls(tmp_path: Path, pki: Pki) -> None:
    tls = TlsConfig(insecure=False, cert_file=str(pki.server_cert), key_file=str(pki.server_key))
    async with Node(_node(tls=tls)) as node:
        url = node.url.replace("http://", "https://")
        ok = await _connect(node, tmp_path, "ref-tls", endpoint=url, ca=str(pki.ca))
        assert ok["ok"], ok
        wrong_ca = await _connect(
            node, tmp_path, "ref-wrongca", endpoint=url, ca=str(pki.other_ca), timeout=4
        )
        assert not wrong_ca["ok"], wrong_ca
    mtls = TlsConfig(
        insecure=False,
        cert_file=str(pki.server_cert),
        key_file=str(pki.server_key),
        client_ca_file=str(pki.ca),
    )
    async with Node(_node(tls=mtls)) as node:
        url = node.url.replace("http://", "https://")
        ok = await _connect(
            node,
            tmp_path,
            "ref-mtls",
            endpoint=url,
            ca=str(pki.ca),
            cert=str(pki.client_cert),
            key=str(pki.client_key),
        )
        assert ok["ok"], ok
        rogue = await _connect(
            node,
            tmp_path,
            "ref-rogue",
            endpoint=url,
            ca=str(pki.ca),
            cert=str(pki.rogue_cert),
            key=str(pki.rogue_key),
            timeout=4,
        )
        assert not rogue["ok"], rogue
        assert not _subscribed(node, "ref-rogue")


# -- our node's links to a reference node with transport security ------------------------

_NODE_SCRIPT = r"""
import os, socket, sys, time
import slim_bindings as slim

config_path, port = sys.argv[1], int(sys.argv[2])
JSON_OUT = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
slim.initialize_from_config_with_error(config_path)
deadline = time.monotonic() + 15
while time.monotonic() < deadline:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        break
    except OSError:
        time.sleep(0.02)
JSON_OUT.write("{\"ready\": true}\n")
sys.stdin.buffer.read()  # until the test closes our stdin
os._exit(0)
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RefNode:
    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.port = port

    @classmethod
    async def start(cls, tmp: Path, server_extra: str) -> RefNode:
        port = _free_port()
        cfg = tmp / f"ref-node-{port}.yaml"
        cfg.write_text(
            "tracing: {log_level: error}\nruntime: {n_cores: 0}\nservices:\n  slim/ref:\n"
            "    node_id: ref-secure\n    dataplane:\n      servers:\n"
            f'        - endpoint: "127.0.0.1:{port}"\n{server_extra}      clients: []\n'
        )
        script = tmp / "ref_secure_node.py"
        script.write_text(_NODE_SCRIPT)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            str(cfg),
            str(port),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(30):
                line = await proc.stdout.readline()
                while line and not line.startswith(b"{"):
                    line = await proc.stdout.readline()
            assert line, "the reference node did not start"
        except BaseException:
            proc.kill()
            await proc.wait()
            raise
        return cls(proc, port)

    async def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            async with asyncio.timeout(10):
                await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


def _linked_to_ref(node: Node) -> bool:
    return any(c.peer_node_id == "ref-secure" for c in node.connections())


async def _refused_link(node: Node, caplog: pytest.LogCaptureFixture, needle: str) -> None:
    """The link's first attempt fails (logged with the reason) and it never comes up."""
    async with asyncio.timeout(15):
        while not any(
            "re-dialling" in r.getMessage() and needle in r.getMessage() for r in caplog.records
        ):
            await asyncio.sleep(0.05)
    assert not _linked_to_ref(node)


async def test_our_link_to_a_reference_node_with_basic_auth(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ref = await RefNode.start(
        tmp_path,
        "          tls: {insecure: true}\n"
        "          auth: {type: basic, username: u, password: pw}\n",
    )
    url = f"http://127.0.0.1:{ref.port}"
    try:
        with caplog.at_level(logging.INFO, "slimwire.dataplane._node"):
            async with Node(NodeConfig(node_id="sw-bad", servers=())) as bad:
                await bad.add_link(url, connection_type="peer", auth=AuthConfig("basic", "u", "no"))
                await _refused_link(bad, caplog, "grpc status 16")
            async with Node(NodeConfig(node_id="sw", servers=())) as node:
                await node.add_link(
                    url, connection_type="peer", auth=AuthConfig("basic", "u", "pw")
                )
                await node.wait_for(_linked_to_ref, timeout=15)
    finally:
        await ref.stop()


async def test_our_jwt_link_to_a_reference_node(
    tmp_path: Path, jwt_keys: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    ref = await RefNode.start(
        tmp_path,
        "          tls: {insecure: true}\n"
        "          auth:\n            type: jwt\n"
        "            claims: {audience: [slim], issuer: test-issuer}\n"
        "            key: {type: decoding, algorithm: ES256, format: pem,"
        f" key: {{file: {jwt_keys['public']}}}}}\n",
    )
    url = f"http://127.0.0.1:{ref.port}"

    def signed(key: Path) -> AuthConfig:
        return AuthConfig(
            kind="jwt",
            audience=("slim",),
            issuer="test-issuer",
            subject="sw",
            key_type="encoding",
            key_algorithm="ES256",
            key_format="pem",
            key_file=str(key),
        )

    try:
        with caplog.at_level(logging.INFO, "slimwire.dataplane._node"):
            async with Node(NodeConfig(node_id="sw-bad", servers=())) as bad:
                await bad.add_link(
                    url, connection_type="peer", auth=signed(jwt_keys["other_private"])
                )
                await _refused_link(bad, caplog, "grpc status 16")
            async with Node(NodeConfig(node_id="sw", servers=())) as node:
                await node.add_link(url, connection_type="peer", auth=signed(jwt_keys["private"]))
                await node.wait_for(_linked_to_ref, timeout=15)
    finally:
        await ref.stop()


async def test_our_mtls_link_to_a_reference_node(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    ref = await RefNode.start(
        tmp_path,
        "          tls:\n"
        f"            source: {{type: file, cert: {pki.server_cert}, key: {pki.server_key}}}\n"
        f"            client_ca: {{type: file, path: {pki.ca}}}\n",
    )
    url = f"https://127.0.0.1:{ref.port}"

    def tls(cert: Path, key: Path) -> TlsConfig:
        return TlsConfig(
            insecure=False, ca_file=str(pki.ca), cert_file=str(cert), key_file=str(key)
        )

    try:
        with caplog.at_level(logging.INFO, "slimwire.dataplane._node"):
            async with Node(NodeConfig(node_id="sw-bad", servers=())) as bad:
                await bad.add_link(
                    url, connection_type="peer", tls=tls(pki.rogue_cert, pki.rogue_key)
                )
                await _refused_link(bad, caplog, "re-dialling")
            async with Node(NodeConfig(node_id="sw", servers=())) as node:
                await node.add_link(
                    url, connection_type="peer", tls=tls(pki.client_cert, pki.client_key)
                )
                await node.wait_for(_linked_to_ref, timeout=15)
    finally:
        await ref.stop()
