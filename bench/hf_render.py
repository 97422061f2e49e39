"""A whole transformers render process, the reference for ``dia-studio render``:
load Dia + DAC, generate, decode, write a WAV. Usage: hf_render.py DIA_DIR DAC_DIR SCRIPT OUT STEPS DTYPE"""

from __future__ import annotations

import sys
import time

import numpy as np
import soundfile as sf
import torch
from transformers import DacModel, DiaForConditionalGeneration


def main(dia_dir: str, dac_dir: str, script_path: str, out: str, steps: int, dtype: str) -> None:
    t0 = time.perf_counter()
    torch_dtype = getattr(torch, dtype)
    model = DiaForConditionalGeneration.from_pretrained(dia_dir, dtype=torch_dtype).eval()
    dac = DacModel.from_pretrained(dac_dir).eval()
    text = open(script_path, encoding="utf-8").read().strip()
    ids = torch.tensor([list(text.replace("[S1]", "\x01").replace("[S2]", "\x02").encode("utf-8"))])
    bos = torch.full((1, 1, 9), 1026, dtype=torch.long)
    torch.manual_seed(7)
    with torch.inference_mode():
        codes = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), decoder_input_ids=bos,
                               decoder_attention_mask=torch.ones(1, 16, dtype=torch.long), max_new_tokens=steps,
                               min_new_tokens=steps, do_sample=True, temperature=1.8, top_p=0.95, top_k=45,
                               guidance_scale=3.0)[0]
        delays = [0, 8, 9, 10, 11, 12, 13, 14, 15]
        frames = codes.shape[0] - 1 - 16
        undelayed = torch.stack([codes[1 + d:1 + d + frames, c] for c, d in enumerate(delays)], dim=1)
        undelayed = undelayed.clamp(0, 1023)
        audio = dac.decode(audio_codes=undelayed.T.unsqueeze(0)).audio_values[0].float().numpy()
    sf.write(out, np.asarray(audio).reshape(-1), 44100)
    print(f"hf render: {time.perf_counter() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6])
