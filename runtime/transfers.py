"""The server's side of warm transfers (``telephony.transfer``): starting one for a call whose bot
asked for a person, seeing it through in the background, and parking the bot so a caller whose
transfer failed comes back to the same conversation (the bot apologises and books a callback).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from aiohttp import web

from bots.base import Bot, CallContext, TransferOutcome, TransferToHuman
from runtime.bot_shelf import BotShelf
from runtime.config import Settings
from runtime.events import EventSink, TransferEvent
from runtime.stream_twiml import stream_twiml
from telephony.rest import TwilioRest, TwilioRestError
from telephony.signature import WebhookValidator
from telephony.transfer import WarmTransfer
from telephony.transfer_routes import TransferCallbacks

log = logging.getLogger(__name__)

#: A parked bot outlives the longest transfer (connect, ring, AMD, briefing: about two minutes
#: with the default ``TransferOptions``) plus the caller's way back to the stream.
PARKED_BOT_TTL_S = 900.0

_BOT_OUTCOMES: frozenset[str] = frozenset({"joined", "no_answer", "busy", "voicemail", "failed"})


def bot_outcome(parameter: str) -> TransferOutcome:
    """The ``transfer_outcome`` stream parameter as the bot knows outcomes (anything else: failed)."""
    return parameter if parameter in _BOT_OUTCOMES else "failed"  # type: ignore[return-value]


class Transfers:
    """Warm transfers of this server's calls. ``available`` once Twilio REST, a caller ID and an
    agent number are configured; until then a bot's request for a person is refused at once and
    the bot offers a callback instead."""

    def __init__(
        self,
        settings: Settings,
        validator: WebhookValidator,
        shelf: BotShelf,
        sink: EventSink,
        spawn: Callable[[Coroutine[Any, Any, object]], None],
    ) -> None:
        self._settings = settings
        self.callbacks = TransferCallbacks(validator, settings.public_url)
        self._shelf = shelf
        self._sink = sink
        self._spawn = spawn
        self.rest: TwilioRest | None = None
        #: called with (call, outcome) once a transfer ends without the caller coming back: the
        #: call is over for us
        self.on_call_over: Callable[[str, str], Awaitable[None]] | None = None

    def add_routes(self, router: web.UrlDispatcher) -> None:
        self.callbacks.add_routes(router)

    @property
    def available(self) -> bool:
        return bool(self.rest is not None and self._settings.bot_core.agent_number and self._settings.dial.caller_id)

    async def start(self, context: CallContext, bot: Bot, request: TransferToHuman, at: Callable[[], float]) -> bool:
        """Move the caller into a conference and ring the agent; False if that could not start
        (the caller is then still talking to the bot). ``at``: the call's event clock."""
        if not self.available:
            return False
        assert self.rest is not None
        transfer = WarmTransfer(
            self.rest,
            self.callbacks,
            call_sid=context.call_sid,
            agent_number=self._settings.bot_core.agent_number,
            caller_id=self._settings.dial.caller_id,
            briefing=request.briefing,
            return_twiml=lambda extra: self._return_twiml(context, extra),
            options=self._settings.bot_core.transfer,
        )
        try:
            await transfer.start()
        except TwilioRestError as e:
            log.warning("transfer refused by Twilio", extra={"call_sid": context.call_sid, "error": str(e)})
            return False
        self._shelf.put(context.call_sid, bot, ttl_s=PARKED_BOT_TTL_S)
        self._spawn(self._see_through(transfer, at))
        return True

    async def _see_through(self, transfer: WarmTransfer, at: Callable[[], float]) -> None:
        result = await transfer.finish()
        event = TransferEvent(at=at(), phase="ended", outcome=result.outcome.value, detail=result.detail)
        self._sink.emit(transfer.call_sid, event)
        if not result.returned_to_bot:
            self._shelf.take(transfer.call_sid)  # nobody is coming back for it
            if self.on_call_over is not None:
                await self.on_call_over(transfer.call_sid, result.outcome.value)
        log.info("transfer ended", extra={"call_sid": transfer.call_sid, "outcome": result.outcome.value})

    def _return_twiml(self, context: CallContext, extra: Mapping[str, str]) -> str:
        return stream_twiml(self._settings, context, extra)
