"""The book's models are planned once, and the training length follows the ladder's rule."""

import pytest

from earlyexit.checkpoints import Entry, Manifest, write_manifest
from earlyexit.recipes import Ladder, book_models, cnn_ladder, ladder_models, one_block_config
from earlyexit.training import TrainConfig


def ladder(means):
    return Ladder("epochs", {n: {"exit 1": [m - 0.001, m + 0.001], "exit 2": [m, m]} for n, m in means.items()})


def test_the_shortest_length_within_a_tenth_of_a_point_of_the_best_is_chosen():
    assert ladder({2: 0.89, 4: 0.905, 6: 0.9125, 8: 0.913, 16: 0.9128}).converged() == 6
    assert ladder({2: 0.89, 4: 0.905, 6: 0.9125, 8: 0.9136, 16: 0.9128}).converged() == 8
    assert ladder({2: 0.89, 4: 0.90, 8: 0.91}).converged() == 8  # still improving: the longest
    assert ladder({2: 0.91, 4: 0.905}).converged() == 2  # longer is worse (over-fitting)


def test_every_planned_model_is_planned_once_and_the_standard_model_is_among_them():
    names = [c.name() for c in book_models()]
    assert len(names) == len(set(names))
    assert TrainConfig().name() in names and set(c.name() for c in ladder_models()) <= set(names)


def test_a_one_block_network_trains_only_its_first_exit():
    config = one_block_config(32, seed=3)
    assert config.channels == (32, 1) and config.exit_weights == (1.0, 0.0) and config.confidence_weight == 0.0


def test_a_ladder_needs_its_models(tmp_path):
    write_manifest(Manifest({"x": Entry("x", "cnn", {})}), tmp_path)
    with pytest.raises(ValueError, match="not in the manifest yet: run `make models`"):
        cnn_ladder(tmp_path)


def test_the_recipe_trains_for_the_length_the_shipped_ladder_chooses():
    from pathlib import Path
    shipped = Path(__file__).resolve().parents[1] / "notebooks" / "models"
    assert TrainConfig().epochs == cnn_ladder(shipped).converged()


def test_the_language_model_trains_for_the_length_the_shipped_ladder_chooses():
    from pathlib import Path

    from earlyexit.recipes import lm_ladder
    from earlyexit.transformer import LMConfig
    shipped = Path(__file__).resolve().parents[1] / "notebooks" / "models"
    assert LMConfig().steps == lm_ladder(shipped).converged()


def test_the_language_ladder_reads_logs_that_re_evaluating_a_shipped_model_reproduces():
    # the ladder trusts each training log's validation score: re-derive one from the weights
    from pathlib import Path

    from earlyexit.checkpoints import load_shipped, read_manifest
    from earlyexit.text import KINDS, make_splits
    from earlyexit.transformer import EarlyExitLM, LMConfig, exit_accuracy

    shipped = Path(__file__).resolve().parents[1] / "notebooks" / "models"
    config = LMConfig(steps=1500, seed=0)
    entry = read_manifest(shipped).entries[config.name()]
    model = load_shipped(entry, lambda: EarlyExitLM(config), shipped).model
    data = make_splits()
    accuracy = exit_accuracy(model, data.validation, data.validation_kinds, len(KINDS))[:, KINDS.index("answer")]
    assert accuracy.tolist() == pytest.approx(entry.log["validation_accuracy"]["answer"], abs=1e-4)


def test_a_language_ladder_log_without_its_validation_score_is_refused(tmp_path):
    from earlyexit.recipes import lm_ladder
    from earlyexit.transformer import LMConfig

    entries = {c.name(): Entry(c.name(), "lm", c.as_json(), log={"loss": [1.0]})  # an older log format
               for c in ladder_models() if isinstance(c, LMConfig)}
    write_manifest(Manifest(entries), tmp_path)
    with pytest.raises(ValueError, match="validation accuracy scored with exit_logits_over"):
        lm_ladder(tmp_path)
