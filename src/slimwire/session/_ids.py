"""Session and message ids, with the reference's ranges and wrap-around.

Data messages are numbered per sender from 1 and wrap at ``MAX_PUBLISH_ID`` (2^31-1) to 0;
ordering uses a half-space window so a stream survives the wrap. Control requests use random
u32s, and replies reuse the request's id, which is how a requester matches them. Direct
messages in a group (``publish_to``) use random ids above ``MAX_PUBLISH_ID`` so they never
collide with the ordered stream.
"""

from __future__ import annotations

import secrets

__all__ = [
    "MAX_PUBLISH_ID",
    "MAX_SESSION_ID",
    "id_distance",
    "is_after",
    "next_data_id",
    "random_control_id",
    "random_publish_to_id",
    "random_session_id",
]

U32_MAX = (1 << 32) - 1
MAX_PUBLISH_ID = U32_MAX // 2
"""Largest data message id (2^31-1); the counter wraps to 0 after it."""
MAX_SESSION_ID = U32_MAX - 1000
"""Session ids are drawn from ``[0, MAX_SESSION_ID)``."""
_ID_SPACE = MAX_PUBLISH_ID + 1
_HALF = (MAX_PUBLISH_ID + 1) // 2


def next_data_id(current: int) -> int:
    """The id after ``current`` (start from 0 to get 1 first)."""
    return (current + 1) % _ID_SPACE


def id_distance(start: int, end: int) -> int:
    """Steps from ``start`` forward to ``end`` in the wrapping data id space."""
    return (end - start) % _ID_SPACE


def is_after(a: int, b: int) -> bool:
    """True when ``a`` comes after ``b`` by at most half the id space."""
    distance = id_distance(b, a)
    return 0 < distance <= _HALF


def random_control_id() -> int:
    """A random non-zero u32 (a zero control id is refused by MLS-enabled peers)."""
    return secrets.randbelow(U32_MAX) + 1


def random_publish_to_id() -> int:
    """A random id strictly between ``MAX_PUBLISH_ID`` and ``U32_MAX``."""
    return MAX_PUBLISH_ID + 1 + secrets.randbelow(U32_MAX - MAX_PUBLISH_ID - 1)


def random_session_id() -> int:
    return secrets.randbelow(MAX_SESSION_ID)
