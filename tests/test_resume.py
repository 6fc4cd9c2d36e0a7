"""A run stopped and resumed from its saved state gives the weights and log of an unbroken run,
and a state file that is damaged or of another run is refused, naming the file."""

import pytest
import torch

from earlyexit.checkpoints import CheckpointError
from earlyexit.pretrain import main as pretrain_main
from earlyexit.resume import Resumable
from earlyexit.text import make_splits
from earlyexit.transformer import LMConfig, train_lm

TINY = dict(layers=2, width=16, heads=2, context=24, steps=30, batch_size=8)


@pytest.fixture(scope="module")
def data():
    return make_splits(train_chains=200, held_out_chains=20)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_a_resumed_run_gives_the_unbroken_runs_weights_and_losses(data, tmp_path):
    config = LMConfig(**TINY)
    whole = train_lm(config, data, progress=False)
    state = tmp_path / "run.resume.pt"
    first = train_lm(config, data, progress=False, stop_after=13, resume=state)  # 13: mid-interval of the loss log
    assert state.is_file() and not _same_weights(first.model, whole.model)
    resumed = train_lm(config, data, progress=False, resume=state)
    assert _same_weights(resumed.model, whole.model)
    assert resumed.losses == whole.losses
    assert resumed.log["validation_accuracy"] == whole.log["validation_accuracy"]
    assert [s["from_step"] for s in resumed.log["segments"]] == [0, 13]
    assert "segments" not in whole.log  # an unbroken run's log is as before
    assert resumed.train_seconds >= first.train_seconds


def test_a_doctored_resume_misses_the_unbroken_run(data, tmp_path):
    """The test above can fail: resuming without the drawer's generator (other windows) changes the weights."""
    config = LMConfig(**TINY)
    whole = train_lm(config, data, progress=False)
    state = tmp_path / "run.resume.pt"
    train_lm(config, data, progress=False, stop_after=13, resume=state)
    saved = torch.load(state, weights_only=True)
    saved["generator"] = torch.Generator().manual_seed(12345).get_state()
    torch.save(saved, state)
    resumed = train_lm(config, data, progress=False, resume=state)
    assert not _same_weights(resumed.model, whole.model)


def test_a_state_of_another_configuration_is_refused(data, tmp_path):
    state = tmp_path / "run.resume.pt"
    train_lm(LMConfig(**TINY), data, progress=False, stop_after=5, resume=state)
    with pytest.raises(CheckpointError, match="another configuration"):
        train_lm(LMConfig(**{**TINY, "seed": 1}), data, progress=False, resume=state)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing key"])
def test_a_damaged_state_is_refused_naming_the_file(data, tmp_path, damage):
    state = tmp_path / "run.resume.pt"
    config = LMConfig(**TINY)
    train_lm(config, data, progress=False, stop_after=5, resume=state)
    if damage == "truncate":
        state.write_bytes(state.read_bytes()[:1000])
    elif damage == "garbage":
        state.write_bytes(b"not a checkpoint")
    else:
        saved = torch.load(state, weights_only=True)
        del saved["optimiser"]
        torch.save(saved, state)
    with pytest.raises(CheckpointError, match="run.resume.pt is damaged"):
        train_lm(config, data, progress=False, resume=state)


def test_a_pickled_object_in_the_state_is_not_run(data, tmp_path):
    state = tmp_path / "run.resume.pt"
    config = LMConfig(**TINY)
    train_lm(config, data, progress=False, stop_after=5, resume=state)
    saved = torch.load(state, weights_only=True)
    saved["losses"] = Resumable  # any class: weights_only loading refuses to build it
    torch.save(saved, state)
    with pytest.raises(CheckpointError, match="damaged"):
        train_lm(config, data, progress=False, resume=state)


def test_resuming_refuses_a_cuda_graph(data, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs a GPU")
    with pytest.raises(ValueError, match="cuda_graph=False"):
        train_lm(LMConfig(**TINY), data, progress=False, device="cuda", resume=tmp_path / "x.pt")


def test_the_command_line_offers_resume():
    with pytest.raises(SystemExit):
        pretrain_main(["--resume", "--help"])
