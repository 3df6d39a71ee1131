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

    def missing(self, stt: str, tts: str, llm: str) -> list[str]:
        """The variables a chosen vendor needs but that are not set."""
        needed = {
            "DEEPGRAM_API_KEY": stt == "deepgram" and not self.deepgram_api_key,
            "ELEVENLABS_API_KEY": tts == "elevenlabs" and not self.elevenlabs_api_key,
            "ELEVENLABS_VOICE_ID": tts == "elevenlabs" and not self.elevenlabs_voice_id,
            "ANTHROPIC_API_KEY": llm == "anthropic" and not self.anthropic_api_key,
        }
        return [name for name, is_missing in needed.items() if is_missing]
