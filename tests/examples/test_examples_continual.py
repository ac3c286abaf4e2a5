"""examples/continual_learning.py --quick: a digit model learns dresses from feedback, forward passes only.

One quick run (a module fixture, well under a minute on 2 cores) serves
the checks: dress accuracy rises far above its start, digit accuracy keeps
a floor, and the run directory it writes carries the accuracies that
``python -m sigma_gui RUN_DIR`` charts.
"""
import pytest

from example_scripts import load_example, require_dataset
from sigma.io import RunDirectory


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    require_dataset("mnist")
    require_dataset("fashion_mnist")
    folder = tmp_path_factory.mktemp("continual")
    result = load_example("continual_learning").main(["--quick", "--run-dir", str(folder / "run"),
                                                      "--plot", str(folder / "continual.png")])
    return result, folder


@pytest.mark.slow
def test_the_model_learns_dresses_while_it_keeps_its_digits(quick_run):
    result, folder = quick_run
    digits, dresses = result["digit_accuracy"], result["dress_accuracy"]
    assert result["steps"][0] == 0 and result["updates"] == result["steps"][-1]
    assert dresses[0] < 0.15                       # the base model has never seen a dress
    assert dresses[-1] >= dresses[0] + 0.3         # 2% -> ~57% after the quick run's 100 updates
    assert min(digits) >= 0.8                      # digits stay near the base model's ~93% (~85% at the end)
    assert min(digits) >= digits[0] - 0.12
    assert (folder / "continual.png").stat().st_size > 20_000   # curves and two 16x16 grids


@pytest.mark.slow
def test_the_run_directory_holds_the_accuracies_for_the_gui(quick_run):
    result, _ = quick_run
    run = RunDirectory.open(result["run_directory"])
    events, _ = run.read_events()
    metrics = [event for event in events if event["kind"] == "metrics"]
    assert len(metrics) == result["updates"]       # one record per served request
    served = [event["values"] for event in metrics]
    assert all({"served_digits/accuracy", "served_dresses/accuracy", "train/loss"} <= set(v) for v in served)
    evaluated = [(event["iteration"], event["values"]["dresses/accuracy"]) for event in metrics
                 if "dresses/accuracy" in event["values"]]
    # the last evaluation in the log is the example's last point (the first is folded into step 1's record)
    assert evaluated[-1] == (result["steps"][-1], pytest.approx(result["dress_accuracy"][-1]))
    assert run.read_description()["status"] == "finished"
    sigma_gui_sources = pytest.importorskip("sigma_gui.sources")
    records = sigma_gui_sources.RunDirectorySource(run.path).poll(100_000)   # what the window reads
    shown = [r for r in records if r["kind"] == "metrics" and "digits/accuracy" in r["values"]]
    assert shown and shown[-1]["values"]["digits/accuracy"] == pytest.approx(result["digit_accuracy"][-1])
