"""Throughput of slimwire.transport: one client stream sends N small messages to a counting server.

Not a test. Usage:
    python bench/transport_bench.py [-n 2000000] [--size 100] [--batch 256] [--inproc] [--uvloop]
    python bench/transport_bench.py --core [--size 555]

By default the server runs in a child process (the realistic case: two processes, two cores);
``--inproc`` puts both ends on one event loop. The client sends in batches of ``--batch``
messages and applies back-pressure with ``drain()``, exactly as a forwarder would. The server
replies once it has counted N messages; the rate is N / (reply time - first send).

``--core`` measures the sans-IO receive path alone (thread CPU, no sockets), with the inbound
DATA fast path on and off: one small DATA frame per ``receive_data`` call (the request/reply
case), and 1 MiB DATA frames arriving in 64 KiB reads (the throughput case), per message.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import time
from multiprocessing.connection import Connection

from slimwire.transport import GrpcConnection, Stream, encode_messages, open_stream, start_server

PATH = "/bench.Transport/Count"


def _loop_policy(use_uvloop: bool) -> None:
    if use_uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _serve(n: int, ready: Connection | None, port_box: list[int]) -> None:
    done = asyncio.Event()

    async def count(stream: Stream) -> None:
        got = 0
        async for batch in stream:
            got += len(batch)
            if got >= n:
                stream.send(got.to_bytes(8, "big"))
                break
        await stream.drain()
        done.set()

    server = await start_server({PATH: count}, "127.0.0.1", 0)
    port_box.append(server.port)
    if ready is not None:
        cpu0 = time.process_time()
        ready.send(server.port)
        await done.wait()
        ready.send(time.process_time() - cpu0)
        await asyncio.sleep(0.2)
        await server.close(1.0)
    else:
        port_box.append(0)
        await done.wait()
        await server.close(1.0)


def _server_process(n: int, ready: Connection, use_uvloop: bool) -> None:
    _loop_policy(use_uvloop)
    asyncio.run(_serve(n, ready, []))


async def _client(port: int, n: int, size: int, batch: int) -> float:
    stream = await open_stream(f"http://127.0.0.1:{port}", PATH)
    msgs = [os.urandom(size) for _ in range(batch)]
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    sent = 0
    while sent < n:
        k = min(batch, n - sent)
        stream.send_many(msgs[:k])
        sent += k
        if stream.pending_bytes >= stream.high_water:
            await stream.drain()
        else:
            await asyncio.sleep(0)
    reply = await stream.recv()
    elapsed = time.perf_counter() - t0
    assert int.from_bytes(reply[0], "big") == n
    _client_cpu.append(time.process_time() - cpu0)
    await stream.close()
    return elapsed


_client_cpu: list[float] = []


async def _inproc(n: int, size: int, batch: int) -> float:
    box: list[int] = []
    server = asyncio.create_task(_serve(n, None, box))
    while not box:
        await asyncio.sleep(0.01)
    elapsed = await _client(box[0], n, size, batch)
    await server
    return elapsed


def _core_pair(fast: bool) -> tuple[GrpcConnection, int]:
    """A client core with one open call, its response headers received."""
    client = GrpcConnection(client_side=True)
    server = GrpcConnection(client_side=False)
    client.fast_path = fast
    client.initiate()
    server.initiate()
    server.receive_data(client.flush())
    client.receive_data(server.flush())
    sid, queue = client.start_request(PATH, "bench")
    queue.push(b"hi")
    client.mark_dirty(sid, queue)
    server.receive_data(client.flush())
    server.send_response_headers(sid)
    client.receive_data(server.flush())
    server.receive_data(client.flush())
    return client, sid


def _data_frame(sid: int, payload: bytes) -> bytes:
    n = len(payload)
    return bytes([n >> 16, (n >> 8) & 0xFF, n & 0xFF, 0, 0]) + sid.to_bytes(4, "big") + payload


def _core_bench(size: int) -> None:
    for fast in (True, False):
        conn, sid = _core_pair(fast)
        frame = _data_frame(sid, encode_messages([b"m" * size]))
        n = 20_000
        t0 = time.thread_time_ns()
        for _ in range(n):
            (ev,) = conn.receive_data(frame)
            conn.consumed(sid, ev.flow_bytes)  # type: ignore[union-attr]
        small = (time.thread_time_ns() - t0) / n / 1e3
        conn, sid = _core_pair(fast)
        msgs = [b"m" * size] * ((1 << 20) // (size + 5))
        blob = _data_frame(sid, encode_messages(msgs)) * 4
        reads = [blob[i : i + 65536] for i in range(0, len(blob), 65536)]
        best = float("inf")
        for _ in range(5):
            got = 0
            t0 = time.thread_time_ns()
            for chunk in reads:
                for ev in conn.receive_data(chunk):
                    batch = getattr(ev, "messages", None)
                    if batch is not None:
                        got += len(batch)
                        conn.consumed(sid, ev.flow_bytes)  # type: ignore[union-attr]
            best = min(best, (time.thread_time_ns() - t0) / got / 1e3)
            conn.flush()
        label = "fast path" if fast else "h2 only  "
        print(
            f"{label}: one {size + 5}-byte message per DATA frame per read: "
            f"{small:.2f} us/read; 1 MiB frames in 64 KiB reads: {best:.3f} us/message"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=2_000_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--inproc", action="store_true")
    ap.add_argument("--uvloop", action="store_true")
    ap.add_argument("--core", action="store_true", help="the sans-IO receive path alone")
    args = ap.parse_args()
    if args.core:
        _core_bench(args.size if args.size != 100 else 555)
        return
    server_cpu = None
    if args.inproc:
        _loop_policy(args.uvloop)
        elapsed = asyncio.run(_inproc(args.n, args.size, args.batch))
    else:
        parent, child = mp.Pipe()
        proc = mp.get_context("spawn").Process(
            target=_server_process, args=(args.n, child, args.uvloop), daemon=True
        )
        proc.start()
        try:
            port = parent.recv()
            _loop_policy(args.uvloop)
            elapsed = asyncio.run(_client(port, args.n, args.size, args.batch))
            server_cpu = parent.recv()
        finally:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
    mode = "in-process" if args.inproc else "client and server processes"
    loop = "uvloop" if args.uvloop else "asyncio"
    print(
        f"{args.n} x {args.size} B messages, batch {args.batch}, {mode}, {loop}: "
        f"{elapsed:.2f} s, {args.n / elapsed:,.0f} msg/s"
    )
    if server_cpu is not None:
        print(
            f"CPU per message: sender {_client_cpu[-1] / args.n * 1e6:.2f} us, "
            f"receiver {server_cpu / args.n * 1e6:.2f} us"
        )


if __name__ == "__main__":
    main()
