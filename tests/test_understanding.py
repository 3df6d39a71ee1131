"""Slot extractors on caller transcripts as Whisper and Deepgram write them, near misses included."""

from __future__ import annotations

from datetime import date

import pytest

from bots.slots import (
    Address,
    Answer,
    Condition,
    Feature,
    Financing,
    Intent,
    Mortgage,
    MortgageStatus,
    Price,
    PropertyType,
    ReasonKind,
    Rooms,
    TimelineBucket,
)
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
    wants_no_more_calls,
)

TODAY = date(2025, 3, 10)  # a Monday in early spring


@pytest.mark.parametrize(
    ("text", "asked", "name"),
    [
        ("Hi, I'm Sarah.", False, "Sarah"),
        ("Hey this is John Smith, I saw your sign.", False, "John Smith"),
        ("My name's Maria Lopez and I want to sell.", False, "Maria Lopez"),
        ("my name is maria", False, "Maria"),
        ("Yeah, my name is David and I'm calling about the listing", False, "David"),
        ("You can call me Bob.", False, "Bob"),
        ("Kevin here, returning your call.", False, "Kevin"),
        ("Sarah.", True, "Sarah"),
        ("Sarah Johnson", True, "Sarah Johnson"),
        ("um, it's priya", True, "Priya"),
        ("Yes, Sarah", True, "Sarah"),
        ("I'm looking to buy a house.", False, None),
        ("I'm interested in the place on Oak Street.", False, None),
        ("I'm not sure yet.", True, None),
        ("This is about the house for sale.", False, None),
        ("Call me at 5.", False, None),
        ("Sarah", False, None),
        ("Yes.", True, None),
        ("Why do you need that?", True, None),
        ("I'm just calling to ask about prices", True, None),
    ],
)
def test_name(text: str, asked: bool, name: str | None) -> None:
    assert parse_name(text, asked=asked) == name


@pytest.mark.parametrize(
    ("name", "addressed"),
    [
        ("Sarah Jones", "Sarah"),
        ("Sarah", "Sarah"),
        ("Mary Ann Lee", "Mary"),
        ("Dr. Patel", "Dr. Patel"),
        ("Mrs Lee", "Mrs Lee"),
        ("Ms", "Ms"),
    ],
)
def test_a_caller_is_addressed_by_first_name_unless_they_gave_a_title(name: str, addressed: str) -> None:
    assert first_name(name) == addressed


@pytest.mark.parametrize(
    ("text", "intent", "at_least"),
    [
        ("I'm looking to buy a 3 bedroom house in Austin.", Intent.BUY, 0.85),
        ("We want to sell our home.", Intent.SELL, 0.85),
        ("We'd like to sell my house and buy a bigger one.", Intent.BOTH, 0.85),
        ("We need to sell first and then buy something smaller.", Intent.BOTH, 0.85),
        ("I'm looking for an apartment to rent.", Intent.RENT, 0.5),
        ("We're renting right now and want to buy our first home.", Intent.BUY, 0.85),
        ("I'm not selling, just buying.", Intent.BUY, 0.85),
        ("Looking for a condo downtown.", Intent.BUY, 0.5),
        ("How much is my house worth?", Intent.SELL, 0.5),
        ("Sorry, wrong number.", Intent.OTHER, 0.7),
        ("Maybe sell, I don't know.", Intent.SELL, 0.6),
        ("We're thinking about downsizing.", Intent.BOTH, 0.4),
    ],
)
def test_intent(text: str, intent: Intent, at_least: float) -> None:
    guess = parse_intent(text)
    assert guess is not None and guess.intent is intent
    assert at_least <= guess.confidence <= 1.0


def test_intent_confidence_drops_with_hedges_and_conflicts() -> None:
    sure, hedged = parse_intent("I want to sell."), parse_intent("Maybe sell.")
    assert sure is not None and hedged is not None and hedged.confidence < sure.confidence
    conflicted = parse_intent("I want to rent, though I'm looking at houses too.")
    assert conflicted is not None and conflicted.intent is Intent.RENT and conflicted.confidence < 0.7


@pytest.mark.parametrize(
    "text",
    ["Hello?", "What's the weather like?", "I'm calling about something else", "Rent or buy, I can't decide."],
)
def test_intent_unclear(text: str) -> None:
    assert parse_intent(text) is None


@pytest.mark.parametrize(
    ("text", "places"),
    [
        ("A 3 bedroom house in Austin.", ("Austin",)),
        ("Somewhere near Round Rock please", ("Round Rock",)),
        ("in Austin or Round Rock", ("Austin", "Round Rock")),
        ("Around Cedar Park, Leander, or Georgetown.", ("Cedar Park", "Leander", "Georgetown")),
        ("We like the Mueller area.", ("Mueller",)),
        ("In Austin, Texas.", ("Austin, Texas",)),
        ("near downtown Austin and I want a yard", ("Downtown Austin",)),
        ("in the city", None),
        ("in June", None),
        ("I'm in a hurry", None),
    ],
)
def test_places(text: str, places: tuple[str, ...] | None) -> None:
    assert parse_places(text) == places


@pytest.mark.parametrize(
    ("text", "types"),
    [
        ("A single-family home with a yard.", (PropertyType.HOUSE,)),
        ("a condo or a townhome", (PropertyType.CONDO, PropertyType.TOWNHOUSE)),
        ("We own a duplex and want land.", (PropertyType.MULTI_FAMILY, PropertyType.LAND)),
        ("It's a mobile home on a rented lot", (PropertyType.MOBILE_HOME,)),
        ("not a condo, a house", (PropertyType.HOUSE,)),
        ("We're house hunting for a home.", None),
        ("a lot of space", None),
    ],
)
def test_property_types(text: str, types: tuple[PropertyType, ...] | None) -> None:
    assert parse_property_types(text) == types


@pytest.mark.parametrize(
    ("text", "rooms"),
    [
        ("three bed two bath", Rooms(3, 2.0)),
        ("A 3/2 would be great.", Rooms(3, 2.0)),
        ("At least four bedrooms.", Rooms(4, None, bedrooms_at_least=True)),
        ("two and a half baths", Rooms(None, 2.5)),
        ("4 beds, 2.5 baths", Rooms(4, 2.5)),
        ("a 4-bedroom townhouse", Rooms(4, None)),
        ("3 or 4 bedrooms and a bath and a half", Rooms(3, 1.5, bedrooms_at_least=True)),
        ("4+ bedrooms, three bathrooms or more", Rooms(4, 3.0, True, True)),
        ("one bedroom is fine", Rooms(1, None)),
        ("just a studio", Rooms(0, None)),
        ("We have 2 kids and a dog.", None),
        ("A bedroom for each of our three kids.", None),
        ("We're in a 2 bedroom now but need 4 bedrooms.", None),
        ("a 30 bedroom mansion", None),
    ],
)
def test_rooms(text: str, rooms: Rooms | None) -> None:
    assert parse_rooms(text) == rooms


@pytest.mark.parametrize(
    ("text", "price"),
    [
        ("$450,000", Price(target=450_000)),
        ("maybe 450k", Price(target=450_000)),
        ("four hundred and fifty thousand", Price(target=450_000)),
        ("Half a million.", Price(target=500_000)),
        ("Four fifty.", Price(target=450_000)),
        ("Between 300 and 400 thousand.", Price(minimum=300_000, maximum=400_000)),
        ("between three hundred and four hundred thousand", Price(minimum=300_000, maximum=400_000)),
        ("somewhere from $350,000 to $425,000", Price(minimum=350_000, maximum=425_000)),
        ("300-400k", Price(minimum=300_000, maximum=400_000)),
        ("between one and one and a half million", Price(minimum=1_000_000, maximum=1_500_000)),
        ("Under 500.", Price(maximum=500_000)),
        ("Up to 1.2 million.", Price(maximum=1_200_000)),
        ("Nothing over 600 grand.", Price(maximum=600_000)),
        ("500k max", Price(maximum=500_000)),
        ("At least 300k.", Price(minimum=300_000)),
        ("Over a million.", Price(minimum=1_000_000)),
        ("Around 1.2 million.", Price(minimum=1_080_000, maximum=1_320_000, target=1_200_000)),
        ("About four hundred thousand dollars.", Price(minimum=360_000, maximum=440_000, target=400_000)),
        ("A million and a half.", Price(target=1_500_000)),
        ("at least 300 and up to 450", Price(minimum=300_000, maximum=450_000)),
        ("around 450, 500 max", Price(maximum=500_000, target=450_000)),
        ("Call me at 5.", None),
        ("Call me at 512-555-0199 about it.", None),
        ("I have three kids and two dogs", None),
        ("It's 2,500 square feet built in 1995.", None),
        ("We're at 1234 Oak Street.", None),
        ("Maybe 300k, maybe 500k.", None),
        ("Not sure yet.", None),
        ("Under 5.", None),
    ],
)
def test_price(text: str, price: Price | None) -> None:
    assert parse_price(text) == price


def test_price_amount_is_the_figure_to_say_back() -> None:
    assert Price(minimum=1, maximum=3, target=2).amount == 2
    assert Price(maximum=3).amount == 3
    assert Price(minimum=1).amount == 1
    with pytest.raises(ValueError):
        Price()
    with pytest.raises(ValueError):
        Price(minimum=5, maximum=1)


@pytest.mark.parametrize(
    ("text", "financing"),
    [
        ("We're pre-approved with Chase.", Financing.PRE_APPROVED),
        ("Yeah we got our pre approval letter last week", Financing.PRE_APPROVED),
        ("We'll be paying cash.", Financing.CASH),
        ("We don't need a mortgage.", Financing.CASH),
        ("Not pre-approved yet.", Financing.NEEDS_LENDER),
        ("We need to get pre-approved.", Financing.NEEDS_LENDER),
        ("Can you recommend a lender?", Financing.NEEDS_LENDER),
        ("I'm not sure how we'll pay.", Financing.NOT_SURE),
        ("We have a lender we like.", None),
        ("Yes.", None),
    ],
)
def test_financing(text: str, financing: Financing | None) -> None:
    assert parse_financing(text) == financing


@pytest.mark.parametrize(
    ("text", "bucket", "target", "phrase"),
    [
        ("As soon as possible.", TimelineBucket.ASAP, TODAY, "as soon as possible"),
        ("Right away, honestly.", TimelineBucket.ASAP, TODAY, "right away"),
        ("In two months.", TimelineBucket.WITHIN_3_MONTHS, date(2025, 5, 10), "in two months"),
        ("Yes, in the next 3 weeks.", TimelineBucket.WITHIN_3_MONTHS, date(2025, 3, 31), "in the next 3 weeks"),
        ("6 to 12 months", TimelineBucket.MONTHS_6_TO_12, date(2025, 12, 9), "6 to 12 months"),
        ("a month or two", TimelineBucket.WITHIN_3_MONTHS, date(2025, 4, 25), "a month or two"),
        ("Probably within a year.", TimelineBucket.MONTHS_6_TO_12, date(2026, 3, 10), "within a year"),
        ("A year and a half maybe", TimelineBucket.OVER_12_MONTHS, date(2026, 9, 10), "a year and a half"),
        ("a couple of months", TimelineBucket.WITHIN_3_MONTHS, date(2025, 5, 10), "a couple of months"),
        ("Next spring.", TimelineBucket.OVER_12_MONTHS, date(2026, 4, 1), "next spring"),
        ("This summer.", TimelineBucket.MONTHS_3_TO_6, date(2025, 7, 1), "this summer"),
        ("By the end of the year.", TimelineBucket.MONTHS_6_TO_12, date(2025, 12, 31), "by the end of the year"),
        ("sometime next year", TimelineBucket.OVER_12_MONTHS, date(2026, 7, 1), "sometime next year"),
        ("By June.", TimelineBucket.WITHIN_3_MONTHS, date(2025, 6, 1), "by june"),
        ("next month", TimelineBucket.WITHIN_3_MONTHS, date(2025, 4, 10), "next month"),
        ("We've been looking for 2 years, want to move in 6 months.", TimelineBucket.MONTHS_3_TO_6, date(2025, 9, 10),
         "in 6 months"),
        ("Not sure.", TimelineBucket.UNKNOWN, None, "not sure"),
        ("Just looking for now.", TimelineBucket.UNKNOWN, None, "just looking"),
        ("No rush.", TimelineBucket.UNKNOWN, None, "no rush"),
    ],
)  # fmt: skip
def test_timeline(text: str, bucket: TimelineBucket, target: date | None, phrase: str) -> None:
    timeline = parse_timeline(text, TODAY)
    assert timeline is not None
    assert (timeline.bucket, timeline.target, timeline.phrase) == (bucket, target, phrase)


@pytest.mark.parametrize(
    "text",
    ["We moved here 2 years ago.", "I have 3 kids.", "Not right away.", "Hmm.", "for the past six months"],
)
def test_timeline_unclear(text: str) -> None:
    assert parse_timeline(text, TODAY) is None


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("I'm relocating for work.", ReasonKind.RELOCATION),
        ("Got a new job in Dallas.", ReasonKind.RELOCATION),
        ("We have a baby on the way.", ReasonKind.GROWING_FAMILY),
        ("Kids have moved out so we're downsizing.", ReasonKind.DOWNSIZING),
        ("Just need more space.", ReasonKind.UPSIZING),
        ("It's an investment property.", ReasonKind.INVESTMENT),
        ("My mom passed away and we inherited the house.", ReasonKind.INHERITED),
        ("We want to be closer to family.", ReasonKind.CLOSER_TO_FAMILY),
        ("Because my wife wants a change.", ReasonKind.OTHER),
    ],
)
def test_reason(text: str, kind: ReasonKind) -> None:
    reason = parse_reason(text)
    assert reason is not None and reason.kind is kind and reason.text == text


def test_reason_unclear() -> None:
    assert parse_reason("Yes.") is None


@pytest.mark.parametrize(
    ("text", "features"),
    [
        ("A garage and a big yard.", (Feature.GARAGE, Feature.YARD)),
        ("Good schools, a pool, and no HOA.", (Feature.GOOD_SCHOOLS, Feature.POOL, Feature.NO_HOA)),
        ("I work from home so an office, and single story.", (Feature.HOME_OFFICE, Feature.SINGLE_STORY)),
        ("We don't need a pool, but a basement please.", (Feature.BASEMENT,)),
        ("Nothing special.", None),
    ],
)
def test_must_haves(text: str, features: tuple[Feature, ...] | None) -> None:
    assert parse_must_haves(text) == features


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("We need to sell ours first.", Answer.YES),
        ("We can't buy until we sell.", Answer.YES),
        ("It'd be contingent on the sale.", Answer.YES),
        ("No, we don't have to sell.", Answer.NO),
        ("We rent right now.", Answer.NO),
        ("Nope.", Answer.NO),
        ("Yeah.", Answer.YES),
        ("Not sure.", Answer.UNSURE),
    ],
)
def test_must_sell_first(text: str, answer: Answer) -> None:
    assert parse_must_sell_first(text) is answer


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("It's 123 Main Street.", Address("123", "Main Street")),
        ("1234 Oak Lane, apartment 4b, Austin", Address("1234", "Oak Lane", "4B", "Austin")),
        ("twelve thirty four oak lane in Round Rock", Address("1234", "Oak Lane", None, "Round Rock")),
        ("The address is 5 North Lamar Blvd", Address("5", "North Lamar Blvd")),
        ("it's 42 w 5th st unit 3", Address("42", "W 5th St", "3")),
        ("A 3 bedroom house on a quiet street.", None),
        ("We live on Main Street.", None),
    ],
)
def test_address(text: str, address: Address | None) -> None:
    assert parse_address(text) == address


def test_address_reads_as_spoken() -> None:
    assert str(Address("1234", "Oak Lane", "4B", "Austin")) == "1234 Oak Lane, Unit 4B, Austin"


@pytest.mark.parametrize(
    ("text", "condition"),
    [
        ("It's a total fixer-upper.", Condition.FIXER_UPPER),
        ("Needs a lot of work honestly.", Condition.FIXER_UPPER),
        ("It's in good shape but needs some updating.", Condition.NEEDS_WORK),
        ("Kind of dated.", Condition.NEEDS_WORK),
        ("Not in great shape.", Condition.NEEDS_WORK),
        ("Excellent, we just renovated.", Condition.EXCELLENT),
        ("Pretty good, it's move-in ready.", Condition.GOOD),
        ("I'm not sure.", None),
    ],
)
def test_condition(text: str, condition: Condition | None) -> None:
    assert parse_condition(text) == condition


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("It's listed with Keller Williams right now.", Answer.YES),
        ("We signed with an agent last month.", Answer.YES),
        ("No, we don't have an agent.", Answer.NO),
        ("We're selling it ourselves.", Answer.NO),
        ("The listing expired.", Answer.NO),
        ("Yep.", Answer.YES),
        ("No idea.", Answer.UNSURE),
    ],
)
def test_listed_with_agent(text: str, answer: Answer) -> None:
    assert parse_listed_with_agent(text) is answer


@pytest.mark.parametrize(
    ("text", "mortgage"),
    [
        ("It's paid off.", Mortgage(MortgageStatus.PAID_OFF)),
        ("We own it outright.", Mortgage(MortgageStatus.PAID_OFF)),
        ("We don't owe anything.", Mortgage(MortgageStatus.PAID_OFF)),
        ("We owe about 200k.", Mortgage(MortgageStatus.OWES, 200_000)),
        ("Around one eighty left on the mortgage.", Mortgage(MortgageStatus.OWES, 180_000)),
        ("We still have a mortgage, not sure how much.", Mortgage(MortgageStatus.OWES)),
        ("I don't know.", Mortgage(MortgageStatus.NOT_SURE)),
        ("Yes.", None),
    ],
)
def test_mortgage(text: str, mortgage: Mortgage | None) -> None:
    assert parse_mortgage(text) == mortgage


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("Yeah.", Answer.YES),
        ("Yep, that's right.", Answer.YES),
        ("Sure.", Answer.YES),
        ("Uh huh", Answer.YES),
        ("Of course!", Answer.YES),
        ("No problem.", Answer.YES),
        ("I think so.", Answer.YES),
        ("Nope.", Answer.NO),
        ("Not really.", Answer.NO),
        ("No, I want a condo.", Answer.NO),
        ("Nah, we don't.", Answer.NO),
        ("I don't think so.", Answer.NO),
        ("I'm not sure.", Answer.UNSURE),
        ("No idea.", Answer.UNSURE),
        ("I don't know.", Answer.UNSURE),
        ("Yeah, I'm not sure.", Answer.UNSURE),
        ("Maybe.", Answer.UNSURE),
        ("No rush.", None),
        ("Yes and no.", None),
        ("I want to make sure it has a pool.", None),
        ("The kitchen.", None),
        ("Right away.", None),
    ],
)
def test_yes_no(text: str, answer: Answer | None) -> None:
    assert parse_yes_no(text) == answer


@pytest.mark.parametrize(
    ("text", "opts_out"),
    [
        ("Please stop calling me.", True),
        ("Don't call me again", True),
        ("do not contact us anymore", True),
        ("Take me off your list", True),
        ("remove my number from your call list please", True),
        ("put me on your do not call list", True),
        ("Unsubscribe.", True),
        ("Don't call me before five", False),
        ("don't call me at work, text instead", False),
        ("My husband will call you again tomorrow", False),
        ("I'm on a list for a lender", False),
        ("we stopped looking in Round Rock", False),
    ],
)
def test_a_caller_who_asks_not_to_be_called_again(text: str, opts_out: bool) -> None:
    assert wants_no_more_calls(text) is opts_out
