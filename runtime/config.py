"""Configuration: the settings, read from the environment through ``runtime.env_reader``.

Everything is validated at start; every bad value is reported at once, each with a message that
names the variable, so an operator fixes a deployment in one pass.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from runtime.bot_config import BotCoreOptions, read_bot_core
from runtime.engines import EngineOptions
from runtime.env_reader import ConfigError as ConfigError
from runtime.env_reader import (
    EnvReader,
    base_url,
    choice,
    e164,
    non_blank,
    non_negative_int,
    port,
    positive_float,
    positive_int,
    slug,
)
from runtime.storage_config import StorageOptions, read_storage
from runtime.vendors import VendorOptions
from telephony.e164 import is_e164

#: The bots a call can start with (``LEADLINE_STARTING_BOT``, ``POST /api/calls``).
BOT_NAMES = ("lead",)


@dataclass(frozen=True, kw_only=True)
class TurnOptions:
    """When the caller is speaking and when their turn is over."""

    #: Silence that ends the caller's turn. ~500 ms is the usual compromise between cutting
    #: people off mid-thought and adding dead air to every turn.
    end_of_turn_silence_ms: int = 500
    #: Continuous speech needed before we believe the caller started talking (3 VAD windows):
    #: single-window blips are clicks and line noise.
    speech_start_ms: int = 96
    #: Speech needed while the bot talks before it stops (barge-in); shorter sounds are
    #: backchannels ("mm-hm") and coughs, which should not cut the bot off.
    barge_in_min_speech_ms: int = 200
    #: Silence after which STT starts on the utterance so far, in case the turn is over; kept
    #: only if the caller does not go on. Hides most of the recogniser's time behind
    #: endpointing, at the cost of wasted recognitions when callers pause mid-sentence. 0: never.
    speculate_after_ms: int = 200
    #: If no answer audio has gone out this long after the caller stopped, a cached one-word
    #: acknowledgement ("Mm-hm.") goes out first, so the caller hears the bot within the turn
    #: budget (800 ms) even when Claude or ElevenLabs is slow; 0 turns them off. The cost: an
    #: answer ready while it plays waits for its end (~0.4 s). Reports keep both figures: first
    #: audio and the answer's own first frame.
    ack_after_ms: int = 650
    #: Said in turn, never the same twice in a row: short and neutral, as fits any answer, and
    #: none of the words the bots acknowledge answers with ("got it", "great", "perfect"), so
    #: an acknowledgement and the answer after it never say the same thing twice.
    acks: tuple[str, ...] = ("Okay.", "Alright.", "I see.", "Sure.")
    #: If the answer is still not out this long after the caller stopped, a filler ("One
    #: moment.") says the bot is on it; 0 turns fillers off. Its job is slow turns (tool calls,
    #: a vendor retry), so it sits well past a normal answer (~1 s with the vendors).
    filler_after_ms: int = 1500
    #: Said in turn, never the same twice in a row; short so the answer follows quickly.
    fillers: tuple[str, ...] = ("One moment.", "Let me see.", "Okay, just a second.")
    #: Utterances shorter than this are discarded instead of sent to STT.
    min_utterance_ms: int = 200
    #: Silero probability above which a window is speech, and below which a speaking caller
    #: counts as silent (hysteresis keeps a word's quiet tail from ending the turn).
    speech_threshold: float = 0.5
    silence_threshold: float = 0.35

    def __post_init__(self) -> None:
        problems = []
        for name in ("end_of_turn_silence_ms", "speech_start_ms", "barge_in_min_speech_ms"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be > 0")
        if not 0 <= self.speculate_after_ms < self.end_of_turn_silence_ms:
            problems.append("speculate_after_ms must be >= 0 and below end_of_turn_silence_ms")
        if not 0.0 < self.silence_threshold <= self.speech_threshold < 1.0:
            problems.append("need 0 < silence_threshold <= speech_threshold < 1")
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True, kw_only=True)
class SilenceOptions:
    """What happens when the caller goes quiet."""

    #: Caller silence (after the bot finished speaking) before "are you still there?".
    prompt_after_s: float = 8.0
    #: Further silence after the prompt before a polite goodbye and hang-up.
    hangup_after_prompt_s: float = 7.0
    prompt_text: str = "Are you still there?"
    goodbye_text: str = "It sounds like now is not a good time. Thanks for calling, and goodbye!"

    def __post_init__(self) -> None:
        if self.prompt_after_s <= 0 or self.hangup_after_prompt_s <= 0:
            raise ConfigError(["silence timeouts must be > 0"])


@dataclass(frozen=True, kw_only=True)
class OutputOptions:
    """How bot audio is sent to Twilio."""

    #: Audio kept queued at Twilio ahead of playout. Enough to ride out event-loop hiccups,
    #: small enough that `clear` on barge-in silences the bot almost at once.
    lead_ms: int = 100

    def __post_init__(self) -> None:
        if not 20 <= self.lead_ms <= 2000:
            raise ConfigError(["lead_ms must be between 20 and 2000"])


@dataclass(frozen=True, kw_only=True)
class PersonaOptions:
    """Who the bot says it is."""

    business_name: str = "Lakeside Realty"
    bot_name: str = "Ava"


def default_voicemail_text(persona: PersonaOptions) -> str:
    """What the bot leaves on an answering machine unless configured: who called and why, and
    to call back, since the lead may not know the number."""
    return (
        f"Hi, this is {persona.bot_name} from {persona.business_name}, following up on your home inquiry. "
        "Please call us back at this number when you have a moment. Thank you!"
    )


@dataclass(frozen=True, kw_only=True)
class DialOptions:
    """Outbound calls placed through ``POST /api/calls``."""

    #: The number calls come from: one of the Twilio account's numbers, in E.164. Empty turns
    #: dialling off, since Twilio refuses a call without ``From``.
    caller_id: str = ""
    #: Said after the beep when answering-machine detection reports a machine; rendered at
    #: start-up like the greetings, so it plays at once.
    voicemail_text: str = default_voicemail_text(PersonaOptions())
    #: ``enforce``: a dial outside 8 am-9 pm in the lead's time zone is refused (TCPA);
    #: ``record``: it is placed, and the check is only recorded with the call (for teams whose
    #: leads have given the prior express consent that allows it).
    calling_hours: Literal["enforce", "record"] = "enforce"

    def __post_init__(self) -> None:
        problems = []
        if self.calling_hours not in ("enforce", "record"):
            problems.append("calling_hours must be 'enforce' or 'record'")
        if self.caller_id and not is_e164(self.caller_id):
            problems.append("caller_id must be an E.164 number, e.g. +15125550100")
        if not self.voicemail_text.strip():
            problems.append("voicemail_text must not be blank")
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True, kw_only=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    #: Externally visible base URL; Twilio signs webhooks against it and streams connect to it.
    public_url: str = "http://127.0.0.1:8080"
    twilio_auth_token: str
    #: Key of the per-call stream token; separate from the Twilio token so it can rotate alone.
    stream_secret: bytes
    #: Bearer token of the JSON API; the API is closed when it is empty.
    api_token: str = ""
    tenant: str = "default"
    starting_bot: str = "lead"
    #: Calls accepted at once; beyond it the webhook answers 503 so Twilio uses its fallback.
    max_calls: int = 60
    #: Hard limit on one call's length.
    max_call_s: float = 1800.0
    #: Twilio sends `start` right after connecting; a socket that does not is not a call.
    stream_start_timeout_s: float = 10.0
    log_level: str = "INFO"
    #: the bot's brain: the scripted Lead bot, or Claude (falling back to the scripted brain)
    llm: str = "scripted"
    engines: EngineOptions = field(default_factory=lambda: EngineOptions(stt="whisper", tts="piper"))
    turn: TurnOptions = field(default_factory=TurnOptions)
    silence: SilenceOptions = field(default_factory=SilenceOptions)
    output: OutputOptions = field(default_factory=OutputOptions)
    persona: PersonaOptions = field(default_factory=PersonaOptions)
    dial: DialOptions = field(default_factory=DialOptions)
    bot_core: BotCoreOptions = field(default_factory=BotCoreOptions)
    storage: StorageOptions = field(default_factory=StorageOptions)

    @property
    def stream_url(self) -> str:
        """The Media Streams WebSocket URL Twilio connects to (ws/wss from http/https)."""
        scheme = "wss" if self.public_url.startswith("https://") else "ws"
        return scheme + self.public_url[self.public_url.index("://") :] + "/twilio/media"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from ``LEADLINE_*`` / ``TWILIO_*`` variables, validating all of them."""
        return _SettingsReader(os.environ if env is None else env).settings(overrides)


class _SettingsReader(EnvReader):
    """The core settings; the bot core and storage groups are read by their own modules through
    the same reader, so their problems join these in one ``ConfigError``."""

    def settings(self, overrides: Mapping[str, object]) -> Settings:
        host = self.get("LEADLINE_HOST", str, "127.0.0.1")
        tcp_port = self.get("LEADLINE_PORT", port, 8080, "must be a TCP port (1-65535)")
        public_url = self.get("LEADLINE_PUBLIC_URL", _public_url, f"http://{host}:{tcp_port}")
        token = self.get("TWILIO_AUTH_TOKEN", str, "")
        if not token and "twilio_auth_token" not in overrides:
            self.problems.append("TWILIO_AUTH_TOKEN is required: webhooks cannot be verified without it")
        stream_secret = self.get("LEADLINE_STREAM_SECRET", str, "").encode() or secrets.token_bytes(32)
        persona = PersonaOptions(
            business_name=self.get("LEADLINE_BUSINESS_NAME", str, PersonaOptions.business_name),
            bot_name=self.get("LEADLINE_BOT_NAME", str, PersonaOptions.bot_name),
        )
        values: dict[str, object] = dict(
            host=host,
            port=tcp_port,
            public_url=public_url,
            twilio_auth_token=token,
            stream_secret=stream_secret,
            api_token=self.get("LEADLINE_API_TOKEN", str, ""),
            tenant=self.get("LEADLINE_TENANT", slug, "default", "letters, digits, - and _ only"),
            starting_bot=self.get("LEADLINE_STARTING_BOT", _bot_name, "lead", "must be 'lead'"),
            max_calls=self.get("LEADLINE_MAX_CALLS", positive_int, 60, "must be a positive integer"),
            max_call_s=self.get("LEADLINE_MAX_CALL_S", positive_float, 1800.0, "must be > 0"),
            log_level=self.get("LEADLINE_LOG_LEVEL", _log_level, "INFO", "DEBUG, INFO, WARNING or ERROR"),
            llm=self.get("LEADLINE_LLM", choice("scripted", "anthropic"), "scripted", "'scripted' or 'anthropic'"),
            engines=self.engines(),
            turn=self.group(
                TurnOptions,
                end_of_turn_silence_ms=("LEADLINE_END_OF_TURN_SILENCE_MS", positive_int),
                barge_in_min_speech_ms=("LEADLINE_BARGE_IN_MIN_SPEECH_MS", positive_int),
                speculate_after_ms=("LEADLINE_SPECULATE_AFTER_MS", non_negative_int),
                ack_after_ms=("LEADLINE_ACK_AFTER_MS", non_negative_int),
                filler_after_ms=("LEADLINE_FILLER_AFTER_MS", non_negative_int),
            ),
            silence=self.group(
                SilenceOptions,
                prompt_after_s=("LEADLINE_SILENCE_PROMPT_S", positive_float),
                hangup_after_prompt_s=("LEADLINE_SILENCE_HANGUP_S", positive_float),
            ),
            output=self.group(OutputOptions, lead_ms=("LEADLINE_OUTPUT_LEAD_MS", positive_int)),
            persona=persona,
            dial=DialOptions(
                caller_id=self.get("LEADLINE_CALLER_ID", e164, "", "must be an E.164 number, e.g. +15125550100"),
                voicemail_text=self.get(
                    "LEADLINE_VOICEMAIL_TEXT", non_blank, default_voicemail_text(persona), "must not be blank"
                ),
                calling_hours=self.get("LEADLINE_CALLING_HOURS", _calling_hours, "enforce", "'enforce' or 'record'"),
            ),
            bot_core=read_bot_core(self),
            storage=read_storage(self),
        )
        values.update(overrides)
        if self.problems:
            raise ConfigError(self.problems)
        return Settings(**values)  # type: ignore[arg-type]  # keys checked by the dataclass itself

    def engines(self) -> EngineOptions:
        stt = self.get(
            "LEADLINE_STT", choice("whisper", "scripted", "deepgram"), "whisper", "whisper, scripted or deepgram"
        )
        tts = self.get(
            "LEADLINE_TTS", choice("piper", "scripted", "elevenlabs"), "piper", "piper, scripted or elevenlabs"
        )
        stt_fallback = self.get(
            "LEADLINE_STT_FALLBACK", choice("whisper", "scripted", "none"), "whisper", "whisper, scripted or none"
        )
        tts_fallback = self.get(
            "LEADLINE_TTS_FALLBACK", choice("piper", "scripted", "none"), "piper", "piper, scripted or none"
        )
        threads = self.get("LEADLINE_STT_THREADS", positive_int, 2, "must be a positive integer")
        vendors = self.vendors()
        llm = self.get("LEADLINE_LLM", str, "scripted")
        for name in vendors.missing(stt, tts, llm):
            self.problems.append(f"{name} is required by the chosen vendor (LEADLINE_STT/TTS/LLM)")
        try:
            return EngineOptions(
                stt=stt,  # type: ignore[arg-type]  # checked by choice
                tts=tts,  # type: ignore[arg-type]
                stt_fallback=stt_fallback,  # type: ignore[arg-type]
                tts_fallback=tts_fallback,  # type: ignore[arg-type]
                stt_threads=threads,
                vendors=vendors,
            )
        except ValueError as e:
            self.problems.append(f"engines: {e}")
            return EngineOptions(stt="scripted", tts="scripted")

    def vendors(self) -> VendorOptions:
        defaults = VendorOptions()
        urls = {
            "deepgram_base_url": ("DEEPGRAM_BASE_URL", ("ws", "wss")),
            "elevenlabs_base_url": ("ELEVENLABS_BASE_URL", ("ws", "wss")),
            "anthropic_base_url": ("ANTHROPIC_BASE_URL", ("http", "https")),
            "twilio_api_base_url": ("TWILIO_API_BASE_URL", ("http", "https")),
        }
        values: dict[str, Any] = {
            "deepgram_api_key": self.get("DEEPGRAM_API_KEY", str, ""),
            "elevenlabs_api_key": self.get("ELEVENLABS_API_KEY", str, ""),
            "elevenlabs_voice_id": self.get("ELEVENLABS_VOICE_ID", str, ""),
            "anthropic_api_key": self.get("ANTHROPIC_API_KEY", str, ""),
            "twilio_account_sid": self.get("TWILIO_ACCOUNT_SID", str, ""),
            "deepgram_model": self.get("DEEPGRAM_MODEL", str, defaults.deepgram_model),
            "anthropic_model": self.get("ANTHROPIC_MODEL", str, defaults.anthropic_model),
        }
        for attr, (name, schemes) in urls.items():
            values[attr] = self.get(
                name, base_url(schemes), getattr(defaults, attr), f"must be a {'/'.join(schemes)} URL"
            )
        timeouts = {
            "deepgram_stall_timeout_s": "LEADLINE_STT_STALL_TIMEOUT_S",
            "anthropic_first_token_timeout_s": "LEADLINE_LLM_FIRST_TOKEN_TIMEOUT_S",
            "elevenlabs_first_byte_timeout_s": "LEADLINE_TTS_FIRST_BYTE_TIMEOUT_S",
        }
        seconds = {
            attr: self.get(name, positive_float, getattr(defaults, attr), "must be a number of seconds > 0")
            for attr, name in timeouts.items()
        }
        return VendorOptions(**values, **seconds)


def _public_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http:// or https:// URL, e.g. https://leadline.example.com")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query string or fragment")
    return raw.rstrip("/")


def _bot_name(raw: str) -> str:
    if raw not in BOT_NAMES:
        raise ValueError("unknown bot")
    return raw


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("bad level")
    return level


def _calling_hours(raw: str) -> Literal["enforce", "record"]:
    if raw == "enforce":
        return "enforce"
    if raw == "record":
        return "record"
    raise ValueError("bad choice")
