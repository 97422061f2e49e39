"""Dia's byte-level text tokenizer: UTF-8 bytes, with ``[S1]``/``[S2]`` as ids 1 and 2."""

from __future__ import annotations

PAD_ID = 0
_SPEAKER_BYTES = ((b"[S1]", b"\x01"), (b"[S2]", b"\x02"))


def encode_text(text: str) -> list[int]:
    """Token ids of ``text`` exactly as the reference tokenizers produce them (no BOS/EOS, no padding)."""
    data = text.encode("utf-8")
    for tag, byte in _SPEAKER_BYTES:
        data = data.replace(tag, byte)
    return list(data)
