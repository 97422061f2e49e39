"""Our Dia engine against the transformers oracle on identical random weights (fp32, CPU)."""

from __future__ import annotations

import pytest
import torch

from engine.generate import generate_codes
from engine.model.checkpoint import load_dia
from engine.model.tokenizer import encode_text
from engine.sampling import SamplingSettings
from tests.engine.dia_fixtures import TINY, save_nari_folder, save_transformers_folder, tiny_transformers_model

pytest.importorskip("transformers")

EOS, BOS, PAD = TINY.eos_token_id, TINY.bos_token_id, TINY.pad_token_id
DELAYS = TINY.delay_pattern


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The oracle and our engine, loaded from the official transformers layout it wrote itself."""
    hf = tiny_transformers_model()
    folder = save_transformers_folder(hf, tmp_path_factory.mktemp("dia") / "hf", max_shard_size="300KB")
    return hf, load_dia(folder)


def _hf_generate(hf, text_ids, max_new_tokens, prompt=None, seed=None, **sampling):
    """transformers' generate with the inputs DiaProcessor builds; returns the delayed (T, C) codes."""
    from transformers.models.dia.processing_dia import DiaProcessor

    ids = torch.tensor([text_ids])
    length = 0 if prompt is None else prompt.shape[0]
    rows = length + 1 + max(DELAYS)
    undelayed = torch.full((1, rows, 9), PAD, dtype=torch.long)
    undelayed[0, 0] = BOS
    if prompt is not None:
        undelayed[0, 1:length + 1] = prompt
    idx = DiaProcessor.build_indices(bsz=1, seq_len=rows, num_channels=9, delay_pattern=list(DELAYS), revert=False)
    dec = DiaProcessor.apply_audio_delay(audio=undelayed, pad_token_id=PAD, bos_token_id=BOS, precomputed_idx=idx)
    if seed is not None:
        torch.manual_seed(seed)
    out = hf.generate(input_ids=ids, attention_mask=torch.ones_like(ids), decoder_input_ids=dec,
                      decoder_attention_mask=torch.ones(1, rows, dtype=torch.long),
                      max_new_tokens=max_new_tokens, **sampling)
    return out[0]


def _hf_frames(delayed: torch.Tensor, prompt_len: int) -> torch.Tensor:
    first = prompt_len + 1
    eos = (delayed[:, 0] == EOS).nonzero()
    end = int(eos[0]) if len(eos) else delayed.shape[0]
    frames = end - first
    return torch.stack([delayed[first + d: first + d + frames, c] for c, d in enumerate(DELAYS)], dim=1)


class _EosInjector:
    """Adds +1000 to channel 0's EOS logit on the n-th decoder call (counting the prefill as call 0)."""

    def __init__(self, module: torch.nn.Module, at_call: int) -> None:
        self.calls, self.at_call = 0, at_call
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, _module, _inputs, output):
        if self.calls == self.at_call:
            output = output.clone()
            output[..., -1, EOS] += 1000.0
        self.calls += 1
        return output

    def remove(self):
        self.handle.remove()


TEXT = encode_text("[S1] Hello there, this is a test. [S2] And a reply (laughs).")


def test_encoder_and_teacher_forced_logits_match(pair):
    hf, ours = pair
    ids = torch.tensor([TEXT, [0] * len(TEXT)])
    with torch.no_grad():
        enc_ref = hf.model.encoder(input_ids=ids).last_hidden_state
    enc = ours.encode(ids)
    torch.testing.assert_close(enc, enc_ref, atol=1e-4, rtol=0)

    tokens = torch.randint(0, 1024, (1, 20, 9))
    tokens[:, 0] = BOS
    tokens = tokens.repeat(2, 1, 1)
    with torch.no_grad():
        ref = hf(encoder_outputs=(enc_ref,), decoder_input_ids=tokens, use_cache=False).logits
    ref = ref.view(2, 9, 20, -1).permute(0, 2, 1, 3)
    state = ours.start_decoder(enc, None, 32)
    full = ours.decode(tokens, state, last_only=False)
    torch.testing.assert_close(full, ref, atol=1e-4, rtol=0)

    # incremental decoding with the static cache equals the full forward
    state = ours.start_decoder(enc, None, 32)
    head = ours.decode(tokens[:, :7], state, last_only=False)
    steps = torch.stack([ours.decode(tokens[:, i:i + 1], state) for i in range(7, 20)], dim=1)
    torch.testing.assert_close(torch.cat([head, steps], dim=1), ref, atol=1e-4, rtol=0)


STEP_MODES = ["loop", "static"]  # the CPU's per-step loop and the graph-ready step (CUDA's), run eagerly


@pytest.mark.parametrize("step_mode", STEP_MODES)
@pytest.mark.parametrize("mode", ["greedy", "sampled"])
def test_generation_max_length_stop_matches(pair, mode, step_mode):
    hf, ours = pair
    n = 40
    if mode == "greedy":
        ref = _hf_generate(hf, TEXT, n, do_sample=False, guidance_scale=3.0, top_k=45)
        settings = SamplingSettings(cfg_scale=3.0, temperature=0.0, top_k=45, max_new_tokens=n)
    else:
        ref = _hf_generate(hf, TEXT, n, seed=1234, do_sample=True, guidance_scale=3.0, temperature=1.8,
                           top_p=0.95, top_k=45)
        settings = SamplingSettings(cfg_scale=3.0, temperature=1.8, top_p=0.95, top_k=45, max_new_tokens=n, seed=1234)
    result = generate_codes(ours, TEXT, settings, step_mode=step_mode)
    assert result.stop_reason == "max_new_tokens"
    assert result.codes.shape == (n - 16, 9)
    assert torch.equal(result.codes, _hf_frames(ref, 0))


@pytest.mark.parametrize("step_mode", STEP_MODES)
@pytest.mark.parametrize("seed", [None, 7])
def test_generation_eos_stop_matches(pair, seed, step_mode):
    hf, ours = pair
    n, at = 60, 12
    sampling = dict(do_sample=False) if seed is None else dict(do_sample=True, temperature=1.3, top_p=0.9)
    inject = _EosInjector(hf.logits_dense, at)
    try:
        ref = _hf_generate(hf, TEXT, n, seed=seed, guidance_scale=3.0, top_k=45, **sampling)
    finally:
        inject.remove()
    inject = _EosInjector(ours.head, at)
    try:
        settings = SamplingSettings(cfg_scale=3.0, temperature=0.0 if seed is None else 1.3, top_p=0.9,
                                    top_k=45, max_new_tokens=n, seed=seed)
        result = generate_codes(ours, TEXT, settings, step_mode=step_mode, sync_every=3)
    finally:
        inject.remove()
    assert result.stop_reason == "eos"
    assert result.codes.shape[0] == at  # EOS sampled for position at+1 -> frames 0..at-1
    assert torch.equal(result.codes, _hf_frames(ref, 0))


@pytest.mark.parametrize("step_mode", STEP_MODES)
@pytest.mark.parametrize("seed", [None, 99])
def test_generation_with_audio_prompt_matches(pair, seed, step_mode):
    hf, ours = pair
    prompt = torch.randint(0, 1024, (25, 9))
    n = 50
    sampling = dict(do_sample=False) if seed is None else dict(do_sample=True, temperature=1.8, top_p=0.95)
    ref = _hf_generate(hf, TEXT, n, prompt=prompt, seed=seed, guidance_scale=4.0, top_k=50, **sampling)
    # our max_new_tokens caps all positions (nari's max_tokens); transformers' counts after the prompt
    settings = SamplingSettings(cfg_scale=4.0, temperature=0.0 if seed is None else 1.8, top_p=0.95, top_k=50,
                                max_new_tokens=n + 25, seed=seed)
    result = generate_codes(ours, TEXT, settings, prompt_codes=prompt, step_mode=step_mode)
    assert result.prompt_frames == 25 and result.codes.shape[0] == n - 16
    assert torch.equal(result.codes, _hf_frames(ref, 25))


def test_streamed_frames_equal_final_codes(pair):
    _, ours = pair
    chunks = []
    result = generate_codes(ours, TEXT, SamplingSettings(max_new_tokens=48, seed=3), on_frames=chunks.append)
    assert torch.equal(torch.cat(chunks), result.codes)
    assert all(len(c) >= 1 for c in chunks)


def test_nari_layout_loads_to_identical_model(pair, tmp_path):
    hf, ours = pair
    for name in ("dia-v1.pth", "pytorch_model.bin", "model.safetensors"):
        folder = save_nari_folder(hf, tmp_path / name.replace(".", "_"), filename=name)
        other = load_dia(folder)
        for (k, a), (_, b) in zip(ours.state_dict().items(), other.state_dict().items()):
            assert torch.equal(a, b), (name, k)
