"""An in-memory network of session layers for tests: explicit delivery, loss and reordering."""

from __future__ import annotations

from dataclasses import dataclass, field

from slimwire._proto import data_plane_pb2 as pb
from slimwire.auth import Identity, SharedSecretProvider, SharedSecretVerifier
from slimwire.names import NULL_ID, Name
from slimwire.session import SessionEvent, SessionLayer, SubscriptionChange

SECRET = "an-example-shared-secret-of-32-bytes!!"


def make_layer(
    service: str, name_id: int | None = None, *, ack_ranges: bool = True
) -> SessionLayer:
    ident = Identity.generate(f"org/ns/{service}")
    local = Name("org", "ns", service, ident.name_id if name_id is None else name_id)
    return SessionLayer(
        local,
        SharedSecretProvider(ident, SECRET),
        SharedSecretVerifier(SECRET),
        ack_ranges=ack_ranges,
    )


@dataclass
class Net:
    """Routes publishes by destination (exact id, or any instance for a null id)."""

    layers: list[SessionLayer]
    now: float = 0.0
    in_flight: list[tuple[SessionLayer, bytes]] = field(default_factory=list)
    events: dict[str, list[SessionEvent]] = field(default_factory=dict)
    sent: list[pb.Message] = field(default_factory=list)
    subs: dict[str, set[tuple[int, int, int, int]]] = field(default_factory=dict)

    def route(self, msg: pb.Message, sender: SessionLayer) -> list[SessionLayer]:
        """As a node: exact id (own name or a subscribed channel), or any instance for a null
        id; fanout 1 picks one, anything else all; never back to the sender."""
        dst = msg.publish.header.destination
        key = (dst.name.component_0, dst.name.component_1, dst.name.component_2)
        did = dst.name.name_id.id_0 << 64 | dst.name.name_id.id_1
        out = []
        for layer in self.layers:
            if layer is sender:
                continue
            subscribed = (*key, did) in self.subs.get(layer.local.service, set())
            own = layer.local.encoded == key and did in (NULL_ID, layer.local.id)
            if own or subscribed:
                out.append(layer)
                if msg.publish.header.fanout == 1:
                    break
        return out

    def collect(self) -> None:
        for layer in self.layers:
            out = layer.take()
            self.events.setdefault(layer.local.service, []).extend(out.events)
            for event in out.events:
                if isinstance(event, SubscriptionChange):
                    subs = self.subs.setdefault(layer.local.service, set())
                    if event.subscribe:
                        subs.add(event.name.key)
                    else:
                        subs.discard(event.name.key)
            for msg in out.messages:
                self.sent.append(msg)
                data = msg.SerializeToString()
                for target in self.route(msg, layer):
                    self.in_flight.append((target, data))

    def deliver(self, index: int = 0) -> None:
        target, data = self.in_flight.pop(index)
        target.receive(pb.Message.FromString(data), self.now)
        self.collect()

    def drop(self, index: int = 0) -> None:
        self.in_flight.pop(index)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for layer in self.layers:
            layer.handle_timeout(self.now)
        self.collect()

    def run(self, *, until: float = 60.0) -> None:
        """Deliver everything and fire timers until quiet or ``until`` seconds pass."""
        stop = self.now + until
        while True:
            self.collect()
            while self.in_flight:
                self.deliver(0)
            deadlines = [d for d in (lay.next_deadline() for lay in self.layers) if d is not None]
            if not deadlines or min(deadlines) > stop:
                return
            self.now = max(self.now, min(deadlines))
            for layer in self.layers:
                layer.handle_timeout(self.now)

    def deliver_burst(self, count: int) -> None:
        """Deliver up to ``count`` in-flight messages before anyone's outputs are taken, as
        a driver does with one read from its stream (held acks go out as ranges)."""
        for _ in range(min(count, len(self.in_flight))):
            target, data = self.in_flight.pop(0)
            target.receive(pb.Message.FromString(data), self.now)
        self.collect()

    def settle(self) -> None:
        """Deliver what is in flight, without firing timers."""
        self.collect()
        while self.in_flight:
            self.deliver(0)

    def of(self, service: str, kind: type) -> list:
        return [e for e in self.events.get(service, []) if isinstance(e, kind)]
