"""SLIM names: ``org/namespace/service`` plus an optional 128-bit id.

Routing never looks at the strings: each component is hashed to a u64 exactly as the reference
does (XXH64, seed 0, over the UTF-8 bytes followed by one ``0xFF`` byte, which is what Rust's
``Hash for str`` feeds the hasher). The id is a u128; ``NULL_ID`` (2^128-1) means "no id" and is
sent explicitly. A destination with ``NULL_ID`` matches any id under the prefix (anycast); a
specific id matches only itself.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field

import xxhash

from slimwire._proto import data_plane_pb2 as pb

__all__ = [
    "MAX_ID",
    "NULL_ID",
    "RESERVED_IDS",
    "Name",
    "app_id_from_token_id",
    "channel_ids",
    "component_hash",
    "format_id",
    "parse_id",
]

MAX_ID = (1 << 128) - 1
NULL_ID = MAX_ID
"""The "no id" value: both 64-bit halves all ones."""
RESERVED_IDS = 50
"""Ids at or above ``MAX_ID - RESERVED_IDS`` are reserved by the reference."""
_MASK64 = (1 << 64) - 1
NULL_TEXT = "NULL_COMPONENT"


@functools.lru_cache(maxsize=65536)
def component_hash(component: str) -> int:
    """Hash one name component to the u64 the reference routes on."""
    return xxhash.xxh64_intdigest(component.encode() + b"\xff", seed=0)


def format_id(name_id: int) -> str:
    """An id as the reference prints it: a UUID string, or ``NULL_COMPONENT``."""
    if name_id == NULL_ID:
        return NULL_TEXT
    return str(uuid.UUID(int=name_id))


def parse_id(text: str) -> int:
    """Parse :func:`format_id` output (a UUID string or ``NULL_COMPONENT``)."""
    text = text.strip()
    if text == NULL_TEXT:
        return NULL_ID
    try:
        return uuid.UUID(text).int
    except ValueError:
        raise ValueError(f"not a name id: {text!r} (expected a UUID or {NULL_TEXT})") from None


def _unreserve(value: int) -> int:
    return value % (MAX_ID - RESERVED_IDS) if value >= MAX_ID - RESERVED_IDS else value


def app_id_from_token_id(token_id: str) -> int:
    """The id the reference gives an app: XXH3-128 of its identity provider's id."""
    return _unreserve(xxhash.xxh3_128_intdigest(token_id.encode()))


def channel_ids(token_id: str, channel: Name) -> tuple[int, int]:
    """The (data, control) ids a reference moderator derives for a group channel."""
    base = f"{token_id}/{channel.org}/{channel.namespace}/{channel.service}"
    data = ctrl = 0
    for salt in range(11):
        data = xxhash.xxh3_128_intdigest(f"{base}/data".encode(), seed=salt)
        ctrl = xxhash.xxh3_128_intdigest(f"{base}/control".encode(), seed=salt)
        if data != ctrl:
            break

    def fix(value: int) -> int:
        if value >= MAX_ID - RESERVED_IDS:
            return (value % (MAX_ID - RESERVED_IDS - 1)) + 1
        return value

    return fix(data), fix(ctrl)


@dataclass(frozen=True, slots=True)
class Name:
    """An immutable SLIM name: ``Name.parse("org/ns/svc")`` or ``Name("org", "ns", "svc", 7)``."""

    org: str
    namespace: str
    service: str
    id: int = NULL_ID
    encoded: tuple[int, int, int] = field(init=False, repr=False, compare=False)
    key: tuple[int, int, int, int] = field(init=False, repr=False, compare=False)
    """What routing compares: the three hashes and the id (kept, not rebuilt per use: the
    session data path reads it several times per message)."""

    def __post_init__(self) -> None:
        for part in (self.org, self.namespace, self.service):
            if not part or part != part.strip() or "/" in part:
                raise ValueError(f"invalid name component {part!r}")
        if not 0 <= self.id <= MAX_ID:
            raise ValueError(f"name id out of range: {self.id}")
        encoded = tuple(component_hash(c) for c in (self.org, self.namespace, self.service))
        object.__setattr__(self, "encoded", encoded)
        object.__setattr__(self, "key", (*encoded, self.id))

    @classmethod
    def parse(cls, text: str) -> Name:
        """Parse ``org/ns/svc`` or ``org/ns/svc/<uuid|NULL_COMPONENT>``."""
        parts = [p.strip() for p in text.strip().split("/")]
        if len(parts) not in (3, 4) or not all(parts):
            raise ValueError(f"a name is org/namespace/service[/id], got {text!r}")
        name_id = parse_id(parts[3]) if len(parts) == 4 else NULL_ID
        return cls(parts[0], parts[1], parts[2], name_id)

    @property
    def has_id(self) -> bool:
        return self.id != NULL_ID

    @property
    def components(self) -> tuple[str, str, str]:
        return (self.org, self.namespace, self.service)

    def with_id(self, name_id: int) -> Name:
        return Name(self.org, self.namespace, self.service, name_id)

    def without_id(self) -> Name:
        return self.with_id(NULL_ID)

    def __str__(self) -> str:
        return f"{self.org}/{self.namespace}/{self.service}/{format_id(self.id)}"

    def short(self) -> str:
        """``org/ns/svc`` when there is no id, else the full form."""
        return str(self) if self.has_id else f"{self.org}/{self.namespace}/{self.service}"

    def fill_proto(self, out: pb.Name) -> pb.Name:
        """Write both the encoded and the string form into ``out`` (as the reference sends)."""
        enc = out.name
        enc.component_0, enc.component_1, enc.component_2 = self.encoded
        enc.name_id.id_0 = self.id >> 64
        enc.name_id.id_1 = self.id & _MASK64
        s = out.str_name
        s.str_component_0, s.str_component_1, s.str_component_2 = self.components
        return out

    def to_proto(self) -> pb.Name:
        return self.fill_proto(pb.Name())

    @classmethod
    def from_proto(cls, msg: pb.Name) -> Name:
        """Rebuild a Name from its string form; the id from ``name_id`` (absent means none)."""
        s = msg.str_name
        enc = msg.name
        nid = enc.name_id
        name_id = (nid.id_0 << 64 | nid.id_1) if enc.HasField("name_id") else NULL_ID
        return cls(s.str_component_0, s.str_component_1, s.str_component_2, name_id)


def proto_key(msg: pb.Name) -> tuple[int, int, int, int]:
    """The routing key of a proto name without building a :class:`Name` (hot path)."""
    enc = msg.name
    nid = enc.name_id
    return (
        enc.component_0,
        enc.component_1,
        enc.component_2,
        (nid.id_0 << 64 | nid.id_1) if enc.HasField("name_id") else NULL_ID,
    )
