"""The gallery's --quick runs, with floors far above chance (issue 10's examples)."""
import importlib.util
import pathlib

import pytest

import sigma.data

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _require(dataset):
    try:
        sigma.data.load(dataset, split="test", download=False)
    except sigma.data.DataError as error:
        pytest.skip(f"{dataset} is not on the data search path here: {error}")


@pytest.mark.slow
def test_custom_optimiser_passes_the_kit_and_trains():
    _require("mnist")
    result = _load("custom_optimiser").main(["--quick"])
    assert result["test_accuracy"] >= 0.92   # ~95% after 300 steps; chance is 10%
    assert "adabelief" in sigma.optim.available()


@pytest.mark.slow
def test_residual_cnn_learns_fashion_mnist():
    _require("fashion_mnist")
    result = _load("residual_fashion_mnist").main(["--quick"])
    assert result["test_accuracy"] >= 0.55   # 60 steps of 64; chance is 10%


@pytest.mark.slow
def test_character_lstm_beats_every_memoryless_model():
    result = _load("lstm_characters").main(["--quick"])
    # below the entropy of the character frequencies: it uses the context
    assert result["bits_per_char"] < result["baseline_bits"] - 0.5
    assert result["curve"][-1] < result["curve"][0] - 1.0
