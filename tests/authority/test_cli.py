"""``slimwire authority``: manage clients and keys, and serve as a subprocess."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from slimwire.auth import Identity
from slimwire.auth._jwks import JwksUrl
from slimwire.auth._jwt import JwtVerifier
from slimwire.authority import request_token
from slimwire.cli import main


def test_add_client_rotate_and_jwks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "auth.db")
    monkeypatch.setenv("AGENT_SECRET", "s3cret-value")
    assert (
        main(
            [
                "authority",
                "add-client",
                "--db",
                db,
                "--id",
                "a",
                "--secret-env",
                "AGENT_SECRET",
                "--names",
                "org/ns/*",
            ]
        )
        == 0
    )
    assert main(["authority", "add-client", "--db", db, "--id", "b"]) == 2  # no secret, no mTLS
    assert main(["authority", "jwks", "--db", db]) == 0
    out = capsys.readouterr().out
    first = json.loads(out[out.index("{") :])["keys"]
    assert len(first) == 1
    assert main(["authority", "rotate", "--db", db]) == 0
    new_kid = capsys.readouterr().out.strip()
    assert main(["authority", "jwks", "--db", db]) == 0
    kids = {k["kid"] for k in json.loads(capsys.readouterr().out)["keys"]}
    assert kids == {first[0]["kid"], new_kid}


async def test_serve_subprocess(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = str(tmp_path / "auth.db")
    monkeypatch.setenv("AGENT_SECRET", "s3cret-value")
    assert (
        main(["authority", "add-client", "--db", db, "--id", "a", "--secret-env", "AGENT_SECRET"])
        == 0
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "slimwire", "authority", "serve", "--db", db, "--issuer", "iss"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        assert line.startswith("slimwire authority ready on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1].strip()
        ident = Identity.generate("org/ns/x")
        answer = await request_token(
            url,
            name="org/ns/x",
            public_key=ident.public_key,
            client_id="a",
            client_secret="s3cret-value",
        )
        verifier = JwtVerifier(
            JwksUrl(url + "/.well-known/jwks.json"), audience="slim", issuer="iss"
        )
        assert (await verifier.averify(answer["token"])).public_key == ident.public_key
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 30)
    assert code == 0
