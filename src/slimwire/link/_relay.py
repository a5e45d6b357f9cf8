"""The node's unicast hot path, fused: walk, verify, splice and re-sign a run of received bytes.

:func:`~slimwire.link.parse_frame` + :meth:`HeaderMac.verify_frame` + :meth:`Frame.forward_signed`
produce exactly the right bytes, but through a 22-field frame tuple, four Python calls into the
MAC and one protobuf parse per message. A node forwarding one link's messages to another pays
those per message although almost everything they compute is the same for the whole run: the
incoming link's key and conn id, the ttl decrement, the few header layouts a link uses, the
destination's key. :class:`Relay` does the same work in one loop per received batch, with those
constants bound once, HMAC states copied inline, the per-layout outbound bytes cached, and the
rest-of-message validation done once per run (see :meth:`Relay.run`).

It takes only the plain, common case (a tagged unicast Publish in protobuf's field order whose
MAC verifies, ttl still positive, destination already routed to a MAC'd link) and stops at the
first message that is anything else, without side effects for that message: the caller handles
it on the general path and calls again after it. So every rule and every drop counter lives in
one place (the forwarder's general path), and this module only makes the common case cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from hmac import compare_digest
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from google.protobuf.message import DecodeError

from slimwire._proto import data_plane_pb2 as pb
from slimwire.link._frame import _ERR_FIELD, _ERR_PRE, _U32, _uvarint
from slimwire.link._wire import MISS, NameKey, _middle_cache, _names_cache, middle_miss, names_entry

if TYPE_CHECKING:
    from slimwire.link._mac import HeaderMac

__all__ = ["Relay", "Sink"]

_PublishFromString = pb.Publish.FromString
_MessageFromString = pb.Message.FromString
_MAC_FIELD = b"\x5a\x20"
_CACHE_MAX = 256
"""Bound of the per-link layout and prefix caches (a link uses a handful of each)."""


class Sink(Protocol):
    """Where a relayed copy goes: an output queue and the key copies are signed with."""

    out: list[bytes]
    sign_mac: HeaderMac | None


_S = TypeVar("_S", bound=Sink)
_Layout = tuple[bytes, bytes, bytes, bytes, int, bool]
"""Preimage tail in, fanout u32, outbound header middle (up to the tag's field header),
preimage tail out, outbound header bytes after the identity, multicast."""
_Copies = tuple[tuple[Callable[[bytes], None], Callable[[], Any], Callable[[], Any]], ...]
"""Per destination: append to its queue, copy its inner and its outer HMAC state."""


def _metadata_ok(raw: bytes, pos: int, n: int) -> bool:
    """Whether ``raw[pos:n]`` is a run of length-delimited ``metadata`` entries (field 4)."""
    while pos < n:
        if raw[pos] != 0x22:
            return False
        ln = raw[pos + 1]
        pos += 2
        if ln >= 0x80:
            shift = 7
            ln &= 0x7F
            while True:
                b = raw[pos]
                pos += 1
                ln |= (b & 0x7F) << shift
                if b < 0x80:
                    break
                shift += 7
                if shift > 35:
                    return False
        pos += ln
    return pos == n


class Relay:
    """Fused unicast forwarding for the messages of one incoming MAC'd link.

    ``mac`` verifies what arrives; ``incoming_conn`` goes into every copy; ``decrement`` is 1
    on non-local links. With ``framed`` every copy carries its 5-byte gRPC message prefix,
    ready for the transport's byte stream (see ``Stream.send_framed``).
    """

    __slots__ = ("_decrement", "_framed", "_icopy", "_in_conn", "_layouts", "_ocopy", "_prefixes")

    def __init__(
        self, mac: HeaderMac, incoming_conn: int, *, decrement: int = 1, framed: bool = False
    ) -> None:
        if not 0 <= incoming_conn < 1 << 64:
            raise ValueError(f"incoming_conn out of range: {incoming_conn}")
        self._icopy = mac._inner_copy
        self._ocopy = mac._outer_copy
        self._in_conn = b"\x48" + _uvarint(incoming_conn)
        self._decrement = decrement
        self._framed = framed
        # middle bytes (fanout .. error) -> what the outbound header needs, or None when a
        # message with that middle is not ours to take (forward_to, ttl out)
        self._layouts: dict[bytes, _Layout | None] = {}
        # (header length, body rest length, metadata length) packed in one int -> the outbound
        # gRPC prefix (if framed), envelope and header tags and lengths; messages of 1 MiB
        # and more are not cached (key -n: recomputed each time)
        self._prefixes: dict[int, bytes] = {}

    def __repr__(self) -> str:
        return f"<Relay in_conn={self._in_conn[1:]!r} layouts={len(self._layouts)}>"

    def _layout(self, mid: bytes) -> _Layout | None:
        entry = _middle_cache.get(mid, MISS)
        if entry is MISS:
            entry = middle_miss(mid)
        out: _Layout | None = None
        if entry is not None:
            fanout, ttl, _recv_from, forward_to, _incoming, error, keep, fan32, tail = entry
            ttl -= self._decrement
            if forward_to is None and ttl > 0:
                out_mid = b"".join(
                    (
                        keep,
                        b"\x30" + _uvarint(ttl),
                        self._in_conn,
                        _ERR_FIELD[error],
                        _MAC_FIELD,
                    )
                )
                sig_tail = _ERR_PRE[error] + _U32(ttl)
                out = (tail, fan32, out_mid, sig_tail, len(out_mid) + 32, fanout != 1)
        if len(self._layouts) >= _CACHE_MAX:
            self._layouts.clear()
        self._layouts[mid] = out
        return out

    def _prefix(self, key: int, hdr_len: int, rest_len: int, meta_len: int) -> bytes:
        hl = _uvarint(hdr_len)
        pre = b"\x1a" + _uvarint(1 + len(hl) + hdr_len + rest_len) + b"\x0a" + hl
        if self._framed:
            size = len(pre) + hdr_len + rest_len + meta_len
            pre = b"\x00" + size.to_bytes(4, "big") + pre
        if key >= 0:
            if len(self._prefixes) >= _CACHE_MAX:
                self._prefixes.clear()
            self._prefixes[key] = pre
        return pre

    @staticmethod
    def _copies(
        targets: Sequence[_S], dirty: list[_S], touched: list[tuple[list[bytes], int]]
    ) -> _Copies | None:
        """What signing and queueing a copy for each of ``targets`` takes (None if one of them
        is not MAC'd); marks the idle ones dirty and notes where each queue stood."""
        copies = []
        for target in targets:
            tmac = target.sign_mac
            if tmac is None:
                return None
            copies.append((target.out.append, tmac._inner_copy, tmac._outer_copy))
        for target in targets:
            queue = target.out
            if not queue:
                dirty.append(target)
            touched.append((queue, len(queue)))
        return tuple(copies)

    def run(
        self,
        batch: Sequence[bytes],
        start: int,
        routes: Mapping[NameKey, _S],
        dirty: list[_S],
        group_routes: Mapping[NameKey, Sequence[_S]] | None = None,
        *,
        validate: bool = True,
        max_size: int = 1 << 62,
    ) -> int:
        """Relay ``batch[start:]`` until a message that is not the plain case; return its index.

        A unicast message (fanout 1) goes to ``routes[destination]``, any other fanout to
        every sink in ``group_routes[destination]``; a destination in neither (or a sink
        without ``sign_mac``) ends the run. Each copy is spliced (ttl, ``incoming_conn``,
        ``recv_from`` cleared, the rest byte for byte), signed with its sink's ``sign_mac``
        and appended to that sink's ``out``. Messages over ``max_size`` bytes are left to
        the caller. A sink whose ``out`` was empty is appended to ``dirty`` first. The
        returned index is the first message not relayed (``len(batch)`` if all were); it was
        left untouched, as were its successors.

        With ``validate``, the unread part of every relayed Publish (session, content,
        metadata) must decode as protobuf. That is checked once for the whole run, by parsing
        the parts as one concatenation (each part is a length-delimited field whose bounds the
        walk already checked, so the concatenation decodes exactly when every part does). If
        it fails, every copy of this run is taken back out of the queues and -1 is returned:
        the caller then checks the run message by message (and should not call again before
        it has passed the culprit).
        """
        end = len(batch)
        i = start
        icopy = self._icopy
        ocopy = self._ocopy
        layouts = self._layouts
        prefixes = self._prefixes
        limit = max_size
        names_get = _names_cache.get
        sinks: dict[bytes, _Copies] = {}
        group_sinks: dict[bytes, _Copies] = {}
        no_groups: Mapping[NameKey, Sequence[_S]] = {}
        groups = no_groups if group_routes is None else group_routes
        touched: list[tuple[list[bytes], int]] = []
        rests: list[bytes] = []
        metas: list[bytes] = []
        u32 = _U32
        join = b"".join
        while i < end:
            raw = batch[i]
            n = len(raw)
            if n > limit:
                break
            try:
                if raw[0] != 0x1A:
                    break
                ln = raw[1]
                p = 2
                if ln >= 0x80:
                    b2 = raw[2]
                    if b2 >= 0x80:
                        break
                    ln = (ln & 0x7F) | (b2 << 7)
                    p = 3
                bend = p + ln
                if bend > n or raw[p] != 0x0A:
                    break
                hl = raw[p + 1]
                hs = p + 2
                if hl >= 0x80:
                    b2 = raw[hs]
                    if b2 >= 0x80:
                        break
                    hl = (hl & 0x7F) | (b2 << 7)
                    hs += 1
                he = hs + hl
                m = he - 34
                if he > bend or hl < 38 or raw[m] != 0x5A or raw[m + 1] != 0x20:
                    break
                if raw[hs] != 0x0A:
                    break
                l1 = raw[hs + 1]
                q = hs + 2 + l1
                if l1 >= 0x80 or q + 1 >= m or raw[q] != 0x12:
                    break
                l2 = raw[q + 1]
                if l2 >= 0x80:
                    break
                q += 2 + l2
                if q > m:
                    break
                pair = raw[hs:q]
                names = names_get(pair)
                if names is None:
                    names = names_entry(pair, l1)
                dst = names[2]
                if dst is None or names[1] is None:
                    break
                if q < m and raw[q] == 0x1A:
                    ln = raw[q + 1]
                    k = q + 2
                    if ln >= 0x80:
                        b2 = raw[k]
                        if b2 >= 0x80:
                            break
                        ln = (ln & 0x7F) | (b2 << 7)
                        k += 1
                    ident = raw[k : k + ln]
                    k += ln
                    if k > m:
                        break
                    if not ident.isascii():
                        ident.decode()
                else:
                    ident = b""
                    k = q
                mid = raw[k:m]
                lay = layouts.get(mid, MISS)
                if lay is MISS:
                    lay = self._layout(mid)
                if lay is None:
                    break
                # the rest of the body: session right after the header, then the content
                if he == bend or raw[he] != 0x12:
                    break
                ln = raw[he + 1]
                r = he + 2
                if ln >= 0x80:
                    b2 = raw[r]
                    if b2 >= 0x80:
                        break
                    ln = (ln & 0x7F) | (b2 << 7)
                    r += 1
                r += ln
                if r < bend and raw[r] == 0x1A:
                    ln = raw[r + 1]
                    r += 2
                    if ln >= 0x80:
                        b2 = raw[r]
                        if b2 >= 0x80:
                            break
                        ln = (ln & 0x7F) | (b2 << 7)
                        r += 1
                    r += ln
                if r != bend or (bend != n and not _metadata_ok(raw, bend, n)):
                    break
            except (IndexError, DecodeError, UnicodeDecodeError):
                break
            tail, fan32, out_mid, sig_tail, extra, multi = lay
            body = join((names[0], u32(len(ident)), ident, fan32))
            h = icopy()
            h.update(body)
            h.update(tail)
            o = ocopy()
            o.update(h.digest())
            if not compare_digest(o.digest(), raw[m + 2 : he]):
                break
            # by the name bytes: their hash is already computed
            copies = group_sinks.get(pair) if multi else sinks.get(pair)
            if copies is None:
                if multi:
                    targets = groups.get(dst)
                else:
                    target = routes.get(dst)
                    targets = None if target is None else (target,)
                if not targets:
                    break
                copies = self._copies(targets, dirty, touched)
                if copies is None:
                    break
                (group_sinks if multi else sinks)[pair] = copies
            hdr_len = (k - hs) + extra
            rest = raw[he:]
            head = raw[hs:k]
            # three lengths in one small int (each below 2**20 when the message is)
            key = hdr_len << 40 | (bend - he) << 20 | (n - bend) if n < 0x100000 else -n
            pre = prefixes.get(key)
            if pre is None:
                pre = self._prefix(key, hdr_len, bend - he, n - bend)
            for append, ticopy, tocopy in copies:
                h = ticopy()
                h.update(body)
                h.update(sig_tail)
                o = tocopy()
                o.update(h.digest())
                append(join((pre, head, out_mid, o.digest(), rest)))
            if validate:
                if bend == n:
                    rests.append(rest)
                else:
                    rests.append(raw[he:bend])
                    metas.append(raw[bend:])
            i += 1
        if rests:
            try:
                _PublishFromString(join(rests))
                if metas:
                    _MessageFromString(join(metas))
            except DecodeError:
                for queue, before in touched:
                    del queue[before:]
                return -1
        return i
