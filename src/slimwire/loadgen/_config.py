"""What a benchmark run is asked to do, and how the work is split among processes."""

from __future__ import annotations

import random
from dataclasses import dataclass

from slimwire.names import NULL_ID, Name

__all__ = ["BenchConfig", "ConsumerSpec", "ProducerSpec", "plan"]

_ORG, _NS = "org", "ns"
MULTICAST_SERVICE = "mcast"


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """One ``slimwire bench`` run.

    ``messages`` is the total number of messages published, split evenly over the producers
    (as in ``nats bench``). Unicast pairs producer ``j`` with consumer ``j % consumers``; with
    ``fanout`` every consumer subscribes one multicast name and receives every message.
    """

    endpoint: str
    messages: int
    size: int
    producers: int = 1
    consumers: int = 1
    fanout: bool = False
    timeout: float = 40.0
    """Producer deadline in seconds after GO; consumers get ``timeout + 5``."""
    idle: float = 3.0
    """A consumer stops after this long with nothing received (after GO)."""
    sample_every: int = 64
    """Stamp the send time into one message in this many (0: no latency samples)."""
    pool: int = 4096
    """Pre-built messages per producer, written over and over."""
    consumer_rate: float = 0.0
    """Messages per second each consumer reads at most (0: as fast as it can); for
    slow-consumer tests of a node's back-pressure."""
    setup_timeout: float = 20.0
    """Seconds for every process to connect, negotiate and subscribe."""
    use_uvloop: bool = True
    link: str = "raw"
    """``raw``: the load generator's own lean HTTP/2 client (h2c only; the default, cheap enough
    not to be the bottleneck); ``transport``: :mod:`slimwire.transport` (h2c and TLS)."""

    def __post_init__(self) -> None:
        if self.messages < 0:
            raise ValueError("--messages must be >= 0")
        if self.size < 0:
            raise ValueError("--size must be >= 0")
        if self.producers < 1 or self.consumers < 1:
            raise ValueError("need at least one producer and one consumer")
        if not self.fanout and self.consumers > self.producers:
            raise ValueError(
                "unicast pairs producer j with consumer j % consumers, so it needs "
                "producers >= consumers; use --fanout to have every consumer get every message"
            )
        if self.timeout <= 0 or self.idle <= 0 or self.setup_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if self.link not in ("raw", "transport"):
            raise ValueError(f"link must be 'raw' or 'transport', not {self.link!r}")
        if self.link == "raw" and self.endpoint.startswith("https:"):
            raise ValueError("the raw link speaks h2c only; use --link transport for https://")
        if self.sample_every < 0 or self.pool < 1 or self.consumer_rate < 0:
            raise ValueError("sample_every >= 0, pool >= 1 and consumer_rate >= 0 are required")


@dataclass(frozen=True, slots=True)
class ConsumerSpec:
    """Everything one consumer process needs (picklable: it crosses a process boundary)."""

    index: int
    endpoint: str
    name: Name
    """What it subscribes: ``org/ns/consN`` or ``org/ns/mcast``, with a random id."""
    expected: int
    idle: float
    deadline: float
    rate: float
    use_uvloop: bool
    link: str


@dataclass(frozen=True, slots=True)
class ProducerSpec:
    """Everything one producer process needs."""

    index: int
    endpoint: str
    source: Name
    destination: Name
    messages: int
    size: int
    multicast: bool
    deadline: float
    stop_deadline: float
    """Seconds after GO to wait for the driver's stop before closing anyway."""
    pool: int
    sample_every: int
    use_uvloop: bool
    link: str


def _random_id(rng: random.Random) -> int:
    """A random 120-bit id, well clear of the reserved range near 2^128."""
    return rng.getrandbits(120)


def plan(
    cfg: BenchConfig, rng: random.Random | None = None
) -> tuple[list[ConsumerSpec], list[ProducerSpec]]:
    """Split a run into consumer and producer specs."""
    rng = rng or random.Random()
    per, extra = divmod(cfg.messages, cfg.producers)
    counts = [per + (1 if j < extra else 0) for j in range(cfg.producers)]
    if cfg.fanout:
        names = [Name(_ORG, _NS, MULTICAST_SERVICE, _random_id(rng)) for _ in range(cfg.consumers)]
        expected = [cfg.messages] * cfg.consumers
        destinations = [Name(_ORG, _NS, MULTICAST_SERVICE, NULL_ID)] * cfg.producers
    else:
        names = [Name(_ORG, _NS, f"cons{i}", _random_id(rng)) for i in range(cfg.consumers)]
        expected = [0] * cfg.consumers
        for j, n in enumerate(counts):
            expected[j % cfg.consumers] += n
        destinations = [names[j % cfg.consumers] for j in range(cfg.producers)]
    consumers = [
        ConsumerSpec(
            index=i,
            endpoint=cfg.endpoint,
            name=names[i],
            expected=expected[i],
            idle=cfg.idle,
            deadline=cfg.timeout + 5.0,
            rate=cfg.consumer_rate,
            use_uvloop=cfg.use_uvloop,
            link=cfg.link,
        )
        for i in range(cfg.consumers)
    ]
    producers = [
        ProducerSpec(
            index=j,
            endpoint=cfg.endpoint,
            source=Name(_ORG, _NS, f"prod{j}", _random_id(rng)),
            destination=destinations[j],
            messages=counts[j],
            size=cfg.size,
            multicast=cfg.fanout,
            deadline=cfg.timeout,
            stop_deadline=cfg.timeout + cfg.idle + 10.0,
            pool=cfg.pool,
            sample_every=cfg.sample_every,
            use_uvloop=cfg.use_uvloop,
            link=cfg.link,
        )
        for j in range(cfg.producers)
    ]
    return consumers, producers
