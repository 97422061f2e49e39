"""``dia-studio --self-test[=report.json]``: prove that an install (pip or a frozen bundle) works.

Every check runs even when an earlier one failed, and ends in one of three states:

- ``ok``: works;
- ``warning``: works, with a caveat the user may want to fix (no audio output device, the native
  CPU kernels not built so PyTorch's slower ones are in use);
- ``failed``: broken (an exception, a corrupt or unwritable library, ...).

The JSON report lists each check with its ``state``, ``detail`` (the result, or the error),
``message`` (one line, for warnings and failures) and ``ok`` (true unless failed: what older
readers of the report look at), plus a count per state and whether the app is frozen. A summary
with the states is printed too (to stdout, or to stderr when the JSON goes to stdout). The exit
code is 0 unless a check failed (1); 2 when the report can't be written.

Everything the self-test builds lives in a temporary folder that is removed at the end: the data
folder the window uses, its settings, the tiny random Dia checkpoint and DAC codec of the render
check (no download, no transformers). The user's real data folder is only read (``user_data``):
that it is writable and that the voice library and render history databases pass SQLite's
``quick_check``, opened read-only. The window is built with whatever Qt platform plugin is active
(``offscreen`` by default; ``QT_QPA_PLATFORM=xcb`` under Xvfb exercises the real X11 plugin).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import sqlite3
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

CHECKS = ("qt", "platform_plugin", "resources", "user_data", "data_dir", "engine", "torch", "cpu_kernels",
          "soundfile", "portaudio", "audio", "window", "render", "api_server")

OK, WARNING, FAILED = "ok", "warning", "failed"
STATES = (OK, WARNING, FAILED)
EXIT_FAILED = 1
EXIT_REPORT_UNWRITABLE = 2

# Where engine.VoiceLibrary and engine.RenderHistory keep their databases, inside the data folder.
USER_DATABASES = ("voices/library.sqlite3", "history/history.sqlite3")
SUMMARY_DETAIL_CHARS = 110

API_SCRIPT = "[S1] Hello from the API server."
API_SEED = 7
API_TOKEN_BYTES = 24
API_WAIT_SECONDS = 20.0
"""How long the API server check waits for the server to start, to answer, and to stop."""


class Warn(Exception):
    """Raised by a check that works with a caveat: ``message`` says what, ``detail`` is reported."""

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = message if detail is None else detail


def run_check(fn: Callable[[], Any]) -> dict:
    """Run one check: its report entry (state, ok, detail and, unless ok, a one-line message)."""
    try:
        return {"state": OK, "ok": True, "detail": fn()}
    except Warn as warn:
        return {"state": WARNING, "ok": True, "detail": warn.detail, "message": warn.message}
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        message = f"{type(exc).__name__}: {exc}"
        return {"state": FAILED, "ok": False, "detail": message, "message": message}


# --------------------------------------------------------------------------- checks without Qt


def check_user_data(folder: Path) -> dict:
    """The user's real data folder, read only: it is (or can be created) writable, and its databases
    pass ``PRAGMA quick_check``. Raises with what to do when not."""
    if not folder.exists():
        parent = _nearest_existing(folder)
        if not os.access(parent, os.W_OK | os.X_OK):
            raise PermissionError(f"the data folder {folder} does not exist and can't be created: {parent} is "
                                  f"not writable. Fix its permissions or set DIA_STUDIO_DATA_DIR to another folder.")
        return {"folder": str(folder), "created": False, "databases": {}}
    if not folder.is_dir():
        raise NotADirectoryError(f"the data folder {folder} is a file, not a folder. Move that file away.")
    problems = []
    if not os.access(folder, os.W_OK | os.X_OK):
        problems.append(f"the data folder {folder} is not writable: give your user write access to it "
                        f"(chmod u+rwx) or set DIA_STUDIO_DATA_DIR to another folder")
    databases = {}
    for name in USER_DATABASES:
        path = folder / name
        if not path.exists():
            continue
        verdict = quick_check(path)
        databases[name] = verdict
        if verdict != "ok":
            problems.append(f"{path} is damaged ({verdict}): quit Dia Studio and restore it from a backup, or "
                            f"move it aside to start a new, empty one")
        elif not os.access(path, os.R_OK | os.W_OK) or not os.access(path.parent, os.W_OK | os.X_OK):
            problems.append(f"{path} is read-only: give your user write access to it and to its folder")
    if problems:
        raise RuntimeError("; ".join(problems))
    return {"folder": str(folder), "created": True, "databases": databases}


def quick_check(path: Path) -> str:
    """SQLite's ``quick_check`` of a database opened read-only: "ok", or what is wrong."""
    # Without a write-ahead log there is nothing to merge: immutable=1 then creates no -wal/-shm files.
    wal = path.with_name(path.name + "-wal")
    uri = f"{path.resolve().as_uri()}?mode=ro" + ("" if wal.exists() else "&immutable=1")
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=5.0)
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return str(exc) or type(exc).__name__
    return "; ".join(str(row[0]) for row in rows[:3])


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def check_cpu_kernels() -> dict:
    """Which CPU kernels decoding uses; a warning (not a failure) when PyTorch's are in use where the
    native ones could run, and a failure only when the loaded native kernels compute wrong numbers."""
    import engine

    detail = {"kernels": engine.cpu_kernels(), **engine.check_kernels()}
    if detail["kernels"] != "PyTorch":
        return detail
    if os.environ.get("DIA_STUDIO_NATIVE", "1") == "0":
        raise Warn("PyTorch kernels in use: the native CPU kernels are disabled (DIA_STUDIO_NATIVE=0)", detail)
    if detail.get("isa"):
        raise Warn(f"PyTorch kernels in use: the native CPU kernels only have {detail['isa']} code for this CPU",
                   detail)
    if detail.get("supported"):
        raise Warn("PyTorch kernels in use: the native CPU kernels are not built for this install, so CPU "
                   "renders are slower (a source install builds them with `python -m engine.native`)", detail)
    return detail  # no native kernels for this platform: PyTorch's are the plan, not a caveat


def check_audio() -> str:
    """The audio outputs; none is a warning (rendering and export work, playback does not)."""
    from app.playback import available_outputs

    devices, status = available_outputs()
    if not devices:
        raise Warn(status or "No audio output found.")
    return f"{len(devices)} output device(s)"


# --------------------------------------------------------------------------- the API server


def check_api_server(models: tuple[Path, Path], folder: Path, *, port: int = 0) -> dict:
    """The real API server with the tiny ``models`` (Dia, DAC) on 127.0.0.1 (``port`` 0: one the OS
    picks) and a random token, its voice library and history in ``folder``: ``GET /health``,
    ``GET /v1/models`` with the token and without it (401), one short ``POST /v1/audio/speech``
    whose WAV soundfile decodes; then stopped. Raises with what went wrong."""
    try:
        import uvicorn  # noqa: F401 - what serves it (engine.server loads it lazily): a bundle may lack it

        from engine.server import BackgroundServer, EngineBackend, ServerConfig, ServerStartError, bind_socket, create_app
    except ImportError as exc:
        raise RuntimeError(f"the API server is missing from this install ({exc}); reinstall Dia Studio") from None
    from engine import DiaStudioError, EngineOptions, RenderHistory, VoiceLibrary

    dia, dac = models
    token = secrets.token_urlsafe(API_TOKEN_BYTES)
    try:
        config = ServerConfig(token=token, port=port)
        backend = EngineBackend(EngineOptions(model=str(dia), codec=str(dac), device="cpu", dtype="float32",
                                              offline=True))
        backend.load()
        sock = bind_socket(config.host, config.port)
    except DiaStudioError as exc:
        raise RuntimeError(f"the API server can't start: {exc.message}") from None
    with contextlib.closing(sock), VoiceLibrary(folder / "voices") as library, \
            RenderHistory(folder / "history") as history:
        app = create_app(config, backend, library=library, history=history)
        server = BackgroundServer(app, sock, name="self-test-api-server", start_timeout=API_WAIT_SECONDS,
                                  stop_timeout=API_WAIT_SECONDS, log_config=None, log_level="warning",
                                  access_log=False, server_header=False)
        try:
            server.start()
        except ServerStartError as exc:
            raise RuntimeError(exc.message) from None
        try:
            host, bound = sock.getsockname()[:2]
            answers = _exercise_api(f"http://{host}:{bound}", token, backend.model_id)
        finally:
            stopped = server.stop()
    if not stopped:
        raise RuntimeError(f"the API server did not stop within {API_WAIT_SECONDS:.0f} s")
    if server.error is not None:
        raise RuntimeError(f"the API server stopped with {type(server.error).__name__}: {server.error}")
    return {"port": bound, **answers}


def _exercise_api(url: str, token: str, model_id: str) -> dict:
    """The requests of the API server check against the server at ``url``; raises on a wrong answer."""
    import soundfile as sf

    auth = {"Authorization": f"Bearer {token}"}
    status, _type, body = _http(url + "/health")
    if status != 200 or json.loads(body).get("status") != "ok":
        raise RuntimeError(f"GET /health answered {status}: {body[:200]!r}")
    status, _type, body = _http(url + "/v1/models", headers=auth)
    ids = [m.get("id") for m in json.loads(body).get("data", [])] if status == 200 else []
    if model_id not in ids:
        raise RuntimeError(f"GET /v1/models answered {status} without the model {model_id!r}: {body[:200]!r}")
    status, _type, _body = _http(url + "/v1/models")
    if status != 401:
        raise RuntimeError(f"GET /v1/models without the token answered {status}, not 401")
    speech = {"model": model_id, "input": API_SCRIPT, "response_format": "wav", "seed": API_SEED,
              "max_new_tokens": _min_new_tokens()}
    status, media, body = _http(url + "/v1/audio/speech", headers=auth, body=speech)
    if status != 200 or not media.startswith("audio/wav"):
        raise RuntimeError(f"POST /v1/audio/speech answered {status} ({media}): {body[:200]!r}")
    try:
        samples, rate = sf.read(io.BytesIO(body), dtype="float32")
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise RuntimeError(f"POST /v1/audio/speech sent {len(body)} bytes that are not a WAV file: {exc}") from None
    return {"health": "ok", "models": ids, "unauthorized": 401,
            "speech": {"bytes": len(body), "sample_rate": rate, "seconds": round(len(samples) / rate, 3)}}


def _min_new_tokens() -> int:
    from engine import PARAM_SPECS

    return int(PARAM_SPECS["max_new_tokens"].minimum)


def _http(url: str, *, headers: dict[str, str] | None = None, body: dict | None = None) -> tuple[int, str, bytes]:
    """One request straight to ``url`` (no proxy): status, content type and body, errors included."""
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data, headers={**(headers or {}), "Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
    try:
        with opener.open(request, timeout=API_WAIT_SECONDS) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers.get("Content-Type", ""), error.read()


# --------------------------------------------------------------------------- the report


def report_problem(report_path: str) -> str:
    """Why the report can't be written to ``report_path`` ("" when it can), checked before the checks run."""
    path = Path(report_path)
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        return f"{path} is a folder; give a file name, e.g. {path / 'self-test.json'}"
    if not folder.is_dir():
        return f"the folder {folder} does not exist; create it or choose another path"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the folder {folder} is not writable; choose another path"
    return ""


def count_states(checks: dict[str, dict]) -> dict[str, int]:
    """How many checks ended in each state."""
    return {state: sum(c["state"] == state for c in checks.values()) for state in STATES}


def summary(checks: dict[str, dict]) -> list[str]:
    """The printed summary: one line per check with its state, then the count per state."""
    counts = count_states(checks)
    lines = [f"Dia Studio self-test: {counts[OK]} ok, {_plural(counts[WARNING], 'warning')}, {counts[FAILED]} failed"]
    width = max(map(len, checks), default=0)
    for name, entry in checks.items():
        text = entry.get("message") or _one_line(entry["detail"])
        lines.append(f"  {entry['state']:<8} {name:<{width}}  {text}")
    return lines


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _one_line(detail: Any) -> str:
    text = detail if isinstance(detail, str) else json.dumps(detail, separators=(",", ":"), default=str)
    return text if len(text) <= SUMMARY_DETAIL_CHARS else text[:SUMMARY_DETAIL_CHARS - 1] + "…"


def _print(lines: list[str], stream) -> None:
    if stream is not None:  # a windowed bundle on Windows has no console
        print("\n".join(lines), file=stream, flush=True)


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables for the duration of the self-test, then restore them."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run(report_path: str | None) -> int:
    """Build everything off screen and report what works (exit 0 = no check failed)."""
    if report_path:
        problem = report_problem(report_path)
        if problem:
            _print([f"dia-studio --self-test: can't write the report to {report_path}: {problem}"], sys.stderr)
            return EXIT_REPORT_UNWRITABLE
    import engine

    user_data = engine.data_dir(create=False)  # before the self-test points the app at its temp folder
    scratch = Path(tempfile.mkdtemp(prefix="dia-studio-self-test-"))
    try:
        with _environment(DIA_STUDIO_DATA_DIR=str(scratch / "data"), HF_HUB_OFFLINE="1"):  # never downloads
            checks = _run_checks(scratch, user_data)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    counts = count_states(checks)
    report = json.dumps({"ok": counts[FAILED] == 0, "counts": counts, "frozen": bool(getattr(sys, "frozen", False)),
                         "checks": checks}, indent=2)
    lines = summary(checks)
    if report_path:
        try:
            Path(report_path).write_text(report, encoding="utf-8")
        except OSError as exc:
            _print(lines, sys.stdout)
            _print([f"dia-studio --self-test: can't write the report to {report_path}: {exc.strerror or exc}"],
                   sys.stderr)
            return EXIT_REPORT_UNWRITABLE
        _print([*lines, f"Report: {report_path}"], sys.stdout)
    else:
        _print([report], sys.stdout)
        _print(lines, sys.stderr)
    return EXIT_FAILED if counts[FAILED] else 0


def _run_checks(scratch: Path, user_data: Path) -> dict[str, dict]:
    """Every check, in ``CHECKS`` order; ``scratch`` is the temporary folder everything is built in."""
    checks: dict[str, dict] = {}

    def check(name: str, fn: Callable[[], Any]) -> None:
        checks[name] = run_check(fn)

    from PySide6.QtCore import QLibraryInfo, QSettings, qVersion

    from app.main import create_application

    app = create_application([])
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(scratch / "settings"))

    import resources

    check("qt", lambda: f"Qt {qVersion()} on {app.platformName()}")

    def platform_plugin() -> dict:
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
    check("user_data", lambda: check_user_data(user_data))

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
    check("cpu_kernels", check_cpu_kernels)

    def soundfile_check() -> str:
        import numpy as np
        import soundfile as sf

        import engine

        rate = engine.TARGET_SAMPLE_RATE
        tone = (0.2 * np.sin(np.linspace(0, 440 * 2 * np.pi, rate))).astype(np.float32)
        path = scratch / "tone.flac"
        sf.write(str(path), tone, rate)
        back, sr = sf.read(str(path), dtype="float32")
        if sr != rate or len(back) != len(tone) or float(np.abs(back - tone).max()) > 1e-3:
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
    check("audio", check_audio)

    def window() -> dict:
        from PySide6.QtCore import QBuffer, QIODevice

        from app.main_window import MainWindow

        w = MainWindow()
        try:
            w.show()
            app.processEvents()
            png = QBuffer()
            png.open(QIODevice.OpenModeFlag.WriteOnly)
            if not w.grab().save(png, "PNG"):
                raise RuntimeError("could not take a screenshot of the window")
            return {"size": [w.width(), w.height()], "screenshot_bytes": png.size()}
        finally:
            w.shutdown()
            w.close()

    check("window", window)

    tiny: list[tuple[Path, Path]] = []

    def models() -> tuple[Path, Path]:
        """The tiny random Dia and DAC of the render and API server checks, written once."""
        if not tiny:
            from engine import write_tiny_models

            tiny.append(write_tiny_models(scratch / "models"))
        return tiny[0]

    def render() -> dict:
        import soundfile as sf

        from engine import DiaEngine, EngineOptions, GenerationParams, RenderRequest, write_audio

        dia, dac = models()
        eng = DiaEngine.load(EngineOptions(model=str(dia), codec=str(dac), device="cpu", dtype="float32",
                                           offline=True))
        result = eng.render(RenderRequest("[S1] Hello from the self-test. [S2] Hi!",
                                          GenerationParams(seed=7, max_new_tokens=256)))
        if result.audio.size == 0:
            raise RuntimeError("the render produced no audio")
        out = write_audio(scratch / "render.wav", result.audio, result.sample_rate)
        info = sf.info(str(out))
        return {"seconds": round(info.duration, 3), "sample_rate": info.samplerate, "bytes": out.stat().st_size,
                "stop_reason": result.stop_reason}

    check("render", render)
    check("api_server", lambda: check_api_server(models(), scratch / "api"))
    return checks
