"""Drive the server exactly as Twilio would, message by message (for protocol-level tests)."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field

import aiohttp

from runtime.audio import FRAME_BYTES, MULAW_SILENCE, split_frames
from telephony import media_stream as ms
from telephony.signature import compute_signature
from telephony.twiml import parse_connect_stream

SILENCE_FRAME = bytes([MULAW_SILENCE]) * FRAME_BYTES


def new_call_sid() -> str:
    return "CA" + secrets.token_hex(16)


async def post_signed(
    http: aiohttp.ClientSession, base_url: str, path: str, params: dict[str, str], token: str
) -> aiohttp.ClientResponse:
    signature = compute_signature(token, base_url + path, params)
    return await http.post(base_url + path, data=params, headers={"X-Twilio-Signature": signature})


def voice_params(call_sid: str) -> dict[str, str]:
    return {
        "CallSid": call_sid,
        "AccountSid": "AC" + "0" * 32,
        "From": "+15125550100",
        "To": "+15125550199",
        "Caller": "+15125550100",
        "Called": "+15125550199",
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
    }


@dataclass
class StreamDriver:
    """One Media Streams socket, with everything the server sent collected in order."""

    ws: aiohttp.ClientWebSocketResponse
    call_sid: str
    stream_sid: str = field(default_factory=lambda: "MZ" + secrets.token_hex(16))
    received: list[ms.OutboundEvent] = field(default_factory=list)
    arrival: list[float] = field(default_factory=list)
    sequence: int = 1
    chunk: int = 0
    reader: asyncio.Task[None] | None = None
    parameters: dict[str, str] = field(default_factory=dict)

    @classmethod
    async def open(
        cls, http: aiohttp.ClientSession, base_url: str, token: str, call_sid: str | None = None
    ) -> StreamDriver:
        call_sid = call_sid or new_call_sid()
        response = await post_signed(http, base_url, "/twilio/voice", voice_params(call_sid), token)
        assert response.status == 200, await response.text()
        instruction = parse_connect_stream(await response.text())
        ws = await http.ws_connect(instruction.url)
        driver = cls(ws, call_sid)
        driver.parameters = dict(instruction.parameters)
        driver.reader = asyncio.create_task(driver._read())
        return driver

    @classmethod
    async def started(cls, http: aiohttp.ClientSession, base_url: str, token: str) -> StreamDriver:
        """A call answered by the server with its stream started (``connected`` + ``start`` sent)."""
        driver = await cls.open(http, base_url, token)
        await driver.start()
        return driver

    async def let_bot_finish(self, seconds: float) -> None:
        """Stream ``seconds`` of caller silence, then echo every mark: the bot's audio has played."""
        await self.send_silence(seconds)
        await self.echo_marks()

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        async for message in self.ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                self.received.append(ms.parse_outbound(message.data))
                self.arrival.append(loop.time())

    async def start(self, parameters: dict[str, str] | None = None) -> None:
        await self.ws.send_str(ms.connected_message())
        await self.ws.send_str(
            ms.start_message(
                stream_sid=self.stream_sid,
                call_sid=self.call_sid,
                account_sid="AC" + "0" * 32,
                custom_parameters=self.parameters if parameters is None else parameters,
            )
        )

    async def send_audio(self, ulaw: bytes, *, realtime: bool = True) -> None:
        """Send audio as 20 ms media messages, paced like Twilio unless ``realtime`` is off."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        for i, frame in enumerate(split_frames(ulaw)):
            self.sequence += 1
            self.chunk += 1
            message = ms.inbound_media_message(
                stream_sid=self.stream_sid,
                sequence=self.sequence,
                chunk=self.chunk,
                timestamp_ms=self.chunk * 20,
                ulaw=frame,
            )
            if not await self._send(message):
                return
            if realtime:
                await asyncio.sleep(max(0.0, started + (i + 1) * 0.02 - loop.time()))

    async def _send(self, message: str) -> bool:
        """Send unless the server has hung up (closed the socket), as Twilio would."""
        if self.ws.closed:
            return False
        try:
            await self.ws.send_str(message)
        except ConnectionResetError:
            return False
        return True

    async def send_silence(self, seconds: float) -> None:
        await self.send_audio(SILENCE_FRAME * round(seconds * 50))

    async def echo_marks(self) -> None:
        """Echo every mark received so far (as if all audio had played)."""
        for event in list(self.received):
            if isinstance(event, ms.OutMark):
                self.sequence += 1
                await self._send(
                    ms.inbound_mark_message(stream_sid=self.stream_sid, sequence=self.sequence, name=event.name)
                )

    async def stop(self) -> None:
        self.sequence += 1
        await self._send(
            ms.stop_message(
                stream_sid=self.stream_sid, sequence=self.sequence, call_sid=self.call_sid, account_sid="AC1"
            )
        )

    async def close(self) -> None:
        await self.ws.close()
        if self.reader is not None:
            await self.reader

    def count(self, kind: type) -> int:
        return sum(isinstance(e, kind) for e in self.received)
