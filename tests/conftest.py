"""Shared test setup: headless Qt, the ALSA null device, no network, a private data dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("ALSA_CONFIG_PATH", str(ROOT / "tests" / "alsa-null.conf"))
os.environ["HF_HUB_OFFLINE"] = "1"  # no test may reach the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """A fresh user-data directory, used by everything that stores user data."""
    path = tmp_path / "data"
    path.mkdir()
    monkeypatch.setenv("DIA_STUDIO_DATA_DIR", str(path))
    return path


@pytest.fixture(scope="session")
def test_output_dir() -> Path:
    """Where tests drop artefacts worth looking at (screenshots, rendered audio)."""
    path = ROOT / "test-output"
    path.mkdir(exist_ok=True)
    return path
