"""A reference app (``slim-bindings``) connects to our node with channel auth and TLS.

The bindings' ``ClientConfig`` carries ``auth`` (BASIC, STATIC_JWT, JWT, ...) and ``tls``
(``TlsClientConfig`` with a CA source and a cert/key source), so the reference client side of
basic, static bearer JWT, TLS and mTLS can all be driven against our listener. Each app runs in
its own process (the Rust runtime is global), connects, subscribes, and reports; the test checks
our node's tables (a refused app never becomes a connection or a subscription).
"""

from __future__ import annotations

import asyncio
import json
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
