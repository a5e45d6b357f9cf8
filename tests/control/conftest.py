from __future__ import annotations

import pytest

from tests.control._fake import FakeMesh


@pytest.fixture
def mesh() -> FakeMesh:
    return FakeMesh()
