"""``dia-studio --self-test[=report.json]``: prove that an install (pip or a frozen bundle) works.

Every check runs even when an earlier one failed; the JSON report lists each check with ``ok`` and a
``detail`` (the result, or the error), plus whether the app is frozen. The exit code is 0 only when
every check passed. The window is built with whatever Qt platform plugin is active (``offscreen``
by default; ``QT_QPA_PLATFORM=xcb`` under Xvfb exercises the real X11 plugin).

The render check builds a tiny random Dia checkpoint and DAC codec in a temp folder (no download,
no transformers) and renders a short script through the real engine, then writes and reads the WAV.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

CHECKS = ("qt", "platform_plugin", "resources", "data_dir", "engine", "torch", "cpu_kernels", "soundfile", "portaudio",
          "audio", "window", "render")


def _tiny_checkpoints(folder: Path) -> tuple[Path, Path]:
    """A tiny random Dia model (transformers layout) and DAC codec; a few MB, built in about a second."""
    import torch
    from safetensors.torch import save_file

    from engine.model.checkpoint import transformers_shapes
    from engine.model.config import DiaConfig
    from engine.model.dac import DacConfig
    from engine.model.dac_checkpoint import expected_shapes, save_dac_transformers

    gen = torch.Generator().manual_seed(0)
    cfg = DiaConfig(enc_hidden=64, enc_layers=1, enc_heads=4, enc_kv_heads=4, enc_head_dim=16, enc_ffn=128,
                    enc_max_positions=128, dec_hidden=64, dec_layers=1, dec_heads=4, dec_kv_heads=2,
                    dec_head_dim=16, cross_heads=4, cross_kv_heads=4, cross_head_dim=16, dec_ffn=128,
                    dec_max_positions=512)
    state = {}
    for key, shape in transformers_shapes(cfg).items():
        if key.endswith("norm.weight"):
            state[key] = torch.ones(shape)
        else:
            state[key] = 0.1 * torch.randn(shape, generator=gen)
    dia = folder / "dia"
    dia.mkdir(parents=True)
    save_file(state, str(dia / "model.safetensors"), metadata={"format": "pt"})
    (dia / "config.json").write_text(json.dumps(cfg.to_transformers_dict(), indent=2), encoding="utf-8")

    dac_cfg = DacConfig(encoder_dim=8, decoder_dim=32)
    dac_state = {}
    for key, shape in expected_shapes(dac_cfg).items():
        if key.endswith("alpha"):
            dac_state[key] = torch.ones(shape)
        else:
            dac_state[key] = 0.05 * torch.randn(shape, generator=gen)
    dac = save_dac_transformers(dac_state, dac_cfg, folder / "dac")
    return dia, dac


def run(report_path: str | None) -> int:
    """Build everything off screen and report what works (exit 0 = all checks passed)."""
    checks: dict[str, dict] = {}

    def check(name: str, fn) -> None:
        try:
            checks[name] = {"ok": True, "detail": fn()}
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            checks[name] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}

    scratch = Path(tempfile.mkdtemp(prefix="dia-studio-self-test-"))
    os.environ.setdefault("DIA_STUDIO_DATA_DIR", str(scratch / "data"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the self-test never downloads

    from PySide6.QtCore import QLibraryInfo, QSettings, qVersion

    from app.main import create_application

    app = create_application([])
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(scratch / "settings"))

    import resources

    check("qt", lambda: f"Qt {qVersion()} on {app.platformName()}")

    def platform_plugin() -> str:
        wanted = os.environ.get("QT_QPA_PLATFORM", "").split(":")[0] or app.platformName()
        if app.platformName() != wanted:
            raise RuntimeError(f"asked for the {wanted!r} platform plugin, got {app.platformName()!r}")
        plugins = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms"
        found = sorted(p.name for p in plugins.glob("*")) if plugins.is_dir() else []
        return {"active": app.platformName(), "folder": str(plugins), "available": found}

    check("platform_plugin", platform_plugin)

    def resource_files() -> dict:
        icon = resources.path("icons", "dia-studio.svg")
        examples = sorted(p.name for p in resources.path("examples").glob("*.txt"))
        if not icon.is_file() or icon.stat().st_size == 0:
            raise FileNotFoundError(f"app icon missing: {icon}")
        if not examples:
            raise FileNotFoundError(f"no example scripts in {resources.path('examples')}")
        from PySide6.QtGui import QIcon

        if QIcon(str(icon)).isNull():
            raise RuntimeError("the SVG icon does not load (Qt SVG image plugin missing?)")
        return {"root": str(resources.ROOT), "examples": examples}

    check("resources", resource_files)

    def data_dir() -> str:
        import engine

        folder = engine.data_dir()
        probe = folder / ".self-test"
        probe.write_text("ok", encoding="utf-8")
        probe.unlink()
        return str(folder)

    check("data_dir", data_dir)

    def engine_import() -> str:
        import engine

        return f"engine {engine.__version__}; export formats {engine.export_formats()}"

    check("engine", engine_import)

    def torch_check() -> str:
        import torch

        x = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
        y = torch.nn.functional.linear(x, torch.eye(8))
        if not torch.allclose(x, y):
            raise RuntimeError("a torch forward pass gave wrong numbers")
        return f"torch {torch.__version__}, {torch.get_num_threads()} threads"

    check("torch", torch_check)

    def cpu_kernels() -> dict:
        import engine

        return {"kernels": engine.cpu_kernels(), **engine.check_kernels()}

    check("cpu_kernels", cpu_kernels)

    def soundfile_check() -> str:
        import numpy as np
        import soundfile as sf

        tone = (0.2 * np.sin(np.linspace(0, 440 * 2 * np.pi, 44100))).astype(np.float32)
        path = scratch / "tone.flac"
        sf.write(str(path), tone, 44100)
        back, sr = sf.read(str(path), dtype="float32")
        if sr != 44100 or len(back) != len(tone) or float(np.abs(back - tone).max()) > 1e-3:
            raise RuntimeError("FLAC round trip changed the audio")
        return f"libsndfile {sf.__libsndfile_version__}"

    check("soundfile", soundfile_check)

    def portaudio() -> dict:
        import sounddevice as sd  # raises OSError when PortAudio can't be found

        lib = getattr(sd, "_libname", "")
        if getattr(sys, "frozen", False) and lib and not str(lib).startswith(getattr(sys, "_MEIPASS", "//")):
            raise RuntimeError(f"the bundle loaded the system PortAudio ({lib}), not its own")
        return {"version": sd.get_portaudio_version()[1], "library": str(lib),
                "devices": len(sd.query_devices())}

    check("portaudio", portaudio)

    def audio() -> str:
        from app.playback import available_outputs

        devices, status = available_outputs()
        return status or f"{len(devices)} output device(s)"

    check("audio", audio)

    def window() -> str:
        from app.main_window import MainWindow

        w = MainWindow()
        w.show()
        app.processEvents()
        out = scratch / "window.png"
        if not w.grab().save(str(out)):
            raise RuntimeError("could not save the window screenshot")
        w.shutdown()
        w.close()
        return str(out)

    check("window", window)

    def render() -> dict:
        import soundfile as sf

        from engine import DiaEngine, EngineOptions, GenerationParams, RenderRequest, write_audio

        dia, dac = _tiny_checkpoints(scratch / "models")
        eng = DiaEngine.load(EngineOptions(model=str(dia), codec=str(dac), device="cpu", dtype="float32",
                                           offline=True))
        result = eng.render(RenderRequest("[S1] Hello from the self-test. [S2] Hi!",
                                          GenerationParams(seed=7, max_new_tokens=256)))
        if result.audio.size == 0:
            raise RuntimeError("the render produced no audio")
        out = write_audio(scratch / "render.wav", result.audio, result.sample_rate)
        info = sf.info(str(out))
        import shutil

        shutil.rmtree(scratch / "models", ignore_errors=True)
        return {"file": str(out), "seconds": round(info.duration, 3), "sample_rate": info.samplerate,
                "stop_reason": result.stop_reason}

    check("render", render)

    ok = all(c["ok"] for c in checks.values())
    report = json.dumps({"ok": ok, "frozen": bool(getattr(sys, "frozen", False)), "checks": checks}, indent=2)
    if report_path:
        Path(report_path).write_text(report, encoding="utf-8")
    elif sys.stdout is not None:
        print(report)
    return 0 if ok else 1
