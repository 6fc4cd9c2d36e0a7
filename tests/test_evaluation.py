"""What a model does on a split: per-exit accuracy, overthinking and the oracle."""

import pytest
import torch

from earlyexit.evaluation import (
    ExitRecord,
    collect,
    evaluate_rule,
    exit_accuracies,
    exit_fraction_by_class,
    overthinking,
)
from earlyexit.exits import ThresholdRule
from helpers import sharpened_model


def record_from(correct_rows):
    """A record whose exit k is right exactly where correct_rows[k] is 1 (labels are all 0)."""
    correct = torch.tensor(correct_rows, dtype=torch.bool)
    logits = tuple(torch.where(c[:, None], torch.tensor([5.0, 0.0]), torch.tensor([0.0, 5.0])) for c in correct)
    return ExitRecord(logits, tuple(torch.zeros(correct.shape[1]) for _ in correct[:-1]),
                      torch.zeros(correct.shape[1], dtype=torch.long))


def test_accuracies_are_keyed_by_exit_number():
    record = record_from([[1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]])
    assert exit_accuracies(record) == {1: 0.5, 2: 0.75, 3: 1.0}


def test_overthinking_and_the_oracle_across_three_exits():
    # sample 0: right everywhere; 1: right at exit 2 only (overthinking); 2: right at exit 3 only;
    # 3: wrong everywhere
    record = record_from([[1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0]])
    result = overthinking(record)
    assert result == {"earlier_right_final_wrong": 0.25, "final_right_all_earlier_wrong": 0.25,
                      "oracle_accuracy": 0.75}


def test_collect_runs_every_exit_once_and_checks_its_arguments():
    model = sharpened_model((8, 8, 8))
    images, labels = torch.randn(30, 1, 28, 28), torch.randint(0, 10, (30,))
    record = collect(model, images, labels, batch_size=7)
    assert record.num_exits == 3 and [len(x) for x in record.exit_logits] == [30, 30, 30]
    assert len(record.confidence_logits) == 2 and record.scores("learned", 2).shape == (30,)
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
            collect(model, images, labels, batch_size=bad)
    with pytest.raises(ValueError, match="30 images but 29 labels"):
        collect(model, images, labels[:29])


def test_exit_fraction_by_class():
    exits = torch.tensor([True, False, True, True])
    labels = torch.tensor([0, 0, 1, 2])
    assert exit_fraction_by_class(exits, labels, 4).tolist() == [0.5, 1.0, 1.0, 0.0]


def test_evaluate_rule_takes_a_plain_threshold_like_routing_and_checks_costs():
    record = record_from([[1, 1, 0, 0], [1, 1, 1, 0]])
    assert evaluate_rule(record, 0.5, (1.0, 10.0)) == evaluate_rule(record, ThresholdRule(0.5), (1.0, 10.0))
    with pytest.raises(ValueError, match=r"exit_costs\[1\] must be a finite number"):
        evaluate_rule(record, 0.5, (1.0, float("nan")))
    with pytest.raises(ValueError, match="2 exit costs for 3 exits"):
        evaluate_rule(record_from([[1, 0], [1, 0], [1, 1]]), 0.5, (1.0, 2.0))


def test_a_record_refuses_labels_that_would_compare_as_a_table():
    logits = (torch.randn(6, 3), torch.randn(6, 3))
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    with pytest.raises(ValueError, match=r"labels must be a 1-D tensor of class indices, got shape \(6, 1\)"):
        ExitRecord(logits, (torch.zeros(6),), labels[:, None])  # correct() gave a (6, 6) table and a wrong accuracy
    with pytest.raises(ValueError, match="labels must hold class indices from 0 to 2"):
        ExitRecord(logits, (torch.zeros(6),), labels + 1)
    with pytest.raises(ValueError, match="labels must hold one class index per sample"):
        ExitRecord(logits, (torch.zeros(6),), labels[:5])
    with pytest.raises(ValueError, match="every exit's logits must be"):
        ExitRecord((logits[0], torch.randn(5, 3)), (), labels)
    with pytest.raises(ValueError, match="confidence_logits must hold at most one"):
        ExitRecord(logits, (torch.zeros(6), torch.zeros(6)), labels)
    with pytest.raises(ValueError, match="exit_logits must hold at least one"):
        ExitRecord((), (), labels)


def test_an_exit_number_outside_the_record_is_refused():
    record = record_from([[1, 0], [1, 1]])
    with pytest.raises(ValueError, match="exit_number must be an int from 1 to 2, got 0"):
        record.correct(0)  # it silently read the last exit
    with pytest.raises(ValueError, match="exit_number must be an int from 1 to 2, got 3"):
        record.scores("max_softmax", 3)


def test_collect_and_the_class_shares_check_their_labels():
    model = sharpened_model((8, 16))
    images = torch.randn(4, 1, 28, 28)
    with pytest.raises(ValueError, match="labels must be a 1-D tensor of class indices"):
        collect(model, images, torch.zeros(4, 1, dtype=torch.long))
    with pytest.raises(TypeError, match="model must be an EarlyExitCNN"):
        collect(images, images, torch.zeros(4, dtype=torch.long))
    exits = torch.tensor([True, False, True])
    with pytest.raises(ValueError, match="labels must hold class indices from 0 to 2"):
        exit_fraction_by_class(exits, torch.tensor([0, 1, 5]), 3)  # it returned 6 shares for 3 classes
    with pytest.raises(TypeError, match="record must be an ExitRecord"):
        evaluate_rule(None, ThresholdRule(0.5), (1.0, 2.0))


def test_summaries_of_a_record_refuse_what_is_not_a_record():
    with pytest.raises(TypeError, match="record must be an ExitRecord"):
        exit_accuracies({"exit_logits": ()})
    with pytest.raises(TypeError, match="record must be an ExitRecord"):
        overthinking([])
