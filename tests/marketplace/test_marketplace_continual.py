"""ContinualLearner: mixed-path serving, updates from per-sample feedback, learning a new class on the job."""
import numpy as np
import pytest

import sigma
import sigma.data
from sigma import nn, optim
from sigma_marketplace import ContinualLearner, Stages, uniform_delta, draw_seeds


def small_learner(**settings):
    network = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4))
    return network, ContinualLearner(Stages.split(network, [2, 4]), nn.CrossEntropyLoss(), **settings)


def test_each_served_sample_goes_through_its_own_path():
    network, learner = small_learner(vendors=3, probe_scale=1.0, lr=0.5, batch=16)
    x = sigma.randn(20, 6)
    paths = learner.assign_paths(20)
    got = learner.mixed_forward(x, paths).numpy()
    params = [stage.parameters for stage in learner.stages]
    for i, path in enumerate(paths):
        originals = [[p.data.copy() for p in stage] for stage in params]
        for s, vendor in enumerate(path):
            seed = int(draw_seeds(0, 1, s, 3)[vendor])
            for index, p in enumerate(params[s]):
                p.data[...] = p.data + uniform_delta(seed, index, p.shape, 0.5)
        np.testing.assert_allclose(got[i], network(x[i:i + 1]).numpy()[0], rtol=1e-5, atol=1e-6)
        for stage, saved in zip(params, originals):
            for p, original in zip(stage, saved):
                p.data[...] = original
    assert len(np.unique(paths, axis=0)) > 10          # the paths really differ
    np.testing.assert_allclose(learner.predict(x).numpy(), network(x).numpy(), rtol=1e-6)


def test_an_update_is_the_v2_direction_of_the_per_sample_losses():
    network, learner = small_learner(vendors=3, probe_scale=0.5, lr=0.2, batch=12)
    x, y = sigma.randn(12, 6), sigma.randint(0, 4, (12,))
    before = [p.data.astype(np.float64) for p in network.parameters()]
    outputs = learner.serve(x)
    paths = learner._waiting[0]["paths"].copy()
    losses = nn.CrossEntropyLoss(reduction="none")(outputs, y).numpy().astype(np.float64)
    assert learner.feedback(y[:5]) is None                   # answers may come in pieces
    assert learner.feedback(y[5:]) == pytest.approx(losses.mean())
    assert learner.updates == 1
    z = -(losses - losses.mean()) / losses.std()
    expected = []
    for s, stage in enumerate(learner.stages):
        seeds = draw_seeds(0, 1, s, 3)
        for index, p in enumerate(stage.parameters):
            expected.append(sum(z[i] * uniform_delta(int(seeds[paths[i, s]]), index, p.shape, 0.1).astype(np.float64)
                                for i in range(12)))
    norm = np.sqrt(sum((g ** 2).sum() for g in expected))
    for p, b, g in zip(network.parameters(), before, expected):
        np.testing.assert_allclose((p.data - b) / 0.2, g / norm, rtol=2e-3, atol=2e-5)


def test_with_a_baseline_an_update_follows_the_losses_relative_to_the_unperturbed_model():
    network, learner = small_learner(vendors=3, probe_scale=0.5, lr=0.2, batch=12, baseline=True)
    x, y = sigma.randn(12, 6), sigma.randint(0, 4, (12,))
    before = [p.data.astype(np.float64) for p in network.parameters()]
    leader = nn.CrossEntropyLoss(reduction="none")(network(x), y).numpy().astype(np.float64)
    outputs = learner.serve(x)
    paths = learner._waiting[0]["paths"].copy()
    served = nn.CrossEntropyLoss(reduction="none")(outputs, y).numpy().astype(np.float64)
    assert learner.feedback(y[:7]) is None                   # the leader's outputs are split with the answers
    assert learner.feedback(y[7:]) == pytest.approx((served - leader).mean())
    differences = served - leader
    z = -(differences - differences.mean()) / differences.std()
    expected = []
    for s, stage in enumerate(learner.stages):
        seeds = draw_seeds(0, 1, s, 3)
        for index, p in enumerate(stage.parameters):
            expected.append(sum(z[i] * uniform_delta(int(seeds[paths[i, s]]), index, p.shape, 0.1).astype(np.float64)
                                for i in range(12)))
    norm = np.sqrt(sum((g ** 2).sum() for g in expected))
    for p, b, g in zip(network.parameters(), before, expected):
        np.testing.assert_allclose((p.data - b) / 0.2, g / norm, rtol=2e-3, atol=2e-5)
    with pytest.raises(TypeError, match="baseline must be True or False"):
        small_learner(baseline="yes")


def test_answers_from_an_earlier_round_are_dropped_and_errors_name_the_counts():
    _, learner = small_learner(batch=4)
    learner.serve(sigma.randn(3, 6))
    assert learner.feedback(sigma.randint(0, 4, (3,))) is None
    learner.serve(sigma.randn(3, 6))
    learner.serve(sigma.randn(2, 6))
    with pytest.raises(ValueError, match=r"got 6 answer\(s\) but 5 served sample\(s\) are waiting"):
        learner.feedback(sigma.randint(0, 4, (6,)))
    # The second request's answers complete an update; the third request was served with the old probes.
    assert learner.feedback(sigma.randint(0, 4, (5,))) is not None
    assert learner.updates == 1 and learner.stale == 2
    with pytest.raises(ValueError, match="batch .* must be an integer >= 2"):
        small_learner(batch=1)
    with pytest.raises(ValueError, match="vendors must be an integer >= 2"):
        small_learner(vendors=1)


def test_state_round_trip_continues_identically():
    def run(learner, start, count):
        for i in range(start, start + count):
            rng = np.random.default_rng(i)
            learner.serve(rng.standard_normal((8, 6)).astype(np.float32))
            learner.feedback(rng.integers(0, 4, 8))
    sigma.manual_seed(1)
    network, learner = small_learner(batch=8, lr=0.3)
    run(learner, 0, 4)
    expected = [p.data.copy() for p in network.parameters()]
    sigma.manual_seed(1)
    network, learner = small_learner(batch=8, lr=0.3)
    run(learner, 0, 2)
    state, weights = learner.state_dict(), [p.data.copy() for p in network.parameters()]
    sigma.manual_seed(7)
    network, learner = small_learner(batch=8, lr=0.3)
    for p, w in zip(network.parameters(), weights):
        p.data[...] = w
    learner.load_state_dict(state)
    run(learner, 2, 2)
    assert all(np.array_equal(p.data, e) for p, e in zip(network.parameters(), expected))


def test_learns_a_new_class_from_feedback_while_keeping_digits():
    """The reference's dress experiment in small: a digit classifier meets a class it never saw."""
    try:
        train = sigma.data.load("mnist", split="train", download=False)
        test = sigma.data.load("mnist", split="test", download=False)
    except sigma.data.DataError as error:
        pytest.skip(f"MNIST is not on the data search path here: {error}")

    def normalise(images):
        return (images.reshape(len(images), 784).astype(np.float32) / 255.0 - 0.1307) / 0.3081

    digits, labels = normalise(train.inputs[:20000]), train.targets[:20000].astype(np.int64)
    # The new class (label 10): inverted digit images, from images the base model never saw.
    novel = normalise(255 - train.inputs[50000:55000])
    test_digits, test_labels = normalise(test.inputs[:2000]), test.targets[:2000]
    test_novel = normalise(255 - test.inputs[5000:6000])
    sigma.manual_seed(0)
    network = nn.Sequential(nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 11))
    adam = optim.Adam(network.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    for _ in range(150):                     # the base model: digits only, trained any way at all
        index = rng.integers(0, len(digits), 128)
        adam.zero_grad()
        nn.CrossEntropyLoss()(network(sigma.tensor(digits[index])), sigma.tensor(labels[index])).backward()
        adam.step()
    network.zero_grad()
    learner = ContinualLearner(Stages.split(network, [2]), nn.CrossEntropyLoss(), vendors=4, lr=0.5,
                               probe_scale=0.1, batch=128)

    def accuracies():
        digit = float((learner.predict(test_digits).argmax(axis=1).numpy() == test_labels).mean())
        new = float((learner.predict(test_novel).argmax(axis=1).numpy() == 10).mean())
        return digit, new

    digit_before, novel_before = accuracies()
    for _ in range(100):                     # each request: 120 digits and 8 of the new class
        index = rng.integers(0, len(digits), 120)
        x = np.concatenate([digits[index], novel[rng.integers(0, len(novel), 8)]])
        y = np.concatenate([labels[index], np.full(8, 10)])
        learner.serve(x)
        learner.feedback(y)
    digit_after, novel_after = accuracies()
    assert novel_before == 0.0 and novel_after >= 0.5      # ~0.96 after 100 updates
    assert digit_before >= 0.85 and digit_after >= digit_before - 0.05
    assert learner.updates == 100
