"""Dia Studio engine: the Qt-free core (model, codec, generation, script rules, audio, voices).

The app and the CLI use only the names listed here. They load lazily (``import engine`` is
cheap; torch is imported when a model-related name is first used).

Rendering::

    from engine import DiaEngine, EngineOptions, RenderRequest, GenerationParams
    eng = DiaEngine.load(EngineOptions(model="~/models/Dia-1.6B-0626"), on_progress=print)
    result = eng.render(RenderRequest("[S1] Hi. [S2] Hello!", GenerationParams(seed=42)),
                        on_progress=print, on_audio=play_chunk, should_stop=cancel_event.is_set)

Script checking (editor): ``check_script``, ``parse_script``, ``estimate_budget``.
Voice library: ``VoiceLibrary``, ``assemble_prompt``; microphone: ``Recorder``, ``input_status``.
Render history: ``RenderHistory`` (SQLite + FLAC files under the data dir).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    # errors
    "engine.errors": ["DiaStudioError", "MissingInputError", "InvalidScriptError", "RequestTooLargeError",
                      "InvalidParameterError", "InvalidVoiceSampleError", "MissingTranscriptError",
                      "AudioDecodeFailedError", "ModelNotFoundError", "CheckpointError", "DownloadError",
                      "DeviceUnavailableError", "CancelledError", "GenerationError", "StorageError",
                      "MissingDependencyError"],
    # the engine's numbers (torch-free)
    "engine.constants": ["SAMPLE_RATE", "HOP_LENGTH", "FRAME_RATE", "DECODER_OVERHEAD_FRAMES", "TRAINED_POSITIONS",
                         "DEVICES", "DTYPE_NAMES", "frames_to_seconds", "seconds_to_frames"],
    # parameters and scripts
    "engine.params": ["GenerationParams", "PARAM_SPECS", "ParamSpec", "PRESETS", "PRESET_NOTES", "resolve_seed",
                      "SEED_RANDOM", "DEFAULTS", "DEFAULT_MAX_NEW_TOKENS"],
    "engine.script": ["check_script", "parse_script", "estimate_budget", "text_token_count", "Script",
                      "ScriptIssue", "Turn", "Cue", "Budget", "KNOWN_CUES", "SPEAKER_TAGS", "MAX_TEXT_TOKENS",
                      "decode_script", "check_characters", "MAX_SCRIPT_BYTES",
                      "FRAMES_PER_SECOND"],
    # rendering
    "engine.pipeline": ["DiaEngine"],
    "engine.requests": ["EngineOptions", "LoadProgress", "RenderRequest", "RenderProgress", "RenderResult",
                        "AudioChunk", "QUANTIZE_MODES", "prepare_text"],
    "engine.voice_prompt": ["VoicePrompt", "PromptPart", "combine_parts"],
    "engine.model.hub": ["DIA_REPO", "DAC_REPO", "DownloadProgress", "hub_offline", "cached_snapshot",
                         "download_repo", "DOWNLOAD_BYTES", "hub_cache_dir"],
    "engine.device": ["pick_device", "pick_dtype", "report", "cpu_kernels", "DTYPES"],
    # audio and voices
    "engine.audio": ["decode_audio", "write_audio", "export_formats", "peak_envelope", "time_stretch",
                     "read_metadata", "TARGET_SAMPLE_RATE"],
    "engine.voices": ["VoiceLibrary", "VoiceSample", "VoicePromptAudio", "assemble_prompt", "load_audio",
                      "MIN_SECONDS", "RECOMMENDED_SECONDS", "MAX_SECONDS"],
    "engine.recorder": ["Recorder", "Recording", "Level", "InputDevice", "InputStatus", "input_status",
                        "input_devices", "record"],
    "engine.stt": ["WhisperTranscriber", "Transcriber", "stt_available", "optional_transcriber", "STT_OFF"],
    "engine.paths": ["data_dir", "voices_dir"],
    "engine.files": ["atomic_write", "atomic_write_bytes", "atomic_write_text", "ensure_private_dir"],
    "engine.native": ["check_kernels"],
    "engine.testing": ["write_tiny_models"],  # the self-test's tiny random Dia + DAC
    # render history
    "engine.history": ["RenderHistory", "HistoryEntry", "CastMember", "make_title"],
    # long-form episodes
    "engine.episode": ["EpisodeProject", "parse_episode", "check_episode", "split_episode", "render_episode",
                       "regenerate_block", "export_project", "ProjectCorruptError", "VoiceInput", "VoiceCost",
                       "SplitSettings", "EpisodeProgress", "MasterSettings", "master_episode",
                       "cast_voice_from_take", "pending_blocks", "PROJECT_SUFFIX", "model_key", "engine_settings",
                       "voice_from_take", "save_to_library", "cast_kept_voice", "TakeVoice",
                       "EpisodeMetadata", "LOUDNESS_PRESETS", "join_blocks", "embed_cover", "COVER_FORMATS",
                       "cover_image_type",
                       "estimate_captions", "ProjectVoice"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
