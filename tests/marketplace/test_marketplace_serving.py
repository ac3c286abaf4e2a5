"""ContinualServing: the trainer drives a ContinualLearner, reports served accuracies, checkpoints and resumes it."""
import numpy as np
import pytest

import sigma
from sigma import nn, optim
from sigma.io import RunDirectory
from sigma.training import Trainer
from sigma_marketplace import ContinualLearner, ContinualServing, Stages


class Requests:
    """Eight requests of 24 samples per epoch; group 1 (a quarter) is a class the rule below never makes."""

    def __init__(self):
        self.position = 0

    def __len__(self):
        return 8

    def request(self, index):
        rng = np.random.default_rng(index)
        inputs = rng.normal(size=(24, 6)).astype(np.float32)
        group = (np.arange(24) % 4 == 3).astype(np.int64)
        targets = np.where(group == 1, 3, (inputs[:, 0] > 0).astype(np.int64))
        inputs[group == 1] += 2.0
        return {"inputs": inputs, "targets": targets, "group": group}

    def __iter__(self):
        for _ in range(8 - self.position % 8):
            self.position += 1
            yield self.request(self.position - 1)

    def state_dict(self):
        return {"position": self.position}

    def load_state_dict(self, state):
        self.position = state["position"]


def make_trainer(run_directory=None):
    sigma.manual_seed(0)
    network = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4))
    learner = ContinualLearner(Stages.split(network, [2, 4]), nn.CrossEntropyLoss(), vendors=3, lr=0.3,
                               probe_scale=0.3, batch=48)
    operator = ContinualServing(learner, groups=("old", "new"))
    trainer = Trainer(network, nn.CrossEntropyLoss(), learner.optimiser, Requests(), operator=operator,
                      run_directory=run_directory)
    return trainer, learner, operator


def test_a_step_serves_the_request_and_reports_what_was_served_per_group():
    trainer, learner, operator = make_trainer()
    copy, copy_learner, _ = make_trainer()                 # the same learner, driven by hand
    request = Requests().request(0)
    outputs = copy_learner.serve(request["inputs"]).numpy()
    trainer.run(iterations=1)
    served = operator.last_request
    np.testing.assert_array_equal(served["predictions"], outputs.argmax(axis=1))
    correct = outputs.argmax(axis=1) == request["targets"]
    metrics = trainer.latest
    assert metrics["train/accuracy"] == pytest.approx(correct.mean())
    assert metrics["served_new/accuracy"] == pytest.approx(correct[request["group"] == 1].mean())
    assert metrics["served_old/accuracy"] == pytest.approx(correct[request["group"] == 0].mean())
    assert learner.updates == 0 and learner.served == 24     # 24 answers of the 48 an update needs
    trainer.run(iterations=2)
    assert learner.updates == 1 and learner.stale == 0


def test_the_trainer_resumes_a_serving_session_bit_identically(tmp_path):
    trainer, learner, _ = make_trainer()
    trainer.run(iterations=12)
    expected = [p.data.copy() for p in trainer.network.parameters()]
    assert learner.updates == 6

    first, _, _ = make_trainer()
    first.run(iterations=6)
    path = first.save_checkpoint(tmp_path / "serving.h5")
    resumed, resumed_learner, _ = make_trainer()
    for p in resumed.network.parameters():
        p.data[...] = 0.0                                     # everything must come from the file
    resumed.restore(path)
    assert resumed_learner.served == 6 * 24 and resumed_learner.updates == 3
    resumed.run(iterations=12)
    assert all(np.array_equal(p.data, e) for p, e in zip(resumed.network.parameters(), expected))


def test_the_run_directory_records_the_served_accuracies(tmp_path):
    trainer, _, _ = make_trainer(run_directory=tmp_path / "serving-run")
    trainer.run(iterations=4)
    events, _ = RunDirectory.open(tmp_path / "serving-run").read_events()
    metrics = [event["values"] for event in events if event["kind"] == "metrics"]
    assert len(metrics) == 4
    assert all({"train/accuracy", "served_old/accuracy", "served_new/accuracy"} <= set(values) for values in metrics)
    assert metrics[-1]["served_new/accuracy"] == pytest.approx(trainer.latest["served_new/accuracy"])


def test_bad_setups_are_refused_with_the_reason():
    network = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4))
    learner = ContinualLearner(Stages.split(network, [2]), nn.CrossEntropyLoss(), batch=8)
    with pytest.raises(ValueError, match="learner.optimiser"):
        Trainer(network, nn.CrossEntropyLoss(), optim.SGD(network.parameters(), lr=0.1), Requests(),
                operator=ContinualServing(learner))
    with pytest.raises(ValueError, match="without '/'"):
        ContinualServing(learner, groups=("a/b",))
    with pytest.raises(TypeError, match="ContinualLearner"):
        ContinualServing(object())
    trainer = Trainer(network, nn.CrossEntropyLoss(), learner.optimiser, Requests(),
                      operator=ContinualServing(learner, groups=("only",)))
    with pytest.raises(ValueError, match="'group' must give each of its 24 samples"):
        trainer.run(iterations=1)                            # groups 0 and 1, but only one name
    assert learner.served == 0                               # refused before anything was served


def test_regression_requests_report_losses_but_no_accuracy():
    sigma.manual_seed(0)
    network = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    learner = ContinualLearner(Stages.split(network, [2]), nn.MSELoss(), vendors=4, lr=0.1, probe_scale=0.3, batch=16)
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(16, 3)).astype(np.float32)
    requests = [{"inputs": inputs, "targets": inputs[:, :1] * 2.0, "group": np.arange(16) % 2}]
    trainer = Trainer(network, nn.MSELoss(), learner.optimiser, requests,
                      operator=ContinualServing(learner, groups=("even", "odd")))
    trainer.run(iterations=1)
    metrics = trainer.latest
    assert "train/accuracy" not in metrics and "served_odd/accuracy" not in metrics
    # eight samples in each group: the request's loss is the mean of the two groups' losses
    assert metrics["train/loss"] == pytest.approx((metrics["served_odd/loss"] + metrics["served_even/loss"]) / 2)
    assert trainer.operator.last_request["predictions"] is None and learner.updates == 1
