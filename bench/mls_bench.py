"""slimwire.mls costs: application messages, Add commits and Welcomes at growing group sizes.

Run on demand::

    python3 bench/mls_bench.py                 # suites 0x0001 and 0x0002, writes docs/benchmarks.md
    python3 bench/mls_bench.py --no-doc --sizes 2 10 --suites 2
    python3 bench/mls_bench.py --profile add --size 1000   # cProfile breakdown of one operation
    python3 bench/mls_bench.py --breakdown     # where a 100 B application message's µs go

Everything is CPU time of this process (``time.process_time``), best of several runs, on one
core and without I/O, so other jobs on a shared machine disturb it less than wall time. The bare
signature verification of the suite is measured in the same run: an MLS receiver pays one per
message, so "decrypt / bare verify" is the number that says how much we add on top. Not a test:
it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

from slimwire.mls import Group, MlsClient, _commit
from slimwire.mls._suites import CipherSuite, cipher_suite

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "benchmarks.md"
BEGIN = "<!-- mls-bench:start -->"
END = "<!-- mls-bench:end -->"


def best(fn: Callable[[], object], *, repeat: int, number: int = 1) -> float:
    """Best CPU seconds per call of ``fn`` over ``repeat`` rounds of ``number`` calls."""
    times = []
    for _ in range(repeat):
        t = time.process_time()
        for _ in range(number):
            fn()
        times.append((time.process_time() - t) / number)
    return min(times)


def bare_verify_rate(suite_id: int, n: int) -> float:
    suite = cipher_suite(suite_id)
    priv, pub = suite.generate_signature_key_pair()
    msg = b"x" * 300
    sig = suite.sign(priv, msg)
    return 1 / best(lambda: suite.verify(pub, msg, sig), repeat=5, number=n)


def message_rates(suite_id: int, size: int, n: int) -> tuple[float, float]:
    """(encrypt msg/s, decrypt msg/s) between two members."""
    alice, bob = MlsClient(b"alice", suite_id=suite_id), MlsClient(b"bob", suite_id=suite_id)
    group = alice.create_group()
    _, welcome = group.add([bob.key_package()])
    other = bob.join(welcome)
    payload = os.urandom(size)
    enc, dec = [], []
    for _ in range(5):
        t = time.process_time()
        cts = [group.encrypt(payload, b"header digest") for _ in range(n)]
        enc.append((time.process_time() - t) / n)
        t = time.process_time()
        for ct in cts:
            other.decrypt(ct)
        dec.append((time.process_time() - t) / n)
    return 1 / min(enc), 1 / min(dec)


def overhead_beyond_verify(suite_id: int, size: int, n: int) -> float:
    """CPU seconds per decrypt with the signature check replaced by one that accepts: what
    framing, key derivation and AEAD cost, measured directly rather than as the difference
    of two larger numbers (which a loaded machine makes noisy)."""
    alice, bob = MlsClient(b"alice", suite_id=suite_id), MlsClient(b"bob", suite_id=suite_id)
    group = alice.create_group()
    _, welcome = group.add([bob.key_package()])
    other = bob.join(welcome)
    payload = os.urandom(size)
    times = []
    with mock.patch.object(CipherSuite, "verifier", return_value=_accept):
        other.decrypt(group.encrypt(b"first"))  # the sender's ratchet exists from here on
        for _ in range(5):
            cts = [group.encrypt(payload, b"header digest") for _ in range(n)]
            t = time.process_time()
            for ct in cts:
                other.decrypt(ct)
            times.append((time.process_time() - t) / n)
    return min(times)


def _accept(message: bytes, signature: bytes) -> bool:
    return True


class SizedGroup:
    """A group of ``size`` members: the creator (who commits) and one joined member (who
    processes commits); the others exist as leaves with key packages we made."""

    def __init__(self, suite_id: int, size: int) -> None:
        self.suite_id = suite_id
        creator = MlsClient(b"creator", suite_id=suite_id)
        member = MlsClient(b"member-1", suite_id=suite_id)
        group = creator.create_group()
        kps = [member.key_package()] + [
            MlsClient(b"member-%d" % i, suite_id=suite_id).key_package() for i in range(2, size)
        ]
        if size > 1:
            _, welcome = group.add(kps)
            self.member_state = member.join(welcome).to_bytes()
        self.creator_state = group.to_bytes()


def commit_costs(suite_id: int, size: int, repeat: int) -> tuple[float, float, float, float]:
    """CPU seconds: (create an Add commit + Welcome, the same on a group just restored from
    bytes, process it as a member, join from it)."""
    sized = SizedGroup(suite_id, size)
    kp_client = MlsClient(b"newcomer", suite_id=suite_id)
    cold = []
    for _ in range(repeat):
        restored = Group.from_bytes(sized.creator_state)
        _commit._NODE_BYTES.clear()
        kp = kp_client.key_package()
        t = time.process_time()
        restored.add([kp])
        cold.append(time.process_time() - t)
    create, process, join = [], [], []
    # live groups, reset to the same epoch each round (a restored group would first have to
    # recompute the tree hashes its live self keeps memoised)
    group = Group.from_bytes(sized.creator_state)
    member = Group.from_bytes(sized.member_state)
    group.state.tree.tree_hash()
    member.state.tree.tree_hash()
    creator_state, member_state = group.state, member.state
    for _ in range(repeat + 1):
        kp = kp_client.key_package()
        group._state = creator_state
        t = time.process_time()
        commit, welcome = group.add([kp])
        create.append(time.process_time() - t)
        member._state = member_state
        t = time.process_time()
        member.process(commit)
        process.append(time.process_time() - t)
        t = time.process_time()
        kp_client.join(welcome)
        join.append(time.process_time() - t)
    return min(create), min(cold), min(process), min(join)


def profile(op: str, suite_id: int, size: int) -> None:
    sized = SizedGroup(suite_id, size)
    kp_client = MlsClient(b"newcomer", suite_id=suite_id)
    kp = kp_client.key_package()
    group = Group.from_bytes(sized.creator_state)
    group.state.tree.tree_hash()
    prof = cProfile.Profile()
    if op == "add":
        prof.enable()
        group.add([kp])
        prof.disable()
    elif op == "process":
        commit, _ = group.add([kp])
        member = Group.from_bytes(sized.member_state)
        member.state.tree.tree_hash()
        prof.enable()
        member.process(commit)
        prof.disable()
    elif op == "welcome":
        _, welcome = group.add([kp])
        prof.enable()
        kp_client.join(welcome)
        prof.disable()
    else:  # decrypt
        alice, bob = MlsClient(b"a", suite_id=suite_id), MlsClient(b"b", suite_id=suite_id)
        g = alice.create_group()
        _, w = g.add([bob.key_package()])
        other = bob.join(w)
        cts = [g.encrypt(b"x" * 100) for _ in range(3000)]
        prof.enable()
        for ct in cts:
            other.decrypt(ct)
        prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(20)


class _Recorder:
    """Replaces ``CipherSuite.signer``: remembers the last (message, signature) signed, so
    the bare operation can be timed on exactly the bytes a message signs."""

    def __init__(self) -> None:
        self.signed: tuple[bytes, bytes] = (b"", b"")
        original = CipherSuite.signer
        recorder = self

        def signer(suite: CipherSuite, key: bytes) -> Callable[[bytes], bytes]:
            sign = original(suite, key)

            def recording(message: bytes) -> bytes:
                signature = sign(message)
                recorder.signed = (message, signature)
                return signature

            return recording

        self.signer = signer


def _stub_signer(signature: bytes) -> Callable[[CipherSuite, bytes], Callable[[bytes], bytes]]:
    def signer(suite: CipherSuite, key: bytes) -> Callable[[bytes], bytes]:
        return lambda message: signature

    return signer


def _session_pair() -> tuple[object, object]:
    """Two session-layer MLS members (``MlsCrypto``, shared-secret identities, P-256 keys:
    suite 0x0002) in one group."""
    from slimwire.auth import Identity, SharedSecretProvider, SharedSecretVerifier
    from slimwire.session._mls import MlsCrypto

    secret = "a shared secret of at least thirty-two bytes"
    verifier = SharedSecretVerifier(secret)
    a, b = (
        MlsCrypto(SharedSecretProvider(Identity.generate(f"org/ns/{n}"), secret), verifier)
        for n in ("producer", "consumer")
    )
    a.create_group()
    _, welcome = a.add(b.key_package())
    b.join(welcome)
    return a, b


def breakdown(suite_id: int, n: int, size: int = 100, aad_len: int = 330) -> list[str]:
    if suite_id != 0x0002:
        raise ValueError("the breakdown runs the session layer's suite, 0x0002")
    return _breakdown(suite_id, n, size, aad_len)


def _breakdown(suite_id: int, n: int, size: int, aad_len: int) -> list[str]:
    """Per-message µs of one application message, sender and receiver, phase by phase: the
    session seam (``MlsCrypto``), the whole group call, the signature and AEAD calls timed
    alone on the exact sizes the message uses, the secret-tree step and sender-data key
    derivation timed alone, and what is left (framing: joining, parsing, slicing, calls).
    ``aad_len`` is about a real HeaderIntegrityAad (names, ids and a ~230-byte token)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

    from slimwire.mls._hmac import HmacKey, hmac_triple
    from slimwire.mls._hpke import AeadId

    suite = cipher_suite(suite_id)
    recorder = _Recorder()
    with mock.patch.object(CipherSuite, "signer", recorder.signer):
        producer, consumer = _session_pair()
        payload, aad = os.urandom(size), os.urandom(aad_len)
        sender: Group = producer._group  # type: ignore[attr-defined]
        receiver: Group = consumer._group  # type: ignore[attr-defined]
        receiver.decrypt(sender.encrypt(b"warm-up"))

        def batch(k: int) -> list[bytes]:
            return [sender.encrypt(payload, aad) for _ in range(k)]

        def per_message(fn: Callable[[bytes], object], cts: Callable[[], list[bytes]]) -> float:
            best = float("inf")
            for _ in range(5):
                todo = cts()
                t = time.process_time()
                for ct in todo:
                    fn(ct)
                best = min(best, (time.process_time() - t) / len(todo))
            return best

        # receivers first: what the sender encrypts after that is never decrypted
        dec_session = per_message(lambda ct: consumer.decrypt(ct, aad), lambda: batch(n))  # type: ignore[attr-defined]
        dec_group = per_message(lambda ct: receiver.decrypt(ct, expected_aad=aad), lambda: batch(n))
        message, signature = recorder.signed
        enc_session = best(lambda: producer.encrypt(payload, aad), repeat=5, number=n)  # type: ignore[attr-defined]
        enc_group = best(lambda: sender.encrypt(payload, aad), repeat=5, number=n)
    priv = sender.state.signature_private_key
    sign = suite.signer(priv)
    verify = suite.verifier(suite.signature_public_key(priv))
    t_sign = best(lambda: sign(message), repeat=5, number=n)
    t_verify = best(lambda: verify(message, signature), repeat=5, number=n)
    # the same group calls with the signature operations answering at once
    stub_sig = signature
    with (
        mock.patch.object(CipherSuite, "signer", _stub_signer(stub_sig)),
        mock.patch.object(CipherSuite, "verifier", return_value=_accept),
    ):
        producer, consumer = _session_pair()
        sender, receiver = producer._group, consumer._group  # type: ignore[attr-defined]
        receiver.decrypt(sender.encrypt(b"warm-up"))
        dec_rest = per_message(lambda ct: receiver.decrypt(ct, expected_aad=aad), lambda: batch(n))
        dec_seam = per_message(lambda ct: consumer.decrypt(ct, aad), lambda: batch(n)) - dec_rest  # type: ignore[attr-defined]
        enc_rest = best(lambda: sender.encrypt(payload, aad), repeat=5, number=n)
        enc_seam = best(lambda: producer.encrypt(payload, aad), repeat=5, number=n) - enc_rest  # type: ignore[attr-defined]
        ct_len = len(sender.encrypt(payload, aad))
    # AEAD: the content (padded PrivateMessageContent) and the 12-byte sender data, each
    # with its own key (a key seals one message: the cipher's key set-up is paid each time)
    nk, nn = suite.aead_key_len, suite.aead_nonce_len
    aead_cls: type[AESGCM] | type[ChaCha20Poly1305] = (
        ChaCha20Poly1305 if suite.aead.id == AeadId.CHACHA20_POLY1305 else AESGCM
    )
    key, nonce = os.urandom(nk), os.urandom(nn)
    content = os.urandom(padding_target(size, len(signature)))
    content_aad = os.urandom(aad_len + 2 + len(sender.group_id) + 10)
    sd_aad = content_aad[: len(sender.group_id) + 10]
    sealed = aead_cls(key).encrypt(nonce, content, content_aad)
    sealed_sd = aead_cls(key).encrypt(nonce, b"s" * 12, sd_aad)
    aead_enc = best(
        lambda: (
            aead_cls(key).encrypt(nonce, content, content_aad),
            aead_cls(key).encrypt(nonce, b"s" * 12, sd_aad),
        ),
        repeat=5,
        number=n,
    )
    aead_dec = best(
        lambda: (
            aead_cls(key).decrypt(nonce, sealed, content_aad),
            aead_cls(key).decrypt(nonce, sealed_sd, sd_aad),
        ),
        repeat=5,
        number=n,
    )
    # KDF: one ratchet step (three HMACs: key, nonce, next secret) and the sender-data key
    # and nonce (two HMACs with the epoch's pads and label prefix absorbed)
    tree = sender.state.secret_tree
    prefixes = tree._step_prefixes
    secret, tail = os.urandom(suite.hash_len), b"\0\0\0\x07\x01"
    hash_name = suite.kdf.hash_name
    sd_mac = HmacKey(hash_name, os.urandom(suite.hash_len)).with_prefix(b"p" * 16)
    sample = os.urandom(suite.hash_len + 2)
    kdf = best(
        lambda: (
            hmac_triple(
                hash_name, secret, prefixes[0] + tail, prefixes[1] + tail, prefixes[2] + tail
            ),
            sd_mac.digest(sample),
            sd_mac.digest(sample),
        ),
        repeat=5,
        number=n,
    )
    guard = best(lambda: os.urandom(4), repeat=5, number=n)
    us = 1e6
    return [
        f"suite 0x{suite_id:04x}, {size} B payload, {aad_len} B authenticated data, "
        f"{ct_len} B MLS message; µs per message (CPU, best of 5 x {n})",
        "",
        "| phase | sender (encrypt) | receiver (decrypt) |",
        "|---|---|---|",
        f"| signature: bare sign / verify of the {len(message)} B SignContent "
        f"| {t_sign * us:.1f} | {t_verify * us:.1f} |",
        f"| AEAD: content + sender data, key set-up included | {aead_enc * us:.1f} "
        f"| {aead_dec * us:.1f} |",
        f"| KDF: ratchet step (3 HMAC) + sender-data key/nonce (2 HMAC) | {kdf * us:.1f} "
        f"| {kdf * us:.1f} |",
        f"| reuse guard (os.urandom) | {guard * us:.1f} | - |",
        f"| framing, secret-tree bookkeeping, calls (the rest of the group call) "
        f"| {(enc_rest - aead_enc - kdf - guard) * us:.1f} "
        f"| {(dec_rest - aead_dec - kdf) * us:.1f} |",
        f"| **group call** (`Group.encrypt` / `Group.decrypt`, measured) "
        f"| **{enc_group * us:.1f}** | **{dec_group * us:.1f}** |",
        f"| the same beyond the signature (measured with it stubbed) "
        f"| {enc_rest * us:.1f} | {dec_rest * us:.1f} |",
        f"| session seam (`MlsCrypto` minus the group call, both with the signature stubbed) "
        f"| {enc_seam * us:.1f} | {dec_seam * us:.1f} |",
        f"| **MlsCrypto call** (measured) | **{enc_session * us:.1f}** "
        f"| **{dec_session * us:.1f}** |",
    ]


def padding_target(size: int, signature_len: int) -> int:
    """The padded PrivateMessageContent length of a ``size``-byte application message."""
    from slimwire.mls._codec import encode_varint
    from slimwire.mls._framing import padding_for

    unpadded = len(encode_varint(size)) + size + len(encode_varint(signature_len))
    unpadded += signature_len
    return unpadded + padding_for(unpadded)


def section(rows: list[str], opts: argparse.Namespace) -> str:
    load = os.getloadavg()[0]
    lines = [
        BEGIN,
        "## MLS (`slimwire.mls`, `bench/mls_bench.py`)",
        "",
        f"Recorded {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()}, "
        f"Python {platform.python_version()}, {os.cpu_count()} cores shared with other jobs "
        f"(load average {load:.1f} at the start). CPU time of one process, best of "
        f"{opts.repeat} runs. *bare verify* is one signature verification of the suite in the "
        "same run: an MLS receiver pays one per message, so compare decrypt against it.",
        "",
        *rows,
        "",
        END,
    ]
    return "\n".join(lines)


def write_section(text: str, path: Path = DOC) -> None:
    doc = path.read_text() if path.exists() else "# Benchmarks\n"
    if BEGIN in doc and END in doc:
        doc = doc[: doc.index(BEGIN)] + text + doc[doc.index(END) + len(END) :]
    else:
        doc = doc.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(doc)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suites", type=lambda s: int(s, 0), nargs="+", default=[1, 2])
    p.add_argument("--sizes", type=int, nargs="+", default=[2, 10, 100, 1000])
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-doc", action="store_true", help="do not touch docs/benchmarks.md")
    p.add_argument("--profile", choices=["add", "process", "welcome", "decrypt"])
    p.add_argument("--size", type=int, default=1000, help="group size for --profile")
    p.add_argument(
        "--breakdown",
        action="store_true",
        help="per-phase µs of a 100 B message (0x0002), then exit",
    )
    opts = p.parse_args(argv)
    if opts.breakdown:  # the session layer's suite only (MlsCrypto needs P-256 keys)
        print("\n".join(breakdown(0x0002, opts.messages)), flush=True)
        return 0
    if opts.profile:
        profile(opts.profile, opts.suites[-1], opts.size)
        return 0
    rows = [
        "| suite | bare verify | encrypt 100 B | decrypt 100 B | encrypt 1 KiB | decrypt 1 KiB "
        "| decrypt 100 B beyond its verify | the same, measured with the verify a no-op |",
        "|---|---|---|---|---|---|---|---|",
    ]
    size_rows = [
        "",
        "| suite | members | Add commit + Welcome (create) | the same, cold after a restore "
        "| process the commit | join from the Welcome |",
        "|---|---|---|---|---|---|",
    ]
    extras: dict[int, float] = {}
    for suite_id in opts.suites:
        verify = bare_verify_rate(suite_id, opts.messages)
        e100, d100 = message_rates(suite_id, 100, opts.messages)
        e1k, d1k = message_rates(suite_id, 1024, opts.messages)
        extra = 1 / d100 - 1 / verify
        direct = overhead_beyond_verify(suite_id, 100, opts.messages)
        extras[suite_id] = direct * verify  # as a fraction of this run's verify
        rows.append(
            f"| 0x{suite_id:04x} | {verify:,.0f}/s | {e100:,.0f} msg/s | {d100:,.0f} msg/s | "
            f"{e1k:,.0f} msg/s | {d1k:,.0f} msg/s | {extra * 1e6:.1f} µs | "
            f"{direct * 1e6:.1f} µs |"
        )
        print(rows[-1], flush=True)
        for size in opts.sizes:
            create, cold, process, join = commit_costs(suite_id, size, opts.repeat)
            size_rows.append(
                f"| 0x{suite_id:04x} | {size:,} | {create * 1e3:.1f} ms | {cold * 1e3:.1f} ms | "
                f"{process * 1e3:.1f} ms | {join * 1e3:.1f} ms |"
            )
            print(size_rows[-1], flush=True)
    idle = 43e-6  # a P-256 verify on an idle core of this machine
    notes = [
        "",
        "*Beyond its verify* is decrypt time minus one bare verify: what framing, key "
        "derivation and AEAD add per message. The next column measures the same work directly "
        "(the signature check accepts at once), which a loaded machine disturbs less than a "
        "difference of two larger numbers. "
        + (
            f"Scaled by this run's verify to the 43 µs of an idle core, that work is "
            f"{extras[2] * idle * 1e6:.1f} µs, and suite 0x0002 decrypts 100 B at about "
            f"{1 / (idle * (1 + extras[2])):,.0f} msg/s. "
            if 2 in extras
            else ""
        )
        + "Commit numbers are warm (a live group keeps tree hashes and node encodings "
        "memoised), except the cold column: the first commit after restoring a group from "
        "bytes recomputes every tree hash and encodes every node. Joining a large group is "
        "bound by verifying every leaf signature of the tree (one per member).",
    ]
    text = section(rows + notes + size_rows, opts)
    if not opts.no_doc:
        write_section(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
