from __future__ import annotations

from runtime.sentences import SentenceSplitter


def feed_all(fragments: list[str]) -> tuple[list[list[str]], list[str]]:
    splitter = SentenceSplitter()
    return [splitter.feed(f) for f in fragments], splitter.flush()


def test_first_sentence_is_released_before_the_reply_ends() -> None:
    steps, rest = feed_all(["Buying a home in Aus", "tin, great. What bud", "get do you have in mind?"])
    assert steps == [[], ["Buying a home in Austin, great."], []]
    assert rest == ["What budget do you have in mind?"]


def test_numbers_and_abbreviations_do_not_split() -> None:
    steps, rest = feed_all(["The house on Main St. is 3.5 miles away and costs $1.2 million. ", "Want it?"])
    assert steps[0] == ["The house on Main St. is 3.5 miles away and costs $1.2 million."]
    assert rest == ["Want it?"]


def test_very_short_sentences_join_the_next_one() -> None:
    steps, rest = feed_all(["Okay. ", "Around four hundred thousand, got it. ", "Next?"])
    assert steps[1] == ["Okay. Around four hundred thousand, got it."]
    assert rest == ["Next?"]


def test_question_and_exclamation_marks_end_sentences() -> None:
    steps, _ = feed_all(["Hi, thanks for calling! Are you buying or selling? I can help with that. "])
    assert steps[0] == ["Hi, thanks for calling!", "Are you buying or selling?", "I can help with that."]
