"""Every built-in hook: timer, learning rate, evaluators, statistics, NaN guard, early stopping,
schedules, checkpoints (top-k, last, templates) and the lambda hook."""
import math

import numpy as np
import pytest

import sigma
import sigma.data
import sigma.io
import sigma.optim
from sigma import nn
from sigma.training import NonFiniteError, Trainer, at, every, hooks, on
from sigma.training.hooks import PRIORITY_WRITER, Lambda

from training_helpers import blobs, make_network, make_trainer, parameters


def record(key_or_function, trigger=None, priority=hooks.PRIORITY_READER - 10):
    """A reader that collects (iteration, value) pairs."""
    seen = []
    read = key_or_function if callable(key_or_function) else (lambda t: t.observation.get(key_or_function))
    hook = Lambda(lambda t: seen.append((t.position.iteration, read(t))), trigger or every(1), priority,
                  name=f"record_{id(seen)}")
    return hook, seen


def scripted(key, values, trigger=None):
    """A writer that puts the next of `values` under `key` at each trigger."""
    sequence = iter(values)
    return Lambda(lambda t: t.observation.__setitem__(key, next(sequence)), trigger or every(1, "epoch"),
                  PRIORITY_WRITER, name=f"script_{key.replace('/', '_')}")


def test_timer_reports_throughput_of_each_step():
    recorder, seen = record(lambda t: (t.last_batch_size, t.observation["time/step"], t.observation["throughput"]))
    make_trainer(evaluation=False, hooks=[recorder]).run(epochs=1)
    sizes = [size for _, (size, _, _) in seen]
    assert sizes == [16] * 6 + [4]
    for _, (size, seconds, throughput) in seen:
        assert seconds > 0 and throughput == pytest.approx(size / seconds)


def test_learning_rate_reports_every_group():
    sigma.manual_seed(0)
    network = make_network()
    optimiser = sigma.optim.SGD([{"params": [network[0].weight, network[0].bias]},
                                 {"params": [network[3].weight, network[3].bias], "lr": 0.5}], lr=0.1)
    recorder, seen = record(lambda t: (t.observation["lr"], t.observation["lr/group1"]))
    Trainer(network, nn.CrossEntropyLoss(), optimiser, sigma.data.MinibatchIterator(blobs(), batch_size=50, seed=0),
            hooks=[recorder]).run(iterations=2)
    assert [value for _, value in seen] == [(0.1, 0.5), (0.1, 0.5)]


def test_evaluator_on_its_own_trigger_with_top_k():
    sigma.manual_seed(0)
    validation = sigma.data.MinibatchIterator(blobs(40), batch_size=15, shuffle=False)
    evaluator = hooks.Evaluator("held_out", validation, trigger=every(3, "iterations"), top_k=(1, 3))
    recorder, seen = record(lambda t: {k: t.observation.get(k) for k in evaluator.keys})
    trainer = make_trainer(evaluation=False, hooks=[evaluator, recorder])
    trainer.run(iterations=6)
    written = {i: v for i, v in seen if v["held_out/loss"] is not None}
    assert sorted(written) == [3, 6]
    direct = trainer.evaluate(validation, top_k=(1, 3))
    assert written[6] == {"held_out/loss": direct["loss"], "held_out/accuracy": direct["accuracy"],
                          "held_out/top3_accuracy": 1.0}  # 3 classes: the true one is always in the top 3
    with pytest.raises(ValueError, match="no '/'"):
        hooks.Evaluator("validation/x", validation)


def test_evaluator_on_regression_writes_only_the_loss():
    sigma.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(32, 3)).astype(np.float32)
    data = sigma.data.InMemoryDataset(inputs=x, targets=(x.sum(axis=1, keepdims=True)).astype(np.float32))
    network = nn.Linear(3, 1)
    trainer = Trainer(network, nn.MSELoss(), sigma.optim.SGD(network.parameters(), lr=0.1),
                      sigma.data.MinibatchIterator(data, batch_size=8, seed=0),
                      evaluation={"validation": sigma.data.MinibatchIterator(data, batch_size=32, shuffle=False)})
    result = trainer.run(epochs=20)
    assert result.metrics["validation/loss"] < 0.05
    assert "validation/accuracy" not in result.metrics and "train/accuracy" not in result.metrics


def test_gradient_norm_matches_numpy():
    recorder, seen = record(lambda t: (dict(t.observation),
                                       {n: p.grad.numpy().copy() for n, p in t.network.named_parameters()}))
    make_trainer(evaluation=False, hooks=[hooks.GradientNorm(per_parameter=True), recorder]).run(iterations=3)
    for _, (observation, grads) in seen:
        per_parameter = {name: np.linalg.norm(g.astype(np.float64)) for name, g in grads.items()}
        for name, norm in per_parameter.items():
            assert observation[f"gradient_norm/{name}"] == pytest.approx(norm, rel=1e-12)
        assert observation["train/gradient_norm"] == pytest.approx(
            math.sqrt(sum(n ** 2 for n in per_parameter.values())), rel=1e-12)


def test_weight_statistics_match_numpy():
    statistics = hooks.WeightStatistics(("mean", "std", "norm", "min", "max"), trigger=every(2))
    recorder, seen = record(lambda t: (dict(t.observation), parameters(t)), trigger=every(2))
    make_trainer(evaluation=False, hooks=[statistics, recorder]).run(iterations=4)
    assert [i for i, _ in seen] == [2, 4]
    for _, (observation, weights) in seen:
        for name, w in weights.items():
            w = w.astype(np.float64)
            expected = {"mean": w.mean(), "std": w.std(), "norm": np.linalg.norm(w), "min": w.min(), "max": w.max()}
            for statistic, value in expected.items():
                assert observation[f"weights/{name}/{statistic}"] == pytest.approx(value, rel=1e-12, abs=1e-15)
    with pytest.raises(ValueError, match="median"):
        hooks.WeightStatistics(("median",))


class NaNAfter:
    """Cross-entropy that turns NaN from its `bad`-th call on."""

    def __init__(self, bad):
        self.calls, self.bad, self.loss = 0, bad, nn.CrossEntropyLoss()

    def __call__(self, outputs, targets):
        self.calls += 1
        loss = self.loss(outputs, targets)
        return loss * float("nan") if self.calls >= self.bad else loss


def test_nan_guard_stops_naming_the_key_and_step_and_keeps_the_last_good_checkpoint(tmp_path):
    sigma.manual_seed(0)
    network = make_network()
    trainer = Trainer(network, NaNAfter(5), sigma.optim.SGD(network.parameters(), lr=0.1),
                      sigma.data.MinibatchIterator(blobs(), batch_size=16, seed=0),
                      hooks=[hooks.Checkpoint(every(2), directory=tmp_path)])
    with pytest.raises(NonFiniteError) as caught:
        trainer.run(epochs=3)
    message = str(caught.value)
    assert "train/loss is nan at epoch 0, iteration 5" in message
    last_good = tmp_path / "epoch000-iteration00000004.h5"
    assert str(last_good) in message
    assert sorted(p.name for p in tmp_path.glob("*.h5")) == ["epoch000-iteration00000002.h5", last_good.name,
                                                              "last.h5"]
    weights = sigma.io.load_weights(tmp_path / "last.h5")
    assert all(np.isfinite(w).all() for w in weights.values())
    assert sigma.io.checkpoint_summary(tmp_path / "last.h5")["position"]["iteration"] == 4


def test_nan_guard_on_parameters_and_checkpoints_refuse_broken_weights(tmp_path):
    def poison(trainer):
        trainer.network[0].bias.data[0] = np.inf

    guarded = make_trainer(evaluation=False, hooks=[
        Lambda(poison, at(2), PRIORITY_WRITER, name="poison"),
        hooks.NonFiniteGuard(check_parameters=True, name="parameter_guard")])
    with pytest.raises(NonFiniteError, match="parameter 0.bias holds NaN or infinity at epoch 0, iteration 2"):
        guarded.run(epochs=1)
    unguarded = make_trainer(evaluation=False, hooks=[
        Lambda(poison, at(2), PRIORITY_WRITER, name="poison"), hooks.Checkpoint(every(1), directory=tmp_path)])
    with pytest.raises(NonFiniteError, match="0.bias holds NaN or infinity at iteration 2; not saved"):
        unguarded.run(epochs=1)
    assert sigma.io.checkpoint_summary(tmp_path / "last.h5")["position"]["iteration"] == 1


def test_early_stopping_stops_after_patience_and_restores_the_best_weights():
    snapshots = {}
    scores = [0.5, 0.6, 0.55, 0.58, 0.6, 0.9]
    stopper = hooks.EarlyStopping("validation/score", patience=3, mode="max")
    trainer = make_trainer(evaluation=False, hooks=[
        scripted("validation/score", scores),
        Lambda(lambda t: snapshots.update({t.position.epoch: parameters(t)}), every(1, "epoch"),
               PRIORITY_WRITER - 1, name="snapshot"),
        stopper])
    result = trainer.run(epochs=10)
    assert result.epoch == 5  # no improvement on 0.6 (epoch 2) at epochs 3, 4, 5
    assert result.reason.startswith("early stopping: validation/score has not improved on 0.6 (iteration 14)")
    assert stopper.best == 0.6 and stopper.stopped_at == 35
    final = parameters(trainer)
    for name, value in snapshots[2].items():
        assert np.array_equal(final[name], value), name
    assert not np.array_equal(snapshots[5]["3.weight"], snapshots[2]["3.weight"])


def test_early_stopping_min_delta_mode_min_and_missing_key():
    stopper = hooks.EarlyStopping("validation/loss", patience=2, min_delta=0.05, restore_best=False)
    trainer = make_trainer(evaluation=False, hooks=[scripted("validation/loss", [1.0, 0.97, 0.9, 0.87, 0.86]),
                                                    stopper])
    assert trainer.run(epochs=10).epoch == 5  # 0.9 beats 1.0 by more than 0.05; 0.87 and 0.86 do not beat 0.9
    lost = make_trainer(evaluation=False, hooks=[hooks.EarlyStopping("validation/los")])
    with pytest.raises(KeyError, match="monitors 'validation/los'.*train/loss"):
        lost.run(epochs=1)


def test_lr_schedule_steps_each_epoch_and_with_a_monitored_value():
    recorder, seen = record("lr", every(1, "epoch"), PRIORITY_WRITER - 1)
    trainer = make_trainer(evaluation=False, hooks=[recorder])
    trainer.add_hook(hooks.LRSchedule(sigma.optim.StepLR(trainer.optimiser, step_size=1, gamma=0.5)))
    trainer.run(epochs=3)
    assert [lr for _, lr in seen] == [0.01, 0.005, 0.0025]  # the rate used during each epoch
    assert trainer.optimiser.param_groups[0]["lr"] == 0.00125

    trainer = make_trainer(evaluation=False, hooks=[scripted("validation/loss", [1.0, 1.0, 1.0, 1.0])])
    trainer.add_hook(hooks.LRSchedule(sigma.optim.ReduceLROnPlateau(trainer.optimiser, factor=0.5, patience=1),
                                      monitor="validation/loss"))
    trainer.run(epochs=4)
    assert trainer.optimiser.param_groups[0]["lr"] == 0.005
    assert trainer.hook("lr_schedule").state_dict()["last_step"] == 4
    wrong = make_trainer(evaluation=False)
    wrong.add_hook(hooks.LRSchedule(sigma.optim.ReduceLROnPlateau(wrong.optimiser), trigger=every(1),
                                    monitor="validation/loss"))
    with pytest.raises(KeyError, match="LRSchedule monitors 'validation/loss'"):
        wrong.run(epochs=1)


def test_trainer_schedule_argument_steps_every_epoch():
    sigma.manual_seed(0)
    network = make_network()
    optimiser = sigma.optim.SGD(network.parameters(), lr=1.0)
    trainer = Trainer(network, nn.CrossEntropyLoss(), optimiser, sigma.data.MinibatchIterator(blobs(), batch_size=50),
                      schedule=sigma.optim.StepLR(optimiser, step_size=1, gamma=0.1))
    trainer.run(epochs=2)
    assert optimiser.param_groups[0]["lr"] == pytest.approx(0.01)


def test_checkpoint_keeps_the_top_k_by_a_monitored_key_and_last(tmp_path):
    checkpoint = hooks.Checkpoint(directory=tmp_path, filename="{epoch:03d}-{validation/score:.2f}.h5",
                                  monitor="validation/score", mode="max", save_top_k=2)
    trainer = make_trainer(evaluation=False, hooks=[scripted("validation/score", [0.3, 0.9, 0.5, 0.95, 0.1]),
                                                    checkpoint])
    trainer.run(epochs=5)
    assert sorted(p.name for p in tmp_path.glob("*.h5")) == ["002-0.90.h5", "004-0.95.h5", "last.h5"]
    assert [(e["file"], e["value"]) for e in checkpoint.kept] == [("004-0.95.h5", 0.95), ("002-0.90.h5", 0.9)]
    assert sigma.io.checkpoint_summary(tmp_path / "last.h5")["position"]["iteration"] == 35
    assert sigma.io.checkpoint_summary(tmp_path / "002-0.90.h5")["position"]["iteration"] == 14
    saved = sigma.io.load_checkpoint(tmp_path / "004-0.95.h5")["hooks"][checkpoint.name]["state"]["kept"]
    assert [entry["file"] for entry in saved] == ["004-0.95.h5", "002-0.90.h5"]  # the file lists itself


def test_checkpoint_mode_min_keep_all_and_template_errors(tmp_path):
    low = hooks.Checkpoint(directory=tmp_path / "low", filename="{epoch}.h5", monitor="validation/loss", mode="min",
                           save_top_k=1, save_last=False)
    every_one = hooks.Checkpoint(every(3), directory=tmp_path / "all", save_last=False)
    make_trainer(evaluation=False, hooks=[scripted("validation/loss", [0.5, 0.2, 0.4]), low, every_one]).run(epochs=3)
    assert [p.name for p in (tmp_path / "low").glob("*.h5")] == ["2.h5"]
    assert len(list((tmp_path / "all").glob("*.h5"))) == 7  # 21 steps, every third
    missing = make_trainer(evaluation=False, hooks=[hooks.Checkpoint(directory=tmp_path, filename="{val/acc}.h5")])
    with pytest.raises(KeyError, match="needs 'val/acc'"):
        missing.run(epochs=1)
    with pytest.raises(ValueError, match="reserved"):
        hooks.Checkpoint(filename="last.h5")
    with pytest.raises(ValueError, match="monitor="):
        hooks.Checkpoint(save_top_k=3)
    with pytest.raises(ValueError, match="run directory"):
        make_trainer(hooks=[hooks.Checkpoint()]).run(epochs=1)


def test_lambda_hook_runs_on_its_trigger_and_checks_its_function():
    recorder, seen = record(lambda t: t.moment.event, on("start") | every(4) | on("stop"))
    make_trainer(evaluation=False, hooks=[recorder]).run(iterations=9)
    assert seen == [(0, "start"), (4, "iteration"), (8, "iteration"), (9, "stop")]
    with pytest.raises(TypeError, match="function of the trainer"):
        Lambda("not callable")
    with pytest.raises(TypeError, match="condition"):
        hooks.Checkpoint(trigger=5)
