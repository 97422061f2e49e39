"""The graph-ready (static) decoding step: the same codes as the per-step loop, no host syncs, no
shape changes, and a CUDA graph seam that is plain eager code off CUDA.

The CUDA tests at the end run only where a GPU is present (bench/bench_gpu.py measures it)."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from engine.errors import CancelledError, InvalidParameterError
from engine.generate import (
    StaticStep,
    StepRunner,
    generate_codes,
    resolve_step_mode,
    start_render,
)
from engine.model.checkpoint import load_dia
from engine.model.tokenizer import encode_text
from engine.precision import check_against_float32, with_dtype
from engine.sampling import SamplingSettings
from engine.testing import write_dia
from tests.engine.dac_fixtures import torch_threads

TEXT = encode_text("[S1] Hello there, this is a test. [S2] And a reply (laughs).")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """The tiny random Dia in float32 on the CPU (seed 0 ends some renders by EOS, others at the limit)."""
    return load_dia(write_dia(tmp_path_factory.mktemp("dia") / "dia"))


class _EosAt:
    """Adds +1000 to channel 0's EOS logit on the n-th head call (the prefill is call 0), for both modes."""

    def __init__(self, model, at_call: int | None) -> None:
        self.calls, self.at_call = 0, at_call
        self.handle = model.head.register_forward_hook(self._hook)

    def _hook(self, _module, _inputs, output):
        if self.calls == self.at_call:
            output = output.clone()
            output[..., -1, 1024] += 1000.0
        self.calls += 1
        return output

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def _both_modes(model, settings, sync_every, eos_call=None, prompt=None):
    with _EosAt(model, eos_call):
        loop = generate_codes(model, TEXT, settings, prompt, step_mode="loop")
    with _EosAt(model, eos_call):
        static = generate_codes(model, TEXT, settings, prompt, step_mode="static", sync_every=sync_every)
    return loop, static


@pytest.mark.parametrize("seed", [None, 1, 8])
@pytest.mark.parametrize("sync_every", [1, 4, 7])
@pytest.mark.parametrize("eos_call", [None, 12], ids=["limit", "eos"])
def test_static_steps_give_the_loops_codes_token_for_token(model, seed, sync_every, eos_call):
    settings = SamplingSettings(max_new_tokens=80, seed=seed, temperature=0.0 if seed is None else 1.8)
    loop, static = _both_modes(model, settings, sync_every, eos_call)
    assert torch.equal(static.codes, loop.codes)
    assert (static.stop_reason, static.steps) == (loop.stop_reason, loop.steps)
    assert static.stop_reason == ("eos" if eos_call else "max_new_tokens") or seed == 8  # 8 picks EOS itself


def test_static_steps_with_a_voice_prompt_give_the_loops_codes(model):
    prompt = torch.randint(0, 1024, (12, 9), generator=torch.Generator().manual_seed(2))
    settings = SamplingSettings(max_new_tokens=70, seed=11, top_k=50, cfg_scale=4.0)
    loop, static = _both_modes(model, settings, 5, eos_call=20, prompt=prompt)
    assert static.prompt_frames == 12 and static.stop_reason == "eos" and torch.equal(static.codes, loop.codes)


def test_static_frames_stream_in_batches_that_add_up_to_the_codes(model):
    chunks, progress = [], []
    result = generate_codes(model, TEXT, SamplingSettings(max_new_tokens=80, seed=5), step_mode="static",
                            sync_every=8, on_frames=chunks.append, on_progress=progress.append)
    assert torch.equal(torch.cat(chunks), result.codes)
    assert progress[-1].step == result.steps and progress[-1].frames == len(result.codes)
    assert [p.step for p in progress] == sorted({p.step for p in progress})  # one report per host check


def test_static_render_can_be_cancelled_between_batches(model):
    checks = {"n": 0}

    def stop() -> bool:
        checks["n"] += 1
        return checks["n"] > 2

    with pytest.raises(CancelledError):
        generate_codes(model, TEXT, SamplingSettings(max_new_tokens=80, seed=5), step_mode="static",
                       sync_every=4, should_stop=stop)


class _Recorder(TorchDispatchMode):
    """Every ATen op a step runs, with the shapes it produces."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[str, tuple]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        shapes = tuple(tuple(o.shape) for o in (out if isinstance(out, (tuple, list)) else [out])
                       if isinstance(o, torch.Tensor))
        name = str(func.overloadpacket)
        indices = args[1] if len(args) > 1 and isinstance(args[1], (list, tuple)) else ()
        if name.startswith("aten.index") and any(_is_mask(i) for i in indices):
            name = "boolean-mask indexing"  # a nonzero() inside: its shape depends on the values
        self.ops.append((name, shapes))
        return out


def _is_mask(index) -> bool:
    return isinstance(index, torch.Tensor) and index.dtype == torch.bool


# ops that read a device value on the host (item(), bool(), int()) or whose output shape depends on values
HOST_SYNC_OPS = {"aten._local_scalar_dense", "aten.item", "aten.is_nonzero", "aten.equal", "aten.nonzero",
                 "aten.masked_select", "aten.unique", "aten._unique2", "boolean-mask indexing"}


def test_static_step_is_graph_ready(model):
    """No host reads, and the same ops on the same shapes every step, writing the same buffers."""
    render = start_render(model, TEXT, SamplingSettings(max_new_tokens=80, seed=3), spare=4)
    step = StaticStep(render)
    pointers = [b.data_ptr() for b in step.buffers]
    traces = []
    for _ in range(3):
        with _Recorder() as recorder:
            step()
        traces.append(recorder.ops)
    assert traces[0] and traces[0] == traces[1] == traces[2]
    assert not HOST_SYNC_OPS & {name for name, _ in traces[0]}
    assert [b.data_ptr() for b in step.buffers] == pointers
    assert int(step.position) == render.first + 3


def test_the_recorder_sees_boolean_mask_indexing():
    """The check above would catch the old ``eos_rule`` (``out[eos_top, :eos] = -inf``)."""
    logits = torch.randn(9, 1028)
    with _Recorder() as recorder:
        logits[logits.argmax(dim=-1) == 3, :3] = float("-inf")
    assert "boolean-mask indexing" in {name for name, _ in recorder.ops}


def test_the_graph_seam_is_eager_off_cuda(model):
    calls = []
    runner = StepRunner(lambda: calls.append(1), torch.device("cpu"), [])
    runner.run(5)
    assert runner.graph is None and len(calls) == 5 and runner.capture_seconds == 0.0


def test_step_modes():
    assert resolve_step_mode("auto", torch.device("cpu")) == "loop"
    assert resolve_step_mode("auto", torch.device("cuda")) == "static"
    assert resolve_step_mode("static", torch.device("cpu")) == "static"
    with pytest.raises(InvalidParameterError, match="step_mode"):
        resolve_step_mode("graph", torch.device("cpu"))


def test_float32_check_finds_the_static_step_exact_and_bf16_close(model):
    exact = check_against_float32(model, model, step_mode="static", steps=24)
    assert exact.logit_max_rel_diff < 1e-5 and exact.argmax_agreement == 1.0
    assert exact.greedy_code_agreement == exact.sampled_code_agreement == 1.0
    bf16 = check_against_float32(with_dtype(model, torch.bfloat16), model, step_mode="static", steps=24)
    assert bf16.passed() and 0 < bf16.logit_max_rel_diff < 0.05


def test_float32_check_catches_a_wrong_model(model, tmp_path):
    other = load_dia(write_dia(tmp_path / "other", seed=1))
    assert not check_against_float32(other, model, steps=24).passed()


# ----------------------------------------------------------------------------------------- CUDA only


@cuda
@pytest.mark.parametrize("seed", [None, 7])
def test_cuda_graph_replays_give_the_eager_static_codes(model, seed, monkeypatch):
    gpu = with_dtype(model, torch.float32).to("cuda")  # a copy: the CPU fixture stays
    settings = SamplingSettings(max_new_tokens=80, seed=seed, temperature=0.0 if seed is None else 1.8)
    graphed = generate_codes(gpu, TEXT, settings)
    assert graphed.graph_seconds > 0
    monkeypatch.setenv("DIA_STUDIO_CUDA_GRAPHS", "0")
    eager = generate_codes(gpu, TEXT, settings)
    assert eager.graph_seconds == 0 and torch.equal(graphed.codes, eager.codes)


@cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cuda_reduced_precision_stays_close_to_float32(model, dtype):
    reference = with_dtype(model, torch.float32).to("cuda")
    assert check_against_float32(with_dtype(reference, dtype), reference).passed()
