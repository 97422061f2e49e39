"""The engine's front door: load Dia + DAC once, then render scripts to audio (optionally streamed).

    engine = DiaEngine.load(EngineOptions(model="~/models/Dia-1.6B-0626"))
    result = engine.render(RenderRequest("[S1] Hello. [S2] Hi!"), on_progress=print)

Everything long reports progress through a callback and can be cancelled between steps via a
``should_stop`` callable (e.g. ``threading.Event().is_set``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch

from engine import audio, heap
from engine.device import pick_device, pick_dtype
from engine.errors import GenerationError, InvalidParameterError, InvalidVoiceSampleError
from engine.generate import StepProgress, TextEncodings, generate_codes
from engine.model.checkpoint import load_dia
from engine.model.config import SAMPLE_RATE
from engine.model.dac_checkpoint import load_dac
from engine.model.dac_stream import WINDOW_FRAMES, StreamingDacDecoder
from engine.model.hub import DAC_REPO, DIA_REPO, DownloadProgress, resolve_model
from engine.model.tokenizer import encode_text
from engine.params import resolve_seed
from engine.requests import (
    QUANTIZE_MODES,
    AudioChunk,
    EngineOptions,
    LoadProgress,
    RenderProgress,
    RenderRequest,
    RenderResult,
    prepare_text,
)
from engine.sampling import SamplingSettings
from engine.voice_prompt import VoicePrompt


class DiaEngine:
    """A loaded Dia model plus DAC codec. Not thread-safe: one worker thread should own it."""

    def __init__(self, model, codec, options: EngineOptions, load_seconds: float = 0.0) -> None:
        self.model = model
        self.codec = codec
        self.options = options
        self.load_seconds = load_seconds
        self.encodings = TextEncodings()  # a retake of the same text skips the encoder

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, options: EngineOptions = EngineOptions(), *,
             on_progress: Callable[[LoadProgress], None] | None = None,
             should_stop: Callable[[], bool] | None = None) -> DiaEngine:
        """Find (or download) and load the model and codec; raises typed errors on every failure."""
        t0 = time.perf_counter()
        report = on_progress or (lambda _p: None)

        def downloading(p: DownloadProgress) -> None:
            report(LoadProgress("download", p.text, p))  # bytes, or a retry notice

        device = pick_device(options.device)
        dtype = pick_dtype(options.dtype, device)
        if options.quantize not in QUANTIZE_MODES:
            modes = ", ".join(m for m in QUANTIZE_MODES if m)
            raise InvalidParameterError(f"quantize must be one of {modes} or empty (got {options.quantize!r})")
        model_path = resolve_model(options.model, default_repo=DIA_REPO, offline=options.offline,
                                   progress=downloading, should_stop=should_stop)
        codec_path = resolve_model(options.codec, default_repo=DAC_REPO, offline=options.offline,
                                   progress=downloading, should_stop=should_stop)
        heap.fix_mmap_threshold()  # large temporaries go back to the system when freed (engine.heap)
        report(LoadProgress("model", f"Loading Dia from {model_path} ({str(dtype).replace('torch.', '')}, {device})"))
        # quantised while read (never the whole model in full precision), cached on disk after the first load
        model = load_dia(model_path, device=device, dtype=dtype, cross_attn_rope=options.cross_attn_rope,
                         quantize=options.quantize or None)
        report(LoadProgress("codec", f"Loading the DAC codec from {codec_path}"))
        codec = load_dac(codec_path, device=device, dtype=torch.float32)
        report(LoadProgress("ready", "Model ready"))
        return cls(model, codec, options, time.perf_counter() - t0)

    # ------------------------------------------------------------------ rendering
    @staticmethod
    def prepare_text(request: RenderRequest) -> tuple[str, tuple[str, ...]]:
        """The exact text the model sees (voice transcript first) and the script's warnings
        (``engine.requests.prepare_text``: it needs no model)."""
        return prepare_text(request)

    def encode_prompt(self, voice: VoicePrompt) -> torch.Tensor:
        """DAC codes (frames, 9) of a voice prompt, resampled to 44.1 kHz mono first."""
        mono = audio.resample(audio.to_mono(voice.samples), voice.sample_rate, SAMPLE_RATE)
        if mono.size == 0 or not np.any(mono):
            raise InvalidVoiceSampleError("the voice prompt is empty or silent: there is no voice to clone")
        return torch.from_numpy(self.codec.encode_numpy(mono))

    def render(self, request: RenderRequest, *, on_progress: Callable[[RenderProgress], None] | None = None,
               on_audio: Callable[[AudioChunk], None] | None = None,
               should_stop: Callable[[], bool] | None = None,
               prompt_codes: np.ndarray | None = None) -> RenderResult:
        """Render a script. ``on_audio`` receives audio chunks while frames are still being generated.

        ``prompt_codes`` (frames, channels) are ``request.voice``'s DAC codes encoded earlier (e.g. by
        ``encode_prompt``), so a voice used by many renders is encoded once; the voice still gives the
        transcript."""
        if not isinstance(request, RenderRequest):
            raise InvalidParameterError(f"render takes a RenderRequest, not {type(request).__name__}")
        if prompt_codes is not None and request.voice is None:
            raise InvalidParameterError("prompt_codes need the request's voice (its transcript)")
        report = on_progress or (lambda _p: None)
        params = request.params
        params.validate()
        text, warnings = self.prepare_text(request)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        prompt = None
        if request.voice is not None:
            report(RenderProgress("prompt"))
            prompt = self.encode_prompt(request.voice) if prompt_codes is None else self._given_codes(prompt_codes)
            timings["prompt"] = time.perf_counter() - t0
        seed = resolve_seed(params.seed)
        settings = SamplingSettings(cfg_scale=params.cfg_scale, temperature=params.temperature, top_p=params.top_p,
                                    top_k=params.cfg_filter_top_k, max_new_tokens=params.max_new_tokens, seed=seed)
        # decoded in bounded steps as frames arrive, streamed or not: a one-shot decode of a long render
        # holds ~1 GB of activations per 10 s of audio, and the audio is the same either way
        stream = _AudioStream(self.codec, on_audio, params.speed_factor)

        def progress(p: StepProgress) -> None:
            report(RenderProgress("generate", p.step, p.max_steps, p.frames, p.frames_per_second, p.elapsed))

        with torch.inference_mode():
            result = generate_codes(self.model, encode_text(text), settings, prompt, on_progress=progress,
                                    on_frames=stream.push, should_stop=should_stop, encodings=self.encodings)
        timings.update(prefill=result.prefill_seconds, generate=result.decode_seconds)
        positions = result.prompt_frames + 1 + result.steps
        if positions > self.model.cfg.dec_max_positions:
            trained = self.model.cfg.dec_max_positions
            warnings += (f"prompt plus audio used {positions} decoder positions, more than the {trained} "
                         "Dia was trained on; the end may degrade. Use a shorter voice sample or split the script.",)
        if result.codes.shape[0] == 0:
            raise GenerationError("the model ended the audio immediately and produced no sound; try another seed")
        report(RenderProgress("finish", result.steps, result.steps, result.codes.shape[0]))
        t1 = time.perf_counter()
        wave = stream.finish()
        timings["decode"] = time.perf_counter() - t1
        timings["total"] = time.perf_counter() - t0
        return RenderResult(np.ascontiguousarray(wave, dtype=np.float32), SAMPLE_RATE, seed, params, text,
                            result.codes.numpy(), result.stop_reason, warnings, timings)

    def _given_codes(self, codes: np.ndarray) -> torch.Tensor:
        codes = np.asarray(codes)
        channels = len(self.model.cfg.delay_pattern)
        if codes.ndim != 2 or codes.shape[1] != channels or codes.shape[0] == 0 or \
                not np.issubdtype(codes.dtype, np.integer):
            raise InvalidVoiceSampleError(f"prompt codes must be integers shaped (frames, {channels}), "
                                          f"not {codes.dtype} {codes.shape}")
        return torch.from_numpy(codes.astype(np.int64))

    def stream(self, request: RenderRequest, *, on_progress: Callable[[RenderProgress], None] | None = None,
               should_stop: Callable[[], bool] | None = None) -> Iterator[AudioChunk]:
        """Iterate over audio chunks while the render runs on a helper thread; errors re-raise here."""
        chunks: queue.Queue = queue.Queue()
        done = object()
        stop = threading.Event()

        def run() -> None:
            try:
                self.render(request, on_progress=on_progress, on_audio=chunks.put,
                            should_stop=lambda: stop.is_set() or bool(should_stop and should_stop()))
                chunks.put(done)
            except BaseException as exc:  # handed to the consumer
                chunks.put(exc)

        worker = threading.Thread(target=run, name="dia-stream", daemon=True)
        worker.start()
        try:
            while True:
                item = chunks.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            worker.join()


class _AudioStream:
    """Frames in, audio chunks out (to ``sink``, if any): streaming DAC decoding that matches a one-shot
    decode up to float rounding, in steps of bounded size whatever the length.

    With a speed factor other than 1, the tempo change needs the whole utterance to sound right,
    so the audio is delivered once, stretched, at the end.
    """

    def __init__(self, codec, sink: Callable[[AudioChunk], None] | None, speed_factor: float) -> None:
        # a listener wants audio early: the decoder's small first steps; without one (or with a tempo
        # change, heard only at the end), every step is a full window
        early = sink is not None and speed_factor == 1.0
        self.decoder = StreamingDacDecoder(codec) if early else StreamingDacDecoder(codec, first_chunk_frames=WINDOW_FRAMES)
        self.sink = sink
        self.speed = speed_factor
        self.parts: list[np.ndarray] = []
        self.position = 0

    def push(self, frames: torch.Tensor) -> None:
        with torch.inference_mode():
            self._emit(self.decoder.push(frames))

    def finish(self) -> np.ndarray:
        with torch.inference_mode():
            self._emit(self.decoder.flush())
        wave = np.concatenate(self.parts) if self.parts else np.zeros(0, dtype=np.float32)
        if self.speed != 1.0:
            wave = audio.time_stretch(wave, SAMPLE_RATE, self.speed)
            if self.sink is not None:
                self.sink(AudioChunk(wave, 0))
        return wave

    def _emit(self, samples: np.ndarray) -> None:
        if samples.size == 0:
            return
        heap.trim()  # the window's activations leave holes that would stay resident (engine.heap)
        self.parts.append(samples)
        if self.speed == 1.0 and self.sink is not None:
            self.sink(AudioChunk(samples, self.position))
        self.position += samples.size
