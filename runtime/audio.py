"""Telephone audio primitives: G.711 mu-law at 8 kHz in 20 ms frames, and resampling.

Twilio Media Streams carry raw mu-law, 8 kHz, mono, 160 bytes per 20 ms frame
(protocols.md §1.4). Everything else in the runtime works on int16 PCM.

The codec is a pair of numpy lookup tables rather than the stdlib ``audioop``: that module is
deprecated in 3.11 and gone in 3.13, and the tables are bit-exact with it (see the tests).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import soxr

SAMPLE_RATE = 8000
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000  # 160
FRAME_BYTES = FRAME_SAMPLES  # one mu-law byte per sample
MULAW_SILENCE = 0xFF  # mu-law code for PCM 0

Pcm = npt.NDArray[np.int16]

_BIAS = 0x84
_CLIP14 = 8159
_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])


def _build_decode_table() -> npt.NDArray[np.int16]:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def _build_encode_table() -> npt.NDArray[np.uint8]:
    # Indexed by the int16 sample reinterpreted as uint16 (two's complement bit pattern).
    # Works on 14-bit magnitudes like the reference G.711 code (and CPython's audioop).
    samples = np.arange(65536, dtype=np.int32)
    samples = np.where(samples >= 32768, samples - 65536, samples) >> 2
    mask = np.where(samples < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(samples), _CLIP14) + (_BIAS >> 2)
    segment = np.searchsorted(_SEGMENT_ENDS, magnitude, side="left")
    code = np.where(
        segment >= 8,
        0x7F,
        (segment << 4) | ((magnitude >> (np.minimum(segment, 7) + 1)) & 0x0F),
    )
    return ((code ^ mask) & 0xFF).astype(np.uint8)


_DECODE = _build_decode_table()
_ENCODE = _build_encode_table()


def ulaw_to_pcm(data: bytes) -> Pcm:
    """Decode mu-law bytes to int16 PCM (same rate)."""
    return _DECODE[np.frombuffer(data, dtype=np.uint8)]


def pcm_to_ulaw(pcm: Pcm) -> bytes:
    """Encode int16 PCM to mu-law bytes (same rate)."""
    return _ENCODE[np.ascontiguousarray(pcm, dtype=np.int16).view(np.uint16)].tobytes()


def resample(pcm: Pcm, from_rate: int, to_rate: int) -> Pcm:
    """One-shot resample of a whole utterance or sentence.

    One-shot rather than ``soxr.ResampleStream``: the stream variant batches its output into
    60-100 ms bursts at 8 kHz (offline-engines.md §4), which would break 20 ms pacing.
    """
    if from_rate == to_rate or pcm.size == 0:
        return pcm
    out = soxr.resample(pcm, from_rate, to_rate)
    return np.asarray(out, dtype=np.int16)


def split_frames(ulaw: bytes) -> list[bytes]:
    """Cut mu-law audio into 20 ms frames, padding the last one with silence."""
    remainder = len(ulaw) % FRAME_BYTES
    if remainder:
        ulaw = ulaw + bytes([MULAW_SILENCE]) * (FRAME_BYTES - remainder)
    return [ulaw[i : i + FRAME_BYTES] for i in range(0, len(ulaw), FRAME_BYTES)]


def duration_ms(ulaw_bytes: int) -> float:
    """Playing time of ``ulaw_bytes`` bytes of 8 kHz mu-law."""
    return ulaw_bytes * 1000.0 / SAMPLE_RATE
