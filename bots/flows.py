"""The scripted bots' questions, as data, and the state of one bot's way through them.

Every caller turn runs the extractors of all the bot's unanswered questions, so an answer given
early ("a three bedroom in Austin, under 500k") is never asked for again. An unclear answer to
the question just asked gets one polite re-ask, then is recorded as unknown (``None``) and the
bot moves on. Answers are kept JSON-ready (``to_json``), so they go into reports, the session
store and scoring as they are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from typing import Any

from bots.persona import ROLES, BotRole
from bots.slots import Answer, Financing, IntentGuess, MortgageStatus, Price, Timeline, TimelineBucket
from bots.understanding import (
    first_name,
    parse_address,
    parse_condition,
    parse_financing,
    parse_intent,
    parse_listed_with_agent,
    parse_mortgage,
    parse_must_haves,
    parse_must_sell_first,
    parse_name,
    parse_places,
    parse_price,
    parse_property_types,
    parse_reason,
    parse_rooms,
    parse_timeline,
    parse_yes_no,
    spoken_amount,
)


@dataclass(frozen=True, slots=True)
class Hearing:
    """One caller turn as an extractor sees it; ``asked``: it answers this very question, so
    bare replies ("yes", "Sarah", "I don't know") count."""

    text: str
    today: date
    asked: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Question:
    """One question of a flow. ``vague`` tells an answer that is no answer ("not sure"), which
    is re-asked when asked and ignored when said in passing. ``reask`` follows an unclear answer;
    ``again`` follows a reply that answered something else (acknowledged first, so no "sorry").
    ``echo``, when set, acknowledges with the caller's own details (it sees the whole turn)."""

    slot: str
    ask: str
    reask: str
    again: str
    extract: Callable[[Hearing], object | None]
    acknowledge: Callable[[Any], str]
    #: the JSON-ready answer as a short phrase, for summaries ("in Austin", "pre-approved")
    describe: Callable[[Any], str]
    required: bool = True
    vague: Callable[[Any], bool] = lambda value: False
    echo: Callable[[Any, Hearing], str] | None = None

    def __deepcopy__(self, memo: dict[int, object]) -> Question:
        return self  # immutable, and its functions cannot be copied anyway


def to_json(value: object) -> Any:
    """A typed answer (bots/slots.py) as plain JSON values."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [to_json(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


# Extractors that need more than the parser ---------------------------------------------------


def _name(hearing: Hearing) -> str | None:
    return parse_name(hearing.text, asked=hearing.asked)


def _yes_no_when_asked(parse: Callable[[str], Answer | None]) -> Callable[[Hearing], Answer | None]:
    """A bare "yes" only answers the question just asked; said in passing it means nothing."""

    def extract(hearing: Hearing) -> Answer | None:
        if hearing.asked or parse_yes_no(hearing.text) is None:
            return parse(hearing.text)
        return None

    return extract


def _seller_price(hearing: Hearing) -> Price | None:
    """A figure said with the mortgage ("we owe 200k") is not the price the seller hopes for."""
    if not hearing.asked and parse_mortgage(hearing.text) is not None:
        return None
    return parse_price(hearing.text)


def _timeline(hearing: Hearing) -> Timeline | None:
    return parse_timeline(hearing.text, hearing.today)


def _text(parse: Callable[[str], object | None]) -> Callable[[Hearing], object | None]:
    return lambda hearing: parse(hearing.text)


# Acknowledgements ---------------------------------------------------------------------------

_INTENT_ACKS = {
    "buy": "Great, you're looking to buy.",
    "sell": "Great, you're thinking of selling.",
    "both": "Got it, selling one home and buying another.",
    "rent": "Got it, you're looking to rent.",
    "other": "Okay, thanks.",
}
_FINANCING_ACKS = {
    Financing.PRE_APPROVED: "Pre-approved, that's great.",
    Financing.CASH: "A cash purchase, great.",
    Financing.NEEDS_LENDER: "No problem, we work with good lenders.",
    Financing.NOT_SURE: "Okay.",
}


def _ack_intent(guess: IntentGuess) -> str:
    return _INTENT_ACKS[guess.intent.value]


def _echo_intent(guess: IntentGuess, hearing: Hearing) -> str:
    """ "Buying a three bedroom house in Austin, great.": the intent with the home the caller
    described in the same breath, so they hear they were understood."""
    questions = {"buy": _BUYER_FLOW, "sell": _SELLER_FLOW}.get(guess.intent.value)
    if questions is None:
        return _ack_intent(guess)
    heard = FlowState(role="buyer" if questions is _BUYER_FLOW else "seller", questions=questions)
    heard.absorb(hearing.text, hearing.today)
    home = _home(heard.answers)
    if home is None:
        return _ack_intent(guess)
    return f"{'Buying' if questions is _BUYER_FLOW else 'Selling'} {home}, great."


def _home(answers: Mapping[str, Any]) -> str | None:
    """ "a three bedroom house in Austin", "a condo at 12 Elm Street", from what is known."""
    kind = answers.get("property_type") or []
    bedrooms = (answers.get("rooms") or {}).get("bedrooms")
    areas, address = answers.get("areas") or [], answers.get("address")
    if not (kind or bedrooms or areas or address):
        return None
    size = f"{spoken_amount(int(bedrooms))} bedroom " if bedrooms and float(bedrooms).is_integer() else ""
    where = f" in {' or '.join(areas)}" if areas else ""
    at = f" at {address['number']} {address['street']}" if address else ""
    return f"a {size}{kind[0] if kind else 'home'}{where}{at}"


def _ack_places(places: tuple[str, ...]) -> str:
    return f"{' or '.join(places)}, lovely."


def _ack_price(price: Price) -> str:
    return f"Around {spoken_amount(price.amount)} dollars, got it."


def _ack_timeline(timeline: Timeline) -> str:
    return f"{timeline.phrase[0].upper()}{timeline.phrase[1:]}, perfect."


def _ack_features(features: tuple[Enum, ...]) -> str:
    named = [str(f.value) for f in features]
    listed = named[0] if len(named) == 1 else f"{', '.join(named[:-1])} and {named[-1]}"
    return f"{listed[0].upper()}{listed[1:]}, noted."


def _describe_rooms(rooms: Mapping[str, Any]) -> str:
    parts = [f"{rooms[key]:g} {key}" for key in ("bedrooms", "bathrooms") if rooms[key] is not None]
    return " and ".join(parts)


def _describe_price(price: Mapping[str, Any]) -> str:
    amount = next(price[key] for key in ("target", "maximum", "minimum") if price[key] is not None)
    return f"around {spoken_amount(amount)} dollars"


def _fixed(text: str) -> Callable[[Any], str]:
    return lambda value: text


def _unsure(value: Any) -> bool:
    unsure = (Answer.UNSURE, Financing.NOT_SURE, MortgageStatus.NOT_SURE)
    return value in unsure or getattr(value, "status", None) is MortgageStatus.NOT_SURE


def _unknown_timeline(timeline: Timeline) -> bool:
    return timeline.bucket is TimelineBucket.UNKNOWN


# The flows ----------------------------------------------------------------------------------


def build_flows(*, min_intent_confidence: float) -> Mapping[BotRole, tuple[Question, ...]]:
    """Each bot's questions in the order asked. An intent below ``min_intent_confidence`` is
    vague: too unsure to hand the caller to a Buyer or Seller bot on."""
    return {
        "lead": _lead_flow(min_intent_confidence),
        "buyer": _BUYER_FLOW,
        "seller": _SELLER_FLOW,
    }


def _lead_flow(min_intent_confidence: float) -> tuple[Question, ...]:
    return (
        Question(
            slot="name",
            ask="May I have your name?",
            reask="Sorry, I didn't catch your name. What should I call you?",
            again="And who am I speaking with?",
            extract=_name,
            describe=str,
            acknowledge=lambda name: f"Nice to meet you, {first_name(name)}.",
        ),
        Question(
            slot="intent",
            ask="Are you looking to buy a home, sell one, or both?",
            reask="Just so I get you to the right person: are you buying, selling, or both?",
            again="And are you looking to buy, sell, or both?",
            extract=_text(parse_intent),
            describe=lambda intent: f"wants to {intent['intent']}",
            acknowledge=_ack_intent,
            echo=_echo_intent,
            vague=lambda guess: guess.confidence < min_intent_confidence,
        ),
    )


_BUYER_FLOW = (
    Question(
        slot="areas",
        ask="Which areas or neighborhoods are you looking in?",
        reask="Sorry, which town or neighborhood would you like to live in?",
        again="And which areas or neighborhoods are you looking in?",
        extract=_text(parse_places),
        describe=lambda areas: "in " + " or ".join(areas),
        acknowledge=_ack_places,
    ),
    Question(
        slot="property_type",
        ask="What kind of home are you after: a house, a condo, a townhouse?",
        reask="Would that be a house, a condo, or something else?",
        again="And would that be a house, a condo, or something else?",
        extract=_text(parse_property_types),
        describe=lambda types: f"a {types[0]}",
        acknowledge=lambda types: f"A {types[0].value}, got it.",
        required=False,
    ),
    Question(
        slot="rooms",
        ask="How many bedrooms and bathrooms do you need?",
        reask="Roughly how many bedrooms would work for you?",
        again="And how many bedrooms and bathrooms do you need?",
        extract=_text(parse_rooms),
        describe=_describe_rooms,
        acknowledge=lambda rooms: f"{_describe_rooms(to_json(rooms)).capitalize()}, got it.",
        required=False,
    ),
    Question(
        slot="price",
        ask="What price range are you thinking of?",
        reask="Roughly what budget would you like to stay within?",
        again="And what price range are you thinking of?",
        extract=_text(parse_price),
        describe=_describe_price,
        acknowledge=_ack_price,
    ),
    Question(
        slot="financing",
        ask="How are you planning to pay: are you pre-approved, paying cash, or still looking for a lender?",
        reask="No problem. Have you spoken with a lender yet, or would you be paying cash?",
        again="And how are you planning to pay: pre-approved, cash, or still looking for a lender?",
        extract=_text(parse_financing),
        describe=str,
        acknowledge=_FINANCING_ACKS.__getitem__,
        vague=_unsure,
    ),
    Question(
        slot="timeline",
        ask="When are you hoping to move?",
        reask="Even roughly: are you thinking weeks, months, or next year?",
        again="And when are you hoping to move?",
        extract=_timeline,
        describe=lambda timeline: timeline["phrase"],
        acknowledge=_ack_timeline,
        vague=_unknown_timeline,
    ),
    Question(
        slot="motivation",
        ask="What's prompting the move?",
        reask="Is it for work, family, more space, or something else?",
        again="And what's prompting the move?",
        extract=_text(parse_reason),
        describe=lambda reason: f"moving for {reason['kind']}",
        acknowledge=_fixed("That makes sense."),
        required=False,
    ),
    Question(
        slot="must_haves",
        ask="Is there anything the home must have, like a garage, a yard or a home office?",
        reask="Any must-haves, such as a garage, a pool or a big yard?",
        again="And is there anything the home must have?",
        extract=_text(parse_must_haves),
        describe=lambda features: "must have " + " and ".join(features),
        acknowledge=_ack_features,
        required=False,
    ),
    Question(
        slot="must_sell_first",
        ask="Do you need to sell a home before you can buy?",
        reask="Just to check: does buying depend on selling your current home first?",
        again="And do you need to sell a home before you can buy?",
        extract=_yes_no_when_asked(parse_must_sell_first),
        describe=lambda answer: "must sell first" if answer == "yes" else "no sale needed first",
        acknowledge=lambda answer: "Understood." if answer is Answer.YES else "Great.",
        vague=_unsure,
    ),
)

_SELLER_FLOW = (
    Question(
        slot="address",
        ask="What's the address of the property you're selling?",
        reask="Sorry, could you give me the street number and street name?",
        again="And what's the address of the property you're selling?",
        extract=_text(parse_address),
        describe=lambda address: f"{address['number']} {address['street']}",
        acknowledge=lambda address: f"{address}, thank you.",
    ),
    Question(
        slot="property_type",
        ask="Is it a house, a condo, a townhouse?",
        reask="Would you call it a house, a condo, or something else?",
        again="And is it a house, a condo, a townhouse?",
        extract=_text(parse_property_types),
        describe=lambda types: f"a {types[0]}",
        acknowledge=lambda types: f"A {types[0].value}, got it.",
        required=False,
    ),
    Question(
        slot="condition",
        ask="How would you describe its condition: move-in ready, or does it need some work?",
        reask="Would you say it's in great shape, or could it use some updates?",
        again="And how would you describe its condition?",
        extract=_text(parse_condition),
        describe=lambda condition: f"{condition} condition",
        acknowledge=_fixed("Good to know."),
        required=False,
    ),
    Question(
        slot="reason",
        ask="What has you thinking about selling?",
        reask="Is it a move for work, family, downsizing, or something else?",
        again="And what has you thinking about selling?",
        extract=_text(parse_reason),
        describe=lambda reason: f"selling for {reason['kind']}",
        acknowledge=_fixed("That makes sense."),
    ),
    Question(
        slot="timeline",
        ask="When would you like to have it sold?",
        reask="Even roughly: are you thinking weeks, months, or next year?",
        again="And when would you like to have it sold?",
        extract=_timeline,
        describe=lambda timeline: timeline["phrase"],
        acknowledge=_ack_timeline,
        vague=_unknown_timeline,
    ),
    Question(
        slot="price",
        ask="Do you have a price in mind for it?",
        reask="Roughly what would you hope to get for it?",
        again="And do you have a price in mind for it?",
        extract=_seller_price,
        describe=_describe_price,
        acknowledge=_ack_price,
        required=False,
    ),
    Question(
        slot="listed_with_agent",
        ask="Is it listed with another agent at the moment?",
        reask="Just to check: are you working with another agent on it right now?",
        again="And is it listed with another agent at the moment?",
        extract=_yes_no_when_asked(parse_listed_with_agent),
        describe=lambda answer: "listed with another agent" if answer == "yes" else "not listed with an agent",
        acknowledge=_fixed("Okay, thanks."),
        vague=_unsure,
    ),
    Question(
        slot="mortgage",
        ask="And is there a mortgage on it, or is it paid off?",
        reask="Do you still owe anything on the home?",
        again="And is there a mortgage on it, or is it paid off?",
        extract=_text(parse_mortgage),
        describe=lambda mortgage: f"mortgage: {mortgage['status']}",
        acknowledge=_fixed("Thanks, that helps."),
        required=False,
        vague=_unsure,
    ),
)


# One bot's way through its flow -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Heard:
    """What a turn did to a flow: the slots it filled (or marked unknown), and either an
    acknowledgement of the question asked or the re-ask of it."""

    filled: tuple[str, ...]
    acknowledgement: str | None = None
    reask: str | None = None


@dataclass(kw_only=True)
class FlowState:
    """Where one bot is in its flow. ``answers`` maps a slot to its JSON-ready answer, or to
    None when it stayed unknown after the re-ask; ``current`` is the question asked last."""

    role: BotRole
    questions: tuple[Question, ...]
    answers: dict[str, Any] = field(default_factory=dict)
    reasked: set[str] = field(default_factory=set)
    current: str | None = None

    def pending(self) -> list[Question]:
        """The questions still to ask."""
        return [q for q in self.questions if q.slot not in self.answers]

    def open(self) -> list[Question]:
        """The questions a turn may still answer: those to ask, and those left unknown."""
        return [q for q in self.questions if self.answers.get(q.slot) is None]

    @property
    def complete(self) -> bool:
        return not self.pending()

    def ask_next(self) -> str | None:
        """The next question's text (it becomes the current one); None when all are answered."""
        pending = self.pending()
        self.current = pending[0].slot if pending else None
        return pending[0].ask if pending else None

    def absorb(self, text: str, today: date, *, except_slots: Collection[str] = ()) -> tuple[str, ...]:
        """Take what ``text`` answers in passing (no question asked about it), for words said to
        an earlier bot; ``except_slots`` are the ones that bot asked itself (its answer was not
        about this bot's subject: a buyer's price is not the seller's)."""
        hearing = Hearing(text, today, asked=False)
        return tuple(q.slot for q in self.open() if q.slot not in except_slots and self._take(q, hearing))

    def summary(self) -> list[str]:
        """The known answers as short phrases, in question order."""
        return [q.describe(self.answers[q.slot]) for q in self.questions if self.answers.get(q.slot) is not None]

    @property
    def slots(self) -> frozenset[str]:
        return frozenset(q.slot for q in self.questions)

    def hear(self, text: str, today: date) -> Heard:
        """A reply to the current question, which may also answer others. A reply that answered
        only other questions is acknowledged for those, and the current one is asked once more
        (even an optional one: the caller never said they had no answer)."""
        filled = [q.slot for q in self.open() if self._take(q, Hearing(text, today, q.slot == self.current))]
        question = next((q for q in self.questions if q.slot == self.current), None)
        if question is None:
            return Heard(tuple(filled))
        if question.slot in filled or self._answered_meanwhile(question, text, today):
            return Heard(tuple(filled), acknowledgement=self._acknowledge(question, text, today))
        others = self._acknowledge_all(filled, text, today)
        if self.answers.get(question.slot) is not None:  # answered meanwhile, not by this reply
            return Heard(tuple(filled), acknowledgement=others)
        if question.slot not in self.reasked and (question.required or others):
            self.reasked.add(question.slot)
            return Heard(tuple(filled), acknowledgement=others, reask=question.again if others else question.reask)
        self.answers[question.slot] = None
        return Heard((*filled, question.slot), acknowledgement=others or "No problem, let's move on.")

    def _answered_meanwhile(self, question: Question, text: str, today: date) -> bool:
        """The question was recorded by another brain from this very reply (it failed before
        answering the caller): the reply still answers it."""
        if self.answers.get(question.slot) is None:
            return False
        value = question.extract(Hearing(text, today, asked=True))
        return value is not None and not question.vague(value)

    def _take(self, question: Question, hearing: Hearing) -> bool:
        value = question.extract(hearing)
        if value is None or question.vague(value):
            return False
        self.answers[question.slot] = to_json(value)
        return True

    def _acknowledge(self, question: Question, text: str, today: date) -> str:
        hearing = Hearing(text, today, asked=question.slot == self.current)
        value = question.extract(hearing)
        return question.echo(value, hearing) if question.echo else question.acknowledge(value)

    def _acknowledge_all(self, slots: Collection[str], text: str, today: date) -> str | None:
        """One acknowledgement per answered question, in question order; None for none."""
        said = [self._acknowledge(q, text, today) for q in self.questions if q.slot in slots]
        return " ".join(dict.fromkeys(said)) or None

    @property
    def completion(self) -> float:
        """The share of questions answered (unknown ones do not count)."""
        answered = sum(1 for q in self.questions if self.answers.get(q.slot) is not None)
        return answered / len(self.questions)

    def to_dict(self) -> dict[str, Any]:
        return {"answers": dict(self.answers), "reasked": sorted(self.reasked), "current": self.current}

    @classmethod
    def from_dict(cls, role: BotRole, questions: tuple[Question, ...], data: Mapping[str, Any]) -> FlowState:
        slots = {q.slot for q in questions}
        return cls(
            role=role,
            questions=questions,
            answers={k: v for k, v in data.get("answers", {}).items() if k in slots},
            reasked={s for s in data.get("reasked", []) if s in slots},
            current=data.get("current") if data.get("current") in slots else None,
        )


def new_flows(flows: Mapping[BotRole, tuple[Question, ...]]) -> dict[BotRole, FlowState]:
    return {role: FlowState(role=role, questions=flows[role]) for role in ROLES}
