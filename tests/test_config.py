from __future__ import annotations

import json
from pathlib import Path

import pytest

from analytics.pii import Cipher
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


#: Their values are left out of problems, which end up in logs.
SECRETS = ("GHL_API_TOKEN", "LEADLINE_TRANSCRIPT_KEY")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LEADLINE_BOTS", "robot", "'qualifier' or 'lead'"),
        ("LEADLINE_AGENT_NUMBER", "512-555-0100", "must be an E.164 number, e.g. +15125550100"),
        ("LEADLINE_PERSONA_FILE", "/nonexistent/persona.json", "cannot read it as JSON"),
        ("GHL_API_TOKEN", "ghl-secret", "is set, so GHL_LOCATION_ID, GHL_CALENDAR_ID and GHL_PIPELINE_ID are needed"),
        ("LEADLINE_TRANSFER_RING_S", "2", "a whole number of seconds within 5-600 (Twilio's bounds)"),
        ("LEADLINE_TRANSFER_RING_S", "soon", "a whole number of seconds within 5-600 (Twilio's bounds)"),
        ("DATABASE_URL", "mysql://db/calls", "must be a postgresql:// or sqlite:/// URL"),
        ("REDIS_URL", "http://cache", "must be a redis://, rediss:// or unix:// URL"),
        ("LEADLINE_KEEP_CALLS", "maybe", "true or false"),
        ("LEADLINE_MIGRATE_AT_START", "later", "true or false"),
        ("LEADLINE_RECORD_CALLS", "2", "true or false"),
        ("LEADLINE_RECORDING_RETENTION_DAYS", "-1", "a whole number of days (0: keep forever)"),
        ("LEADLINE_RECORDING_RETENTION_DAYS", "a week", "a whole number of days (0: keep forever)"),
        ("LEADLINE_TRANSCRIPT_KEY", "fernet-secret", "not a Fernet key"),
        ("LEADLINE_DATA_DIR", __file__, "must be a directory, not a file"),
    ],
)
def test_a_bad_bot_core_or_storage_value_is_reported_by_name(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"TWILIO_AUTH_TOKEN": "x", name: value})
    shown = name if name in SECRETS else f"{name}={value!r}"
    assert len(error.value.problems) == 1
    assert error.value.problems[0].startswith(f"{shown}: {message}")


def test_secrets_are_never_echoed_in_problems() -> None:
    env = {"TWILIO_AUTH_TOKEN": "x", "GHL_API_TOKEN": "ghl-secret", "LEADLINE_TRANSCRIPT_KEY": "fernet-secret"}
    with pytest.raises(ConfigError) as error:
        Settings.from_env(env)
    assert len(error.value.problems) == 2
    assert "ghl-secret" not in str(error.value) and "fernet-secret" not in str(error.value)


def test_problems_of_core_settings_bot_core_and_storage_are_reported_together() -> None:
    env = {"LEADLINE_PORT": "99999", "LEADLINE_BOTS": "robot", "DATABASE_URL": "mysql://db/calls"}
    with pytest.raises(ConfigError) as error:
        Settings.from_env(env)
    names = [problem.split("=")[0].split()[0] for problem in error.value.problems]
    assert names == ["LEADLINE_PORT", "TWILIO_AUTH_TOKEN", "LEADLINE_BOTS", "DATABASE_URL"]


def test_a_persona_file_that_is_not_a_persona_is_reported_by_name(tmp_path: Path) -> None:
    listed = tmp_path / "listed.json"
    listed.write_text("[]", encoding="utf-8")
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"bots": {"landlord": {}}}), encoding="utf-8")
    for path, expected in ((listed, "must hold a JSON object"), (unknown, "not a valid persona")):
        with pytest.raises(ConfigError) as error:
            Settings.from_env({"TWILIO_AUTH_TOKEN": "x", "LEADLINE_PERSONA_FILE": str(path)})
        assert len(error.value.problems) == 1
        assert error.value.problems[0].startswith(f"LEADLINE_PERSONA_FILE={str(path)!r}: {expected}")


def test_bot_core_and_storage_values_reach_their_options(tmp_path: Path) -> None:
    persona = tmp_path / "persona.json"
    persona.write_text(json.dumps({"business_name": "Hill Country Homes"}), encoding="utf-8")
    key = Cipher.generate_key()
    settings = Settings.from_env(
        {
            "TWILIO_AUTH_TOKEN": "x",
            "LEADLINE_BOTS": "lead",
            "LEADLINE_AGENT_NUMBER": "+15125550100",
            "LEADLINE_PERSONA_FILE": str(persona),
            "LEADLINE_BOT_NAME": "Maya",
            "GHL_API_TOKEN": "t",
            "GHL_LOCATION_ID": "loc",
            "GHL_CALENDAR_ID": "cal",
            "GHL_PIPELINE_ID": "pipe",
            "LEADLINE_TRANSFER_RING_S": "30",
            "DATABASE_URL": "sqlite:///calls.sqlite3",
            "REDIS_URL": "rediss://cache:6380/0",
            "LEADLINE_KEEP_CALLS": "Off",
            "LEADLINE_MIGRATE_AT_START": "no",
            "LEADLINE_RECORD_CALLS": "yes",
            "LEADLINE_RECORDING_RETENTION_DAYS": "0",
            "LEADLINE_TRANSCRIPT_KEY": key,
            "LEADLINE_DATA_DIR": str(tmp_path / "data"),
        }
    )
    core, storage = settings.bot_core, settings.storage
    assert (core.core, core.agent_number, core.transfer.ring_timeout_s) == ("lead", "+15125550100", 30)
    assert core.persona.business_name == "Hill Country Homes" and core.persona.bot("lead").name == "Maya"
    assert core.ghl is not None and core.ghl.pipeline_id == "pipe"
    assert (storage.database_url, storage.redis_url) == ("sqlite:///calls.sqlite3", "rediss://cache:6380/0")
    assert (storage.keep_calls, storage.migrate_at_start, storage.record_calls) == (False, False, True)
    assert storage.recording_retention_days == 0 and storage.transcript_key == key
    assert storage.data_dir == tmp_path / "data"


def test_a_persona_name_that_spoils_the_persona_is_reported_by_name() -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"TWILIO_AUTH_TOKEN": "x", "LEADLINE_BUSINESS_NAME": " "})
    assert error.value.problems == [
        "LEADLINE_BUSINESS_NAME or LEADLINE_BOT_NAME: not a valid persona (business_name is empty)"
    ]
