"""The caller's lines as telephone audio, rendered before the call starts.

Rendering happens up front so synthesis never disturbs the call's real-time pacing, and a load
generator can render once and share the audio between calls.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from runtime.audio import ulaw_to_pcm
from runtime.speech import TextToSpeech
from telephony.simulator.script import CallerScript

#: Samples quieter than this (about -48 dBFS) count as silence when trimming a line.
SILENCE_THRESHOLD = 128


def trim_silence(ulaw: bytes) -> bytes:
    """Cut leading and trailing silence, so a line's last frame is the end of its speech.

    TTS engines pad their output; left in, the padding would be counted as bot latency.
    """
    loud = np.flatnonzero(np.abs(ulaw_to_pcm(ulaw).astype(np.int32)) >= SILENCE_THRESHOLD)
    if loud.size == 0:
        return ulaw
    return ulaw[int(loud[0]) : int(loud[-1]) + 1]


async def prerender_script(
    script: CallerScript, tts: TextToSpeech, prerendered: Mapping[str, bytes] | None = None
) -> dict[str, bytes]:
    """Every line of ``script`` as trimmed mu-law, reusing ``prerendered`` audio where given."""
    given = prerendered or {}
    audio: dict[str, bytes] = {}
    for text in script.lines():
        raw = given[text] if text in given else await tts.render(text)
        audio[text] = trim_silence(raw)
    return audio
