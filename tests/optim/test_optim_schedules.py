"""Learning-rate schedules: resuming from state_dict, chaining, and clear errors."""
import pytest

import sigma
import sigma.optim


def _optimiser(lrs=(0.1, 0.02)):
    return sigma.optim.SGD([{"params": [sigma.zeros(1, requires_grad=True)], "lr": lr} for lr in lrs])


def _rates(optimiser):
    return [group["lr"] for group in optimiser.param_groups]


MAKERS = {
    "step": lambda o: sigma.optim.StepLR(o, step_size=2, gamma=0.5),
    "exponential": lambda o: sigma.optim.ExponentialLR(o, gamma=0.9),
    "cosine": lambda o: sigma.optim.CosineAnnealingLR(o, T_max=5, eta_min=0.001),
    "warmup": lambda o: sigma.optim.LinearWarmup(o, warmup_steps=4, start_factor=0.25),
    "warmup-then-cosine": lambda o: sigma.optim.SequentialSchedule(
        o, [sigma.optim.LinearWarmup(o, 3), sigma.optim.CosineAnnealingLR(o, T_max=6)], milestones=[3]),
}


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_schedule_resumes_exactly_from_its_state_dict(name):
    optimiser = _optimiser()
    schedule = MAKERS[name](optimiser)
    for _ in range(4):
        schedule.step()
    saved = schedule.state_dict()
    assert saved["last_step"] == 4 and saved["base_lrs"] == [0.1, 0.02]
    expected = []
    for _ in range(5):
        schedule.step()
        expected.append(_rates(optimiser))

    fresh = _optimiser()
    restored = MAKERS[name](fresh)
    restored.load_state_dict(saved)
    got = []
    for _ in range(5):
        restored.step()
        got.append(_rates(fresh))
    assert got == expected


def test_loaded_settings_win_over_constructor_arguments():
    schedule = sigma.optim.StepLR(_optimiser(), step_size=2, gamma=0.5)
    other = sigma.optim.StepLR(_optimiser(), step_size=10, gamma=0.9)
    other.load_state_dict(schedule.state_dict())
    assert (other.step_size, other.gamma) == (2, 0.5)


def test_two_schedules_agree_on_the_initial_rate():
    optimiser = _optimiser()
    sigma.optim.ExponentialLR(optimiser, gamma=0.5).step()
    assert _rates(optimiser) == [0.05, 0.01]
    later = sigma.optim.StepLR(optimiser, step_size=1, gamma=0.1)
    assert later.base_lrs == [0.1, 0.02]
    assert [g["initial_lr"] for g in optimiser.param_groups] == [0.1, 0.02]


def test_reduce_on_plateau_resumes_exactly():
    optimiser = _optimiser()
    schedule = sigma.optim.ReduceLROnPlateau(optimiser, factor=0.5, patience=1, cooldown=1)
    metrics = [3.0, 2.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0]
    for metric in metrics[:4]:
        schedule.step(metric)
    saved = schedule.state_dict()
    fresh = _optimiser()
    fresh.load_state_dict(optimiser.state_dict())
    restored = sigma.optim.ReduceLROnPlateau(fresh)
    restored.load_state_dict(saved)
    for metric in metrics[4:]:
        schedule.step(metric)
        restored.step(sigma.tensor(metric))
        assert restored.get_last_lr() == schedule.get_last_lr()
    assert schedule.get_last_lr() != [0.1, 0.02]


@pytest.mark.parametrize("make,error,words", [
    (lambda o: sigma.optim.StepLR(o, step_size=0), ValueError, "step_size must be an integer >= 1, got 0"),
    (lambda o: sigma.optim.CosineAnnealingLR(o, T_max=2.5), ValueError, "T_max must be an integer >= 1"),
    (lambda o: sigma.optim.LinearWarmup(o, 5, start_factor=1.5), ValueError, "start_factor must be in [0, 1]"),
    (lambda o: sigma.optim.StepLR("adam", step_size=1), TypeError, "schedules a sigma.optim optimiser, got str"),
    (lambda o: sigma.optim.SequentialSchedule(o, [sigma.optim.StepLR(o, 1)], milestones=[2]), ValueError,
     "1 schedules need 0 milestone(s), got 1"),
    (lambda o: sigma.optim.SequentialSchedule(o, [sigma.optim.StepLR(o, 1), sigma.optim.StepLR(_optimiser(), 1)],
                                              milestones=[2]), ValueError, "schedule 1 belongs to another optimiser"),
    (lambda o: sigma.optim.SequentialSchedule(o, [sigma.optim.StepLR(o, 1), sigma.optim.ReduceLROnPlateau(o)],
                                              milestones=[2]), TypeError, "only step-count schedules chain"),
    (lambda o: sigma.optim.SequentialSchedule(o, [sigma.optim.StepLR(o, 1)] * 3, milestones=[4, 2]), ValueError,
     "milestones must be increasing steps >= 1, got [4, 2]"),
    (lambda o: sigma.optim.ReduceLROnPlateau(o, mode="lowest"), ValueError, "mode must be 'min' or 'max'"),
    (lambda o: sigma.optim.ReduceLROnPlateau(o, threshold_mode="relative"), ValueError, "threshold_mode must be"),
    (lambda o: sigma.optim.ReduceLROnPlateau(o, factor=1.0), ValueError, "factor must be in [0, 1), got 1.0"),
    (lambda o: sigma.optim.ReduceLROnPlateau(o, min_lr=[0.1]), ValueError, "1 min_lr values for 2 group(s)"),
])
def test_bad_schedules_are_explained(make, error, words):
    with pytest.raises(error) as raised:
        make(_optimiser())
    assert words in str(raised.value)


def test_nan_metric_is_refused():
    schedule = sigma.optim.ReduceLROnPlateau(_optimiser())
    with pytest.raises(ValueError, match="the metric is NaN"):
        schedule.step(float("nan"))


@pytest.mark.parametrize("change,words", [
    (lambda s: s.pop("last_step"), "missing ['last_step']"),
    (lambda s: s.update({"schedule": "ExponentialLR"}), "the state is of a ExponentialLR"),
    (lambda s: s.update({"base_lrs": [0.1]}), "the state has 1 base rate(s), the optimiser 2 group(s)"),
])
def test_mismatched_schedule_state_is_explained(change, words):
    schedule = sigma.optim.StepLR(_optimiser(), step_size=2)
    saved = schedule.state_dict()
    change(saved)
    with pytest.raises(ValueError) as raised:
        sigma.optim.StepLR(_optimiser(), step_size=2).load_state_dict(saved)
    assert words in str(raised.value)


def test_group_added_after_the_schedule_is_explained():
    optimiser = _optimiser()
    schedule = sigma.optim.ExponentialLR(optimiser, gamma=0.5)
    optimiser.add_param_group({"params": [sigma.zeros(1, requires_grad=True)]})
    with pytest.raises(RuntimeError, match="make the schedule after adding groups"):
        schedule.step()
