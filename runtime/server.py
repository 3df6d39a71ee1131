"""The aiohttp application: Twilio webhooks, health and the call API (the Media Streams socket is
in ``runtime.media_socket``).

Handlers only move bytes and check credentials; each call's work happens in its ``CallSession``.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import WSCloseCode, web

from analytics.bot_sessions import StoredBotSessions
from bots.base import BotFactory, CallContext
from runtime.app_state import STATE, ServerState
from runtime.bot_wiring import build_bot_factory, build_llm
from runtime.call_keeping import add_call_keeping, open_call_store
from runtime.config import Settings
from runtime.dialer import add_dial_routes
from runtime.engines import EngineOptions, Engines, load_engines
from runtime.fallback import BREAKERS
from runtime.media_socket import finish_transferred_call, media_stream
from runtime.metrics import add_metrics_routes
from runtime.report import CallReport
from runtime.speech import TextToSpeech
from runtime.stream_twiml import STREAM_TOKEN_TTL_S, stream_twiml
from runtime.web_auth import authorised, verified_form
from telephony.call_state import CallLifecycle, IllegalTransition
from telephony.rest import TwilioRest
from telephony.twiml import reject_twiml

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    engines: Engines | None = None,
    bots: BotFactory | None = None,
    load: Callable[[EngineOptions], Engines] = load_engines,
) -> web.Application:
    """The app; with ``engines`` given (tests, benchmarks) it is ready at once, otherwise it
    runs ``load`` in the background and reports 503 on /health until the engines are in.
    ``bots`` defaults to the configured bot core (``runtime.bot_wiring``)."""
    app = web.Application(client_max_size=256 * 1024)
    closers: list[Callable[[], Awaitable[None]]] = []
    store = open_call_store(settings)
    llm = build_llm(settings)
    if bots is None:
        sessions = StoredBotSessions(store) if store is not None else None
        bots = build_bot_factory(settings, closers, sessions, llm)
    app[STATE] = ServerState(settings=settings, bots=bots, engines=engines, load=load, llm=llm)
    app[STATE].closers.extend(closers)
    app.cleanup_ctx.append(_llm_ctx)  # first in, so closed last: call summaries use it to the end
    add_metrics_routes(app, app[STATE].metrics.registry)
    if store is not None:
        add_call_keeping(app, store)
    app.router.add_get("/health", health)
    app.router.add_post("/twilio/voice", voice_webhook)
    app.router.add_post("/twilio/status", status_callback)
    app.router.add_get("/twilio/media", media_stream)
    app.router.add_get("/api/calls", list_calls)
    app.router.add_get("/api/calls/{call_sid}", get_call)
    add_dial_routes(app)
    app[STATE].transfers.add_routes(app.router)
    app[STATE].transfers.on_call_over = functools.partial(finish_transferred_call, app[STATE])
    app.cleanup_ctx.append(_engines_ctx)
    app.cleanup_ctx.append(_rest_ctx)
    app.cleanup_ctx.append(_metrics_ctx)
    app.on_shutdown.append(_close_calls)
    return app


async def _llm_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
    llm = app[STATE].llm
    if llm is not None:
        await llm.aclose()


async def _rest_ctx(app: web.Application) -> AsyncIterator[None]:
    """Twilio REST is used once an account SID is configured (it needs the running loop)."""
    state = app[STATE]
    vendors = state.settings.engines.vendors
    if vendors.twilio_account_sid:
        state.rest = TwilioRest(
            account_sid=vendors.twilio_account_sid,
            auth_token=state.settings.twilio_auth_token,
            base_url=vendors.twilio_api_base_url,
        )
        state.transfers.rest = state.rest
    yield
    if state.rest is not None:
        await state.rest.aclose()


#: How often the gauges that nothing else updates (active calls, breakers) are refreshed.
METRICS_REFRESH_S = 5.0


async def _metrics_ctx(app: web.Application) -> AsyncIterator[None]:
    job = asyncio.create_task(_refresh_gauges(app[STATE]))
    yield
    job.cancel()
    await asyncio.gather(job, return_exceptions=True)


async def _refresh_gauges(state: ServerState) -> None:
    while True:
        state.metrics.active_calls(len(state.live))
        for breaker in list(BREAKERS):
            state.metrics.breaker(breaker.name, breaker.state)
        await asyncio.sleep(METRICS_REFRESH_S)


async def _engines_ctx(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    owned = state.engines is None
    if owned:
        state.spawn(_load_engines(state))
    else:
        state.spawn(_render_fixed_phrases(state))
    yield
    for close in state.closers:
        await close()
    if owned and state.engines is not None:
        await state.engines.aclose()


async def _load_engines(state: ServerState) -> None:
    """Load the models off the event loop; the server is ready once fixed phrases are rendered."""
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    engines = await loop.run_in_executor(None, state.load, state.settings.engines)
    await _render_fixed_phrases(state, engines)
    # Everything loaded so far (models, SDKs, caches) lives as long as the process: move it out
    # of the cyclic GC's view, or each full collection walks it and stalls every call's audio.
    gc.freeze()
    state.engines = engines
    log.info("ready for calls", extra={"seconds": round(time.monotonic() - started, 2)})


async def _render_fixed_phrases(state: ServerState, engines: Engines | None = None) -> None:
    """Greetings and silence prompts go into the TTS cache so no call waits for them."""
    engines = engines or state.engines
    assert engines is not None
    silence = state.settings.silence
    turn = state.settings.turn
    phrases = [*state.bots.fixed_phrases(), silence.prompt_text, silence.goodbye_text, *turn.acks, *turn.fillers]
    phrases.append(state.settings.dial.voicemail_text)

    async def render_all(voice: TextToSpeech) -> None:
        for phrase in phrases:
            await voice.render(phrase)

    # Any bot may say any of them after a hand-off, so each voice gets them all.
    await asyncio.gather(*(render_all(engines.voice(name)) for name in state.bots.voices()))


async def _close_calls(app: web.Application) -> None:
    state = app[STATE]
    for session in list(state.live.values()):
        session.end("server_shutdown")
    for ws in list(state.sockets):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


# --- health and API -------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = {
        "status": "ok" if state.engines is not None else "loading",
        "active_calls": len(state.live),
        "protocol_errors": dict(state.protocol_errors),
    }
    return web.json_response(body, status=200 if state.engines is not None else 503)


async def list_calls(request: web.Request) -> web.Response:
    if not authorised(request):
        raise web.HTTPUnauthorized(text="bearer token required")
    try:
        limit = min(1000, max(1, int(request.query.get("limit", "50"))))
    except ValueError:
        raise web.HTTPBadRequest(text="limit must be an integer") from None
    reports = request.app[STATE].reports.recent(limit)
    calls = [{k: v for k, v in r.to_dict().items() if k != "events"} for r in reports]
    return web.json_response({"calls": calls})


async def get_call(request: web.Request) -> web.Response:
    if not authorised(request):
        raise web.HTTPUnauthorized(text="bearer token required")
    report = request.app[STATE].reports.get(request.match_info["call_sid"])
    if report is None:
        raise web.HTTPNotFound(text="no such call")
    return web.json_response(report.to_dict())


# --- Twilio webhooks --------------------------------------------------------------------------


async def voice_webhook(request: web.Request) -> web.Response:
    state = request.app[STATE]
    form = await verified_form(request)
    call_sid = form.get("CallSid", "")
    if not call_sid:
        raise web.HTTPBadRequest(text="CallSid missing")
    if state.engines is None:
        raise web.HTTPServiceUnavailable(text="still loading speech models")
    if len(state.live) >= state.settings.max_calls:
        log.warning("at capacity, rejecting call", extra={"call_sid": call_sid})
        return web.Response(text=reject_twiml("busy"), content_type="text/xml")
    settings = state.settings
    known = state.reports.get(call_sid)  # a call we dialled starts with the bot it was dialled for
    context = CallContext(
        call_sid=call_sid,
        from_number=form.get("From", ""),
        to_number=form.get("To", ""),
        direction=form.get("Direction", "inbound"),
        tenant=settings.tenant,
        bot=known.context.bot if known is not None else settings.starting_bot,
    )
    report = known or state.reports.open(CallReport(context, CallLifecycle()))
    _apply_status(report, form)
    # The bot (with a returning caller's saved conversation) is made now, and its greeting
    # rendered, while Twilio connects the stream, so the greeting plays at once.
    bot = await state.bots.create_for_caller(context)
    state.shelf.put(call_sid, bot, ttl_s=STREAM_TOKEN_TTL_S)
    state.spawn(state.engines.voice(bot.voice).render(bot.greeting()))
    log.info("call answered", extra={"call_sid": call_sid, "direction": context.direction})
    twiml = stream_twiml(settings, context)
    return web.Response(text=twiml, content_type="text/xml")


def _apply_status(report: CallReport, form: dict[str, str]) -> bool:
    status = form.get("CallStatus")
    if not status:
        return False
    sequence = form.get("SequenceNumber")
    try:
        return report.lifecycle.apply(status, sequence_number=int(sequence) if sequence else None)
    except IllegalTransition as e:
        log.warning(
            "illegal call status transition ignored",
            extra={"call_sid": report.context.call_sid, "error": str(e)},
        )
        return False


async def status_callback(request: web.Request) -> web.Response:
    state = request.app[STATE]
    form = await verified_form(request)
    call_sid = form.get("CallSid", "")
    if not call_sid:
        raise web.HTTPBadRequest(text="CallSid missing")
    report = state.reports.get(call_sid)
    if report is None:
        context = CallContext(
            call_sid=call_sid,
            from_number=form.get("From", ""),
            to_number=form.get("To", ""),
            direction=form.get("Direction", "inbound"),
            tenant=state.settings.tenant,
            bot=state.settings.starting_bot,
        )
        report = state.reports.open(CallReport(context, CallLifecycle()))
    try:
        _apply_status(report, form)
    except ValueError:
        raise web.HTTPBadRequest(text="unknown CallStatus") from None
    session = state.live.get(call_sid)
    if session is not None and report.lifecycle.status.is_terminal:
        session.end(f"call_{report.lifecycle.status}")
    return web.Response(status=204)
