from __future__ import annotations

import pytest

from telephony.call_state import CallLifecycle, CallStatus, IllegalTransition

S = CallStatus
TERMINAL = [S.COMPLETED, S.BUSY, S.FAILED, S.NO_ANSWER, S.CANCELED]
NOT_ANSWERED = [S.BUSY, S.NO_ANSWER, S.CANCELED]

# The whole table: (from, to) -> "move" (changes status), "same" (idempotent repeat),
# "stale" (late callback, ignored) or "illegal" (raises).
EXPECTED: dict[tuple[CallStatus, CallStatus], str] = {}
for _src in S:
    for _dst in S:
        if _src == _dst:
            EXPECTED[_src, _dst] = "same"
        elif _src.is_terminal:
            EXPECTED[_src, _dst] = "illegal"
        elif _src == S.IN_PROGRESS and _dst in NOT_ANSWERED:
            EXPECTED[_src, _dst] = "illegal"
        elif _dst.is_terminal:
            EXPECTED[_src, _dst] = "move"
        else:
            order = [S.QUEUED, S.INITIATED, S.RINGING, S.IN_PROGRESS]
            EXPECTED[_src, _dst] = "move" if order.index(_dst) > order.index(_src) else "stale"


def test_expected_table_spot_checks() -> None:
    assert EXPECTED[S.QUEUED, S.IN_PROGRESS] == "move"
    assert EXPECTED[S.INITIATED, S.QUEUED] == "stale"
    assert EXPECTED[S.RINGING, S.INITIATED] == "stale"
    assert EXPECTED[S.IN_PROGRESS, S.RINGING] == "stale"
    assert EXPECTED[S.IN_PROGRESS, S.COMPLETED] == "move"
    assert EXPECTED[S.IN_PROGRESS, S.FAILED] == "move"
    assert EXPECTED[S.IN_PROGRESS, S.CANCELED] == "illegal"
    assert EXPECTED[S.RINGING, S.NO_ANSWER] == "move"
    assert EXPECTED[S.COMPLETED, S.IN_PROGRESS] == "illegal"
    assert EXPECTED[S.COMPLETED, S.BUSY] == "illegal"


@pytest.mark.parametrize(("src", "dst"), sorted(EXPECTED))
def test_transition_table(src: CallStatus, dst: CallStatus) -> None:
    call = CallLifecycle(src)
    outcome = EXPECTED[src, dst]
    if outcome == "illegal":
        with pytest.raises(IllegalTransition) as info:
            call.apply(dst)
        assert (info.value.from_status, info.value.to_status) == (src, dst)
        assert call.status == src
    else:
        assert call.apply(dst) is (outcome == "move")
        assert call.status == (dst if outcome == "move" else src)


def test_is_terminal() -> None:
    assert {s for s in S if s.is_terminal} == set(TERMINAL)


def test_default_start_and_history() -> None:
    call = CallLifecycle()
    assert call.status == S.QUEUED
    assert call.apply("initiated", sequence_number=0)
    assert call.apply(S.RINGING, sequence_number=1)
    assert call.apply("in-progress", sequence_number=2)
    assert call.apply("completed", sequence_number=3)
    assert call.history == (
        (S.QUEUED, None),
        (S.INITIATED, 0),
        (S.RINGING, 1),
        (S.IN_PROGRESS, 2),
        (S.COMPLETED, 3),
    )


def test_repeats_are_idempotent() -> None:
    call = CallLifecycle()
    assert call.apply("ringing")
    assert not call.apply("ringing")
    assert not call.apply("ringing", sequence_number=4)
    assert call.apply("completed")
    assert not call.apply("completed")
    assert call.history == ((S.QUEUED, None), (S.RINGING, None), (S.COMPLETED, None))


def test_out_of_order_by_sequence_number_ignored() -> None:
    call = CallLifecycle()
    assert call.apply("completed", sequence_number=3)
    # Late callbacks that would otherwise be illegal after a terminal status.
    assert not call.apply("in-progress", sequence_number=2)
    assert not call.apply("ringing", sequence_number=1)
    assert not call.apply("busy", sequence_number=3)
    assert call.status == S.COMPLETED
    assert call.history == ((S.QUEUED, None), (S.COMPLETED, 3))


def test_out_of_order_without_sequence_numbers_ignored() -> None:
    call = CallLifecycle()
    assert call.apply("in-progress")
    assert not call.apply("ringing")
    assert not call.apply("initiated")
    assert call.status == S.IN_PROGRESS


def test_repeat_advances_sequence_number() -> None:
    call = CallLifecycle()
    assert call.apply("ringing", sequence_number=1)
    assert not call.apply("ringing", sequence_number=5)
    assert not call.apply("in-progress", sequence_number=4)
    assert call.status == S.RINGING


def test_illegal_move_does_not_consume_sequence_number() -> None:
    call = CallLifecycle(S.IN_PROGRESS)
    with pytest.raises(IllegalTransition):
        call.apply("busy", sequence_number=5)
    assert call.apply("completed", sequence_number=4)


def test_terminal_is_final() -> None:
    call = CallLifecycle()
    call.apply("completed", sequence_number=1)
    with pytest.raises(IllegalTransition, match="completed to in-progress"):
        call.apply("in-progress", sequence_number=2)
    with pytest.raises(IllegalTransition):
        call.apply("busy")


@pytest.mark.parametrize("status", ["answered", "IN_PROGRESS", "In-Progress", ""])
def test_unknown_status_raises_value_error(status: str) -> None:
    call = CallLifecycle()
    with pytest.raises(ValueError):
        call.apply(status)
    assert call.status == S.QUEUED
