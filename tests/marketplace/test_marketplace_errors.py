"""Bad hyperparameters and models that cannot be split into stages give errors that name the problem."""
from importlib import metadata

import numpy as np
import pytest

import sigma
import sigma.optim
from sigma import nn
from sigma_marketplace import MarketplaceV1, MarketplaceV2, StagedLossHandle, Stages


def network():
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))


def stages():
    return Stages.split(network(), [2])


@pytest.mark.parametrize("optimiser_class", [MarketplaceV1, MarketplaceV2])
@pytest.mark.parametrize("settings, message", [
    ({"vendors": 1}, "vendors must be an integer >= 2"),
    ({"vendors": 2.5}, "vendors must be an integer >= 2"),
    ({"lr": 0.0}, "lr must be a positive number, got 0.0"),
    ({"lr": -0.1}, "lr must be a positive number, got -0.1"),
    ({"lr": float("nan")}, "lr must be a positive number"),
    ({"decay": 1.0}, r"decay must be a number in \[0, 1\)"),
    ({"upstream": 0}, "upstream must be None .* or an integer k >= 1, got 0"),
    ({"upstream": [2, None]}, "stage 0 reads the batch itself, so its upstream must be None, got 2"),
    ({"seed": -3}, r"seed must be an integer in \[0, 2\*\*63\)"),
    ({"vendors": [4, 4, 4]}, "vendors has 3 value.s. for 2 stage.s."),
])
def test_bad_hyperparameters(optimiser_class, settings, message):
    with pytest.raises(ValueError, match=message):
        optimiser_class(stages(), **settings)


@pytest.mark.parametrize("settings, message", [
    ({"probe_scale": 0}, "probe_scale must be a positive number"),
    ({"normalise": "global"}, "normalise must be 'whole' .* or 'per_spec'"),
    ({"meta_lr": -1.0}, "meta_lr must be None .* or a positive number"),
])
def test_bad_v2_hyperparameters(settings, message):
    with pytest.raises(ValueError, match=message):
        MarketplaceV2(stages(), **settings)


def test_market_wide_settings_must_agree_across_stages():
    s = stages()
    groups = s.param_groups()
    groups[1]["probe_scale"] = 0.5
    with pytest.raises(ValueError, match=r"probe_scale belongs to the whole market .* got \[0.01, 0.5\]"):
        MarketplaceV2(groups)


def test_unknown_settings_and_types():
    with pytest.raises(TypeError, match="unknown hyperparameter"):
        MarketplaceV2(stages(), learning_rate=0.1)
    with pytest.raises(TypeError, match="cache_deltas must be True or False"):
        MarketplaceV2(stages(), cache_deltas="yes")
    with pytest.raises(ValueError, match="chunk_bytes must be a positive number of bytes"):
        MarketplaceV2(stages(), chunk_bytes=0)
    with pytest.raises(TypeError, match=r"cut the network into stages first, e.g. MarketplaceV2\(Stages.split"):
        MarketplaceV2(network())


def test_models_that_cannot_be_split_into_stages():
    with pytest.raises(ValueError, match="BatchNorm2d, whose batch statistics would mix the products"):
        Stages([nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))])
    with pytest.raises(ValueError, match=r"stage 1 \(0\) holds BatchNorm1d"):
        Stages([nn.Linear(2, 2), nn.Sequential(nn.BatchNorm1d(2), nn.Linear(2, 2))])
    with pytest.raises(ValueError, match=r"Dropout\(p=0.5\)"):
        Stages([nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))])
    with pytest.raises(ValueError, match="track_running_stats=True"):
        Stages([nn.Sequential(nn.Conv2d(1, 2, 3), nn.InstanceNorm2d(2, track_running_stats=True))])
    with pytest.raises(ValueError, match=r"stage 1 \(Sequential\) has no parameters, so it cannot have vendors"):
        Stages.split(nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2)), [1, 2])
    shared = nn.Linear(2, 2)
    with pytest.raises(ValueError, match=r"belongs to stages 0 and 1"):
        Stages([shared, nn.Sequential(nn.ReLU(), shared)])
    with pytest.raises(ValueError, match=r"ends must be increasing integers strictly between 0 and 3"):
        Stages.split(network(), [3])
    with pytest.raises(ValueError, match=r"got \[2, 1\]"):
        Stages.split(network(), [2, 1])
    with pytest.raises(TypeError, match="Stages.split cuts a Sequential"):
        Stages.split(nn.Linear(2, 2), [1])
    with pytest.raises(TypeError, match="stage 1 must be a sigma.nn.Module, got function"):
        Stages([nn.Linear(2, 2), lambda x: x])
    with pytest.raises(TypeError, match=r"Stages needs a list of stage modules"):
        Stages(network())


def test_handles_must_fit_the_optimiser_and_the_batch():
    s = stages()
    optimiser = MarketplaceV2(s, vendors=2)
    other = Stages.split(network(), [2])
    x, y = sigma.randn(4, 4), sigma.randint(0, 3, (4,))
    with pytest.raises(ValueError, match="the loss handle covers 4 parameter.s. that are not this optimiser's"):
        optimiser.step(StagedLossHandle(other, x, y, nn.CrossEntropyLoss()))
    with pytest.raises(ValueError, match="a batch needs as many targets as inputs .*: got 4 inputs and 3 targets"):
        StagedLossHandle(s, x, sigma.randint(0, 3, (3,)), nn.CrossEntropyLoss())
    with pytest.raises(ValueError, match="does not hold this optimiser's stage parameters"):
        optimiser.make_handle(network(), nn.CrossEntropyLoss(), x, y)
    with pytest.raises(TypeError, match="needs the loss"):
        optimiser.step()


def test_every_path_non_finite_is_an_error_but_some_are_just_the_worst():
    s = stages()
    optimiser = MarketplaceV2(s, vendors=2)
    x, y = sigma.randn(4, 4), sigma.randint(0, 3, (4,))
    with pytest.raises(FloatingPointError, match=r"every path's loss is NaN or infinite \(4 paths\)"):
        optimiser.step(StagedLossHandle(s, x, y, lambda out, target: out.sum(axis=1) * float("nan")))
    before = [p.data.copy() for p in s.parameters()]
    losses = iter([1.0, float("nan"), 2.0, 3.0])
    optimiser = MarketplaceV1(s.param_groups(), vendors=2)
    assert optimiser.step(lambda: next(losses)) == 1.0   # the NaN path never wins
    assert all(np.array_equal(p.data, b) for p, b in zip(s.parameters(), before))


def test_a_loaded_state_that_does_not_fit_is_refused():
    optimiser = MarketplaceV2(stages(), vendors=2)
    x, y = sigma.randn(4, 4), sigma.randint(0, 3, (4,))
    optimiser.step(StagedLossHandle(optimiser.stages, x, y, nn.CrossEntropyLoss()))
    state = optimiser.state_dict()
    state["state"][0]["lr_scale"] = -1.0
    with pytest.raises(ValueError, match="lr_scale of parameter 0 must be a positive number, got -1.0"):
        optimiser.load_state_dict(state)
    state = optimiser.state_dict()
    state["state"][1]["seeds"] = np.zeros((2, 2))
    with pytest.raises(ValueError, match="seeds of parameter 1 must be a 1-d integer array"):
        optimiser.load_state_dict(state)


# The lines setup.py declares (see docs/marketplace.md), loaded the way an installed plug-in's are.
ENTRY_POINTS = ["marketplace-v1 = sigma_marketplace:MarketplaceV1", "marketplace-v2 = sigma_marketplace:MarketplaceV2"]


def test_registered_through_the_entry_point_like_any_third_party(monkeypatch):
    real = metadata.entry_points
    declared = [metadata.EntryPoint(*[part.strip() for part in line.split("=")], sigma.optim.ENTRY_POINT_GROUP)
                for line in ENTRY_POINTS]

    def entry_points(**query):
        if query.get("group") == sigma.optim.ENTRY_POINT_GROUP:
            return declared
        return real(**query)

    monkeypatch.setattr(metadata, "entry_points", entry_points)
    assert {"marketplace-v1", "marketplace-v2"} <= set(sigma.optim.available())
    assert sigma.optim.get("marketplace-v2") is MarketplaceV2
    assert sigma.optim.get("Marketplace-V1") is MarketplaceV1
