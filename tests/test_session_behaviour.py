"""Call behaviour over real sockets with scripted engines: silence handling, streamed replies,
hang-up, readiness."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from bots.base import Bot, BotAction, BotFactory, CallContext, EndCall, Say
from runtime.config import SilenceOptions, TurnOptions
from runtime.engines import EngineOptions, Engines, load_engines
from runtime.events import (
    BotUtterance,
    CallerUtterance,
    FillerPlayed,
    Interruption,
    ReplyHeard,
    ReplyResumed,
    Silence,
    TurnLatency,
    TurnUnanswered,
)
from runtime.speech import SpeechEngineError, Transcript
from runtime.stt import ScriptedStt, ScriptedSttStream
from runtime.tts import ScriptedTts
from telephony import media_stream as ms
from tests.conftest import AUTH_TOKEN, RunningServer, StartServer
from tests.twilio_driver import StreamDriver


class SlowTalker(Bot):
    """Says one sentence at once, then 'thinks' for a while before the second."""

    def __init__(self, pause_s: float) -> None:
        self.pause_s = pause_s
        self.second_sentence_at = 0.0

    def greeting(self) -> str:
        return "Hello there, how can I help?"

    async def respond(self, caller_text: str) -> AsyncIterator[BotAction]:
        yield Say("Let me look that up for you. ")
        await asyncio.sleep(self.pause_s)
        self.second_sentence_at = asyncio.get_running_loop().time()
        yield Say("I found three homes that match what you want. Goodbye!")
        yield EndCall("done")

    def interrupted(self, heard_text: str) -> None:
        """Not exercised here."""

    def snapshot(self) -> dict[str, Any]:
        return {}


class OneBot(BotFactory):
    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    def create(self, context: CallContext) -> Bot:
        return self.bot

    def fixed_phrases(self) -> list[str]:
        return [self.bot.greeting()]


async def test_first_sentence_plays_while_the_rest_is_still_being_produced(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession
) -> None:
    bot = SlowTalker(pause_s=1.0)
    server = await start_server(scripted_engines, OneBot(bot))
    driver = await StreamDriver.started(http, server.base_url, AUTH_TOKEN)
    await driver.send_silence(2.0)  # the greeting plays
    await driver.echo_marks()
    speech = await ScriptedTts().render("I want a house.")
    await driver.send_audio(speech)
    turn_started = len(driver.received)
    await driver.let_bot_finish(1.0)
    await driver.send_silence(4.0)
    await driver.echo_marks()
    await driver.send_silence(1.0)
    report = server.state.reports.get(driver.call_sid)
    assert report is not None
    [latency] = [e for e in report.events if isinstance(e, TurnLatency)]
    first_reply_frame = next(
        t
        for e, t in zip(driver.received[turn_started:], driver.arrival[turn_started:], strict=True)
        if isinstance(e, ms.OutMedia)
    )
    # The first sentence reached Twilio well before the bot produced its second one.
    assert bot.second_sentence_at - first_reply_frame > 0.5
    assert latency.first_frame_at - latency.first_text_at < 0.5
    # ...and after the goodbye played (marks echoed) the server hung up by closing the socket.
    await asyncio.wait_for(driver.reader or asyncio.sleep(0), timeout=5)
    assert driver.ws.closed
    assert report.end_reason == "done"


async def test_silence_prompts_then_says_goodbye_and_hangs_up(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession
) -> None:
    silence = SilenceOptions(prompt_after_s=1.0, hangup_after_prompt_s=1.0, goodbye_text="Goodbye for now!")
    server = await start_server(scripted_engines, OneBot(SlowTalker(0.0)), silence=silence)
    driver = await StreamDriver.started(http, server.base_url, AUTH_TOKEN)
    for _ in range(40):  # Twilio keeps streaming silence; we echo marks as audio "plays"
        await driver.send_silence(0.25)
        await driver.echo_marks()
        if driver.ws.closed:
            break
    assert driver.ws.closed, "the server never hung up on a silent caller"
    await driver.close()
    report = server.state.reports.get(driver.call_sid)
    assert report is not None
    actions = [e.action for e in report.events if isinstance(e, Silence)]
    assert actions == ["prompt", "hangup"]
    spoken = [e.text for e in report.events if isinstance(e, BotUtterance)]
    assert spoken[1] == silence.prompt_text and spoken[2] == silence.goodbye_text
    assert report.end_reason == "silence"
    prompt, hangup = (e for e in report.events if isinstance(e, Silence))
    assert prompt.silent_s >= 1.0 and hangup.silent_s >= 1.0


async def test_health_is_503_until_the_engines_are_loaded(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession
) -> None:
    loaded = threading.Event()

    def slow_load(options: EngineOptions) -> Engines:
        loaded.wait(10)
        return load_engines(EngineOptions(stt="scripted", tts="scripted"))  # the server closes what it loads

    server = await start_server(None, load=slow_load)
    async with http.get(server.base_url + "/health") as response:
        assert response.status == 503
        assert (await response.json())["status"] == "loading"
    from tests.twilio_driver import new_call_sid, post_signed, voice_params

    refused = await post_signed(http, server.base_url, "/twilio/voice", voice_params(new_call_sid()), AUTH_TOKEN)
    assert refused.status == 503  # Twilio then uses the number's fallback URL
    loaded.set()
    for _ in range(300):
        async with http.get(server.base_url + "/health") as response:
            if response.status == 200:
                break
        await asyncio.sleep(0.02)
    assert response.status == 200
    assert server.state.engines is not None and server.state.engines is not scripted_engines


class Recorder(SlowTalker):
    """Remembers what it was asked to answer."""

    def __init__(self) -> None:
        super().__init__(pause_s=0.0)
        self.heard: list[str] = []

    async def respond(self, caller_text: str) -> AsyncIterator[BotAction]:
        self.heard.append(caller_text)
        yield Say("Okay, noted.")


async def test_caller_who_goes_on_while_the_bot_thinks_is_answered_once_for_both_parts(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession
) -> None:
    bot = Recorder()
    slow_stt = Engines(
        vad=scripted_engines.vad, stt=ScriptedStt(["I want a house", "in Austin"], latency_s=1.5), tts=ScriptedTts()
    )
    server = await start_server(slow_stt, OneBot(bot), turn=TurnOptions(speculate_after_ms=0))
    driver = await StreamDriver.started(http, server.base_url, AUTH_TOKEN)
    await driver.let_bot_finish(2.5)
    tts = ScriptedTts()
    await driver.send_audio(await tts.render("I want a house."))
    await driver.send_silence(1.0)  # the turn ends; recognition takes 1.5 s...
    await driver.send_audio(await tts.render("In Austin please."))  # ...and the caller goes on
    await driver.send_silence(2.5)
    await driver.stop()
    await driver.close()
    report = server.state.reports.get(driver.call_sid)
    assert report is not None
    assert [e.text for e in report.events if isinstance(e, CallerUtterance)] == ["I want a house in Austin"]
    assert bot.heard == ["I want a house in Austin"]


class FlakyStt(ScriptedStt):
    """Fails on the first utterance of each call, then works."""

    def open_stream(self, call_sid: str) -> ScriptedSttStream:
        stream = super().open_stream(call_sid)
        finish = stream.finish_utterance
        calls = 0

        async def flaky_finish() -> Transcript:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise SpeechEngineError("recogniser fell over")
            return await finish()

        stream.finish_utterance = flaky_finish  # type: ignore[method-assign]
        return stream


async def two_turns(http: aiohttp.ClientSession, server: RunningServer) -> StreamDriver:
    """A call where, after the greeting, the caller says two lines and hangs up."""
    driver = await StreamDriver.started(http, server.base_url, AUTH_TOKEN)
    await driver.let_bot_finish(2.5)
    tts = ScriptedTts()
    for line in ("I want a house.", "In Austin please."):
        await driver.send_audio(await tts.render(line))
        await driver.send_silence(1.5)
        await driver.echo_marks()
    await driver.stop()
    await driver.close()
    return driver


async def test_a_failed_recognition_does_not_break_the_next_turn(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession
) -> None:
    bot = Recorder()
    engines = Engines(vad=scripted_engines.vad, stt=FlakyStt(["first", "second"]), tts=ScriptedTts())
    server = await start_server(engines, OneBot(bot))
    driver = await two_turns(http, server)
    assert bot.heard == ["first"]  # the failed turn is lost, the next one is answered
    report = server.state.reports.get(driver.call_sid)
    assert report is not None and report.end_reason == "stream_stopped"


class LongGreeter(Recorder):
    def greeting(self) -> str:
        return "Hello and welcome. This greeting is long enough to talk over it. We help buyers and sellers."

    def interrupted(self, heard_text: str) -> None:
        self.heard.append(f"interrupted after: {heard_text}")


async def test_a_barge_in_with_no_words_resumes_the_interrupted_reply(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession
) -> None:
    bot = LongGreeter()
    deaf = Engines(vad=scripted_engines.vad, stt=ScriptedStt([""]), tts=ScriptedTts())
    server = await start_server(deaf, OneBot(bot))
    driver = await StreamDriver.started(http, server.base_url, AUTH_TOKEN)
    await driver.send_silence(1.5)
    await driver.send_audio(await ScriptedTts().render("Uh hm, ah."))  # a noise the recogniser hears as nothing
    await driver.send_silence(2.0)
    await driver.stop()
    await driver.close()
    report = server.state.reports.get(driver.call_sid)
    assert report is not None
    [interruption] = [e for e in report.events if isinstance(e, Interruption)]
    [resumed] = [e for e in report.events if isinstance(e, ReplyResumed)]
    assert interruption.heard_text and resumed.text
    # The resumed text is the part not heard: it starts with the sentence that was cut off.
    assert bot.greeting().endswith(resumed.text)
    assert bot.heard == []  # the bot was never told about an interruption that was not one
    clear_index = next(i for i, e in enumerate(driver.received) if isinstance(e, ms.OutClear))
    assert sum(isinstance(e, ms.OutMedia) for e in driver.received[clear_index:]) > 50  # it spoke again


async def late_answer_call(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession, stt_latency_s: float
) -> tuple[Recorder, Any]:
    """One caller turn answered after ``stt_latency_s``; returns the bot and the call report."""
    bot = Recorder()
    slow = Engines(vad=scripted_engines.vad, stt=ScriptedStt(["a house"], latency_s=stt_latency_s), tts=ScriptedTts())
    turn = TurnOptions(speculate_after_ms=0, ack_after_ms=650, filler_after_ms=1500)
    server = await start_server(slow, OneBot(bot), turn=turn)
    driver = await StreamDriver.started(http, server.base_url, AUTH_TOKEN)
    await driver.let_bot_finish(2.5)
    await driver.send_audio(await ScriptedTts().render("I want a house."))
    await driver.send_silence(4.0)
    await driver.stop()
    await driver.close()
    report = server.state.reports.get(driver.call_sid)
    assert report is not None
    return bot, report


async def test_a_late_answer_is_covered_by_an_acknowledgement_then_a_filler(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession
) -> None:
    bot, report = await late_answer_call(start_server, scripted_engines, http, stt_latency_s=2.0)
    ack, filler = [e for e in report.events if isinstance(e, FillerPlayed)]
    assert (ack.purpose, filler.purpose) == ("ack", "filler")
    assert ack.text in TurnOptions().acks and filler.text in TurnOptions().fillers
    [turn] = report.turn_latencies()
    assert turn.filler_frame_at is not None and turn.filler_frame_at < turn.first_frame_at
    # The acknowledgement went out at its deadline (650 ms after speech end), not the filler's.
    assert 650 <= turn.first_audio_ms < 1500 < turn.total_ms
    assert bot.heard == ["a house"]  # the real answer still came, after both
    [utterance] = [e for e in report.events if isinstance(e, BotUtterance) and e.turn == 1]
    assert utterance.text.startswith(f"{ack.text} {filler.text} ")


async def test_a_prompt_answer_is_not_covered(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession
) -> None:
    bot, report = await late_answer_call(start_server, scripted_engines, http, stt_latency_s=0.0)
    assert not [e for e in report.events if isinstance(e, FillerPlayed)]
    [turn] = report.turn_latencies()
    assert turn.filler_frame_at is None and turn.first_audio_ms == turn.total_ms
    assert bot.heard == ["a house"]


class Undoable(Recorder):
    """Remembers what it answered, and can take an answer back."""

    def checkpoint(self) -> object:
        return len(self.heard)

    def rollback(self, checkpoint: object) -> None:
        assert isinstance(checkpoint, int)
        del self.heard[checkpoint:]


async def test_a_reply_started_at_a_pause_is_rolled_back_when_the_caller_goes_on(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession
) -> None:
    bot = Undoable()
    fragments = ScriptedStt(["I want a house", "in Austin"], lines_are_turns=False)
    stt = Engines(vad=scripted_engines.vad, stt=fragments, tts=ScriptedTts())
    server = await start_server(stt, OneBot(bot))
    driver = await StreamDriver.started(http, server.base_url, AUTH_TOKEN)
    await driver.let_bot_finish(2.5)
    tts = ScriptedTts()
    await driver.send_audio(await tts.render("I want a house."))
    await driver.send_silence(0.45)  # a pause: a draft reply starts, but the turn does not end
    await driver.send_audio(await tts.render("In Austin please."))
    await driver.send_silence(2.0)
    await driver.stop()
    await driver.close()
    assert bot.heard == ["I want a house in Austin"]  # the draft's answer was taken back
    report = server.state.reports.get(driver.call_sid)
    assert report is not None
    assert [e.text for e in report.events if isinstance(e, CallerUtterance)] == ["I want a house in Austin"]
    [turn] = report.turn_latencies()
    assert turn.speculative_reply
    assert turn.endpointing_ms >= 400  # measured to the real end of the turn, not the pause


async def test_a_reply_started_at_a_pause_goes_out_as_soon_as_the_turn_ends(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession
) -> None:
    bot = Undoable()
    slow = Engines(vad=scripted_engines.vad, stt=ScriptedStt(["a house"], latency_s=0.15), tts=ScriptedTts())
    server = await start_server(slow, OneBot(bot))
    driver = await StreamDriver.started(http, server.base_url, AUTH_TOKEN)
    await driver.let_bot_finish(2.5)
    await driver.send_audio(await ScriptedTts().render("I want a house."))
    await driver.send_silence(2.0)
    await driver.stop()
    await driver.close()
    report = server.state.reports.get(driver.call_sid)
    assert report is not None
    [turn] = report.turn_latencies()
    assert turn.speculative_reply and bot.heard == ["a house"]
    # The 150 ms recognition ran during the endpointing wait: audio was ready before the turn end.
    assert turn.first_audio_at < turn.turn_end_at <= turn.first_frame_at
    assert (turn.first_frame_at - turn.turn_end_at) * 1000 < 50
    assert turn.stt_engine_ms == 0


class Breaks(Recorder):
    """Answers the first turn, then fails (a bug, a vendor the fallback could not cover)."""

    async def respond(self, caller_text: str) -> AsyncIterator[BotAction]:
        self.heard.append(caller_text)
        if len(self.heard) > 1:
            raise RuntimeError("the bot broke")
        yield Say("Okay, noted.")


async def test_a_turn_the_bot_could_not_answer_is_recorded_and_the_call_goes_on(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession
) -> None:
    bot = Breaks()
    engines = Engines(vad=scripted_engines.vad, stt=ScriptedStt(["first", "second"]), tts=ScriptedTts())
    server = await start_server(engines, OneBot(bot))
    driver = await two_turns(http, server)
    report = server.state.reports.get(driver.call_sid)
    assert report is not None and report.end_reason == "stream_stopped"
    unanswered = [e for e in report.events if isinstance(e, TurnUnanswered)]
    assert [(e.turn, e.reason) for e in unanswered] == [(2, "the bot failed")]
    assert [e.turn for e in report.events if isinstance(e, ReplyHeard)] == [0, 1]  # greeting, first answer
