from __future__ import annotations

import pytest

from runtime.config import ConfigError, Settings


def test_defaults_need_only_the_twilio_token() -> None:
    settings = Settings.from_env({"TWILIO_AUTH_TOKEN": "x"})
    assert settings.public_url == "http://127.0.0.1:8080"
    assert settings.stream_url == "ws://127.0.0.1:8080/twilio/media"
    assert settings.turn.end_of_turn_silence_ms == 500


def test_https_public_url_gives_wss_stream_url() -> None:
    settings = Settings.from_env({"TWILIO_AUTH_TOKEN": "x", "LEADLINE_PUBLIC_URL": "https://calls.example.com/"})
    assert settings.public_url == "https://calls.example.com"
    assert settings.stream_url == "wss://calls.example.com/twilio/media"


def test_every_bad_value_is_reported_at_once_with_its_name() -> None:
    env = {
        "LEADLINE_PORT": "99999",
        "LEADLINE_PUBLIC_URL": "calls.example.com",
        "LEADLINE_STT": "vosk",
        "LEADLINE_END_OF_TURN_SILENCE_MS": "-5",
        "LEADLINE_LOG_LEVEL": "LOUD",
    }
    with pytest.raises(ConfigError) as error:
        Settings.from_env(env)
    message = str(error.value)
    for name in (
        "TWILIO_AUTH_TOKEN",
        "LEADLINE_PORT",
        "LEADLINE_PUBLIC_URL",
        "LEADLINE_STT",
        "LEADLINE_END_OF_TURN_SILENCE_MS",
        "LEADLINE_LOG_LEVEL",
    ):
        assert name in message
    assert len(error.value.problems) == 6


def test_env_values_reach_the_option_groups() -> None:
    settings = Settings.from_env(
        {
            "TWILIO_AUTH_TOKEN": "x",
            "LEADLINE_END_OF_TURN_SILENCE_MS": "700",
            "LEADLINE_SILENCE_PROMPT_S": "5",
            "LEADLINE_OUTPUT_LEAD_MS": "60",
            "LEADLINE_STT": "scripted",
            "LEADLINE_BUSINESS_NAME": "Hill Country Homes",
        }
    )
    assert settings.turn.end_of_turn_silence_ms == 700
    assert settings.silence.prompt_after_s == 5.0
    assert settings.output.lead_ms == 60
    assert settings.engines.stt == "scripted"
    assert settings.persona.business_name == "Hill Country Homes"


def test_out_of_range_group_value_is_reported() -> None:
    with pytest.raises(ConfigError, match="lead_ms"):
        Settings.from_env({"TWILIO_AUTH_TOKEN": "x", "LEADLINE_OUTPUT_LEAD_MS": "5"})


def test_a_chosen_vendor_without_its_key_is_a_start_up_error() -> None:
    env = {
        "TWILIO_AUTH_TOKEN": "x",
        "LEADLINE_STT": "deepgram",
        "LEADLINE_TTS": "elevenlabs",
        "LEADLINE_LLM": "anthropic",
    }
    with pytest.raises(ConfigError) as error:
        Settings.from_env(env)
    assert {p.split()[0] for p in error.value.problems} == {
        "DEEPGRAM_API_KEY", "ELEVENLABS_API_KEY", "ELEVENLABS_VOICE_ID", "ANTHROPIC_API_KEY",
    }  # fmt: skip


def test_vendor_base_urls_point_the_clients_at_emulators() -> None:
    settings = Settings.from_env(
        {
            "TWILIO_AUTH_TOKEN": "x",
            "LEADLINE_STT": "deepgram",
            "DEEPGRAM_API_KEY": "dg",
            "DEEPGRAM_BASE_URL": "ws://127.0.0.1:9001/",
            "LEADLINE_LLM": "anthropic",
            "ANTHROPIC_API_KEY": "an",
            "ANTHROPIC_BASE_URL": "http://127.0.0.1:9002",
        }
    )
    vendors = settings.engines.vendors
    assert vendors.deepgram_base_url == "ws://127.0.0.1:9001"
    assert vendors.anthropic_base_url == "http://127.0.0.1:9002"
    assert vendors.elevenlabs_base_url == "wss://api.elevenlabs.io"  # untouched: production
    assert settings.llm == "anthropic" and settings.engines.stt == "deepgram"


def test_bad_vendor_base_url_is_reported() -> None:
    with pytest.raises(ConfigError, match="DEEPGRAM_BASE_URL"):
        Settings.from_env({"TWILIO_AUTH_TOKEN": "x", "DEEPGRAM_BASE_URL": "http://nope"})


def test_vendor_watchdog_timeouts_come_from_env_and_reach_the_clients() -> None:
    env = {
        "TWILIO_AUTH_TOKEN": "x",
        "LEADLINE_STT": "deepgram",
        "DEEPGRAM_API_KEY": "k",
        "LEADLINE_STT_STALL_TIMEOUT_S": "2.5",
        "LEADLINE_LLM_FIRST_TOKEN_TIMEOUT_S": "1.2",
        "LEADLINE_TTS_FIRST_BYTE_TIMEOUT_S": "0.8",
        "LEADLINE_ACK_AFTER_MS": "0",
    }
    settings = Settings.from_env(env)
    vendors = settings.engines.vendors
    assert (vendors.deepgram_stall_timeout_s, vendors.anthropic_first_token_timeout_s) == (2.5, 1.2)
    assert vendors.elevenlabs_first_byte_timeout_s == 0.8
    assert settings.turn.ack_after_ms == 0
    with pytest.raises(ConfigError, match="LEADLINE_TTS_FIRST_BYTE_TIMEOUT_S"):
        Settings.from_env({"TWILIO_AUTH_TOKEN": "x", "LEADLINE_TTS_FIRST_BYTE_TIMEOUT_S": "0"})
