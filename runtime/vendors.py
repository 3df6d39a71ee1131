"""Credentials and endpoints of the production vendors, one frozen group.

Each base URL defaults to the vendor's production host and is overridden to point the real
client at a local emulator. A chosen vendor without a key is a start-up error (see
runtime.config), never a silent fallback to a production host.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class VendorOptions:
    deepgram_api_key: str = ""
    deepgram_base_url: str = "wss://api.deepgram.com"
    deepgram_model: str = "nova-3"
    elevenlabs_api_key: str = ""
    elevenlabs_voice_id: str = ""
    elevenlabs_base_url: str = "wss://api.elevenlabs.io"
    elevenlabs_model: str = "eleven_flash_v2_5"
    anthropic_api_key: str = ""
    anthropic_base_url: str = "https://api.anthropic.com"
    #: Haiku: the fastest first token of the current models, and phone replies are short.
    anthropic_model: str = "claude-haiku-4-5"
    twilio_account_sid: str = ""
    twilio_api_base_url: str = "https://api.twilio.com"
    #: Watchdogs: how long a vendor may stay silent before the turn is retried or handed to the
    #: local engine. Deepgram: audio flowing with no message back; Claude: no first token;
    #: ElevenLabs: no first audio for a sentence.
    deepgram_stall_timeout_s: float = 5.0
    anthropic_first_token_timeout_s: float = 3.0
    elevenlabs_first_byte_timeout_s: float = 2.0

    def __post_init__(self) -> None:
        timeouts = (
            self.deepgram_stall_timeout_s,
            self.anthropic_first_token_timeout_s,
            self.elevenlabs_first_byte_timeout_s,
        )
        if min(timeouts) <= 0:
            raise ValueError("vendor timeouts must be > 0")

    def missing(self, stt: str, tts: str, llm: str) -> list[str]:
        """The variables a chosen vendor needs but that are not set."""
        needed = {
            "DEEPGRAM_API_KEY": stt == "deepgram" and not self.deepgram_api_key,
            "ELEVENLABS_API_KEY": tts == "elevenlabs" and not self.elevenlabs_api_key,
            "ELEVENLABS_VOICE_ID": tts == "elevenlabs" and not self.elevenlabs_voice_id,
            "ANTHROPIC_API_KEY": llm == "anthropic" and not self.anthropic_api_key,
        }
        return [name for name, is_missing in needed.items() if is_missing]
