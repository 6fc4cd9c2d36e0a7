"""The skeptic's alternatives: a static network's cost, the Pareto front, and the strongest network a
budget allows, chosen on validation."""

import pytest

from earlyexit.baselines import StaticNetwork, best_within, pareto_front, static_cost
from earlyexit.flops import exit_costs, full_network_flops
from earlyexit.models import EarlyExitCNN
from earlyexit.recipes import one_block_config
from earlyexit.training import static_config


def net(name, flops, val, test=None):
    return StaticNetwork(name, flops, (val, val), (test if test is not None else val,) * 2)


def test_a_static_network_costs_its_plain_path_and_a_one_block_network_stops_at_exit_1():
    assert static_cost(static_config((8, 14))) == full_network_flops(EarlyExitCNN((8, 14)))
    one_block = static_cost(one_block_config(16))
    assert one_block == exit_costs(EarlyExitCNN((16, 32)), None)[0]  # the forum's exit 1, nothing after it


def test_the_front_keeps_only_networks_nothing_cheaper_beats():
    networks = [net("a", 100, 0.80), net("b", 200, 0.79), net("c", 300, 0.85), net("d", 300, 0.84),
                net("e", 400, 0.85)]
    assert [n.name for n in pareto_front(networks)] == ["a", "c"]


def test_the_best_network_within_a_budget_is_chosen_on_validation_not_on_test():
    networks = [net("cheap", 100, 0.80, test=0.90), net("good on validation", 200, 0.85, test=0.84)]
    assert best_within(networks, 250).name == "good on validation"
    assert best_within(networks, 150).name == "cheap"
    with pytest.raises(ValueError, match="no static network costs at most 50"):
        best_within(networks, 50)


@pytest.mark.parametrize("val, test, message", [
    ((0.9,), (0.9, 0.91), "1 validation and 2 test"),
    ((1.2, 0.9), (0.9, 0.9), r"accuracy in \[0, 1\]"),
    ((float("nan"), 0.9), (0.9, 0.9), "finite"),
])
def test_impossible_accuracies_are_refused(val, test, message):
    with pytest.raises(ValueError, match=message):
        StaticNetwork("x", 100, val, test)
