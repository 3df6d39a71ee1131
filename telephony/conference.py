"""TwiML for a conference transfer: the caller's ``<Dial><Conference>`` and the agent's briefing.

Built with the SDK's TwiML classes, like ``telephony.twiml`` (protocols.md §1.8).
"""

from __future__ import annotations

from twilio.twiml.voice_response import Dial, VoiceResponse

#: The conference events a transfer follows: joins and leaves tell who is in the room, and
#: ``announcement`` says when the briefing has been played. ``start``/``end``/``hold`` are not
#: acted on but make the room's history readable in Twilio's console and our logs.
TRANSFER_CONFERENCE_EVENTS = ("start", "end", "join", "leave", "hold", "announcement")


def conference_twiml(room: str, *, label: str, status_callback: str) -> str:
    """``<Response><Dial><Conference ...>room</Conference></Dial></Response>`` for the first participant.

    It starts the conference on entering and is then held through the Participants API: waiting
    for someone else to start the room instead would connect the caller to the agent the moment
    the agent joined, before the briefing. It does not end the conference on leaving, so a caller
    redirected back to the bot does not drop the agent's leg by itself (the transfer hangs that up).
    The ``statusCallback`` is the first participant's; later participants cannot change it.
    """
    if not room:
        raise ValueError("the conference needs a name")
    dial = Dial()
    dial.conference(
        room,
        participant_label=label,
        beep=False,
        start_conference_on_enter=True,
        end_conference_on_exit=False,
        status_callback=status_callback,
        status_callback_method="POST",
        status_callback_event=" ".join(TRANSFER_CONFERENCE_EVENTS),
    )
    return str(VoiceResponse().append(dial).to_xml())


def briefing_twiml(text: str) -> str:
    """``<Response><Say>text</Say></Response>``: what an ``AnnounceUrl`` plays to one participant."""
    if not text.strip():
        raise ValueError("the briefing is empty")
    response = VoiceResponse()
    response.say(text)
    return str(response.to_xml())
