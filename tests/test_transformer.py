"""The early-exit transformer: every exit shares the head, cached attention equals full attention,
training lowers the early-exit loss, and the checkpoint cache returns the same model."""

import copy

import pytest
import torch

from earlyexit.text import KINDS, make_splits
from earlyexit.transformer import (
    GRAPH_WARMUP,
    EarlyExitLM,
    KVCache,
    LMConfig,
    _flat_parameters,
    causal_mask,
    early_exit_loss,
    exit_accuracy,
    train_lm,
    train_lm_cached,
)

TINY = dict(layers=2, width=16, heads=2, context=24, steps=30, batch_size=8)


def test_every_exit_is_the_shared_head_on_its_layer():
    torch.manual_seed(0)
    model = EarlyExitLM(LMConfig(**TINY)).eval()
    ids = torch.randint(0, 14, (2, 10))
    outs = model(ids)
    x = model.embed(ids)
    for block, out in zip(model.blocks, outs):
        x = block(x)
        torch.testing.assert_close(out, model.head(model.norm(x)))
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for name, p in model.named_parameters() if not name.startswith("exit"))


def test_attention_with_a_cache_equals_attention_over_the_whole_sequence():
    torch.manual_seed(1)
    model = EarlyExitLM(LMConfig(**TINY)).double().eval()
    ids = torch.randint(0, 14, (1, 12))
    whole = model(ids)[-1]
    cache = KVCache(2)
    parts, start = [], 0
    for size in (5, 1, 3, 1, 2):  # a prompt, then single tokens and a block of several
        x = model.embed(ids[:, start:start + size], start)
        for layer, block in enumerate(model.blocks):
            x = block(x, cache, layer)
        parts.append(model.exit_logits(x))
        start += size
    torch.testing.assert_close(torch.cat(parts, 1), whole)


def test_the_causal_mask_lets_each_new_position_see_the_past_and_itself():
    mask = causal_mask(3, 2)  # positions 3 and 4, after 3 cached ones
    assert mask.tolist() == [[True, True, True, True, False], [True, True, True, True, True]]
    assert causal_mask(3, 2) is mask  # built once per shape, shared by every layer and pass
    assert torch.equal(causal_mask(0, 4), torch.ones(4, 4, dtype=torch.bool).tril())


def test_embedding_a_slice_of_positions_equals_the_position_lookup():
    torch.manual_seed(2)
    model = EarlyExitLM(LMConfig(**TINY))
    ids = torch.randint(0, 14, (2, 5))
    expected = model.token(ids) + model.position(torch.arange(7, 12))
    assert torch.equal(model.embed(ids, 7), expected)


def test_training_lowers_the_loss_and_the_cache_returns_the_same_model(tmp_path):
    data = make_splits(train_chains=200, held_out_chains=20)
    config = LMConfig(**TINY)
    trained = train_lm_cached(config, data, progress=False, cache_dir=tmp_path)
    assert not trained.from_cache and sum(trained.losses[-5:]) < sum(trained.losses[:5])
    again = train_lm_cached(config, data, progress=False, cache_dir=tmp_path)
    assert again.from_cache
    for a, b in zip(trained.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)
    fresh = train_lm(config, data, progress=False)  # seeded: the same weights again
    assert torch.equal(next(iter(fresh.model.state_dict().values())), next(iter(again.model.state_dict().values())))
    accuracy = exit_accuracy(trained.model, data.test, data.test_kinds, len(KINDS))
    assert accuracy.shape == (2, len(KINDS)) and ((accuracy >= 0) & (accuracy <= 1)).all()
    logged = trained.log["validation_accuracy"]  # the log ends with each exit's validation accuracy
    assert set(logged) == set(KINDS) and all(len(v) == config.layers for v in logged.values())


def test_a_prefix_of_training_logs_the_start_of_the_whole_run():
    data = make_splits(train_chains=200, held_out_chains=20)
    config = LMConfig(**TINY)
    whole = train_lm(config, data, progress=False)
    prefix = train_lm(config, data, progress=False, stop_after=10)
    assert prefix.losses == whole.losses[:10] and prefix.log["steps"] == 10


def test_one_flat_parameter_trains_exactly_as_the_separate_parameters_do():
    """The GPU path's flat parameter (views for every parameter and gradient, zeroed, not set to
    None): the same losses and weights as AdamW over the separate parameters, step for step."""
    torch.manual_seed(0)
    ids = torch.randint(0, 10, (4, 13))
    separate = EarlyExitLM(LMConfig(**TINY))
    flat_model = copy.deepcopy(separate)
    flat = _flat_parameters(flat_model)
    end = flat.data_ptr() + flat.numel() * flat.element_size()
    for p in flat_model.parameters():  # every parameter and its gradient: views inside the flat tensors
        assert flat.data_ptr() <= p.data_ptr() < end and p.grad.untyped_storage().data_ptr() == flat.grad.data_ptr()
    separate_adamw = torch.optim.AdamW(separate.parameters(), lr=0.01, weight_decay=0.01, foreach=False)
    flat_adamw = torch.optim.AdamW([flat], lr=0.01, weight_decay=0.01, foreach=False)

    def step(model: EarlyExitLM, optimiser: torch.optim.Optimizer) -> float:
        loss = early_exit_loss(model(ids[:, :-1]), ids[:, 1:], (1.0, 1.0))
        loss.backward()
        optimiser.step()
        return float(loss.detach())

    for _ in range(5):
        separate_adamw.zero_grad(set_to_none=True)
        flat.grad.zero_()
        assert step(separate, separate_adamw) == pytest.approx(step(flat_model, flat_adamw), abs=1e-6)
    for a, b in zip(separate.parameters(), flat_model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_on_a_gpu_the_cuda_graph_trains_as_the_eager_loop_does():
    """Replayed steps against eager ones, 600-step models: on an H200 (torch 2.11) the two logs
    differed by at most 0.11 in training loss and 2 points in validation accuracy on answer digits,
    where two seeds' eager logs differed by 0.46: the tolerance is half that seed spread."""
    data = make_splits()
    config = LMConfig(steps=600, seed=1)
    eager = train_lm(config, data, progress=False, device="cuda", cuda_graph=False)
    graphed = train_lm(config, data, progress=False, device="cuda")
    assert len(graphed.losses) == len(eager.losses) and len(eager.losses) > GRAPH_WARMUP
    assert max(abs(a - b) for a, b in zip(eager.losses, graphed.losses)) < 0.23
    answers = zip(eager.log["validation_accuracy"]["answer"], graphed.log["validation_accuracy"]["answer"])
    assert max(abs(a - b) for a, b in answers) < 0.03


def test_equal_settings_share_one_key():
    assert LMConfig(lr=1).key() == LMConfig(lr=1.0).key()
    assert LMConfig(layers=2, exit_weights=[1, 1]).key() == LMConfig(layers=2).key()


def test_the_early_exit_loss_weighs_every_exit():
    logits = [torch.zeros(1, 3, 14), torch.zeros(1, 3, 14)]
    targets = torch.zeros(1, 3, dtype=torch.long)
    one = early_exit_loss(logits, targets, (1.0, 0.0))
    assert early_exit_loss(logits, targets, (1.0, 1.0)) == pytest.approx(2 * float(one))


@pytest.mark.parametrize("settings, message", [
    (dict(width=30, heads=4), "multiple of heads"),
    (dict(layers=2, exit_weights=(1.0,)), "one weight per layer"),
    (dict(layers=2, exit_weights=(0.0, 0.0)), "at least one exit weight"),
    (dict(steps=0), "steps must be an int >= 1"),
    (dict(lr=0.0), "lr must be a finite number > 0"),
])
def test_bad_configurations_fail_clearly(settings, message):
    with pytest.raises(ValueError, match=message):
        LMConfig(**settings)


def test_positions_beyond_the_context_are_refused():
    model = EarlyExitLM(LMConfig(**TINY))
    with pytest.raises(ValueError, match="exceed the context of 24"):
        model.embed(torch.zeros(1, 5, dtype=torch.long), start=20)


@pytest.mark.parametrize("ids, error, message", [
    (torch.tensor([[1, 14]]), ValueError, "ids must hold token ids from 0 to 13, got values from 1 to 14"),
    (torch.tensor([[-1, 2]]), ValueError, "ids must hold token ids from 0 to 13"),
    (torch.tensor([[1.0, 2.0]]), TypeError, "ids must hold integer token ids"),
    (torch.tensor([[float("nan")]]), TypeError, "ids must hold integer token ids"),
    (torch.tensor([1, 2]), ValueError, r"ids must be a 2-D tensor of token ids, got shape \(2,\)"),
])
def test_forward_and_embed_refuse_what_is_not_a_batch_of_token_ids(ids, error, message):
    model = EarlyExitLM(LMConfig(**TINY))
    with pytest.raises(error, match=message):
        model(ids)
    with pytest.raises(error, match=message):
        model.embed(ids)
    with pytest.raises(ValueError, match="start must be an int >= 0"):
        model.embed(torch.zeros(1, 2, dtype=torch.long), start=-1)


def test_the_early_exit_loss_needs_one_weight_per_exit_and_token_ids_as_targets():
    logits = [torch.zeros(1, 3, 14), torch.zeros(1, 3, 14)]
    targets = torch.zeros(1, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="got 1 weights for 2 exits"):  # it summed the first exit only
        early_exit_loss(logits, targets, (1.0,))
    with pytest.raises(ValueError, match="exit_logits must hold at least one exit's logits"):  # it returned 0
        early_exit_loss([], targets, ())
    with pytest.raises(ValueError, match="targets must hold token ids from 0 to 13"):
        early_exit_loss(logits, torch.full((1, 3), 14), (1.0, 1.0))
    with pytest.raises(ValueError, match="targets .* of the same batch and time"):
        early_exit_loss(logits, torch.zeros(1, 4, dtype=torch.long), (1.0, 1.0))
    with pytest.raises(ValueError, match=r"weights\[0\] must be a finite number >= 0"):
        early_exit_loss(logits, targets, (float("nan"), 1.0))


def test_exit_accuracy_takes_one_text_and_gives_nan_for_a_kind_that_never_occurs():
    model = EarlyExitLM(LMConfig(**TINY)).eval()
    text = torch.randint(0, 14, (60,), generator=torch.Generator().manual_seed(0))
    kinds = torch.zeros(60, dtype=torch.long)  # every token of kind 0: kinds 1 to 3 never occur
    accuracy = exit_accuracy(model, text, kinds, len(KINDS))
    assert accuracy.shape == (2, 4) and not accuracy[:, 0].isnan().any()
    assert accuracy[:, 1:].isnan().all()  # not 0.0, which would read as "always wrong"
    with pytest.raises(ValueError, match=r"tokens must be a 1-D tensor of token ids, got shape \(2, 30\)"):
        exit_accuracy(model, text.reshape(2, 30), kinds.reshape(2, 30), len(KINDS))  # it returned zeros
    with pytest.raises(ValueError, match="kinds must hold kind indices from 0 to 3"):
        exit_accuracy(model, text, torch.full((60,), 4), len(KINDS))
    with pytest.raises(ValueError, match="tokens and kinds must be as long as each other"):
        exit_accuracy(model, text, kinds[:50], len(KINDS))
    with pytest.raises(TypeError, match="model must be an EarlyExitLM"):
        exit_accuracy(None, text, kinds, len(KINDS))


def test_a_cache_needs_one_layer_or_more():
    with pytest.raises(ValueError, match="layers must be an int >= 1"):
        KVCache(0)


def test_every_prediction_over_a_long_text_sees_half_a_context_before_it():
    """Row i predicts token i + 1 from a window that holds at least context // 2 tokens before it
    (all of them near the text's start), and every position is predicted exactly once."""
    from earlyexit.transformer import exit_logits_over

    torch.manual_seed(0)
    model = EarlyExitLM(LMConfig(layers=2, width=16, heads=2, context=12)).eval()
    tokens = torch.randint(0, 14, (41,))
    rows = exit_logits_over(model, tokens)
    assert [len(r) for r in rows] == [40, 40]
    with torch.no_grad():
        for i in range(40):
            start = 0 if i < 12 else (i - 6) // 6 * 6  # windows start every 6 tokens
            assert i - start >= min(i, 6) and i - start < 12
            expected = [out[0, i - start] for out in model(tokens[None, start:start + 12])]
            for got, want in zip(rows, expected):
                torch.testing.assert_close(got[i], want)
