"""A simulated caller: plays Twilio and a human caller against a running Leadline server.

Used by ``leadline call``, the demo, integration tests and the load benchmark. Everything goes
over the real Twilio protocols (signed webhooks, Media Streams, status callbacks).
"""

from telephony.simulator.caller import SimulatedCallOptions, run_simulated_call, run_simulated_stream
from telephony.simulator.events import (
    BargeIn,
    BotSpoke,
    CallEnded,
    CallerSpoke,
    CallEvent,
    CallStarted,
    DigitsSent,
    EndReason,
)
from telephony.simulator.rendering import prerender_script
from telephony.simulator.result import (
    BargeInRecord,
    BotUtterance,
    CallCounts,
    CallResult,
    Turn,
)
from telephony.simulator.script import (
    HOME_BUYER_SCRIPT,
    CallerLine,
    CallerScript,
    Hangup,
    PressDigits,
    ScriptStep,
)
from telephony.simulator.turns import CallerTiming
from telephony.simulator.webhooks import CallSetupError, SimulatorError

__all__ = [
    "HOME_BUYER_SCRIPT",
    "BargeIn",
    "BargeInRecord",
    "BotSpoke",
    "BotUtterance",
    "CallCounts",
    "CallEnded",
    "CallEvent",
    "CallResult",
    "CallSetupError",
    "CallStarted",
    "CallerLine",
    "CallerScript",
    "CallerSpoke",
    "CallerTiming",
    "DigitsSent",
    "EndReason",
    "Hangup",
    "PressDigits",
    "ScriptStep",
    "SimulatedCallOptions",
    "SimulatorError",
    "Turn",
    "prerender_script",
    "run_simulated_call",
    "run_simulated_stream",
]
