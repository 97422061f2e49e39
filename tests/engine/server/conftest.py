"""A real ``dia-studio serve`` in a subprocess on 127.0.0.1 (a free port), with a tiny random model.

The server prints its URL on its first stdout line; tests talk to it over HTTP only.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "test-token-0123456789abcdef"
START_TIMEOUT = 300  # generous: a loaded 2-core machine imports torch slowly


class Server:
    """One ``dia-studio serve`` process."""

    def __init__(self, models: Path, data: Path, *extra: str, token: str | None = TOKEN, env: dict | None = None):
        args = [sys.executable, "-m", "engine.cli", "serve", "--port", "0", "--model", str(models / "dia"),
                "--codec", str(models / "dac"), "--dtype", "float32", "--device", "cpu", "--offline",
                "--max-new-tokens", "256", *extra]
        if "--stt-model" not in extra:  # uploads keep what they are given, whatever Whisper models are cached
            args += ["--stt-model", "off"]
        if token is not None:
            args += ["--token", token]
        environment = {**os.environ, "DIA_STUDIO_DATA_DIR": str(data), "HF_HUB_OFFLINE": "1",
                       "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **(env or {})}
        environment.pop("DIA_STUDIO_API_TOKEN", None) if token is not None else None
        self.data = data
        self.proc = subprocess.Popen(args, cwd=ROOT, env=environment, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.stderr: list[str] = []
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()
        self.lines: list[str] = []
        self.url = self._read_url()
        self.token = token if token is not None else self._read_token()

    def _read_url(self) -> str:
        timer = threading.Timer(START_TIMEOUT, self.proc.kill)
        timer.start()
        try:
            line = self.proc.stdout.readline()
        finally:
            timer.cancel()
        self.lines.append(line)
        if "http://" not in line:
            self.proc.wait(timeout=30)
            raise RuntimeError(f"the server did not start: {line!r} {''.join(self.stderr)}")
        return line.split("http://", 1)[1].split("/v1", 1)[0].join(("http://", ""))

    def _read_token(self) -> str:
        line = self.proc.stdout.readline()
        self.lines.append(line)
        return line.rsplit(": ", 1)[1].strip()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=120, **kwargs)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    from engine import write_tiny_models

    root = tmp_path_factory.mktemp("server-models")
    write_tiny_models(root)
    return root


def voice_clip(seconds: float = 1.5, rate: int = 22050, seed: int = 0) -> bytes:
    """A WAV of a voice-like sound (a gliding, pulsing tone with some noise): a clip the library takes."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    pitch = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    tone = np.sin(2 * np.pi * np.cumsum(pitch) / rate) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    samples = (0.3 * tone + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(tiny_models, tmp_path_factory):
    """A server shared by a test module (its data folder is the module's own)."""
    running = Server(tiny_models, tmp_path_factory.mktemp("server-data"))
    yield running
    running.stop()


# ------------------------------------------------------------------ in-process servers with other backends

class ThreadServer:
    """``create_app`` served by uvicorn on a thread (127.0.0.1, a free port): for backends other
    than the engine, as the desktop app will plug in its own."""

    def __init__(self, backend, data: Path, transcriber=None, **config) -> None:
        from engine import RenderHistory, VoiceLibrary
        from engine.server import BackgroundServer, ServerConfig, bind_socket, create_app

        self.library = VoiceLibrary(data / "voices")
        self.history = RenderHistory(data / "history")
        self.app = create_app(ServerConfig(token=TOKEN, port=0, **config), backend, library=self.library,
                              history=self.history, transcriber=transcriber)
        self.sock = bind_socket("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = BackgroundServer(self.app, self.sock, name="test-api-server", stop_timeout=30,
                                       log_level="warning")
        self.server.start()
        self.token = TOKEN

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=60, **kwargs)

    def stop(self) -> None:
        self.server.stop()
        self.sock.close()
        self.library.close()
        self.history.close()


class GatedBackend:
    """Renders a short tone, but only once its gate opens (``release``): the test decides when a
    render ends, so queue order, fullness and cancellation are checked without timing."""

    model_id = "gated"
    precision = "fp32"

    def __init__(self) -> None:
        self.gate = threading.Semaphore(0)
        self.started: list[str] = []
        self.stopped: list[str] = []
        self.finished: list[str] = []
        self.running = threading.Event()

    def release(self, n: int = 1) -> None:
        for _ in range(n):
            self.gate.release()

    def render(self, request, *, on_audio, should_stop):
        from engine import AudioChunk, CancelledError, RenderResult

        self.started.append(request.script)
        self.running.set()
        tone = (0.2 * np.sin(np.arange(4410) / 44100 * 2 * np.pi * 220)).astype(np.float32)
        if on_audio is not None:
            on_audio(AudioChunk(tone, 0))
        try:
            while not self.gate.acquire(timeout=0.02):
                if should_stop():
                    self.stopped.append(request.script)
                    raise CancelledError("stopped")
        finally:
            self.running.clear()
        self.finished.append(request.script)
        return RenderResult(tone, 44100, 7, request.params, request.script, np.zeros((0, 9), np.int64), "eos", (),
                            {"total": 0.0})


@pytest.fixture
def gated(tmp_path):
    backend = GatedBackend()
    running = ThreadServer(backend, tmp_path, queue_size=2)
    running.backend = backend
    yield running
    backend.release(100)
    running.stop()
