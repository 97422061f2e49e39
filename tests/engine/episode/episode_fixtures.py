"""Helpers for the episode tests: tiny checkpoints, fake takes, scripts, the CLI as a process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.params import GenerationParams
from engine.requests import RenderResult

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    """A tiny random Dia (``dia/``) and DAC (``dac/``), written once per session."""
    from tests.engine.dac_fixtures import write_transformers_dac
    from tests.engine.dia_fixtures import save_nari_folder, tiny_transformers_model

    root = tmp_path_factory.mktemp("episode-models")
    save_nari_folder(tiny_transformers_model(), root / "dia", filename="dia-v1.pth")
    write_transformers_dac(root / "dac")
    return root


def fake_result(seconds: float = 1.0, seed: int = 1, tone: float = 220.0) -> RenderResult:
    """A finished render, as the engine returns it, without running a model."""
    t = np.arange(int(44100 * seconds)) / 44100
    audio = (0.3 * np.sin(2 * np.pi * tone * t)).astype(np.float32)
    return RenderResult(audio, 44100, seed, GenerationParams(seed=seed), "[S1] x",
                        np.zeros((int(seconds * 86), 9), dtype=np.int64), "eos", (), {"total": 0.1})


def dialogue(lines: int, characters=("Mara", "Theo", "Dr. Lee"), chapter_every: int = 0) -> str:
    """A script of ``lines`` turns; every 7th line goes to the third character."""
    out = []
    for i in range(lines):
        if chapter_every and i % chapter_every == 0:
            out.append(f"# Chapter {i // chapter_every + 1}")
        name = characters[2] if len(characters) > 2 and i % 7 == 6 else characters[i % 2]
        out.append(f"[{name}] Line number {i}, fine.")
    return "\n".join(out) + "\n"


def cli_env(data_dir: Path) -> dict:
    # One torch thread: the tiny model is dominated by per-step overhead, and the CI has 2 cores.
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "DIA_STUDIO_DATA_DIR": str(data_dir)}


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "app.launcher", *args]


def run_cli(data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(*args), cwd=ROOT, env=cli_env(data_dir), input=stdin, capture_output=True,
                          text=True, timeout=600)


def model_args(models: Path, max_new_tokens: int = 256) -> list[str]:
    return ["--model", str(models / "dia"), "--codec", str(models / "dac"), "--dtype", "float32", "--device", "cpu",
            "--max-new-tokens", str(max_new_tokens)]
