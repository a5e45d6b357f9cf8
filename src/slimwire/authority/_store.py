"""The authority's state in SQLite: signing keys (with their retirement time) and clients.

SQLite because the authority is one small process that must survive restarts without losing its
keys (tokens it signed must stay verifiable) and needs no server. Client secrets are stored as
scrypt hashes, never in clear. Private signing keys are stored as PKCS#8 PEM: the database file
is created mode 0600 and is as sensitive as a key file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from slimwire.auth._jwks import JwsAlgorithm
from slimwire.auth._jwt import JwtSigner, PrivateKey
from slimwire.errors import ConfigError

__all__ = ["AuthorityStore", "ClientRecord", "KeyRecord"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS signing_keys (
    kid TEXT PRIMARY KEY,
    algorithm TEXT NOT NULL,
    private_pem BLOB NOT NULL,
    created_at REAL NOT NULL,
    retire_after REAL
);
CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY,
    secret_hash BLOB,
    salt BLOB,
    names TEXT NOT NULL,
    groups TEXT NOT NULL,
    allow_mtls INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS issued (
    jti TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    kid TEXT NOT NULL,
    issued_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
"""
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


def _hash_secret(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, **_SCRYPT)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    signer: JwtSigner
    created_at: float
    retire_after: float | None

    @property
    def kid(self) -> str:
        return self.signer.kid


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """A registered client: the name patterns it may claim (``fnmatch`` globs over
    ``org/ns/svc``), the groups its tokens carry, and how it may authenticate."""

    client_id: str
    names: tuple[str, ...]
    groups: tuple[str, ...]
    has_secret: bool
    allow_mtls: bool


class AuthorityStore:
    """SQLite-backed keys and clients (``":memory:"`` for tests)."""

    def __init__(self, path: str | os.PathLike[str] = ":memory:") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            p = Path(self.path)
            if not p.exists():
                p.parent.mkdir(parents=True, exist_ok=True)
                os.close(os.open(p, os.O_WRONLY | os.O_CREAT, 0o600))
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise ConfigError(f"authority database {self.path}: {exc}") from None
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    # ---- keys ------------------------------------------------------------------------------

    def add_key(self, signer: JwtSigner, created_at: float) -> None:
        pem = signer.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO signing_keys VALUES (?, ?, ?, ?, NULL)",
                (signer.kid, signer.algorithm.value, pem, created_at),
            )

    def retire_key(self, kid: str, retire_after: float) -> None:
        with self._lock, self._db:
            self._db.execute(
                "UPDATE signing_keys SET retire_after = ? WHERE kid = ? AND retire_after IS NULL",
                (retire_after, kid),
            )

    def keys(self) -> list[KeyRecord]:
        """All keys, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT kid, algorithm, private_pem, created_at, retire_after FROM signing_keys "
                "ORDER BY created_at DESC, rowid DESC"
            ).fetchall()
        out = []
        for kid, alg, pem, created, retire in rows:
            key = serialization.load_pem_private_key(pem, password=None)
            if not isinstance(key, PrivateKey):
                raise ConfigError(f"authority database: key {kid} has an unsupported type")
            signer = JwtSigner(key, kid)
            if signer.algorithm is not JwsAlgorithm(alg):
                raise ConfigError(f"authority database: key {kid} is not {alg}")
            out.append(KeyRecord(signer, created, retire))
        return out

    def prune_keys(self, now: float) -> int:
        with self._lock, self._db:
            cur = self._db.execute(
                "DELETE FROM signing_keys WHERE retire_after IS NOT NULL AND retire_after < ?",
                (now,),
            )
        return cur.rowcount

    # ---- clients ---------------------------------------------------------------------------

    def add_client(
        self,
        client_id: str,
        *,
        secret: str | None = None,
        names: Iterable[str] = ("*",),
        groups: Iterable[str] = (),
        allow_mtls: bool = False,
    ) -> None:
        """Register (or replace) a client. A secret is hashed with scrypt before storage."""
        if not client_id or any(c.isspace() for c in client_id):
            raise ValueError("client id must be non-empty without spaces")
        if secret is None and not allow_mtls:
            raise ValueError("a client needs a secret or allow_mtls")
        salt = secrets.token_bytes(16) if secret is not None else None
        digest = _hash_secret(secret, salt) if secret is not None and salt is not None else None
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO clients VALUES (?, ?, ?, ?, ?, ?)",
                (
                    client_id,
                    digest,
                    salt,
                    json.dumps(list(names)),
                    json.dumps(list(groups)),
                    int(allow_mtls),
                ),
            )

    def client(self, client_id: str) -> ClientRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT names, groups, secret_hash, allow_mtls FROM clients WHERE client_id = ?",
                (client_id,),
            ).fetchone()
        if row is None:
            return None
        names, groups, digest, mtls = row
        return ClientRecord(
            client_id,
            tuple(json.loads(names)),
            tuple(json.loads(groups)),
            digest is not None,
            bool(mtls),
        )

    def check_secret(self, client_id: str, secret: str) -> bool:
        """Constant-time check; an unknown client costs the same scrypt as a known one."""
        with self._lock:
            row = self._db.execute(
                "SELECT secret_hash, salt FROM clients WHERE client_id = ?", (client_id,)
            ).fetchone()
        digest, salt = row if row is not None and row[0] is not None else (None, b"\0" * 16)
        computed = _hash_secret(secret, salt)
        return digest is not None and hmac.compare_digest(computed, digest)

    def record_issued(
        self, jti: str, client_id: str, subject: str, *, kid: str, issued: float, expires: float
    ) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO issued VALUES (?, ?, ?, ?, ?, ?)",
                (jti, client_id, subject, kid, issued, expires),
            )
            self._db.execute("DELETE FROM issued WHERE expires_at < ?", (issued - 86400,))

    def __repr__(self) -> str:
        return f"AuthorityStore({self.path!r})"
