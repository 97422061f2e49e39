"""The FastAPI application: routes, error mapping, OpenAPI document.

``create_app(config, backend)`` builds it; the caller runs it (``engine.server.serve`` with
uvicorn, or the desktop app in-process). Routes use only ``engine``'s public API.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import FastAPI, File, Form, Path, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

import engine
from engine import (
    DiaStudioError,
    GenerationParams,
    InvalidParameterError,
    RenderHistory,
    Transcriber,
    VoiceLibrary,
)
from engine.server import formats
from engine.server.backend import EngineRunner, RenderBackend
from engine.server.config import MAX_UPLOAD_BYTES, ServerConfig
from engine.server.errors import ApiError, from_engine
from engine.server.longform import render_long
from engine.server.queue import Job, RenderQueue
from engine.server.render import (
    SPEED_RANGE,
    Plan,
    build_plan,
    check_input,
    post_process,
    split_speed,
    store,
)
from engine.server.schemas import (
    Deleted,
    ErrorBody,
    Health,
    HistoryItem,
    HistoryList,
    ModelCard,
    ModelList,
    SpeechRequest,
    VoiceGenerationRequest,
    VoiceList,
    VoiceSampleList,
    VoiceSampleOut,
    VoiceSampleUpdate,
)
from engine.server.security import Guard

log = logging.getLogger(__name__)

OPENAI_MODEL_ALIASES = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
OPENAI_VOICES = frozenset({"alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer",
                           "verse", "marin", "cedar"})
"""OpenAI's built-in voice names: the default voice here, unless the library has a voice so named."""
MODEL_FEATURES = ["tts", "voice-cloning"]
DISCONNECT_POLL_SECONDS = 0.25
MAX_HISTORY_LIST = 500
ItemId = Annotated[int, Path(ge=0, le=2**63 - 1, description="an id from the list")]
NO_STT = ("Speech-to-text is not available on this server (it needs faster-whisper, pip install "
          "'dia-studio[stt]', and a Whisper model)")
CHECK_TRANSCRIPT = ("The transcript was filled in by speech-to-text: check that it is word for word what the clip "
                    "says (PATCH /v1/voice/samples/{id} with 'transcript' corrects it).")
ADD_TRANSCRIPT = ("This voice has no transcript, so requests that use it are refused with missing_transcript "
                  "until it has one: send the exact words spoken in the clip with PATCH /v1/voice/samples/{id} "
                  "('transcript').")


class ClientGone(Exception):
    """The client disconnected while its request waited or rendered."""


def _responses(*statuses: int, audio: tuple[str, ...] = ()) -> dict:
    out: dict = {status: {"model": ErrorBody} for status in statuses}
    out[401] = {"model": ErrorBody}
    if audio:
        out[200] = {"content": {media: {"schema": {"type": "string", "format": "binary"}} for media in audio}}
    return out


class ServerState:
    """What the routes share: config, backend, queue, library, history."""

    def __init__(self, config: ServerConfig, backend: RenderBackend, library: VoiceLibrary,
                 history: RenderHistory | None, defaults: GenerationParams,
                 transcriber: Transcriber | None = None) -> None:
        self.config = config
        self.defaults = defaults
        self.backend = backend
        self.queue = RenderQueue(backend, config.queue_size)
        self.library = library
        self.history = history
        self.started = int(time.time())
        self.long_form = isinstance(backend, EngineRunner)
        """Whether scripts longer than one render are taken (through the episode engine)."""
        self.transcriber = transcriber
        self.stt_lock = threading.Lock()
        """One transcription at a time: each takes the cores it is given (and renders run meanwhile)."""

    def check_model(self, requested: str | None, *, required: bool) -> None:
        known = {self.backend.model_id, "dia", *OPENAI_MODEL_ALIASES}
        if requested is None:
            if required:
                raise InvalidParameterError(f"model is required: use {self.backend.model_id} (GET /v1/models)")
            return
        if requested not in known:
            raise ApiError("no_provider", f"no model '{requested}' here: this server serves "
                                          f"{self.backend.model_id} (GET /v1/models), also as tts-1, tts-1-hd "
                                          "and gpt-4o-mini-tts")


def create_app(config: ServerConfig, backend: RenderBackend, *, library: VoiceLibrary | None = None,
               history: RenderHistory | None = None, defaults: GenerationParams | None = None,
               transcriber: Transcriber | None = None) -> FastAPI:
    """The API application. ``library`` and ``history`` default to the user's (data folder);
    ``defaults`` are the sampling parameters of requests that don't set them; ``transcriber`` fills
    in the transcript of a voice uploaded without one (None: such a voice keeps none, and the
    upload's answer says how to add it)."""
    state = ServerState(config, backend, library if library is not None else VoiceLibrary(),
                        history if history is not None else RenderHistory(), defaults or GenerationParams(),
                        transcriber)
    app = FastAPI(title="Dia Studio API", version=engine.__version__, docs_url=None, redoc_url=None,
                  description="Dia text-to-dialogue on this computer: seed 000's /v1/voice/generations, "
                              "OpenAI's /v1/audio/speech, the voice library and the render history.")
    app.state.dia = state
    _install_errors(app)
    _add_render_routes(app, state)
    _add_library_routes(app, state)
    _add_info_routes(app, state)
    app.add_middleware(Guard, token=config.token, loopback_only=not config.allow_remote)
    if config.cors_origins:  # outermost: preflights carry no token
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["*"],
                           allow_headers=["Authorization", "Content-Type"])
    app.router.add_event_handler("shutdown", state.queue.close)
    _tidy_openapi(app)
    return app


# ---------------------------------------------------------------------------------------- errors

def _error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def _validation_error(exc: RequestValidationError) -> ApiError:
    errors = exc.errors()
    first = errors[0] if errors else {}
    kind, loc = first.get("type", ""), tuple(first.get("loc", ()))
    if kind == "json_invalid":
        return ApiError("invalid_json", f"the body is not valid JSON ({first.get('ctx', {}).get('error', 'syntax')})")
    if loc == ("body",) and kind == "missing":
        return ApiError("missing_input", "the request has no body: send a JSON object with 'input'")
    if loc == ("body",):
        return ApiError("invalid_json", "the body must be a JSON object")
    field = ".".join(str(part) for part in loc[1:] if str(part) not in ("int", "float", "str")) or "body"
    if kind == "extra_forbidden":
        return ApiError("invalid_parameter", f"unknown field '{field}'")
    if kind == "missing":
        return ApiError("invalid_parameter", f"'{field}' is required")
    return ApiError("invalid_parameter", f"{field}: {first.get('msg', 'invalid value')}")


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError):
        return _error_response(exc)

    @app.exception_handler(DiaStudioError)
    async def engine_error(_request: Request, exc: DiaStudioError):
        return _error_response(from_engine(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError):
        return _error_response(_validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException):
        kind = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large",
                415: "unsupported_media_type"}.get(exc.status_code, "invalid_parameter")
        return _error_response(ApiError(kind, str(exc.detail), status=exc.status_code))

    @app.exception_handler(Exception)
    async def bug(_request: Request, exc: Exception):
        log.error("unexpected error: %s", type(exc).__name__, exc_info=exc)
        return _error_response(ApiError("internal_error", "the server hit an unexpected error; its log has the "
                                                          "details", status=500))


def _tidy_openapi(app: FastAPI) -> None:
    """OpenAPI without FastAPI's 422 (this API answers 400) and with the bearer scheme."""
    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
                if path != "/health":
                    operation["security"] = [{"bearer": []}]
        components = schema.setdefault("components", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.get("schemas", {}).pop(name, None)
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi


# ---------------------------------------------------------------------------------------- rendering

async def _next_event(job: Job, request: Request) -> tuple[str, object]:
    """The job's next event; a client that disconnects meanwhile cancels the job (``ClientGone``)."""
    getter = asyncio.ensure_future(job.events.get())
    try:
        while True:
            done, _ = await asyncio.wait({getter}, timeout=DISCONNECT_POLL_SECONDS)
            if done:
                return getter.result()
            if await request.is_disconnected():
                job.cancel()
                raise ClientGone
    finally:
        if not getter.done():
            getter.cancel()


def _raise_error(value: object) -> None:
    if isinstance(value, ApiError):
        raise value
    if isinstance(value, DiaStudioError):
        raise from_engine(value)
    raise ApiError("upstream_error", "the render failed")


async def _submit(state: ServerState, plan: Plan, *, stream: bool) -> Job:
    run = functools.partial(render_long, plan.long) if plan.long is not None else None
    job = Job(plan.request, asyncio.get_running_loop(), stream=stream,
              after=lambda result: _store_quietly(state, plan, result), run=run)
    return state.queue.submit(job)


def _store_quietly(state: ServerState, plan: Plan, result) -> int | None:
    try:
        return store(state.history, plan, result, state.backend.model_id)
    except DiaStudioError as exc:  # the audio is rendered: deliver it even if the history can't keep it
        log.warning("could not store the render in the history: %s", exc.code)
        return None


async def _render_whole(state: ServerState, plan: Plan, request: Request, fmt: formats.AudioFormat) -> Response:
    """Render, then answer the whole file (exact headers), with the seed and history id."""
    job = await _submit(state, plan, stream=False)
    try:
        kind, value = await _next_event(job, request)
    except ClientGone:
        return Response(status_code=499)
    if kind != "done":
        _raise_error(value)
    result = value
    samples = await run_in_threadpool(post_process, result.audio, result.sample_rate, plan.post_speed)
    body = await run_in_threadpool(formats.encode, samples, fmt, result.sample_rate)
    headers = {"X-Dia-Seed": str(result.seed)}
    if job.extra is not None:
        headers["X-Dia-History-Id"] = str(job.extra)
    if job.blocks is not None:  # a long script, rendered block by block
        headers["X-Dia-Blocks"] = str(job.blocks[1])
    return Response(body, media_type=fmt.media_type, headers=headers)


async def _render_streamed(state: ServerState, plan: Plan, request: Request, fmt: formats.AudioFormat,
                           *, sse: bool) -> Response:
    """Answer as soon as the first audio exists and send the rest as the model makes it.

    Errors before the first audio are answered with their status; a failure after it can only
    end the stream early (the client sees a truncated body)."""
    job = await _submit(state, plan, stream=True)
    try:
        first = await _next_event(job, request)
    except ClientGone:
        return Response(status_code=499)
    if first[0] == "error":
        _raise_error(first[1])
    encoder = formats.stream_encoder(fmt)
    pieces = _encoded_pieces(job, request, encoder, first)
    if sse:
        return StreamingResponse(_sse(pieces, plan), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})
    return StreamingResponse(pieces, media_type=fmt.media_type)


async def _encoded_pieces(job: Job, request: Request, encoder: formats.Encoder,
                          first: tuple[str, object]) -> AsyncIterator[bytes]:
    event, finished = first, False
    try:
        while True:
            kind, value = event
            if kind == "chunk":
                data = encoder.feed(value.samples)
                if data:
                    yield data
            elif kind == "done":
                finished = True
                tail = encoder.finish()
                if tail:
                    yield tail
                return
            else:
                log.warning("a streamed render failed after its first audio: %s", getattr(value, "code", value))
                raise RuntimeError("the render failed mid-stream")  # ends the response without its last chunk
            event = await _next_event(job, request)
    except ClientGone:
        return
    finally:
        if not finished:
            job.cancel()


async def _sse(pieces: AsyncIterator[bytes], plan: Plan) -> AsyncIterator[bytes]:
    async for data in pieces:
        event = {"type": "speech.audio.delta", "audio": base64.b64encode(data).decode("ascii")}
        yield f"data: {json.dumps(event)}\n\n".encode()
    tokens = len(plan.request.script)
    done = {"type": "speech.audio.done", "usage": {"input_tokens": tokens, "output_tokens": 0,
                                                   "total_tokens": tokens}}
    yield f"data: {json.dumps(done)}\n\n".encode()


def _params(state: ServerState, values: dict) -> GenerationParams:
    """The request's sampling parameters over the server's defaults (``serve --seed`` etc.)."""
    given = {name: value for name, value in values.items() if value is not None}
    return state.defaults.replace(**given) if given else state.defaults


def _add_render_routes(app: FastAPI, state: ServerState) -> None:
    param_names = list(engine.PARAM_SPECS)

    @app.post("/v1/voice/generations", response_class=Response, tags=["render"],
              summary="Render a [S1]/[S2] dialogue with voices from the library (seed 000)",
              responses=_responses(400, 404, 413, 429, 502, audio=("audio/wav",)))
    async def voice_generations(body: VoiceGenerationRequest, request: Request) -> Response:
        text = check_input(body.input, state.config.max_input_chars)
        state.check_model(body.model, required=False)
        params = _params(state, {name: getattr(body, name) for name in param_names})
        plan = await run_in_threadpool(build_plan, state.library, text, params, body.speakers,
                                       long_form=state.long_form)
        return await _render_whole(state, plan, request, formats.FORMATS["wav"])

    @app.post("/v1/audio/speech", response_class=Response, tags=["render"],
              summary="OpenAI's speech API: text to audio, streamed while it renders (seed 001)",
              responses=_responses(400, 404, 413, 429, 502, audio=tuple(
                  sorted({f.media_type for f in formats.FORMATS.values()} | {"text/event-stream"}))))
    async def speech(body: SpeechRequest, request: Request) -> Response:
        text = check_input(body.input, state.config.max_input_chars)
        state.check_model(body.model, required=True)
        fmt = formats.audio_format(body.response_format)
        speed = 1.0 if body.speed is None else float(body.speed)
        low, high = SPEED_RANGE
        if not low <= speed <= high:
            raise InvalidParameterError(f"speed must be between {low} and {high} (got {speed:g})")
        engine_speed, post_speed = split_speed(speed)
        params = _params(state, {**{name: getattr(body, name, None) for name in param_names},
                                 "speed_factor": engine_speed})
        speakers = body.speakers if body.speakers is not None else await run_in_threadpool(
            _speech_voice, state.library, body.voice)
        plan = await run_in_threadpool(build_plan, state.library, text, params, speakers, post_speed=post_speed,
                                       long_form=state.long_form)
        if post_speed != 1.0:  # the second tempo pass needs the whole render
            if body.stream_format == "sse":
                return await _render_streamed_after(state, plan, request, fmt)
            return await _render_whole(state, plan, request, fmt)
        return await _render_streamed(state, plan, request, fmt, sse=body.stream_format == "sse")

    async def _render_streamed_after(state_, plan, request, fmt) -> Response:
        response = await _render_whole(state_, plan, request, fmt)
        if response.status_code != 200:
            return response

        async def one() -> AsyncIterator[bytes]:
            yield bytes(response.body)

        return StreamingResponse(_sse(one(), plan), media_type="text/event-stream")


def _speech_voice(library: VoiceLibrary, voice) -> dict[str, object]:
    """The speaker mapping for OpenAI's ``voice``: a library voice by name or id, else the default."""
    ref = voice.id if hasattr(voice, "id") else voice
    if ref is None or (isinstance(ref, str) and ref.strip().lower() in OPENAI_VOICES and not _named(library, ref)):
        default = library.default()
        return {"S1": default.id} if default is not None else {}
    return {"S1": ref}


def _named(library: VoiceLibrary, name: str) -> bool:
    try:
        library.resolve(name)
    except DiaStudioError:
        return False
    return True


# ---------------------------------------------------------------------------------------- library

def _sample_out(sample, note: str = "") -> VoiceSampleOut:
    notes = [*sample.warnings, *([note.replace("{id}", str(sample.id))] if note else [])]
    return VoiceSampleOut(id=sample.id, speaker_name=sample.speaker_name, transcript=sample.transcript,
                          has_transcript=sample.has_transcript, is_default=sample.is_default,
                          duration=round(sample.duration, 3), warnings=notes)


def _sample_or_404(library: VoiceLibrary, sample_id: int):
    try:
        return library.get(sample_id)
    except DiaStudioError as exc:
        if exc.code == "invalid_voice_sample":
            raise ApiError("not_found", f"there is no voice sample with id {sample_id}") from None
        raise


def _upload_name(filename: str | None) -> str:
    name = (filename or "upload").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name[:120] or "upload"


def _fill_transcript(state: ServerState, sample) -> tuple[object, str]:
    """A new voice without a transcript, transcribed by speech-to-text when the server has it; the
    sample and a note for the answer. The stored clip is transcribed (the library trims the upload),
    so the words are those renders will hear. A failure only leaves the transcript empty."""
    if state.transcriber is None:
        return sample, f"{NO_STT}. {ADD_TRANSCRIPT}"
    try:
        with state.stt_lock:
            words = state.transcriber.transcribe(state.library.load_audio(sample), engine.TARGET_SAMPLE_RATE)
        if words.strip():
            return state.library.set_transcript(sample.id, words), CHECK_TRANSCRIPT
        why = "Speech-to-text heard no words in the clip"
    except DiaStudioError as exc:
        log.info("no automatic transcript: %s", exc.code)
        why = f"Speech-to-text failed: {str(exc).rstrip('.')}"
    except Exception as exc:  # noqa: BLE001 - a transcriber's bug must not lose the upload
        log.warning("speech-to-text failed unexpectedly: %s", type(exc).__name__, exc_info=exc)
        why = "Speech-to-text failed unexpectedly (the server log has the details)"
    return sample, f"{why}. {ADD_TRANSCRIPT}"


def _add_library_routes(app: FastAPI, state: ServerState) -> None:
    library = state.library

    @app.get("/v1/voice/samples", response_model=VoiceSampleList, tags=["voices"],
             summary="The voice library", responses=_responses(400))
    async def list_samples() -> VoiceSampleList:
        samples = await run_in_threadpool(library.list)
        return VoiceSampleList(data=[_sample_out(s) for s in samples])

    @app.post("/v1/voice/samples", response_model=VoiceSampleOut, status_code=201, tags=["voices"],
              summary="Add a voice: an audio file (WAV, FLAC, MP3, Ogg, Opus, WebM, M4A; 10 MB at most)",
              description="Without a transcript, speech-to-text fills it in when this server has it (the "
                          "answer's warnings say which happened); a voice without one can't clone yet.",
              responses=_responses(400, 413))
    async def upload_sample(file: Annotated[UploadFile, File()], speaker_name: Annotated[str, Form()],
                            transcript: Annotated[str, Form()] = "",
                            is_default: Annotated[bool, Form()] = False) -> VoiceSampleOut:
        data = await file.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise ApiError("request_too_large", f"the file is larger than {MAX_UPLOAD_BYTES // (1 << 20)} MB")
        name = _upload_name(file.filename)
        sample = await run_in_threadpool(lambda: library.add(data, speaker_name=speaker_name, transcript=transcript,
                                                             original_filename=name, make_default=is_default))
        if sample.has_transcript:
            return _sample_out(sample)
        # inline, off the event loop and the render queue's thread; a clip is at most 30 s
        return _sample_out(*await run_in_threadpool(_fill_transcript, state, sample))

    @app.get("/v1/voice/samples/{sample_id}", response_model=VoiceSampleOut, tags=["voices"],
             summary="One voice", responses=_responses(400, 404))
    async def get_sample(sample_id: ItemId) -> VoiceSampleOut:
        return _sample_out(await run_in_threadpool(_sample_or_404, library, sample_id))

    @app.get("/v1/voice/samples/{sample_id}/audio", response_class=Response, tags=["voices"],
             summary="A voice's prompt audio (FLAC, 44.1 kHz mono), to listen to",
             responses=_responses(400, 404, audio=("audio/flac",)))
    async def sample_audio(sample_id: ItemId) -> Response:
        def read() -> bytes:
            try:
                return _sample_or_404(library, sample_id).paths.audio.read_bytes()
            except OSError:
                raise ApiError("not_found", f"the audio of voice {sample_id} is missing") from None

        return Response(await run_in_threadpool(read), media_type="audio/flac")

    @app.patch("/v1/voice/samples/{sample_id}", response_model=VoiceSampleOut, tags=["voices"],
               summary="Rename a voice, edit its transcript, make it the default",
               responses=_responses(400, 404))
    async def update_sample(sample_id: ItemId, body: VoiceSampleUpdate) -> VoiceSampleOut:
        def apply():
            sample = _sample_or_404(library, sample_id)
            if body.speaker_name is not None:
                sample = library.rename(sample.id, body.speaker_name)
            if body.transcript is not None:
                sample = library.set_transcript(sample.id, body.transcript)
            if body.is_default is True:
                sample = library.set_default(sample.id)
            elif body.is_default is False and sample.is_default:
                library.set_default(None)
                sample = library.get(sample.id)
            return sample

        return _sample_out(await run_in_threadpool(apply))

    @app.delete("/v1/voice/samples/{sample_id}", response_model=Deleted, tags=["voices"],
                summary="Delete a voice and its files", responses=_responses(400, 404))
    async def delete_sample(sample_id: ItemId) -> Deleted:
        def remove():
            library.delete(_sample_or_404(library, sample_id).id)

        await run_in_threadpool(remove)
        return Deleted(id=sample_id)

    @app.get("/v1/audio/voices", response_model=VoiceList, tags=["voices"],
             summary="Voice names for /v1/audio/speech (seed 001; objects for Open WebUI)",
             responses=_responses(400, 404))
    async def voices(model: str | None = Query(None), shape: str | None = Query(None, pattern="^(names|objects)$")):
        state.check_model(model, required=False)
        samples = await run_in_threadpool(library.list)
        # The seed's clients ask with ?model= and read names; Open WebUI asks without and reads {id, name}.
        if (shape or ("names" if model is not None else "objects")) == "names":
            return VoiceList(voices=[s.speaker_name for s in samples])
        return VoiceList(voices=[{"id": str(s.id), "name": s.speaker_name} for s in samples])


# ---------------------------------------------------------------------------------------- info, history

def _history_item(entry) -> HistoryItem:
    return HistoryItem(id=entry.id, created_at=entry.created_at.isoformat(), title=entry.title, script=entry.script,
                       seed=entry.seed, duration=round(entry.duration, 3), render_seconds=round(entry.render_seconds, 3),
                       params=entry.params.to_dict(), cast={tag: m.to_dict() for tag, m in entry.cast.items()},
                       label=entry.label, stop_reason=entry.stop_reason, warnings=list(entry.warnings))


def _add_info_routes(app: FastAPI, state: ServerState) -> None:
    def card() -> ModelCard:
        return ModelCard(id=state.backend.model_id, created=state.started, owned_by="nari-labs",
                         features=MODEL_FEATURES, precision=state.backend.precision)

    @app.get("/health", response_model=Health, tags=["info"], summary="Is the server up (no token needed)")
    async def health() -> Health:
        return Health(model=state.backend.model_id, precision=state.backend.precision, queue=state.queue.stats())

    @app.get("/v1/models", response_model=ModelList, tags=["info"], summary="The model this server renders with")
    async def models() -> ModelList:
        return ModelList(data=[card()])

    @app.get("/v1/models/{model_id}", response_model=ModelCard, tags=["info"], summary="One model",
             responses=_responses(404))
    async def model(model_id: str) -> ModelCard:
        state.check_model(model_id, required=True)
        return card()

    history = state.history

    def need_history() -> RenderHistory:
        if history is None:
            raise ApiError("not_found", "this server keeps no history")
        return history

    @app.get("/v1/history", response_model=HistoryList, tags=["history"],
             summary="Stored renders, newest first", responses=_responses(400))
    async def list_history(search: str = Query("", max_length=200),
                           limit: int = Query(50, ge=1, le=MAX_HISTORY_LIST)) -> HistoryList:
        entries = await run_in_threadpool(lambda: need_history().list(search, limit=limit))
        return HistoryList(data=[_history_item(e) for e in entries])

    @app.get("/v1/history/{entry_id}", response_model=HistoryItem, tags=["history"], summary="One stored render",
             responses=_responses(400, 404))
    async def history_entry(entry_id: ItemId) -> HistoryItem:
        return _history_item(await run_in_threadpool(lambda: need_history().get(entry_id)))

    @app.get("/v1/history/{entry_id}/audio", response_class=Response, tags=["history"],
             summary="A stored render's audio (FLAC)", responses=_responses(400, 404, audio=("audio/flac",)))
    async def history_audio(entry_id: ItemId) -> Response:
        def read() -> bytes:
            entry = need_history().get(entry_id)
            try:
                return entry.audio_path.read_bytes()
            except OSError:
                raise ApiError("not_found", f"the audio of render {entry_id} is missing") from None

        return Response(await run_in_threadpool(read), media_type="audio/flac")

    @app.delete("/v1/history/{entry_id}", response_model=Deleted, tags=["history"], summary="Delete a stored render",
                responses=_responses(400, 404))
    async def delete_history(entry_id: ItemId) -> Deleted:
        def remove() -> None:
            need_history().get(entry_id)
            need_history().delete(entry_id)

        await run_in_threadpool(remove)
        return Deleted(id=entry_id)
