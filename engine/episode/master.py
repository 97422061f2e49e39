"""Join an episode's rendered blocks and master them for delivery.

Each block is trimmed to its sound (keeping a little of its edge silence), the blocks are laid
end to end with a pause between them (a longer one before a block that opens a chapter), every
edge gets a short equal-power fade so no join clicks, and the result is brought to a loudness
target (ITU-R BS.1770, measured with pyloudnorm) under a true-peak ceiling (4x oversampled with
soxr) by a look-ahead limiter.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from engine.audio import (
    as_float32,
    rms_dbfs,
    sample_rate_problem,
    to_mono,
    trim_silence,
)
from engine.errors import InvalidParameterError

LOUDNESS_PRESETS: dict[str, float | None] = {
    "podcast": -16.0, "podcast-mono": -19.0, "broadcast": -23.0, "off": None,
}
"""Integrated loudness targets in LUFS (Apple Podcasts, its mono convention, EBU R128)."""

MAX_PAUSE_SECONDS = 10.0
"""The longest pause, crossfade or kept edge silence a setting may ask for."""

OVERSAMPLING = 4
"""True peak is the peak of the signal upsampled this many times (ITU-R BS.1770-4, annex 2)."""

LIMITER_RAMP_SECONDS = 0.010
"""How long the limiter takes to lower (ahead of a peak) and restore the gain."""

LIMITER_HOLD_SECONDS = 0.030
"""How long the limiter holds its lowest gain around a peak; at least the ramp."""

LIMITER_MARGIN_DB = 0.2
"""Headroom under the ceiling for what a different oversampler, or 16-bit rounding, may add."""

LOUDNESS_TOLERANCE_LU = 0.05
"""Mastering stops correcting the gain once the loudness is this close to the target."""

MAX_LOUDNESS_PASSES = 3
"""Loudness measurements of the result at most, each correcting the prediction of the next."""

MAX_PREDICTION_STEPS = 30
"""Steps of the search for the gain that reaches a loudness after limiting (cheap ones)."""

GATED_BLOCK_SECONDS = 0.4
"""BS.1770's gating block: shorter audio is measured by its RMS level instead."""

_DUAL_MONO_OFFSET_DB = 10.0 * math.log10(2.0)
"""BS.1770 sums the channels' energy: two identical channels measure 3.01 dB above one."""

_BUCKET_FRAMES = 32
"""The limiter works on the peaks of buckets this long (0.7 ms), a 32nd of the memory."""

_CHUNK_FRAMES = 1 << 20  # a multiple of _BUCKET_FRAMES
_CHUNK_PAD_FRAMES = 4096
"""Long audio is processed in chunks; each sees this much of its neighbours so the oversampling
filter and the limiter's windows give exactly what one pass over the whole would."""


@dataclass(frozen=True)
class MasterSettings:
    """How to join and master an episode (seconds, LUFS preset name, dBTP)."""

    loudness: str = "podcast"
    stereo: bool = False
    pause_seconds: float = 0.4
    chapter_pause_seconds: float = 1.2
    crossfade_seconds: float = 0.01
    edge_silence_seconds: float = 0.12
    true_peak_dbtp: float = -1.0


@dataclass(frozen=True)
class JoinedEpisode:
    """The mastered episode: ``samples`` is ``(frames, channels)`` float32."""

    samples: np.ndarray
    sample_rate: int
    block_spans: list[tuple[float, float]]
    loudness_lufs: float | None
    true_peak_dbtp: float | None

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.samples.shape[0] / float(self.sample_rate)


def master_episode(blocks: Sequence[np.ndarray], chapter_starts: Collection[int], settings: MasterSettings,
                   sample_rate: int) -> JoinedEpisode:
    """Join mono ``blocks`` (in order) and master them as ``settings`` say.

    ``chapter_starts`` are the indexes of blocks that open a chapter: the pause before them is
    ``chapter_pause_seconds``. A block with no sound at all takes no time and gets an empty span.
    Raises ``InvalidParameterError`` for bad settings or samples.
    """
    _check_settings(settings, sample_rate)
    mono_blocks = [_block_samples(block, i) for i, block in enumerate(blocks)]
    joined, spans = join_blocks(mono_blocks, set(chapter_starts), settings, sample_rate)
    offset = _DUAL_MONO_OFFSET_DB if settings.stereo else 0.0
    mastered, loudness = _master_loudness(joined, sample_rate, LOUDNESS_PRESETS[settings.loudness],
                                          settings.true_peak_dbtp, offset)
    peak = true_peak_dbtp(mastered, sample_rate)
    samples = np.repeat(mastered[:, None], 2 if settings.stereo else 1, axis=1)
    return JoinedEpisode(
        samples=samples, sample_rate=int(sample_rate), block_spans=spans,
        loudness_lufs=None if loudness is None else loudness + offset,
        true_peak_dbtp=None if peak == float("-inf") else peak,
    )


# --------------------------------------------------------------------------- checks

def _check_settings(settings: MasterSettings, sample_rate: int) -> None:
    problem = sample_rate_problem(sample_rate)
    if problem:
        raise InvalidParameterError(f"Can't master the episode: {problem}.")
    if settings.loudness not in LOUDNESS_PRESETS:
        raise InvalidParameterError(
            f"Unknown loudness '{settings.loudness}'; use one of {', '.join(LOUDNESS_PRESETS)}.")
    for name in ("pause_seconds", "chapter_pause_seconds", "crossfade_seconds", "edge_silence_seconds"):
        value = getattr(settings, name)
        if not isinstance(value, (int, float)) or not 0.0 <= value <= MAX_PAUSE_SECONDS:
            raise InvalidParameterError(
                f"{name} must be between 0 and {MAX_PAUSE_SECONDS:g} seconds, got {value!r}.")
    ceiling = settings.true_peak_dbtp
    if not isinstance(ceiling, (int, float)) or not -20.0 <= ceiling <= 0.0:
        raise InvalidParameterError(f"true_peak_dbtp must be between -20 and 0 dBTP, got {ceiling!r}.")


def _block_samples(block: np.ndarray, index: int) -> np.ndarray:
    arr = np.asarray(block)
    if arr.ndim == 2 and arr.shape[0] > 0:
        arr = to_mono(arr)
    if arr.ndim != 1:
        raise InvalidParameterError(f"Block {index + 1}'s audio has shape {arr.shape}; expected mono samples.")
    arr = as_float32(arr)
    if not np.isfinite(arr).all():
        raise InvalidParameterError(f"Block {index + 1}'s audio contains invalid (NaN or infinite) samples; "
                                    "render it again.")
    return arr


# --------------------------------------------------------------------------- joining

def equal_power_fades(length: int) -> tuple[np.ndarray, np.ndarray]:
    """Fade-in and fade-out curves of ``length`` samples whose squares sum to one."""
    phase = (np.arange(length, dtype=np.float64) + 0.5) / max(length, 1) * (np.pi / 2.0)
    return np.sin(phase).astype(np.float32), np.cos(phase).astype(np.float32)


def _faded(samples: np.ndarray, fade: int) -> np.ndarray:
    out = samples.copy()
    fade = min(fade, out.shape[0] // 2)
    if fade > 0:
        fade_in, fade_out = equal_power_fades(fade)
        out[:fade] *= fade_in
        out[-fade:] *= fade_out
    return out


def join_blocks(blocks: Sequence[np.ndarray], chapter_starts: Collection[int], settings: MasterSettings,
                sample_rate: int) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Trim, fade and lay out mono blocks; returns the joined samples and each block's span.

    Block ``i`` starts ``pause`` after block ``i-1`` ends, less the crossfade, so the two fades
    overlap exactly when the pause is zero. Silent blocks take no time; a chapter opened by a
    silent block still gets its longer pause before the next block with sound.
    """
    rate = int(sample_rate)
    fade = round(settings.crossfade_seconds * rate)
    keep_ms = settings.edge_silence_seconds * 1000.0
    placed: list[tuple[int, np.ndarray]] = []
    cursor, chapter_pending, has_sound = 0, False, False
    for index, block in enumerate(blocks):
        chapter_pending = chapter_pending or index in chapter_starts
        trimmed = trim_silence(block, rate, keep_ms=keep_ms) if block.size else block
        if trimmed.shape[0] == 0:
            placed.append((cursor, trimmed))
            continue
        if has_sound:
            pause = settings.chapter_pause_seconds if chapter_pending else settings.pause_seconds
            # never before the block placed last: a fade longer than a tiny block would reach back past it
            start = max(placed[-1][0], cursor + round(pause * rate) - fade)
        else:
            start = 0
        chapter_pending, has_sound = False, True
        placed.append((start, _faded(trimmed, fade)))
        cursor = start + trimmed.shape[0]
    total = max((start + part.shape[0] for start, part in placed), default=0)
    out = np.zeros(total, dtype=np.float32)
    for start, part in placed:
        out[start:start + part.shape[0]] += part
    spans = [(start / rate, (start + part.shape[0]) / rate) for start, part in placed]
    return out, spans


# --------------------------------------------------------------------------- measuring

def measure_loudness(samples: np.ndarray, sample_rate: int) -> float | None:
    """Integrated loudness of mono ``samples`` in LUFS (pyloudnorm), or ``None`` for silence.

    Audio shorter than one gating block is measured by its RMS level instead.
    """
    arr = as_float32(samples)
    if arr.shape[0] == 0 or not np.any(arr):
        return None
    if arr.shape[0] > int(GATED_BLOCK_SECONDS * sample_rate):
        import pyloudnorm

        with np.errstate(divide="ignore"):
            loudness = float(pyloudnorm.Meter(int(sample_rate)).integrated_loudness(arr.astype(np.float64)))
        if math.isfinite(loudness):
            return loudness
    level = rms_dbfs(arr)
    return level if math.isfinite(level) else None


def _chunks(frames: int):
    for start in range(0, frames, _CHUNK_FRAMES):
        yield start, min(frames, start + _CHUNK_FRAMES)


def _padded(samples: np.ndarray, start: int, end: int) -> tuple[np.ndarray, int]:
    lo = max(0, start - _CHUNK_PAD_FRAMES)
    hi = min(samples.shape[0], end + _CHUNK_PAD_FRAMES)
    return samples[lo:hi], start - lo


def _peak_envelope(segment: np.ndarray, sample_rate: int) -> np.ndarray:
    """Each sample's true-peak magnitude: the largest of it and its oversampled neighbours."""
    import soxr

    up = np.asarray(soxr.resample(segment, sample_rate, sample_rate * OVERSAMPLING, quality="HQ"),
                    dtype=np.float32)
    envelope = np.abs(segment)
    for phase in range(OVERSAMPLING):  # strided maxima: much faster than a reshape's max(axis=1)
        values = np.abs(up[phase::OVERSAMPLING][: envelope.shape[0]])
        np.maximum(envelope[: values.shape[0]], values, out=envelope[: values.shape[0]])
    return envelope


def true_peak_dbtp(samples: np.ndarray, sample_rate: int) -> float:
    """The true peak of mono ``samples`` in dBTP (``-inf`` for silence)."""
    arr = as_float32(samples)
    peak = 0.0
    for start, end in _chunks(arr.shape[0]):
        segment, offset = _padded(arr, start, end)
        envelope = _peak_envelope(segment, int(sample_rate))
        peak = max(peak, float(envelope[offset:offset + end - start].max()))
    return 20.0 * math.log10(peak) if peak > 0 else float("-inf")


# --------------------------------------------------------------------------- loudness and limiting

def _bucket_peaks(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """The true-peak magnitude of each ``_BUCKET_FRAMES``-frame bucket (the last may be short)."""
    arr = as_float32(samples)
    buckets = -(-arr.shape[0] // _BUCKET_FRAMES)
    peaks = np.zeros(buckets, dtype=np.float32)
    for start, end in _chunks(arr.shape[0]):  # chunk edges are bucket edges
        segment, offset = _padded(arr, start, end)
        envelope = _peak_envelope(segment, int(sample_rate))[offset:offset + end - start]
        padded = np.pad(envelope, (0, -envelope.shape[0] % _BUCKET_FRAMES))
        peaks[start // _BUCKET_FRAMES: start // _BUCKET_FRAMES + padded.shape[0] // _BUCKET_FRAMES] = \
            padded.reshape(-1, _BUCKET_FRAMES).max(axis=1)
    return peaks


def _bucket_energy(samples: np.ndarray) -> np.ndarray:
    arr = as_float32(samples).astype(np.float64)
    padded = np.pad(arr * arr, (0, -arr.shape[0] % _BUCKET_FRAMES))
    return padded.reshape(-1, _BUCKET_FRAMES).sum(axis=1)


def _limiter_gains(peaks: np.ndarray, ceiling_dbtp: float, sample_rate: int) -> np.ndarray | None:
    """Each bucket's limiter gain (``None`` when nothing reaches the ceiling).

    The gain a bucket needs is held at its lowest over ``LIMITER_HOLD_SECONDS`` (plus a bucket
    each side) and then smoothed over ``LIMITER_RAMP_SECONDS``. The ramp is shorter than the
    hold, so neither a bucket's gain nor its neighbours' (between which a sample's gain is
    interpolated) exceeds what the bucket's peak needs, and the gain changes without steps.
    """
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    ceiling = 10.0 ** ((ceiling_dbtp - LIMITER_MARGIN_DB) / 20.0)
    if peaks.size == 0 or float(peaks.max()) <= ceiling:
        return None
    hold = int(LIMITER_HOLD_SECONDS * sample_rate / _BUCKET_FRAMES / 2) + 1  # half-width, in buckets
    ramp = min(hold - 1, int(LIMITER_RAMP_SECONDS * sample_rate / _BUCKET_FRAMES / 2))
    needed = np.minimum(1.0, ceiling / np.maximum(peaks.astype(np.float64), 1e-12))
    held = minimum_filter1d(needed, 2 * hold + 1, mode="nearest")
    return uniform_filter1d(held, 2 * ramp + 1, mode="nearest") if ramp > 0 else held


def _apply_gains(samples: np.ndarray, gain: float, bucket_gains: np.ndarray | None) -> np.ndarray:
    """``samples`` times ``gain`` times the bucket gains interpolated between bucket centres."""
    out = as_float32(samples) * np.float32(gain)
    if bucket_gains is None:
        return out
    centres = np.arange(bucket_gains.shape[0], dtype=np.float64)
    for start, end in _chunks(out.shape[0]):
        position = (np.arange(start, end, dtype=np.float64) + 0.5) / _BUCKET_FRAMES - 0.5
        out[start:end] *= np.interp(position, centres, bucket_gains).astype(np.float32)
    return out


def limit_true_peak(samples: np.ndarray, sample_rate: int, ceiling_dbtp: float) -> np.ndarray:
    """Lower the gain around every true peak above ``ceiling_dbtp``, looking ahead of it."""
    peaks = _bucket_peaks(samples, sample_rate)
    return _apply_gains(samples, 1.0, _limiter_gains(peaks, ceiling_dbtp, int(sample_rate)))


class _LoudnessModel:
    """Predicts the loudness after a gain and the limiter from per-bucket peaks and energy.

    The limiter only dips the gain around peaks, so the loudness moves by the change of the
    signal's energy; measuring that on buckets costs a fraction of a BS.1770 measurement.
    """

    def __init__(self, samples: np.ndarray, sample_rate: int, loudness: float, ceiling_dbtp: float) -> None:
        self.rate, self.loudness, self.ceiling = int(sample_rate), loudness, ceiling_dbtp
        self.peaks = _bucket_peaks(samples, sample_rate)
        self.energy = _bucket_energy(samples)
        self.total = float(self.energy.sum())

    def gains(self, gain_db: float) -> np.ndarray | None:
        return _limiter_gains(self.peaks * np.float32(10.0 ** (gain_db / 20.0)), self.ceiling, self.rate)

    def predict(self, gain_db: float) -> float:
        gains = self.gains(gain_db)
        kept = 1.0 if gains is None else float(np.dot(gains * gains, self.energy)) / self.total
        return self.loudness + gain_db + 10.0 * math.log10(max(kept, 1e-12))

    def gain_for(self, target: float) -> float:
        """The gain whose predicted loudness is ``target``: a secant search (loudness only
        grows with gain, by at most a dB per dB)."""
        gain_db, previous = target - self.loudness, None
        for _ in range(MAX_PREDICTION_STEPS):
            predicted = self.predict(gain_db)
            error = target - predicted
            if abs(error) <= LOUDNESS_TOLERANCE_LU / 10.0:
                break
            slope = 1.0
            if previous is not None and gain_db != previous[0]:
                slope = min(1.0, max(0.05, (predicted - previous[1]) / (gain_db - previous[0])))
            previous = (gain_db, predicted)
            gain_db += error / slope
        return gain_db


def _master_loudness(samples: np.ndarray, sample_rate: int, target: float | None, ceiling_dbtp: float,
                     offset_db: float) -> tuple[np.ndarray, float | None]:
    """Gain to ``target`` LUFS (as measured on the output layout) and limit to the ceiling.

    Returns the result and its mono loudness. The gain comes from the prediction, then each
    pyloudnorm measurement of the result corrects the prediction's bias until it lands.
    """
    loudness = measure_loudness(samples, sample_rate)
    if target is None or loudness is None:
        out = limit_true_peak(samples, sample_rate, ceiling_dbtp)
        return out, measure_loudness(out, sample_rate)
    model = _LoudnessModel(samples, sample_rate, loudness, ceiling_dbtp)
    goal, bias = target - offset_db, 0.0
    out, measured = samples, loudness
    for _ in range(MAX_LOUDNESS_PASSES):
        gain_db = model.gain_for(goal - bias)
        out = _apply_gains(samples, 10.0 ** (gain_db / 20.0), model.gains(gain_db))
        measured = measure_loudness(out, sample_rate)
        if measured is None or abs(goal - measured) <= LOUDNESS_TOLERANCE_LU:
            break
        bias = measured - model.predict(gain_db)
    return out, measured


__all__ = [
    "LOUDNESS_PRESETS", "JoinedEpisode", "MasterSettings", "equal_power_fades", "join_blocks",
    "limit_true_peak", "master_episode", "measure_loudness", "true_peak_dbtp",
]
