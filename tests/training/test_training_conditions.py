"""Time steps (every, at, on) and criteria (threshold, best, patience, nonfinite), alone and combined."""
import math

import pytest

from sigma.training import Always, Never, at, best, every, nonfinite, on, patience, threshold
from sigma.training.position import Moment, Position


def steps(count, batches_per_epoch=4, length_known=True):
    """The moments of `count` training steps over epochs of `batches_per_epoch` batches."""
    moments = []
    for i in range(1, count + 1):
        ended = i % batches_per_epoch == 0
        position = Position(epoch=i // batches_per_epoch, iteration=i, iteration_in_epoch=i % batches_per_epoch,
                            batches_per_epoch=batches_per_epoch if length_known else None)
        moments.append(Moment("iteration", position, epoch_ended=ended))
    return moments


def fired(condition, moments):
    return [m.iteration for m in moments if condition(m)]


def values(key, sequence):
    return [Moment("iteration", Position(iteration=i + 1), observation={} if v is None else {key: v})
            for i, v in enumerate(sequence)]


# -- time steps -------------------------------------------------------------------------------------
def test_every_iterations_fires_on_multiples():
    assert fired(every(3, "iterations"), steps(10)) == [3, 6, 9]
    assert fired(every(1), steps(3)) == [1, 2, 3]


def test_every_epoch_fires_at_epoch_ends():
    assert fired(every(1, "epoch"), steps(12)) == [4, 8, 12]
    assert fired(every(2, "epochs"), steps(16)) == [8, 16]


def test_every_fractional_epoch_fires_on_crossing_slices():
    # 4 batches per epoch: a quarter epoch is one step, 0.5 two, 0.75 crosses at 3, 6 (=1.5), 9 (=2.25).
    assert fired(every(0.5, "epoch"), steps(8)) == [2, 4, 6, 8]
    assert fired(every(0.75, "epoch"), steps(12)) == [3, 6, 9, 12]
    # 0.1 epoch of 4 batches: every step crosses at least one tenth except none; each step is 2.5 tenths.
    assert fired(every(0.1, "epoch"), steps(4)) == [1, 2, 3, 4]
    assert fired(every(1.5, "epoch"), steps(12)) == [6, 12]


def test_every_fractional_epoch_needs_the_data_length():
    with pytest.raises(ValueError, match="no len"):
        every(0.5, "epoch")(steps(1, length_known=False)[0])


def test_at_fires_once():
    assert fired(at(5, "iterations"), steps(10)) == [5]
    assert fired(at(2, "epochs"), steps(12)) == [8]
    assert fired(at(1.5, "epoch"), steps(12)) == [6]


def test_on_events():
    start = Moment("start", Position())
    assert on("start")(start) and not on("stop")(start)
    assert fired(on("epoch"), steps(8)) == [4, 8]
    assert fired(on("iteration"), steps(3)) == [1, 2, 3]
    # time steps are silent at lifecycle events
    assert not every(1, "iteration")(start) and not every(1, "epoch")(Moment("stop", Position(epoch=4)))


def test_epoch_end_without_a_step_counts_for_epoch_time_steps():
    # Data of unknown length: the epoch end is its own moment, after the last step.
    end = Moment("epoch", Position(epoch=2, iteration=9), epoch_ended=True)
    assert every(1, "epoch")(end) and every(2, "epoch")(end) and at(2, "epoch")(end)
    assert not every(1, "iteration")(end)


@pytest.mark.parametrize("make, message", [
    (lambda: every(0, "iterations"), "positive"),
    (lambda: every(1.5, "iterations"), "whole steps"),
    (lambda: every(2, "minutes"), "unit"),
    (lambda: at(-1, "epoch"), "positive"),
    (lambda: on("finish"), "unknown event 'finish'"),
    (lambda: threshold("train/loss"), "exactly one"),
    (lambda: threshold("train/loss", above=1, below=0), "exactly one"),
    (lambda: best("validation/loss", "lowest"), "mode"),
    (lambda: patience(0, "validation/loss"), "n must be"),
    (lambda: every(1) & 3, "combine"),
])
def test_bad_arguments_say_what_is_wrong(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


# -- criteria ----------------------------------------------------------------------------------------
def test_threshold_above_and_below():
    above = threshold("validation/accuracy", above=0.9)
    assert [above(m) for m in values("validation/accuracy", [0.5, 0.95, None, 0.9])] == [False, True, False, False]
    below = threshold("train/loss", below=0.1)
    assert [below(m) for m in values("train/loss", [0.5, 0.05, 0.1])] == [False, True, False]


def test_best_tracks_improvements_with_min_delta():
    improved = best("validation/accuracy", "max", min_delta=0.01)
    sequence = [0.5, 0.505, 0.52, None, 0.52, 0.9]
    assert [improved(m) for m in values("validation/accuracy", sequence)] == [True, False, True, False, False, True]
    assert improved.best == 0.9


def test_best_ignores_nan():
    improved = best("validation/loss")
    assert [improved(m) for m in values("validation/loss", [1.0, float("nan"), 0.5])] == [True, False, True]


def test_patience_counts_only_evaluations_with_the_key():
    stalled = patience(2, "validation/loss", "min")
    sequence = [1.0, None, 1.1, None, 1.2, 1.3, 0.5, 0.6]
    assert [stalled(m) for m in values("validation/loss", sequence)] == \
        [False, False, False, False, True, True, False, False]


def test_nonfinite_any_key_or_one_key():
    moment = Moment("iteration", Position(), observation={"train/loss": 1.0, "validation/loss": math.inf})
    assert nonfinite()(moment)
    assert nonfinite("validation/loss")(moment)
    assert not nonfinite("train/loss")(moment)
    assert nonfinite().first_nonfinite_key(moment.observation) == "validation/loss"


# -- combinations -------------------------------------------------------------------------------------
def test_and_or_not_truth_tables():
    t, f = Always(), Never()
    moment = Moment("iteration", Position(iteration=1))
    assert (t & t)(moment) and not (t & f)(moment) and not (f & t)(moment)
    assert (t | f)(moment) and (f | t)(moment) and not (f | f)(moment)
    assert (~f)(moment) and not (~t)(moment)
    assert (~(f | f) & t)(moment)


def test_and_asks_the_right_side_only_when_the_left_is_true():
    # best() counts only the epoch ends it is asked at, so mid-epoch values do not become "the best".
    condition = every(1, "epoch") & best("validation/accuracy", "max")
    moments = steps(8)
    accuracy = [0.1, 0.9, 0.2, 0.5, 0.95, 0.99, 0.3, 0.6]
    for moment, value in zip(moments, accuracy):
        moment.observation = {"validation/accuracy": value}
    assert fired(condition, moments) == [4, 8]  # 0.5 at the first epoch end, then 0.6 beats it


def test_or_asks_the_right_side_only_when_the_left_is_false():
    counted = patience(1, "train/loss")
    condition = every(2, "iterations") | counted
    moments = values("train/loss", [1.0, 2.0, 3.0, 4.0])
    assert fired(condition, moments) == [2, 3, 4]
    assert counted.waited == 1  # asked at iterations 1 and 3 only; 3.0 did not improve on 1.0


def test_early_stopping_style_combination():
    stop = every(1, "epoch") & (patience(2, "validation/loss") | threshold("validation/loss", below=0.01))
    moments = steps(20)
    losses = iter([0.5, 0.4, 0.45, 0.41, 0.3])
    for moment in moments:
        if moment.epoch_ended:
            moment.observation = {"validation/loss": next(losses)}
    assert fired(stop, moments) == [16]  # epoch 4: no improvement on 0.4 for two epochs


def test_state_round_trip_restores_stateful_conditions():
    condition = every(1, "iterations") & (best("validation/loss") | ~patience(2, "validation/loss"))
    for moment in values("validation/loss", [1.0, 0.5, 0.7]):
        condition(moment)
    state = condition.state_dict()
    copy = every(1, "iterations") & (best("validation/loss") | ~patience(2, "validation/loss"))
    copy.load_state_dict(state)
    follow_up = values("validation/loss", [0.8, 0.9, 0.4])
    original_answers = [condition(m) for m in follow_up]
    copy_answers = [copy(m) for m in follow_up]
    # 0.8: not a best, but patience (its own tracker saw 0.7) has waited only once -> ~False = True;
    # 0.9: patience has waited twice -> False; 0.4: a new best.
    assert original_answers == copy_answers == [True, False, True]
    assert copy.parts[1].parts[0].best == 0.4


def test_repr_reads_like_the_code():
    assert repr(every(1, "epoch") & ~threshold("train/loss", below=0.1)) == \
        "(every(1, 'epoch') & ~threshold('train/loss', below=0.1))"
    assert repr(every(0.5, "epochs") | at(3, "iterations")) == "(every(0.5, 'epoch') | at(3, 'iteration'))"


def test_epoch_detail_is_the_exact_fraction_rounded_once():
    from fractions import Fraction
    for batches in (1, 3, 7, 469, 1000003):
        for epoch in (0, 1, 5, 123456):
            for within in sorted({0, 1, batches // 3, batches - 1}):
                position = Position(epoch=epoch, iteration_in_epoch=within, batches_per_epoch=batches)
                assert position.epoch_detail == float(Fraction(epoch) + Fraction(within, batches))
    assert Position(epoch=4, iteration_in_epoch=2).epoch_detail == 4.0  # no data length: whole epochs
