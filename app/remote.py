"""The app as a client of a Dia Studio server (``dia-studio serve``): renders and the voice library over HTTP.

``RemoteEngine`` renders what the app's render worker asks for through ``POST /v1/audio/speech``
(streamed WAV, so playback starts while the server renders) with progress and cancel, and an
episode's blocks one request each (``render_block``: the block's server voices as S1/S2, its seed);
``RemoteLibrary`` offers the voice-library operations the windows use (list, add, rename,
transcript, default, delete, audio) on the server's library; ``server_model_key`` names the server's
model in an episode's blocks. All of them ask the server: the app calls them off the GUI thread. They
raise the engine's typed errors:
an unreachable server is ``upstream_error`` within a few seconds, a refused token ``unauthorized``.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np

import engine

CONNECT_SECONDS = 4.0
"""How long a connection may take: an unreachable server is reported after this, never a hang."""
READ_SECONDS = 10.0
"""Library calls and the health check before a render: the server answers them at once, even while it
renders (an upload is decoded first)."""
POLL_SECONDS = 0.1
"""How often a waiting render looks at its cancel flag."""
WAV_HEADER_BYTES = 44
SERVER_VOICE = "server-voice:"
"""The ``uid`` of a server's voice: an episode cast from it remembers which server voice it is."""
MODEL = "dia"
"""The model name every Dia Studio server accepts (GET /v1/models lists its own id too)."""
SERVER_LIBRARY = "the server's library"


@dataclass(frozen=True)
class RemoteTarget:
    """A Dia Studio server: its address (``http://host:port``, with or without ``/v1``) and token."""

    url: str
    token: str

    @property
    def base(self) -> str:
        """The URL without a trailing ``/`` or ``/v1``."""
        text = self.url.strip().rstrip("/")
        return text[:-3].rstrip("/") if text.endswith("/v1") else text

    def check(self) -> None:
        """Raise ``invalid_parameter`` for an address that is not an http(s) URL or a missing token."""
        if not self.base.startswith(("http://", "https://")) or len(self.base.split("//", 1)[1]) == 0:
            raise engine.InvalidParameterError(
                f"The server address '{self.url}' is not a web address: write it like http://192.168.1.20:8765 "
                "(dia-studio serve prints it).")
        if not self.token.strip():
            raise engine.InvalidParameterError("The server needs its token: copy it from the server "
                                               "(dia-studio serve prints it) into Model settings.")

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token.strip()}"}


def _unreachable(target: RemoteTarget, exc: Exception) -> engine.DiaStudioError:
    timed_out = isinstance(exc, httpx.TimeoutException)
    reason = "it did not answer in time" if timed_out else (str(exc) or type(exc).__name__)
    return engine.GenerationError(
        f"Can't reach the Dia Studio server at {target.base} ({reason}). Check that it is running "
        "(dia-studio serve, or Tools ▸ Local API server on that computer) and the address in Model settings.")


def error_from_response(target: RemoteTarget, status: int, body: bytes) -> engine.DiaStudioError:
    """The typed error for a refused request: the server's ``{"error": {type, message}}``, kept."""
    if status == 401:
        return engine.DiaStudioError(
            f"The Dia Studio server at {target.base} refused the token. Copy the token the server printed "
            "(or its Tools ▸ Local API server window shows) into Model settings.", code="unauthorized")
    try:
        detail = _json(body)["error"]
        kind, message = str(detail["type"]), str(detail["message"])
    except (ValueError, KeyError, TypeError):
        kind, message = "upstream_error", f"the server answered HTTP {status} without an explanation"
    if kind in ("not_found", "no_provider") and status == 404 and "voice" not in message:
        message += " (is this a Dia Studio server?)"
    return engine.DiaStudioError(message[:1].upper() + message[1:], code=kind)


def _json(body: bytes):
    return json.loads(body.decode("utf-8"))


class _Pcm16Stream:
    """A streamed 16-bit WAV (header sizes "unknown") in, float32 samples out, whatever the chunking."""

    def __init__(self) -> None:
        self.pending = b""
        self.sample_rate: int | None = None

    def feed(self, data: bytes) -> np.ndarray:
        self.pending += data
        if self.sample_rate is None:
            if len(self.pending) < WAV_HEADER_BYTES:
                return np.zeros(0, dtype=np.float32)
            header, self.pending = self.pending[:WAV_HEADER_BYTES], self.pending[WAV_HEADER_BYTES:]
            if header[:4] != b"RIFF" or header[8:12] != b"WAVE":
                raise engine.GenerationError("The server's audio stream is not a WAV file.")
            self.sample_rate = struct.unpack("<I", header[24:28])[0]
        whole = len(self.pending) // 2 * 2
        block, self.pending = self.pending[:whole], self.pending[whole:]
        return np.frombuffer(block, dtype="<i2").astype(np.float32) / 32767.0


class RemoteEngine:
    """Renders on a Dia Studio server: what the render worker does with a local ``DiaEngine``."""

    def __init__(self, target: RemoteTarget) -> None:
        target.check()
        self.target = target

    def render(self, script: str, params: engine.GenerationParams, cast: dict[str, int | None], *,
               on_progress: Callable[[engine.RenderProgress], None] | None = None,
               on_audio: Callable[[engine.AudioChunk], None] | None = None,
               should_stop: Callable[[], bool] = lambda: False) -> engine.RenderResult:
        """Render ``script`` with the server's voices ``cast`` ({"S1": id}); the audio streams into
        ``on_audio`` as it arrives. The seed is chosen here when ``params`` has none, so the result
        always says which seed made it. ``should_stop`` cancels within ``POLL_SECONDS``."""
        params = params.replace(seed=engine.resolve_seed(params.seed))
        body = {"model": MODEL, "input": script, "response_format": "wav", "stream_format": "audio",
                "speakers": {tag: vid for tag, vid in cast.items() if vid is not None},
                **{name: value for name, value in params.to_dict().items() if name != "speed_factor"},
                "speed": params.speed_factor}
        started = time.perf_counter()
        audio = _run_cancellable(lambda: self._stream(body, params, started, on_progress, on_audio), should_stop)
        return engine.RenderResult(audio, engine.TARGET_SAMPLE_RATE, params.seed, params, script,
                                   np.zeros((0, 9), dtype=np.int64), "eos", (),
                                   {"total": time.perf_counter() - started})

    async def _stream(self, body: dict, params: engine.GenerationParams, started: float, on_progress, on_audio
                      ) -> np.ndarray:
        timeout = httpx.Timeout(None, connect=CONNECT_SECONDS)  # a render may take long before its first audio
        wav, pieces, frames = _Pcm16Stream(), [], 0
        try:
            async with httpx.AsyncClient(base_url=self.target.base, headers=self.target.headers(),
                                         timeout=timeout) as client:
                # a server that takes the connection but never answers is found here, not by waiting forever
                health = await client.get("/health", timeout=httpx.Timeout(READ_SECONDS, connect=CONNECT_SECONDS))
                if health.status_code != 200:
                    raise error_from_response(self.target, health.status_code, health.content)
                async with client.stream("POST", "/v1/audio/speech", json=body) as response:
                    if response.status_code != 200:
                        raise error_from_response(self.target, response.status_code, await response.aread())
                    async for data in response.aiter_bytes():
                        samples = wav.feed(data)
                        if not samples.size:
                            continue
                        if on_audio is not None:
                            on_audio(engine.AudioChunk(samples, frames, wav.sample_rate))
                        pieces.append(samples)
                        frames += samples.size
                        if on_progress is not None:
                            on_progress(_progress(frames / (wav.sample_rate or engine.TARGET_SAMPLE_RATE), params,
                                                  time.perf_counter() - started))
        except httpx.RemoteProtocolError as exc:
            raise engine.GenerationError(f"The server stopped sending audio mid-render ({exc}); its log says "
                                         "why. Try again.") from None
        except (httpx.ConnectError, httpx.TimeoutException) as exc:
            raise _unreachable(self.target, exc) from None
        except httpx.HTTPError as exc:
            raise engine.GenerationError(f"The connection to the server failed: {exc}") from None
        if wav.sample_rate not in (None, engine.TARGET_SAMPLE_RATE):
            raise engine.GenerationError(f"The server sent {wav.sample_rate} Hz audio; this app plays "
                                         f"{engine.TARGET_SAMPLE_RATE} Hz.")
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)

    def render_block(self, project: engine.EpisodeProject, index: int, *, seed: int | None = None,
                     on_progress: Callable[[engine.RenderProgress], None] | None = None,
                     on_audio: Callable[[engine.AudioChunk], None] | None = None,
                     should_stop: Callable[[], bool] = lambda: False) -> tuple[int, engine.RenderResult]:
        """Render block ``index`` of an episode on the server (one request: the block's text, its
        characters' server voices as S1/S2, its parameters and ``seed``, a fresh random one for None),
        add the take to the project and choose it, as ``engine.regenerate_block`` does on this
        computer. Returns the take's id and the result."""
        block = project.block(index)
        if block.locked:
            raise engine.InvalidParameterError(f"Block {index + 1} is locked: unlock it to render it again.")
        params = block.params.replace(seed=engine.resolve_seed(-1 if seed is None else seed))
        speakers = block_speakers(block, project.cast())
        result = self.render(block.model_text, params, speakers, on_progress=on_progress, on_audio=on_audio,
                             should_stop=should_stop)
        return project.add_take(block, result, choose=True), result


def _send(client: httpx.Client, target: RemoteTarget, method: str, path: str, **kwargs) -> httpx.Response:
    """One request to the server; its refusal or an unreachable server as the engine's typed errors."""
    try:
        response = client.request(method, path, **kwargs)
    except (httpx.ConnectError, httpx.TimeoutException) as exc:
        raise _unreachable(target, exc) from None
    except httpx.HTTPError as exc:
        raise engine.GenerationError(f"The connection to the server failed: {exc}") from None
    if response.status_code >= 400:
        raise error_from_response(target, response.status_code, response.content)
    return response


def _client(target: RemoteTarget) -> httpx.Client:
    """A client for the server's quick calls (the library, the model), never waiting past ``READ_SECONDS``."""
    return httpx.Client(base_url=target.base, headers=target.headers(),
                        timeout=httpx.Timeout(READ_SECONDS, connect=CONNECT_SECONDS))


def server_model_key(target: RemoteTarget) -> str:
    """What identifies the server's model in an episode (its ``model_key``): the server and the model
    it renders with (GET /v1/models), so a block rendered on this computer or another server counts as
    another model's. Asks the server: call it off the GUI thread."""
    with _client(target) as client:
        response = _send(client, target, "GET", "/v1/models")
    try:
        models = sorted(str(card["id"]) for card in response.json()["data"])
    except (ValueError, KeyError, TypeError):
        models = []
    if not models:
        raise engine.GenerationError(f"The server at {target.base} did not say which model it renders with "
                                     "(GET /v1/models): is it a Dia Studio server?")
    return json.dumps({"server": target.base, "model": " ".join(models)}, sort_keys=True)


def block_speakers(block, cast: dict) -> dict[str, int | None]:
    """The server voices that speak a block ({"S1": id, ...}) from its characters' project voices;
    ``invalid_voice_sample`` for a voice that did not come from the server's library."""
    speakers: dict[str, int | None] = {}
    for number, character in enumerate(block.characters, start=1):
        voice = cast.get(character)
        if voice is None:
            continue  # a random voice: the seed alone decides it
        voice_id = server_voice_id(voice.library_uid)
        if voice_id is None:
            raise engine.InvalidVoiceSampleError(
                f"{character}'s voice “{voice.name}” is on this computer, not in the server's voice library, "
                f"so the server can't clone it. Cast {character} with one of the server's voices, or switch "
                "Model settings back to “This computer” to render with it.")
        speakers[f"S{number}"] = voice_id
    return speakers


def server_voice_id(uid: str | None) -> int | None:
    """The server voice id a project voice was cast from, or None (not from a server)."""
    text = uid or ""
    if not text.startswith(SERVER_VOICE) or not text[len(SERVER_VOICE):].isdigit():
        return None
    return int(text[len(SERVER_VOICE):])


def _progress(audio_seconds: float, params: engine.GenerationParams, elapsed: float) -> engine.RenderProgress:
    """A progress report from the audio received so far (the server's steps are not sent)."""
    frames = int(audio_seconds * engine.FRAMES_PER_SECOND)
    return engine.RenderProgress("generate", frames, params.max_new_tokens, frames,
                                 frames / elapsed if elapsed > 0 else 0.0, elapsed)


def _run_cancellable(make, should_stop: Callable[[], bool]):
    """Run the coroutine ``make()`` on a private event loop; ``should_stop`` cancels it (closing the
    connection, so the server stops rendering) and raises the engine's ``CancelledError``."""
    async def main():
        task = asyncio.ensure_future(make())
        while True:
            done, _ = await asyncio.wait({task}, timeout=POLL_SECONDS)
            if done:
                return task.result()
            if should_stop():
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):  # noqa: BLE001 - the render is being abandoned
                    pass
                raise engine.CancelledError("cancelled")

    return asyncio.run(main())


@dataclass(frozen=True)
class _OpenReport:
    notice: str = ""


class RemoteLibrary:
    """The server's voice library, with the methods of ``engine.VoiceLibrary`` the app uses."""

    read_only = False

    def __init__(self, target: RemoteTarget) -> None:
        target.check()
        self.target = target
        self.open_report = _OpenReport()
        self.client = _client(target)

    @property
    def root(self) -> str:
        return f"{SERVER_LIBRARY} ({self.target.base})"

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> RemoteLibrary:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            return _send(self.client, self.target, method, path, **kwargs)
        except engine.DiaStudioError as error:
            if error.code == "not_found" and path.startswith("/v1/voice/samples/"):
                raise engine.InvalidVoiceSampleError(error.message) from None
            raise

    # -- reading

    def list(self) -> list[engine.VoiceSample]:
        return [listed_voice(item) for item in self._call("GET", "/v1/voice/samples").json()["data"]]

    def __len__(self) -> int:
        return len(self.list())

    def get(self, sample_id: int) -> engine.VoiceSample:
        return listed_voice(self._call("GET", f"/v1/voice/samples/{int(sample_id)}").json())

    def default(self) -> engine.VoiceSample | None:
        return next((s for s in self.list() if s.is_default), None)

    def load_audio(self, sample: engine.VoiceSample | int) -> np.ndarray:
        """The voice's prompt audio (float32 mono, 44.1 kHz), to play."""
        import soundfile as sf

        sample_id = sample if isinstance(sample, int) else sample.id
        data = self._call("GET", f"/v1/voice/samples/{sample_id}/audio").content
        try:
            samples, _rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError) as exc:
            raise engine.AudioDecodeFailedError(f"The server's audio of voice {sample_id} can't be read: {exc}"
                                                ) from None
        return samples.mean(axis=1).astype(np.float32)

    # -- changing

    def add(self, source: str | os.PathLike | bytes | np.ndarray, *, speaker_name: str, transcript: str = "",
            sample_rate: int | None = None, original_filename: str | None = None,
            make_default: bool = False) -> engine.VoiceSample:
        """Upload an audio file (path or bytes) or a recording (samples at ``sample_rate``) as a new voice."""
        name, data = _upload(source, sample_rate, original_filename)
        form = {"speaker_name": speaker_name, "transcript": transcript,
                "is_default": "true" if make_default else "false"}
        response = self._call("POST", "/v1/voice/samples", data=form, files={"file": (name, data)})
        return listed_voice(response.json())

    def _patch(self, sample_id: int, **fields) -> engine.VoiceSample:
        return listed_voice(self._call("PATCH", f"/v1/voice/samples/{int(sample_id)}", json=fields).json())

    def rename(self, sample_id: int, speaker_name: str) -> engine.VoiceSample:
        return self._patch(sample_id, speaker_name=speaker_name)

    def set_transcript(self, sample_id: int, transcript: str) -> engine.VoiceSample:
        return self._patch(sample_id, transcript=transcript)

    def set_default(self, sample_id: int | None) -> engine.VoiceSample | None:
        """Make this voice the default; ``None`` clears the default."""
        if sample_id is not None:
            return self._patch(sample_id, is_default=True)
        current = self.default()
        if current is not None:
            self._patch(current.id, is_default=False)
        return None

    def delete(self, sample_id: int) -> None:
        self._call("DELETE", f"/v1/voice/samples/{int(sample_id)}")

    def export_zip(self, path, ids=None):
        raise _local_only("Backing up")

    def import_zip(self, path):
        raise _local_only("Restoring")


def _local_only(what: str) -> engine.DiaStudioError:
    return engine.DiaStudioError(f"{what} voices with a zip works on the computer that holds the library: the "
                                 "voices are on the server. Run it there, or switch Model settings back to "
                                 "“This computer”.", code="not_available")


def _upload(source, sample_rate: int | None, original_filename: str | None) -> tuple[str, bytes]:
    """The file name and bytes to upload for a path, bytes or a recording."""
    if isinstance(source, np.ndarray):
        import soundfile as sf

        if not sample_rate:
            raise engine.InvalidParameterError("Raw samples need their sample_rate.")
        buffer = io.BytesIO()
        sf.write(buffer, source, int(sample_rate), format="FLAC")
        return original_filename or "recording.flac", buffer.getvalue()
    if isinstance(source, (bytes, bytearray)):
        return original_filename or "upload", bytes(source)
    path = Path(source)
    try:
        return original_filename or path.name, path.read_bytes()
    except OSError as exc:
        raise engine.AudioDecodeFailedError(f"{path.name} can't be read: {exc.strerror or exc}") from None


def listed_voice(item: dict) -> engine.VoiceSample:
    """A voice the server listed, as the app's windows show voices (its files stay on the server; its
    ``uid`` names the server voice, so an episode cast from it renders with it on the server)."""
    now = datetime.now()
    return engine.VoiceSample(
        id=int(item["id"]), speaker_name=str(item["speaker_name"]), transcript=str(item["transcript"]),
        is_default=bool(item["is_default"]), duration=float(item["duration"]), created_at=now, updated_at=now,
        original_filename=SERVER_LIBRARY, original_format="flac", paths=None,  # type: ignore[arg-type]
        uid=f"{SERVER_VOICE}{int(item['id'])}", original_sample_rate=engine.TARGET_SAMPLE_RATE)
