"""The generated corpus: the same text on every machine, chains whose arithmetic is right, and token
kinds that say which characters are predictable."""

import pytest
import torch

from earlyexit.text import (
    KINDS,
    MAX_CHAIN,
    MIN_CHAIN,
    chain,
    decode,
    encode,
    make_corpus,
    make_splits,
    prompts,
    reserved_questions,
    token_kinds,
)


def test_the_corpus_is_seeded_and_every_line_is_right_and_chained():
    text = make_corpus(100, seed=3)
    assert text == make_corpus(100, seed=3) and text != make_corpus(100, seed=4)
    previous, lengths, length = None, [], 0
    for line in text.splitlines():
        question, answer = line.rstrip(";").split("=")
        a, b = (int(x) for x in question.split("+"))
        assert a + b == int(answer) and len(question) == 5
        if previous is not None and (a, b) == (previous[1], previous[2] % 100):
            length += 1
        else:
            lengths.append(length)
            length = 1
        previous = (a, b, int(answer))
    lengths = lengths[1:] + [length]
    assert len(lengths) >= 95  # a few chains may continue by chance
    assert all(1 <= n <= 2 * MAX_CHAIN for n in lengths)  # cut short before a reserved question
    assert sum(MIN_CHAIN <= n for n in lengths) > 0.8 * len(lengths)


def test_token_kinds_mark_format_copies_answers_and_random_starts():
    text = "47+28=75;\n28+75=103;\n12+34=46;\n"
    kinds = token_kinds(text)
    assert len(kinds) == len(text) and set(kinds) == set(KINDS)
    by_line = [kinds[0:10], kinds[10:21], kinds[21:31]]
    assert by_line[0] == ["random"] * 2 + ["format"] + ["random"] * 2 + ["format"] + ["answer"] * 2 + ["format"] * 2
    assert by_line[1][:6] == ["copy", "copy", "format", "copy", "copy", "format"]
    assert by_line[1][6:9] == ["answer"] * 3 and by_line[1][9:] == ["format"] * 2
    assert by_line[2][:2] == ["random"] * 2  # 12+34 does not continue 28+75


def test_encoding_round_trips_and_refuses_foreign_characters():
    text = make_corpus(5)
    assert decode(encode(text)) == text and encode(text).dtype == torch.long
    with pytest.raises(ValueError, match="outside the vocabulary"):
        encode("12+3x")


def questions(text):
    return {tuple(int(x) for x in line.split("=")[0].split("+")) for line in text.splitlines()}


def test_no_reserved_question_is_asked_anywhere_in_the_training_text():
    reserved = reserved_questions()
    assert len(reserved["validation"]) == len(reserved["test"]) == 405
    assert not reserved["validation"] & reserved["test"]
    asked = questions(make_corpus(3000, seed=0))
    assert len(asked) > 6000 and not asked & (reserved["validation"] | reserved["test"])


def test_held_out_texts_and_prompts_start_from_their_own_reserved_questions():
    reserved = reserved_questions()
    for split in ("validation", "test"):
        starts = [line for line in make_corpus(50, seed=1, split=split).splitlines()]
        assert questions(starts[0]) <= reserved[split]
        asked = {tuple(int(x) for x in p[:-1].split("+")) for p in prompts(40, split=split)}
        assert len(asked) == 40 and asked <= reserved[split]
    assert prompts(5) == prompts(5) and prompts(5) != prompts(5, seed=2)


def test_a_chain_stops_before_a_question_it_must_not_ask():
    assert chain(47, 28, 3) == "47+28=75;\n28+75=103;\n75+03=78;\n"
    assert chain(47, 28, 3, stop=frozenset({(75, 3)})) == "47+28=75;\n28+75=103;\n"


@pytest.mark.parametrize("call, message", [
    (lambda: chain(-5, 20, 2), "a must be an int from 0 to 99"),
    (lambda: chain(5, 100, 2), "b must be an int from 0 to 99"),
    (lambda: make_corpus(3, split="dev"), "split must be"),
    (lambda: prompts(406), "at most 405"),
])
def test_bad_corpus_requests_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_splits_hold_three_different_texts():
    splits = make_splits(train_chains=50, held_out_chains=20)
    assert len(splits.validation) == len(splits.validation_kinds) and len(splits.test) == len(splits.test_kinds)
    assert not torch.equal(splits.validation[:100], splits.test[:100])


@pytest.mark.parametrize("call, error, message", [
    (lambda: decode([-1]), ValueError, "ids"),
    (lambda: decode([1.5]), TypeError, "ids"),
    (lambda: decode(torch.zeros(2, 2, dtype=torch.long)), ValueError, "ids"),
    (lambda: encode(None), TypeError, "text must be a str"),
    (lambda: token_kinds(3), TypeError, "text must be a str"),
])
def test_text_functions_refuse_what_is_not_text_or_token_ids(call, error, message):
    with pytest.raises(error, match=message):
        call()
