"""The network examples double as acceptance tests: their --quick versions run
here with clear floors; the full runs (and their numbers) live in benchmarks/."""
import pytest

from example_scripts import load_example, require_dataset


@pytest.mark.slow
def test_beautiful_mnist_quick_learns_digits():
    require_dataset("mnist")
    result = load_example("beautiful_mnist").main(["--quick"])
    # 40 steps of 128 reach ~95%; chance is 10%.
    assert result["test_accuracy"] >= 0.90
    assert result["losses"][-1] < result["losses"][0] / 4


@pytest.mark.slow
def test_mnist_mlp_quick_learns_digits():
    require_dataset("mnist")
    result = load_example("mnist_mlp").main(["--quick"])
    # one epoch reaches ~96%
    assert result["test_accuracy"] >= 0.95


@pytest.mark.slow
def test_lstm_solves_the_adding_problem_a_memoryless_net_cannot():
    result = load_example("lstm_adding").main(["--quick"])
    baseline = load_example("lstm_adding").BASELINE_MSE
    assert result["lstm_mse"] < 0.05
    # without memory the best possible is about the mean predictor's 1/6
    assert result["feedforward_mse"] > 0.12
    assert result["lstm_mse"] < 0.3 * result["feedforward_mse"] < baseline
    # the learning curve ends far below where it started
    curve = result["lstm_curve"]
    assert sum(curve[-20:]) / 20 < 0.25 * sum(curve[:20]) / 20
