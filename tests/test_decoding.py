"""Decoding with an early-exit transformer: the KV cache changes no token, speculative decoding gives
greedy decoding's output, and per-token early exit behaves as its threshold and its missing-KV
strategy say. Random tiny models in float64, so that rounding cannot tip a near tie."""

import pytest
import torch

from earlyexit import decoding
from earlyexit.decoding import MissingKVError, early_exit_generate, greedy, speculative_generate, sums_right
from earlyexit.text import decode, encode, prompts
from earlyexit.transformer import EarlyExitLM, KVCache, LMConfig


@pytest.fixture(scope="module", params=[0, 1])
def model(request):
    torch.manual_seed(request.param)
    return EarlyExitLM(LMConfig(layers=4, width=32, heads=2, context=48)).double().eval()


PROMPTS = [encode(p) for p in prompts(3)]


def first_exit_greedy(model, prompt, steps):
    """Greedy decoding with exit 1 alone, by brute force (no cache); the first token from the last layer."""
    ids = prompt.tolist()
    ids.append(int(model(torch.tensor([ids]))[-1][0, -1].argmax()))
    while len(ids) < len(prompt) + steps:
        ids.append(int(model(torch.tensor([ids]))[0][0, -1].argmax()))
    return ids[len(prompt):]


def test_kv_cache_decoding_equals_decoding_without_a_cache(model):
    for prompt in PROMPTS:
        cached, with_cache = greedy(model, prompt, 24, cache=True)
        again, without = greedy(model, prompt, 24, cache=False)
        assert cached == again
        assert with_cache.layer_positions == 4 * (len(prompt) + 23) < without.layer_positions


@pytest.mark.parametrize("draft_layers, k", [(1, 1), (1, 4), (2, 3), (3, 6)])
def test_speculative_decoding_gives_greedy_decodings_output(model, draft_layers, k):
    for prompt in PROMPTS:
        expected, _ = greedy(model, prompt, 30)
        got, stats = speculative_generate(model, prompt, 30, draft_layers, k)
        assert got == expected
        assert 0 <= stats.accepted <= stats.drafted


def test_a_draft_the_full_model_agrees_with_is_all_accepted():
    """A model whose layers after the first do nothing: the draft is the full model, every draft is kept."""
    torch.manual_seed(0)
    model = EarlyExitLM(LMConfig(layers=3, width=32, heads=2, context=48)).double().eval()
    with torch.no_grad():
        for block in model.blocks[1:]:
            for linear in (block.attention.out, block.mlp[2]):
                linear.weight.zero_()
                linear.bias.zero_()
    got, stats = speculative_generate(model, PROMPTS[0], 20, draft_layers=1, k=4)
    assert got == greedy(model, PROMPTS[0], 20)[0] and stats.accepted == stats.drafted


@pytest.mark.parametrize("missing", ["recompute", "copy"])
def test_thresholds_at_the_extremes(model, missing):
    for prompt in PROMPTS:
        full, full_stats = greedy(model, prompt, 20)
        never, stats = early_exit_generate(model, prompt, 20, 1.0, missing)  # no max softmax is above 1
        assert never == full and set(stats.exit_layers) == {4}
        assert stats.layer_positions == full_stats.layer_positions and stats.kv_projections == 0
        always, stats = early_exit_generate(model, prompt, 20, 0.0, missing)  # every max softmax is above 0
        assert always == first_exit_greedy(model, prompt, 20) and set(stats.exit_layers[1:]) == {1}
        assert stats.kv_projections == (19 * 3 if missing == "copy" else 0)  # 3 skipped layers, 19 positions


def test_a_later_token_meets_the_keys_and_values_an_exited_one_left_missing(model):
    prompt = PROMPTS[0]
    exits = [early_exit_generate(model, prompt, 20, t, "recompute")[1].exit_layers for t in (0.1, 0.2, 0.3)]
    threshold = next(t for t, e in zip((0.1, 0.2, 0.3), exits) if len(set(e[1:])) > 1)
    with pytest.raises(MissingKVError, match="keys and values for positions"):
        early_exit_generate(model, prompt, 20, threshold, "error")
    recomputed, stats = early_exit_generate(model, prompt, 20, threshold, "recompute")
    copied, copy_stats = early_exit_generate(model, prompt, 20, threshold, "copy")
    assert copy_stats.kv_projections == sum(4 - e for e in copy_stats.exit_layers[1:])
    assert stats.layer_positions >= copy_stats.layer_positions  # recomputation runs the skipped layers later


def test_the_cache_cuts_back_and_bad_arguments_fail_clearly(model):
    cache = KVCache(2)
    cache.append(0, torch.zeros(1, 2, 5, 4), torch.zeros(1, 2, 5, 4))
    cache.truncate(3)
    assert cache.length(0) == 3 and cache.length(1) == 0
    with pytest.raises(ValueError, match="exceed the model's context"):
        greedy(model, PROMPTS[0], 100)
    with pytest.raises(ValueError, match="draft_layers must be fewer"):
        speculative_generate(model, PROMPTS[0], 5, 4, 2)
    with pytest.raises(ValueError, match="missing must be one of"):
        early_exit_generate(model, PROMPTS[0], 5, 0.5, "skip")
    with pytest.raises(ValueError, match="threshold"):
        early_exit_generate(model, PROMPTS[0], 5, 1.5)


@pytest.mark.parametrize("prompt, error, message", [
    (torch.tensor([[1, 2, 3], [4, 5, 6]]), ValueError, "prompt must be one sequence of token ids, got a batch of 2"),
    (torch.tensor([1.9, 2.0, 3.0]), TypeError, "prompt must hold integer token ids"),  # was truncated to 1
    (torch.tensor([1.0, float("nan")]), TypeError, "prompt must hold integer token ids"),
    ([4, 14], ValueError, "prompt must hold token ids from 0 to 13"),
    ([-1, 4], ValueError, "prompt must hold token ids from 0 to 13"),
])
def test_a_prompt_is_one_sequence_of_token_ids_or_it_is_refused(model, prompt, error, message):
    for generate in (lambda p: greedy(model, p, 2), lambda p: early_exit_generate(model, p, 2, 0.9),
                     lambda p: speculative_generate(model, p, 2, 1, 2)):
        with pytest.raises(error, match=message):
            generate(prompt)


def test_a_batch_of_one_prompt_decodes_as_the_prompt_itself(model):
    assert greedy(model, PROMPTS[0][None], 5)[0] == greedy(model, PROMPTS[0], 5)[0]
    with pytest.raises(TypeError, match="cache must be True or False"):
        greedy(model, PROMPTS[0], 5, cache="no")
    with pytest.raises(TypeError, match="model must be an EarlyExitLM"):
        greedy(model.state_dict(), PROMPTS[0], 5)


def _answering(offset: int = 0, end: str = ";"):
    """A stand-in for greedy decoding that answers ``a+b=`` with ``a + b + offset`` then ``end``."""
    def answer(model, prompt, steps):
        a, b = (int(x) for x in decode(prompt)[:-1].split("+"))
        return encode(f"{a + b + offset}{end}{';' * steps}")[:steps].tolist(), None
    return answer


@pytest.mark.parametrize("offset, end, expected", [(0, ";", True), (1, ";", False), (0, "0", False),
                                                   (100, ";", False)])
def test_sums_right_checks_the_sum_and_the_lines_end(monkeypatch, model, offset, end, expected):
    monkeypatch.setattr(decoding, "greedy", _answering(offset, end))
    questions = ["12+34=", "99+99=", "5+7="]
    assert sums_right(model, questions).tolist() == [expected] * len(questions)


def test_sums_right_with_a_real_model_gives_one_bool_per_question(model):
    right = sums_right(model, prompts(3))
    assert right.dtype == torch.bool and right.shape == (3,)


@pytest.mark.parametrize("questions, error", [("12+34=", TypeError), (["12+34"], ValueError),
                                              (["12-34="], ValueError), ([12], ValueError)])
def test_sums_right_refuses_what_is_not_a_question(model, questions, error):
    with pytest.raises(error, match="question"):
        sums_right(model, questions)
