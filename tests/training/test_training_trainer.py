"""The training loop: targets, until, priorities, threads (pause/resume/stop), commands, smoke runs, seeds, errors."""
import threading
import time

import numpy as np
import pytest

import sigma
import sigma.data
import sigma.optim
from sigma import nn
from sigma.io import RunDirectory
from sigma.training import Trainer, at, every, hooks, on, threshold
from sigma.training.hooks import PRIORITY_READER, PRIORITY_WRITER, Lambda

from training_helpers import blobs, make_network, make_trainer, parameters


def test_run_trains_and_reports_every_standard_key():
    trainer = make_trainer()
    before = trainer.evaluate("validation")
    result = trainer.run(epochs=5)
    assert (result.epoch, result.iteration) == (5, 35)
    assert result.reason == "reached 5 epochs"
    for key in ("train/loss", "train/accuracy", "validation/loss", "validation/accuracy", "lr", "throughput",
                "time/step"):
        assert key in result.metrics, key
    assert result.metrics["validation/accuracy"] >= 0.9 > before["accuracy"]
    assert result.metrics["validation/loss"] < before["loss"]
    assert result.metrics["lr"] == 0.01


def test_targets_count_from_the_start_of_training():
    trainer = make_trainer()
    assert trainer.run(epochs=1).iteration == 7
    assert trainer.run(epochs=2).iteration == 14
    assert trainer.run(iterations=17).iteration == 17
    result = trainer.run(iterations=10)  # already past: nothing to do
    assert (result.iteration, result.reason) == (17, "reached 10 iterations")
    assert trainer.run(epochs=2.5).iteration == 18  # 2.5 epochs of 7 batches: 17.5, so 18 steps


def test_until_stops_after_the_step_that_makes_it_true():
    trainer = make_trainer()
    result = trainer.run(epochs=50, until=at(5, "iterations"))
    assert result.iteration == 5 and result.reason.startswith("until at(5")
    trainer = make_trainer()
    result = trainer.run(epochs=50, until=threshold("validation/accuracy", above=0.8))
    assert result.metrics["validation/accuracy"] > 0.8 and result.epoch < 50
    assert result.iteration % 7 == 0  # validation exists only at epoch ends


def test_run_needs_a_length_and_valid_arguments():
    trainer = make_trainer()
    with pytest.raises(ValueError, match="epochs=, iterations= or until="):
        trainer.run()
    with pytest.raises(ValueError, match="positive"):
        trainer.run(epochs=0)
    with pytest.raises(TypeError, match="condition"):
        trainer.run(until=lambda moment: True)


def test_writers_run_before_readers_whatever_the_order_they_were_added():
    calls = []

    def reader(trainer):
        calls.append(("reader", trainer.position.iteration, trainer.observation.get("custom/double_loss")))

    def writer(trainer):
        trainer.observation["custom/double_loss"] = 2 * trainer.observation["train/loss"]
        calls.append(("writer", trainer.position.iteration, None))

    trainer = make_trainer(hooks=[Lambda(reader, priority=PRIORITY_READER, name="reader"),
                                  Lambda(writer, priority=PRIORITY_WRITER, name="writer")])
    trainer.run(iterations=2)
    assert [c[:2] for c in calls] == [("writer", 1), ("reader", 1), ("writer", 2), ("reader", 2)]
    assert calls[1][2] is not None and calls[1][2] > 0
    names = [h.name for h in trainer.hooks]
    assert names.index("timer") < names.index("writer") < names.index("non_finite_guard") < names.index("reader")


def test_hook_names_are_made_unique_and_found_by_name():
    trainer = make_trainer(hooks=[Lambda(print, every(9)), Lambda(print, every(9))])
    assert {"lambda", "lambda_2"} <= {h.name for h in trainer.hooks}
    assert trainer.hook("lambda_2").trigger.n == 9
    with pytest.raises(KeyError, match="no hook named 'missing'"):
        trainer.hook("missing")
    with pytest.raises(TypeError, match="Lambda"):
        trainer.add_hook(print)


def _wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.002)


def test_pause_step_resume_stop_from_another_thread():
    events = []
    trainer = make_trainer(evaluation=False, hooks=[
        Lambda(lambda t: events.append((t.moment.event, t.position.iteration)), on("pause") | on("resume"))])
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(result=trainer.run(epochs=10_000)))
    thread.start()
    try:
        _wait_for(lambda: trainer.position.iteration >= 3)
        trainer.pause()
        _wait_for(lambda: trainer.paused)
        paused_at = trainer.position.iteration
        time.sleep(0.1)
        assert trainer.position.iteration == paused_at and thread.is_alive()
        trainer.send("step", count=2)
        _wait_for(lambda: trainer.position.iteration == paused_at + 2)
        time.sleep(0.05)
        assert trainer.position.iteration == paused_at + 2 and trainer.paused
        trainer.resume()
        _wait_for(lambda: trainer.position.iteration > paused_at + 5)
        trainer.stop("enough")
        thread.join(timeout=20)
    finally:
        trainer.stop()
        thread.join(timeout=20)
    assert not thread.is_alive()
    assert outcome["result"].reason == "enough"
    assert events == [("pause", paused_at), ("resume", paused_at + 2)]


def test_stop_while_paused_ends_the_run():
    trainer = make_trainer(evaluation=False, hooks=[Lambda(lambda t: t.pause(), at(2))])
    thread = threading.Thread(target=trainer.run, kwargs={"epochs": 100})
    thread.start()
    _wait_for(lambda: trainer.paused)
    trainer.stop()
    thread.join(timeout=20)
    assert not thread.is_alive() and trainer.position.iteration == 2 and not trainer.running


def test_commands_apply_between_steps_and_are_logged(tmp_path):
    lrs = {}
    trainer = make_trainer(run_directory=tmp_path / "run", hooks=[
        Lambda(lambda t: lrs.update({t.position.iteration: t.observation["lr"]}), every(1)),
        Lambda(lambda t: t.send("set_lr", value=0.5), at(3), name="edit"),
        Lambda(lambda t: t.send("set_lr", value=-1.0), at(4), name="bad_edit"),
        Lambda(lambda t: t.send("set_hyperparameter", name="momentum", value=0.9), at(4), name="unknown"),
        Lambda(lambda t: t.send("checkpoint"), at(5), name="save")])
    trainer.run(iterations=6)
    assert lrs[3] == 0.01 and lrs[4] == 0.5 and lrs[6] == 0.5
    assert trainer.optimiser.param_groups[0]["lr"] == 0.5
    records, _ = RunDirectory.open(tmp_path / "run").read_events()
    commands = [(r["kind"], r["name"], r["iteration"]) for r in records if r["kind"].startswith("command")]
    assert commands == [("command", "set_lr", 3), ("command", "set_lr", 4), ("command_failed", "set_lr", 4),
                        ("command", "set_hyperparameter", 4), ("command_failed", "set_hyperparameter", 4),
                        ("command", "checkpoint", 5)]
    failures = [r["error"] for r in records if r["kind"] == "command_failed"]
    assert "lr" in failures[0] and "no hyperparameter 'momentum'" in failures[1]
    assert (tmp_path / "run" / "checkpoints" / "manual-00000005.h5").is_file()
    with pytest.raises(KeyError, match="unknown trainer command 'rewind'"):
        trainer.send("rewind")


def test_registered_commands_run_in_the_training_loop():
    seen = []
    trainer = make_trainer(evaluation=False, hooks=[Lambda(lambda t: t.send("note", text="hi"), at(2))])
    trainer.register_command("note", lambda t, text: seen.append((text, t.position.iteration,
                                                                  threading.current_thread().name)))
    trainer.run(iterations=4)
    assert seen == [("hi", 2, threading.current_thread().name)]


def test_a_command_whose_arguments_json_cannot_hold_is_logged_not_fatal(tmp_path):
    seen = []
    trainer = make_trainer(evaluation=False, run_directory=tmp_path / "run",
                           hooks=[Lambda(lambda t: t.send("look", image=np.ones((2, 2)), thing=object()), at(2))])
    trainer.register_command("look", lambda t, image, thing: seen.append(image.sum()))
    result = trainer.run(iterations=4)
    assert result.iteration == 4 and seen == [4.0]
    records, _ = RunDirectory.open(tmp_path / "run").read_events()
    logged = [r for r in records if r["kind"] == "command"][0]["arguments"]
    assert logged["image"] == [[1.0, 1.0], [1.0, 1.0]] and logged["thing"].startswith("<object object")


def test_restoring_without_a_stateless_hook_of_the_saving_run_does_not_warn(tmp_path, caplog):
    saving = make_trainer(evaluation=False, hooks=[Lambda(lambda t: None, every(1), name="watcher")])
    saving.run(iterations=2)
    saving.save_checkpoint(tmp_path / "a.h5")
    with caplog.at_level("WARNING"):
        make_trainer(evaluation=False).restore(tmp_path / "a.h5")
    assert "does not have" not in caplog.text


    class Counter(hooks.Hook):
        def __init__(self):
            super().__init__(every(1), name="counter")
            self.calls = 0

        def __call__(self, trainer):
            self.calls += 1

        def state_dict(self):
            return {"calls": self.calls}

    with_state = make_trainer(evaluation=False, hooks=[Counter()])
    with_state.run(iterations=2)
    with_state.save_checkpoint(tmp_path / "b.h5")
    with caplog.at_level("WARNING"):
        make_trainer(evaluation=False).restore(tmp_path / "b.h5")
    assert "does not have: ['counter']" in caplog.text


class CountingBatches:
    """Wraps batches and counts how many were taken."""

    def __init__(self, batches):
        self.batches, self.taken = batches, 0

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        for batch in self.batches:
            self.taken += 1
            yield batch


def test_fast_dev_run_runs_every_hook_briefly_and_writes_no_files(tmp_path):
    sigma.manual_seed(0)
    data = blobs()
    network = make_network()
    validation = CountingBatches(sigma.data.MinibatchIterator(data, batch_size=10, shuffle=False))
    calls = []
    trainer = Trainer(network, nn.CrossEntropyLoss(), sigma.optim.SGD(network.parameters(), lr=0.1),
                      sigma.data.MinibatchIterator(data, batch_size=16, seed=0), evaluation={"validation": validation},
                      hooks=[hooks.Checkpoint(directory=tmp_path / "checkpoints"),
                             Lambda(lambda t: calls.append(t.position.iteration), every(1, "epoch"))],
                      run_directory=tmp_path / "run", fast_dev_run=2)
    result = trainer.run(epochs=100)
    assert result.iteration == 2 and result.reason.startswith("fast_dev_run")
    assert calls == [2]  # the two steps count as one epoch, so epoch hooks ran once
    assert validation.taken == 2 and "validation/accuracy" in result.metrics
    assert not (tmp_path / "checkpoints").exists()  # the Checkpoint hook never ran
    assert not (tmp_path / "run" / "events.jsonl").exists()


def test_seed_makes_dropout_repeatable_and_different_seeds_differ():
    finals = []
    for seed in (7, 7, 8):
        trainer = make_trainer(evaluation=False, dropout=0.5, seed=seed)
        sigma.manual_seed(123)  # disturbed on purpose: the trainer's seed decides the dropout masks
        trainer.run(iterations=5)
        finals.append(parameters(trainer)["3.weight"])
    assert np.array_equal(finals[0], finals[1])
    assert not np.array_equal(finals[0], finals[2])


def test_an_error_fires_error_hooks_marks_the_run_failed_and_propagates(tmp_path):
    seen = []

    def explode(trainer):
        raise RuntimeError("boom at three")

    trainer = make_trainer(run_directory=tmp_path / "run", hooks=[
        Lambda(explode, at(3), name="explode"),
        Lambda(lambda t: seen.append(t.moment.event), on("error") | on("stop"), name="watch")])
    with pytest.raises(RuntimeError, match="boom at three"):
        trainer.run(epochs=1)
    assert seen == ["error"] and not trainer.running
    run = RunDirectory.open(tmp_path / "run")
    assert run.read_description()["status"] == "failed"
    errors = [r for r in run.read_events()[0] if r["kind"] == "error"]
    assert len(errors) == 1 and "boom at three" in errors[0]["error"] and errors[0]["iteration"] == 3


class UnsizedBatches:
    """Three batches per epoch and no len(): the trainer learns of the epoch's end when they run out."""

    def __init__(self, data):
        self.data = data

    def __iter__(self):
        for start in range(0, 30, 10):
            yield self.data.batch(slice(start, start + 10))


def test_data_without_length_ends_epochs_when_exhausted():
    sigma.manual_seed(0)
    network = make_network()
    epochs = []
    trainer = Trainer(network, nn.CrossEntropyLoss(), sigma.optim.SGD(network.parameters(), lr=0.1),
                      UnsizedBatches(blobs()),
                      hooks=[Lambda(lambda t: epochs.append((t.moment.event, t.position.epoch, t.position.iteration)),
                                    every(1, "epoch"))])
    result = trainer.run(epochs=2)
    assert epochs == [("epoch", 1, 3), ("epoch", 2, 6)]
    assert (result.epoch, result.iteration) == (2, 6)


def test_pairs_work_as_batches_and_bad_batches_are_named():
    sigma.manual_seed(0)
    network = make_network()
    x = sigma.randn(8, 6)
    y = sigma.tensor(np.arange(8) % 3)
    trainer = Trainer(network, nn.CrossEntropyLoss(), sigma.optim.SGD(network.parameters(), lr=0.1), [(x, y)] * 2)
    assert trainer.run(epochs=1).iteration == 2
    trainer = Trainer(network, nn.CrossEntropyLoss(), sigma.optim.SGD(network.parameters(), lr=0.1),
                      [{"images": x, "labels": y}])
    with pytest.raises(KeyError, match=r"'inputs' and 'targets'.*\['images', 'labels'\]"):
        trainer.run(epochs=1)
    empty = Trainer(network, nn.CrossEntropyLoss(), sigma.optim.SGD(network.parameters(), lr=0.1), [])
    with pytest.raises(ValueError, match="yielded no batches"):
        empty.run(epochs=1)


def test_evaluate_matches_a_direct_computation():
    trainer = make_trainer()
    trainer.run(epochs=1)
    result = trainer.evaluate("validation", top_k=(1, 2))
    data = blobs(40, seed=0).batch(slice(None))
    trainer.network.eval()
    with sigma.no_grad():
        outputs = trainer.network(sigma.tensor(data["inputs"]))
        loss = nn.CrossEntropyLoss()(outputs, sigma.tensor(data["targets"])).item()
    trainer.network.train()
    scores = outputs.numpy()
    ranks = (scores > scores[np.arange(40), data["targets"]][:, None]).sum(axis=1)
    assert result["loss"] == pytest.approx(loss, rel=1e-5)
    assert result["accuracy"] == np.mean(scores.argmax(axis=1) == data["targets"])
    assert result["top2_accuracy"] == np.mean(ranks < 2)
    with pytest.raises(KeyError, match="no evaluation data named 'test'"):
        trainer.evaluate("test")


def test_gradient_clip_bounds_the_gradient_norm():
    trainer = make_trainer(lr=0.01, gradient_clip=0.05, hooks=[hooks.GradientNorm()])
    norms = []
    trainer.add_hook(Lambda(lambda t: norms.append(t.observation["train/gradient_norm"]), every(1)))
    trainer.run(iterations=5)
    assert max(norms) <= 0.05 * (1 + 1e-5) and min(norms) > 0.01
    with pytest.raises(ValueError, match="gradient_clip"):
        make_trainer(gradient_clip=0)


def test_forward_only_optimisers_train_through_the_same_loop():
    sigma.manual_seed(0)
    network = make_network(dropout=0.0)
    optimiser = sigma.optim.RandomSearch(network.parameters(), lr=0.05, population=8)
    trainer = Trainer(network, nn.CrossEntropyLoss(), optimiser,
                      sigma.data.MinibatchIterator(blobs(), batch_size=100, seed=0),
                      evaluation={"validation": sigma.data.MinibatchIterator(blobs(), batch_size=100, shuffle=False)})
    losses = []
    trainer.add_hook(Lambda(lambda t: losses.append(t.observation["validation/loss"]), every(1, "epoch")))
    trainer.run(epochs=15)
    assert losses[-1] < losses[0]
    assert all(b <= a for a, b in zip(losses, losses[1:]))  # full batch: random search never goes uphill


def test_classification_is_told_apart_from_regression():
    from sigma.training.metrics import class_labels, top_k_correct
    scores = sigma.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]])
    assert class_labels(scores, sigma.tensor([1, 2])).tolist() == [1, 2]
    assert class_labels(scores, sigma.tensor([[0.0, 1.0, 0.0], [0.2, 0.1, 0.7]])).tolist() == [1, 2]
    assert class_labels(scores, sigma.tensor([[0.5, 1.5, 2.0], [1.0, 0.0, 3.0]])) is None  # regression targets
    assert class_labels(sigma.tensor([[0.3], [0.9]]), sigma.tensor([[1.0], [0.0]])) is None  # one output
    assert top_k_correct(scores, sigma.tensor([1, 2]), 1) == 1 and top_k_correct(scores, sigma.tensor([1, 2]), 2) == 2
    with pytest.raises(ValueError, match=r"expected \(N, C\) scores"):
        top_k_correct(scores, sigma.tensor([0.5, 0.5]))
