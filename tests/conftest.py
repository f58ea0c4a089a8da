from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import shared_data_dir

DATA = shared_data_dir()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.exists():
        pytest.fail(f"shared test data not found at {DATA}")
    return DATA
