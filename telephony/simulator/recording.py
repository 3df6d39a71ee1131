"""Stereo WAV of a simulated call: left = what the caller sent, right = the bot as played.

Written as the call runs, so a long call or many concurrent ones never hold their audio in
memory; only the few samples by which one channel is ahead of the other are kept.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from runtime.audio import MULAW_SILENCE, SAMPLE_RATE, ulaw_to_pcm


class StereoRecorder:
    """Incremental 8 kHz 16-bit stereo WAV writer fed with mu-law for each channel."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._wav = wave.open(str(path), "wb")
        self._wav.setnchannels(2)
        self._wav.setsampwidth(2)
        self._wav.setframerate(SAMPLE_RATE)
        self._left = bytearray()
        self._right = bytearray()
        self._frames = 0

    @property
    def duration_s(self) -> float:
        """Length of what has been written so far."""
        return self._frames / SAMPLE_RATE

    def add_caller(self, ulaw: bytes) -> None:
        self._left += ulaw
        self._flush()

    def add_bot(self, ulaw: bytes) -> None:
        self._right += ulaw
        self._flush()

    def close(self) -> None:
        """Pad the shorter channel with silence, write the rest and finalise the header."""
        longest = max(len(self._left), len(self._right))
        self._left += bytes([MULAW_SILENCE]) * (longest - len(self._left))
        self._right += bytes([MULAW_SILENCE]) * (longest - len(self._right))
        self._flush()
        self._wav.close()

    def _flush(self) -> None:
        count = min(len(self._left), len(self._right))
        if not count:
            return
        left = ulaw_to_pcm(bytes(self._left[:count]))
        right = ulaw_to_pcm(bytes(self._right[:count]))
        stereo = np.column_stack((left, right))
        self._wav.writeframes(stereo.astype("<i2").tobytes())
        del self._left[:count]
        del self._right[:count]
        self._frames += count
