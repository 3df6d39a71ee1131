"""The mu-law tables against CPython's audioop (the reference G.711 codec), framing and resampling."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from runtime.audio import (
    FRAME_BYTES,
    MULAW_SILENCE,
    duration_ms,
    pcm_to_ulaw,
    resample,
    split_frames,
    ulaw_to_pcm,
)

with warnings.catch_warnings():
    # audioop is deprecated in 3.11 (gone in 3.13); here it is only the reference to compare with.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop


def test_encode_matches_audioop_for_every_int16_value() -> None:
    every_sample = np.arange(-32768, 32768, dtype=np.int16)
    assert pcm_to_ulaw(every_sample) == audioop.lin2ulaw(every_sample.tobytes(), 2)


def test_decode_matches_audioop_for_every_code() -> None:
    every_code = bytes(range(256))
    expected = np.frombuffer(audioop.ulaw2lin(every_code, 2), dtype=np.int16)
    np.testing.assert_array_equal(ulaw_to_pcm(every_code), expected)


def test_silence_code_decodes_to_zero() -> None:
    assert ulaw_to_pcm(bytes([MULAW_SILENCE]))[0] == 0


def test_split_frames_pads_the_last_frame_with_silence() -> None:
    frames = split_frames(b"\x01" * (FRAME_BYTES * 2 + 10))
    assert [len(frame) for frame in frames] == [FRAME_BYTES] * 3
    assert frames[2] == b"\x01" * 10 + bytes([MULAW_SILENCE]) * (FRAME_BYTES - 10)


def test_split_frames_leaves_whole_frames_alone() -> None:
    assert split_frames(b"\x02" * FRAME_BYTES * 2) == [b"\x02" * FRAME_BYTES] * 2
    assert split_frames(b"") == []


@pytest.mark.parametrize(("from_rate", "to_rate"), [(8000, 16000), (22050, 8000), (16000, 8000)])
def test_resample_keeps_the_duration(from_rate: int, to_rate: int) -> None:
    one_second = (np.sin(np.arange(from_rate) * 0.05) * 10000).astype(np.int16)
    out = resample(one_second, from_rate, to_rate)
    assert out.dtype == np.int16
    assert out.size == to_rate


def test_resample_same_rate_is_identity() -> None:
    pcm = np.arange(100, dtype=np.int16)
    assert resample(pcm, 8000, 8000) is pcm


def test_duration_of_one_frame_is_20_ms() -> None:
    assert duration_ms(FRAME_BYTES) == 20.0
