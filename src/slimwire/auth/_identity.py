"""An app's identity: the token id its name id is derived from, and its signature key.

The reference derives an app's 128-bit name id from its identity provider's id
(``XXH3-128(token_id)``), and the identity provider owns the signature key whose public half
every token carries. Keeping both in one value, and being able to persist it, is what lets an app
restart under the same name id and the same key (so peers and MLS groups still know it).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import string
from pathlib import Path

from slimwire.auth._keys import KeyAlgorithm, SigningKey
from slimwire.errors import AuthError
from slimwire.names import app_id_from_token_id

__all__ = ["Identity", "random_token_id"]

_ALNUM = string.ascii_letters + string.digits
_FILE_VERSION = 1


def _check_base_id(base_id: str) -> None:
    if not base_id or ":" in base_id or any(c.isspace() for c in base_id):
        raise ValueError(f"identity base id must be non-empty, without ':' or spaces: {base_id!r}")


def random_token_id(base_id: str) -> str:
    """``<base_id>_<8 random alphanumerics>``, the id form of the reference's shared secret."""
    _check_base_id(base_id)
    return f"{base_id}_{''.join(secrets.choice(_ALNUM) for _ in range(8))}"


class Identity:
    """A token id plus a signature key (immutable): :meth:`generate` or :meth:`load` one."""

    __slots__ = ("_key", "_token_id")

    def __init__(self, token_id: str, signing_key: SigningKey) -> None:
        _check_base_id(token_id)
        self._token_id = token_id
        self._key = signing_key

    @classmethod
    def generate(cls, base_id: str, algorithm: KeyAlgorithm = KeyAlgorithm.P256) -> Identity:
        """A new identity with a random id suffix and a fresh key (what the reference does)."""
        return cls(random_token_id(base_id), SigningKey.generate(algorithm))

    @property
    def token_id(self) -> str:
        """The subject every token of this identity carries (``sub``)."""
        return self._token_id

    @property
    def base_id(self) -> str:
        return self._token_id.rsplit("_", 1)[0] if "_" in self._token_id else self._token_id

    @property
    def signing_key(self) -> SigningKey:
        return self._key

    @property
    def public_key(self) -> bytes:
        return self._key.public_bytes

    @property
    def name_id(self) -> int:
        """The 128-bit name id a reference app with this identity uses."""
        return app_id_from_token_id(self._token_id)

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": _FILE_VERSION,
                "token_id": self._token_id,
                "algorithm": self._key.algorithm.value,
                "private_key": base64.b64encode(self._key.private_bytes).decode(),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Identity:
        try:
            data = json.loads(text)
            if data.get("version") != _FILE_VERSION:
                raise AuthError(f"unsupported identity file version {data.get('version')!r}")
            key = SigningKey.from_private_bytes(
                base64.b64decode(data["private_key"], validate=True),
                KeyAlgorithm(data["algorithm"]),
            )
            return cls(str(data["token_id"]), key)
        except AuthError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise AuthError(f"malformed identity file: {exc}") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the identity (it holds a private key: the file is created mode 0600)."""
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.to_json())
        os.replace(tmp, target)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Identity:
        return cls.from_json(Path(path).read_text())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Identity):
            return NotImplemented
        return self._token_id == other._token_id and self.public_key == other.public_key

    def __hash__(self) -> int:
        return hash((self._token_id, self.public_key))

    def __repr__(self) -> str:
        return f"Identity({self._token_id!r}, {self._key!r})"
