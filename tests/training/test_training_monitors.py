"""Progress bar, CSV and JSONL loggers, the run log: what they write, and how they continue after a restore."""
import csv
import io
import json
import pathlib

import pytest

from sigma.monitors import CSVLogger, JSONLLogger, ProgressBar
from sigma.monitors.csv_logger import read_rows
from sigma.training import at, every, hooks
from sigma.training.hooks import PRIORITY_WRITER, Lambda

from training_helpers import make_trainer


def losses_per_step():
    seen = {}
    return seen, Lambda(lambda t: seen.update({t.position.iteration: t.observation["train/loss"]}), every(1),
                        PRIORITY_WRITER - 1, name="losses")


def test_progress_bar_shows_epochs_losses_speed_and_epoch_summaries():
    stream = io.StringIO()
    trainer = make_trainer(hooks=[ProgressBar(refresh=0.0, file=stream)])
    trainer.run(epochs=2)
    text = stream.getvalue()
    assert "epoch 1/2" in text and "epoch 2/2" in text and "epoch 3" not in text
    assert "14/14" in text and "loss=" in text and "acc=" in text and "samples/s=" in text
    summaries = [line for line in text.replace("\r", "\n").splitlines() if line.startswith("epoch 1: ")]
    assert len(summaries) == 1 and "validation/accuracy" in summaries[0] and "train/loss" in summaries[0]


def test_progress_bar_postfix_is_the_average_since_the_last_redraw():
    stream = io.StringIO()
    bar = ProgressBar(refresh=3600.0, file=stream)  # redraws at the first step, epoch ends and events
    seen, recorder = losses_per_step()
    make_trainer(evaluation=False, hooks=[bar, recorder]).run(epochs=1)
    assert f"loss={seen[1]:.4f}" in stream.getvalue()
    mean = sum(seen[i] for i in range(2, 8)) / 6
    assert f"loss={mean:.4f}" in stream.getvalue()


def test_progress_bar_draws_the_first_step_on_a_freshly_started_machine(monkeypatch):
    # time.monotonic() counts from boot on Linux: below `refresh` for the first hour of a new machine.
    import sigma.monitors.progress_bar as progress_bar
    monkeypatch.setattr(progress_bar.time, "monotonic", lambda: 100.0)
    stream = io.StringIO()
    seen, recorder = losses_per_step()
    make_trainer(evaluation=False, hooks=[ProgressBar(refresh=3600.0, file=stream), recorder]).run(iterations=3)
    assert f"loss={seen[1]:.4f}" in stream.getvalue()


def test_csv_logger_writes_averages_per_epoch_and_widens_for_new_keys(tmp_path):
    seen, recorder = losses_per_step()
    late = Lambda(lambda t: t.observation.__setitem__("late/key", 1.5), at(10), PRIORITY_WRITER, name="late")
    trainer = make_trainer(hooks=[recorder, late, CSVLogger(tmp_path / "log.csv")])
    trainer.run(epochs=3)
    rows = read_rows(tmp_path / "log.csv")
    assert [row["iteration"] for row in rows] == ["7", "14", "21"]
    assert [float(row["epoch"]) for row in rows] == [1.0, 2.0, 3.0]
    assert float(rows[1]["train/loss"]) == pytest.approx(sum(seen[i] for i in range(8, 15)) / 7)
    assert rows[0]["late/key"] == "" and rows[1]["late/key"] == "1.5" and rows[2]["late/key"] == ""
    header = (tmp_path / "log.csv").read_text().splitlines()[0].split(",")
    assert header[:5] == ["epoch", "iteration", "time", "train/loss", "train/accuracy"]
    assert "validation/accuracy" in header and header[-1] == "late/key"


def test_csv_logger_with_chosen_keys_and_iteration_trigger(tmp_path):
    logger = CSVLogger(tmp_path / "log.csv", trigger=every(3), keys=["train/loss", "lr"])
    make_trainer(evaluation=False, hooks=[logger]).run(iterations=7)
    with open(tmp_path / "log.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["epoch", "iteration", "time", "train/loss", "lr"]
    assert [row[1] for row in rows[1:]] == ["3", "6"]


def test_jsonl_logger_writes_one_object_per_report(tmp_path):
    seen, recorder = losses_per_step()
    make_trainer(evaluation=False, hooks=[recorder, JSONLLogger(tmp_path / "log.jsonl", trigger=every(2) | on_stop())]
                 ).run(iterations=5)
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [row["iteration"] for row in rows] == [2, 4, 5]
    assert rows[1]["train/loss"] == pytest.approx((seen[3] + seen[4]) / 2)
    assert rows[2]["train/loss"] == pytest.approx(seen[5])  # the stop report flushes the last step
    assert rows[0]["epoch"] == pytest.approx(2 / 7)


def on_stop():
    from sigma.training import on
    return on("stop")


def test_loggers_continue_a_restored_run_as_if_it_had_never_stopped(tmp_path):
    def loggers():
        return [CSVLogger(tmp_path / "log.csv", trigger=every(2)), JSONLLogger(tmp_path / "log.jsonl", every(2)),
                hooks.Checkpoint(at(5), directory=tmp_path / "checkpoints")]

    make_trainer(hooks=loggers()).run(iterations=12)
    straight_csv = [{k: v for k, v in row.items() if k not in ("time", "throughput", "time/step")}
                    for row in read_rows(tmp_path / "log.csv")]
    straight_jsonl = [{k: v for k, v in json.loads(line).items() if k not in ("time", "throughput", "time/step")}
                      for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    # The same run again, "crashing" after step 8 and resuming from the checkpoint at step 5:
    make_trainer(hooks=loggers()).run(iterations=8)
    assert [row["iteration"] for row in read_rows(tmp_path / "log.csv")][-1] == "8"
    resumed = make_trainer(hooks=loggers()).restore(tmp_path / "checkpoints" / "last.h5")
    resumed.run(iterations=12)
    resumed_csv = [{k: v for k, v in row.items() if k not in ("time", "throughput", "time/step")}
                   for row in read_rows(tmp_path / "log.csv")]
    resumed_jsonl = [{k: v for k, v in json.loads(line).items() if k not in ("time", "throughput", "time/step")}
                     for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [row["iteration"] for row in resumed_csv] == ["2", "4", "6", "8", "10", "12"]
    assert resumed_csv == straight_csv  # step 6's row averages steps 5 and 6 across the restore
    assert resumed_jsonl == straight_jsonl


def test_run_log_records_metrics_and_lifecycle_events(tmp_path):
    trainer = make_trainer(run_directory=tmp_path / "run", hooks=[hooks.Checkpoint(every(5))])
    trainer.run(iterations=10)
    trainer.restore(trainer.run_directory.checkpoints / "last.h5")
    records, _ = trainer.run_directory.read_events()
    kinds = [r["kind"] for r in records]
    assert kinds.count("metrics") == 10
    saved = [r["path"] for r in records if r["kind"] == "checkpoint"]
    assert [pathlib.Path(p).name for p in saved] == ["epoch000-iteration00000005.h5", "epoch001-iteration00000010.h5"]
    assert kinds[0] == "start" and kinds[-2:] == ["stop", "restored"]
    metrics = [r for r in records if r["kind"] == "metrics"]
    assert [r["iteration"] for r in metrics] == list(range(1, 11))
    assert "validation/accuracy" in metrics[6]["values"] and "validation/accuracy" not in metrics[5]["values"]


def test_loggers_default_to_the_run_directory(tmp_path):
    trainer = make_trainer(run_directory=tmp_path / "run", hooks=[CSVLogger(), JSONLLogger()])
    trainer.run(epochs=1)
    assert [row["iteration"] for row in read_rows(tmp_path / "run" / "metrics.csv")] == ["7"]
    assert json.loads((tmp_path / "run" / "metrics.jsonl").read_text())["iteration"] == 7
    with pytest.raises(ValueError, match="CSVLogger: give a path, or give the trainer a run directory"):
        make_trainer(hooks=[CSVLogger()]).run(epochs=1)
