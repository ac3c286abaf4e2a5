"""MultiWorker: gradient all-reduce equals Inline on the whole batch; model averaging learns MNIST digits;
checkpoints move between worker counts; errors in a worker end the step with that error."""
import numpy as np
import pytest

import sigma
import sigma.data
import sigma.optim
from sigma import nn
from sigma.training import Trainer
from sigma.training.data_parallel import ModelAveraging, shard_bounds, take_shard
from sigma.training.operators import MPI, Inline, MultiWorker

from distributed_helpers import assert_close, make_trainer


def parameters(trainer):
    return {name: tensor.numpy().copy() for name, tensor in trainer.network.state_dict().items()}


@pytest.mark.parametrize("workers,batch_size", [(2, 32), (3, 32), (2, 7)])
def test_all_reduce_equals_inline_on_the_whole_batch(workers, batch_size):
    # 120 samples: batches of 32 end with 24 (uneven shards for 3 workers); batches of 7 end with 1 (an empty shard).
    inline = make_trainer(Inline(), batch_size=batch_size)
    inline_result = inline.run(epochs=2)
    parallel = make_trainer(MultiWorker(workers), batch_size=batch_size)
    parallel_result = parallel.run(epochs=2)
    assert_close(parameters(inline), parameters(parallel))
    assert parallel_result.iteration == inline_result.iteration
    assert parallel_result.metrics["train/loss"] == pytest.approx(inline_result.metrics["train/loss"], rel=1e-4)
    assert parallel_result.metrics["train/accuracy"] == pytest.approx(inline_result.metrics["train/accuracy"])
    assert parallel.samples_seen == inline.samples_seen == 240
    assert parameters(inline) != {}  # the comparison covered real arrays
    assert not np.allclose(parameters(inline)["0.weight"], make_trainer(Inline()).network[0].weight.numpy())


def test_all_reduce_clips_the_merged_gradient_like_inline():
    inline = make_trainer(Inline(), gradient_clip=0.05)
    inline.run(iterations=6)
    parallel = make_trainer(MultiWorker(2), gradient_clip=0.05)
    parallel.run(iterations=6)
    assert_close(parameters(inline), parameters(parallel))


def test_all_reduce_averages_batch_norm_running_means():
    # After one step from zero, the running mean is momentum x the batch mean, and the mean of
    # two equal shards' means is the whole batch's mean: the merged buffer equals Inline's.
    inline = make_trainer(Inline(), batch_norm=True)
    inline.run(iterations=1)
    operator = MultiWorker(2)
    parallel = make_trainer(operator, batch_norm=True)
    parallel.run(iterations=1)
    expected = parameters(inline)["1.running_mean"]
    assert np.abs(expected).max() > 1e-3
    np.testing.assert_allclose(parameters(parallel)["1.running_mean"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(operator.workers[1].network[1].running_mean.numpy(),
                                  operator.workers[0].network[1].running_mean.numpy())


def test_workers_draw_from_their_own_repeatable_streams():
    first = make_trainer(MultiWorker(2), dropout=0.5)
    first.run(iterations=5)
    second = make_trainer(MultiWorker(2), dropout=0.5)
    second.run(iterations=5)
    assert_close(parameters(first), parameters(second), tolerance=0)
    operator = MultiWorker(2)
    make_trainer(operator, dropout=0.5)
    seen = []
    network = operator.workers[0].network
    original = network[2].forward

    def record(x):
        output = original(x)
        seen.append((output.numpy() == 0).copy())
        return output

    for worker in operator.workers:
        worker.network[2].forward = record
    operator.train_step({"inputs": sigma.ones(8, 8), "targets": sigma.tensor([0, 1, 2, 0, 1, 2, 0, 1])})
    operator.teardown()
    assert len(seen) == 2 and seen[0].shape == seen[1].shape == (4, 16)
    assert not np.array_equal(seen[0], seen[1])  # different dropout masks for the two shards


def test_step_streams_are_seeded_on_first_draw_from_one_shared_draw():
    from backends.cpu.backend import NumpyRandomStream
    from sigma.training.data_parallel import WorkerStreams
    shared = NumpyRandomStream(7)
    streams = WorkerStreams(shared)
    base = int(NumpyRandomStream(7).integers(0, 2 ** 62, (1,))[0])
    step = streams.for_step(2)
    assert all(stream._stream is None for stream in step)  # nothing seeded yet: no draw asked for
    with streams.using(step[1]):
        drawn = streams.uniform((3,))
    assert step[0]._stream is None and step[1]._stream is not None
    np.testing.assert_array_equal(drawn, NumpyRandomStream(base + 1).uniform((3,)))
    # The shared stream moved by exactly the one draw of the base seed.
    reference = NumpyRandomStream(7)
    reference.integers(0, 2 ** 62, (1,))
    np.testing.assert_array_equal(shared.uniform((4,)), reference.uniform((4,)))


def test_gradient_step_refuses_a_total_the_shards_do_not_add_up_to():
    from sigma.distributed import LocalGroup
    from sigma.training.data_parallel import FlatBuffer, gradient_step
    from sigma.training.operators import Worker
    network = nn.Linear(3, 2)
    worker = Worker(network, nn.CrossEntropyLoss(), sigma.optim.SGD(network.parameters(), lr=0.1))
    communicator = LocalGroup(1).communicators[0]
    shard = {"inputs": sigma.ones(4, 3), "targets": sigma.tensor([0, 1, 0, 1])}
    with pytest.raises(ValueError, match="the shards held 4 samples, the caller said 6"):
        gradient_step(worker, shard, communicator, FlatBuffer(network), update=True, total=6)


def test_model_averaging_learns_mnist_digits():
    from sigma.training.demo import PIXEL_MEAN, PIXEL_STD, load_mnist
    train, test, _ = load_mnist(sample=True)
    normalise = sigma.data.Normalise(mean=PIXEL_MEAN, std=PIXEL_STD)
    sigma.manual_seed(0)
    network = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    trainer = Trainer(network, nn.CrossEntropyLoss(), sigma.optim.Adam(network.parameters(), lr=2e-3),
                      sigma.data.MinibatchIterator(train, batch_size=64, seed=0, transform=normalise),
                      evaluation={"test": sigma.data.MinibatchIterator(test, batch_size=200, shuffle=False,
                                                                       transform=normalise)},
                      operator=MultiWorker(2, merge=ModelAveraging(every=5)))
    result = trainer.run(epochs=3)
    assert result.metrics["test/accuracy"] > 0.85, result.metrics
    workers = trainer.operator.workers
    # teardown averaged the replicas: both workers hold the same model
    for mine, other in zip(workers[0].network.parameters(), workers[1].network.parameters()):
        np.testing.assert_allclose(mine.numpy(), other.numpy(), rtol=1e-6, atol=1e-7)


def test_averaging_every_epoch_syncs_before_the_epoch_hooks():
    trainer = make_trainer(MultiWorker(2, merge="average"))
    differences = []

    def check(trainer):
        first, second = (w.network[0].weight.numpy() for w in trainer.operator.workers)
        differences.append(float(np.abs(first - second).max()))

    from sigma.training import every, hooks
    trainer.add_hook(hooks.Lambda(check, every(1, "epoch")))
    trainer.add_hook(hooks.Lambda(check, every(2, "iterations"), name="mid_epoch"))
    trainer.run(epochs=1)
    assert differences[-1] == 0.0 and max(differences[:-1]) > 0  # apart within the epoch, equal at its end


@pytest.mark.parametrize("first_operator,second_operator", [
    (lambda: MultiWorker(2), lambda: Inline()), (lambda: Inline(), lambda: MultiWorker(3)),
    (lambda: MultiWorker(2, processes=True), lambda: Inline()),
    (lambda: Inline(), lambda: MultiWorker(3, processes=True))])
def test_checkpoints_move_between_worker_counts(tmp_path, first_operator, second_operator):
    straight = make_trainer(Inline())
    straight.run(iterations=8)
    first = make_trainer(first_operator())
    first.run(iterations=3)
    path = first.save_checkpoint(tmp_path / "three.h5")
    second = make_trainer(second_operator()).restore(path)
    second.run(iterations=8)
    assert_close(parameters(straight), parameters(second))


def test_an_error_in_one_worker_ends_the_step_with_that_error():
    operator = MultiWorker(2)
    trainer = make_trainer(operator)
    replica = operator.workers[1].network

    def broken(x):
        raise RuntimeError("replica exploded")

    replica[0].forward = broken
    with pytest.raises(RuntimeError, match="replica exploded"):
        trainer.run(iterations=2)
    del replica[0].forward  # the group recovers and training goes on
    assert trainer.run(iterations=2).iteration == 2


def test_bad_arguments():
    with pytest.raises(ValueError, match="workers must be a whole number >= 1, got 0"):
        MultiWorker(0)
    with pytest.raises(ValueError, match="merge must be"):
        MultiWorker(2, merge="median")
    with pytest.raises(ValueError, match="every must be"):
        ModelAveraging(every=0)
    network = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="forward-only"):
        MultiWorker(2).setup(network, nn.CrossEntropyLoss(), sigma.optim.RandomSearch(network.parameters()))


def test_shards_cover_the_batch_in_order():
    for count in (0, 1, 5, 32):
        for parts in (1, 2, 3):
            pieces = [shard_bounds(count, parts, index) for index in range(parts)]
            assert pieces[0][0] == 0 and pieces[-1][1] == count
            assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))
            assert max(b - a for a, b in pieces) - min(b - a for a, b in pieces) <= 1
    batch = (sigma.arange(5), sigma.arange(5) * 2)
    assert take_shard(batch, 1, 2)[1].numpy().tolist() == [6, 8]


def test_operators_describe_themselves():
    assert MultiWorker(3, merge=ModelAveraging(every=4)).describe() == \
        "MultiWorker(3, merge=ModelAveraging(every=4))"
    assert MPI().describe() == "MPI(ranks=?, merge=GradientAllReduce())"


def test_each_worker_thread_uses_its_share_of_numba_threads():
    import numba
    operator = MultiWorker(2)
    make_trainer(operator)
    seen = []
    for worker in operator.workers:
        original = worker.network[0].forward

        def record(x, original=original):
            seen.append(numba.get_num_threads())
            return original(x)
        worker.network[0].forward = record
    total = numba.get_num_threads()
    operator.train_step({"inputs": sigma.ones(8, 8), "targets": sigma.tensor([0, 1, 2, 0, 1, 2, 0, 1])})
    operator.teardown()
    assert seen == [max(1, numba.config.NUMBA_NUM_THREADS // 2)] * 2
    assert numba.get_num_threads() == total  # the trainer's own thread got its setting back
