"""The engine's numbers are written once (engine.constants, engine.params) and everything derives from them."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import engine
from engine import audio, constants, device, params, script
from engine.model import config

ROOT = Path(__file__).resolve().parents[2]


def test_the_constants_module_needs_no_torch():
    code = "import sys, engine.constants, engine.params, engine.script; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_rates_derive_from_the_constants():
    assert audio.TARGET_SAMPLE_RATE == config.SAMPLE_RATE == constants.SAMPLE_RATE
    assert script.FRAMES_PER_SECOND == config.FRAME_RATE == constants.SAMPLE_RATE / constants.HOP_LENGTH
    assert engine.FRAME_RATE == constants.FRAME_RATE


def test_device_and_dtype_names_are_one_list():
    assert device.DEVICES is constants.DEVICES
    assert ["auto", *device.DTYPES] == list(constants.DTYPE_NAMES)


def test_parameter_defaults_come_from_their_specs():
    assert params.GenerationParams().to_dict() == params.DEFAULTS
    assert params.DEFAULTS == {name: spec.default for name, spec in params.PARAM_SPECS.items()}
    assert script.estimate_budget("[S1] Hi.").frame_budget == (
        params.DEFAULT_MAX_NEW_TOKENS - constants.DECODER_OVERHEAD_FRAMES)


def test_no_engine_module_spells_out_the_frame_rate():
    spelled = re.compile(r"44100\s*/\s*512")
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "engine").rglob("*.py")
                 if p.name != "constants.py" and spelled.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_only_the_constants_module_assigns_the_sample_rate_literal():
    offenders = []
    for path in (ROOT / "engine").rglob("*.py"):
        if path.name == "constants.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Constant) \
                    and node.value.value == 44100:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
