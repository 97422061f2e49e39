"""Request and response bodies, as the OpenAPI document describes them.

Types are strict (a string is not a number, ``true`` is not 1); ranges and defaults are shown from
``PARAM_SPECS`` but checked by ``GenerationParams``, the engine's one place for them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from engine import PARAM_SPECS
from engine.server.formats import FORMATS

Number = StrictInt | StrictFloat
VoiceRef = StrictInt | StrictStr


def _param(name: str) -> Any:
    spec = PARAM_SPECS[name]
    extra: dict[str, Any] = {"minimum": spec.minimum, "maximum": spec.maximum, "default": spec.default}
    if name == "seed":
        extra = {"minimum": spec.minimum, "default": spec.default}
    return Field(None, description=spec.help, json_schema_extra=extra)


class VoiceGenerationRequest(BaseModel):
    """``POST /v1/voice/generations`` (seed 000)."""

    model_config = ConfigDict(extra="forbid")

    input: StrictStr | None = Field(None, description="The dialogue script: [S1]/[S2] lines. Required.")
    model: StrictStr | None = Field(None, description="A model id from GET /v1/models; omit to auto-select.")
    speakers: dict[StrictStr, VoiceRef | None] | None = Field(
        None, description='Maps "S1"/"S2" to voice-sample ids (or names) from the voice library.')
    cfg_scale: Number | None = _param("cfg_scale")
    temperature: Number | None = _param("temperature")
    top_p: Number | None = _param("top_p")
    cfg_filter_top_k: StrictInt | None = _param("cfg_filter_top_k")
    speed_factor: Number | None = _param("speed_factor")
    max_new_tokens: StrictInt | None = _param("max_new_tokens")
    seed: StrictInt | None = _param("seed")
    visibility: Any | None = Field(None, description="Accepted for compatibility; a local server keeps "
                                                        "everything private.")
    collection: Any | None = Field(None, description="Accepted for compatibility and ignored.")


class VoiceObject(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: StrictStr


class SpeechRequest(BaseModel):
    """``POST /v1/audio/speech`` (seed 001, OpenAI's speech API)."""

    model_config = ConfigDict(extra="ignore")

    model: StrictStr | None = Field(None, description="A model id from GET /v1/models, or tts-1, tts-1-hd, "
                                                         "gpt-4o-mini-tts. Required.")
    input: StrictStr | None = Field(None, description="The text to speak (a [S1]/[S2] script works too). "
                                                         "Required.")
    voice: StrictStr | StrictInt | VoiceObject | None = Field(
        None, description="A voice-library name or id (or {\"id\": …}); the default voice when omitted.")
    response_format: Literal[tuple(FORMATS)] = Field("wav", description="wav (default), opus (Ogg), mp3, "
                                                                         "flac, aac (ADTS) or pcm (24 kHz s16le)")
    speed: Number | None = Field(None, description="0.25–4.0, default 1.0: tempo, the pitch kept.",
                                    json_schema_extra={"minimum": 0.25, "maximum": 4.0, "default": 1.0})
    stream_format: Literal["audio", "sse"] = Field(
        "audio", description="audio: the file, sent while it renders; sse: speech.audio.delta/done events")
    instructions: StrictStr | None = Field(None, description="Accepted and ignored.")
    language: StrictStr | None = Field(None, description="Accepted and ignored (Dia reads English).")
    # Dia's own sampling parameters, as extensions (the OpenAI SDK sends them with extra_body)
    cfg_scale: Number | None = _param("cfg_scale")
    temperature: Number | None = _param("temperature")
    top_p: Number | None = _param("top_p")
    cfg_filter_top_k: StrictInt | None = _param("cfg_filter_top_k")
    max_new_tokens: StrictInt | None = _param("max_new_tokens")
    seed: StrictInt | None = _param("seed")
    speakers: dict[StrictStr, VoiceRef | None] | None = Field(
        None, description='A Dia extension, as in /v1/voice/generations: maps "S1"/"S2" to library voices; '
                          'when given (even {}), it replaces voice.')


class ErrorDetail(BaseModel):
    type: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class ModelCard(BaseModel):
    id: str = Field(description="The model, e.g. dia-1.6b-0626: the same whatever its precision")
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    features: list[str]
    precision: str = Field(description="How the model runs: <dtype>[-<quantisation>], e.g. bf16, fp32-int8 or "
                                       "bf16-int4 (int8 and int4 trade exactness for speed)")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class VoiceSampleOut(BaseModel):
    id: int
    speaker_name: str
    transcript: str
    has_transcript: bool = Field(description="Whether the voice can clone: renders that use a voice without a "
                                             "transcript are refused with missing_transcript")
    is_default: bool
    duration: float
    warnings: list[str] = Field(default_factory=list, description="Advice about the clip and its transcript (an "
                                                                  "upload says here whether speech-to-text filled "
                                                                  "the transcript in)")


class VoiceSampleList(BaseModel):
    object: Literal["list"] = "list"
    data: list[VoiceSampleOut]


class VoiceSampleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    speaker_name: StrictStr | None = None
    transcript: StrictStr | None = None
    is_default: bool | None = Field(None, strict=True)


class Deleted(BaseModel):
    id: int
    deleted: bool = True


class VoiceListEntry(BaseModel):
    id: str
    name: str


class VoiceList(BaseModel):
    voices: list[str] | list[VoiceListEntry] = Field(
        description="Names (seed 001's shape, when ?model= is given) or {id, name} objects (Open WebUI's, "
                    "when it is not); ?shape=names|objects chooses explicitly.")


class HistoryItem(BaseModel):
    id: int
    created_at: str
    title: str
    script: str
    seed: int
    duration: float
    render_seconds: float
    params: dict[str, float]
    cast: dict[str, dict[str, Any]]
    label: str
    stop_reason: str
    warnings: list[str]


class HistoryList(BaseModel):
    object: Literal["list"] = "list"
    data: list[HistoryItem]


class QueueState(BaseModel):
    rendering: int
    waiting: int
    capacity: int
    rendered: int
    blocks_done: int | None = Field(None, description="Blocks finished of the script rendering now, when it is "
                                                       "longer than one render (rendered block by block)")
    blocks_total: int | None = Field(None, description="Blocks of that script in all")


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    model: str
    precision: str
    queue: QueueState
