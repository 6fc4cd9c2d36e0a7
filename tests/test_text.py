"""The generated corpus: the same text on every machine, chains whose arithmetic is right, and token
kinds that say which characters are predictable."""

import pytest
import torch

from earlyexit.text import KINDS, MAX_CHAIN, MIN_CHAIN, decode, encode, make_corpus, make_splits, prompts, token_kinds


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
    assert all(MIN_CHAIN <= n <= 2 * MAX_CHAIN for n in lengths)


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


def test_splits_and_prompts():
    splits = make_splits(train_chains=50, held_out_chains=20)
    assert len(splits.held_out) == len(splits.held_out_kinds)
    assert not torch.equal(splits.train[:len(splits.held_out)], splits.held_out)
    for prompt in prompts(10):
        assert len(prompt) == 6 and prompt[2] == "+" and prompt[-1] == "="
    assert prompts(5) == prompts(5) and prompts(5) != prompts(5, seed=2)
