"""ProducerBuffer keeps the last ``capacity`` pushed ids (a re-pushed id counts as newest)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from slimwire.session import ProducerBuffer


@settings(max_examples=200, deadline=None)
@given(
    capacity=st.integers(1, 8),
    pushes=st.lists(st.integers(0, 12), max_size=40),
)
def test_matches_a_list_model(capacity: int, pushes: list[int]) -> None:
    buf: ProducerBuffer[str] = ProducerBuffer(capacity)
    model: list[tuple[int, str]] = []
    for n, mid in enumerate(pushes):
        value = f"v{n}"
        buf.push(mid, value)
        model = [(m, v) for m, v in model if m != mid] + [(mid, value)]
        model = model[-capacity:]
        assert len(buf) == len(model)
    kept = dict(model)
    for mid in range(13):
        assert buf.get(mid) == kept.get(mid)
