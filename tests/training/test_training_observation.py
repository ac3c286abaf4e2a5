"""Observations and their averages between reports."""
import numpy as np
import pytest

import sigma
from sigma.training.observation import Averager, Observation, as_number


def test_averagers_keep_separate_windows():
    often, rarely = Averager(), Averager()
    for step in range(1, 7):
        observation = Observation([often, rarely])
        observation["train/loss"] = float(step)
        if step % 3 == 0:
            observation["validation/accuracy"] = step / 10
        if step % 2 == 0:
            assert often.take() == pytest.approx({"train/loss": step - 0.5,
                                                  **({"validation/accuracy": 0.6} if step == 6 else {}),
                                                  **({"validation/accuracy": 0.3} if step == 4 else {})})
    assert rarely.take() == pytest.approx({"train/loss": 3.5, "validation/accuracy": 0.45})


def test_writing_a_key_twice_in_one_step_counts_the_last_value_once():
    averager = Averager()
    observation = Observation([averager])
    observation["lr"] = 0.1
    observation["lr"] = 0.3
    Observation([averager])["lr"] = 0.5
    assert averager.take() == {"lr": pytest.approx(0.4)}
    assert observation["lr"] == 0.3


def test_tensors_and_numpy_scalars_become_floats():
    observation = Observation()
    observation["train/loss"] = sigma.tensor(2.5)
    observation["count"] = np.int64(3)
    observation["one"] = np.array([1.5])
    assert observation["train/loss"] == 2.5 and type(observation["count"]) is float and observation["one"] == 1.5


def test_bad_values_and_missing_keys_are_named():
    observation = Observation()
    with pytest.raises(ValueError, match="'train/loss'.*shape"):
        observation["train/loss"] = np.ones(3)
    with pytest.raises(TypeError, match="'note'.*str"):
        as_number("note", "fast")
    with pytest.raises(KeyError, match="'validation/accuracy' is not in this step's observation"):
        observation["validation/accuracy"]
    with pytest.raises(TypeError, match="append-only"):
        del observation["x"]


def test_averager_state_round_trip_continues_the_window():
    averager = Averager()
    for value in (1.0, 2.0):
        Observation([averager])["train/loss"] = value
    restored = Averager()
    restored.load_state_dict(averager.state_dict())
    Observation([restored])["train/loss"] = 6.0
    assert restored.take() == {"train/loss": 3.0}


def test_a_constant_averages_to_exactly_itself():
    averager = Averager()
    for _ in range(430):
        Observation([averager])["lr"] = 0.001
    assert averager.take() == {"lr": 0.001}
