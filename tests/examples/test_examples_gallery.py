"""The gallery's --quick runs, with floors far above chance (issue 10's examples)."""
import pytest

import sigma.io
import sigma.optim
from example_scripts import load_example, require_dataset


@pytest.mark.slow
def test_custom_optimiser_passes_the_kit_and_trains():
    require_dataset("mnist")
    result = load_example("custom_optimiser").main(["--quick"])
    assert result["test_accuracy"] >= 0.92   # ~95% after 300 steps; chance is 10%
    assert "adabelief" in sigma.optim.available()


@pytest.mark.slow
def test_residual_cnn_learns_fashion_mnist():
    require_dataset("fashion_mnist")
    result = load_example("residual_fashion_mnist").main(["--quick"])
    assert result["test_accuracy"] >= 0.55   # 60 steps of 64; chance is 10%


@pytest.mark.slow
def test_character_lstm_beats_every_memoryless_model():
    result = load_example("lstm_characters").main(["--quick"])
    # below the entropy of the character frequencies: it uses the context
    assert result["bits_per_char"] < result["baseline_bits"] - 0.5
    assert result["curve"][-1] < result["curve"][0] - 1.0


@pytest.mark.slow
def test_mpi_example_trains_on_one_rank_without_mpirun(tmp_path):
    example = load_example("mpi_training")
    result = example.main(["--quick", "--sample", "--out", str(tmp_path)])  # the digits bundled with Sigma
    assert (result["ranks"], result["rank"], result["iterations"]) == (1, 0, 120)
    assert result["passed"] and result["test_accuracy"] >= example.QUICK_FLOOR   # 0.88 on 400 test digits; chance is 10%
    assert example.parameter_checksum(sigma.io.load_weights(result["checkpoint"])) == result["checksum"]
    assert (tmp_path / "parameters-rank0.sha256").read_text().strip() == result["checksum"]


def test_mpi_example_fails_below_its_floor(tmp_path, capsys):
    result = load_example("mpi_training").main(["--quick", "--sample", "--steps", "3", "--floor", "0.99",
                                                "--out", str(tmp_path)])
    assert not result["passed"] and result["iterations"] == 3
    assert f"test accuracy {result['test_accuracy']:.4f} is below the floor 0.99" in capsys.readouterr().out
