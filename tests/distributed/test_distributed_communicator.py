"""Communicators: the in-process group (threads), the group of one, and their errors."""
import threading

import numpy as np
import pytest

from sigma.distributed import CommunicationError, LocalGroup, SingleProcess


def run_members(group, task):
    """``task(communicator)`` in one thread per member; returns results and errors by rank."""
    results, errors = [None] * group.size, [None] * group.size

    def body(rank):
        try:
            results[rank] = task(group.communicators[rank])
        except BaseException as error:  # noqa: BLE001 - the test inspects it
            errors[rank] = error

    threads = [threading.Thread(target=body, args=(rank,)) for rank in range(group.size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert not any(thread.is_alive() for thread in threads), "a member hung"
    return results, errors


@pytest.mark.parametrize("size", [1, 2, 3, 5])
@pytest.mark.parametrize("op", ["sum", "mean"])
def test_all_reduce_matches_numpy_in_every_member(size, op):
    rng = np.random.default_rng(size)
    buffers = [rng.normal(size=13).astype(np.float32) for _ in range(size)]
    expected = np.sum(buffers, axis=0) / (size if op == "mean" else 1)
    group = LocalGroup(size)
    results, errors = run_members(group, lambda c: c.all_reduce(buffers[c.rank], op))
    assert errors == [None] * size
    for rank in range(size):
        assert results[rank] is buffers[rank]  # in place
        np.testing.assert_allclose(buffers[rank], expected, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(buffers[rank], buffers[0])  # same bits everywhere


def test_repeated_all_reduces_do_not_mix_steps():
    group = LocalGroup(3)

    def task(communicator):
        totals = []
        for step in range(50):
            buffer = np.full(4, float(step * 10 + communicator.rank))
            totals.append(communicator.all_reduce(buffer)[0])
        return totals

    results, errors = run_members(group, task)
    assert errors == [None] * 3
    assert results[0] == results[1] == results[2] == [30.0 * step + 3.0 for step in range(50)]


def test_broadcast_gather_barrier():
    group = LocalGroup(3)

    def task(communicator):
        buffer = np.full(3, float(communicator.rank))
        communicator.broadcast(buffer, root=2)
        communicator.barrier()
        return buffer.tolist(), communicator.gather({"rank": communicator.rank}, root=1), \
            communicator.all_gather(communicator.rank * 2)

    results, errors = run_members(group, task)
    assert errors == [None] * 3
    for rank, (buffer, gathered, everyone) in enumerate(results):
        assert buffer == [2.0, 2.0, 2.0]
        assert gathered == ([{"rank": 0}, {"rank": 1}, {"rank": 2}] if rank == 1 else None)
        assert everyone == [0, 2, 4]


def test_mismatched_buffers_fail_in_every_member():
    group = LocalGroup(2)
    results, errors = run_members(group, lambda c: c.all_reduce(np.zeros(3 + c.rank)))
    assert all(isinstance(error, CommunicationError) for error in errors)
    assert "shape (4,)" in str(errors[0]) and "shape (3,)" in str(errors[0])


def test_abort_wakes_waiting_members_with_the_reason():
    group = LocalGroup(3)

    def task(communicator):
        if communicator.rank == 1:
            communicator.abort("worker 1 ran out of data")
            return "aborted"
        return communicator.all_reduce(np.zeros(2))

    results, errors = run_members(group, task)
    assert results[1] == "aborted"
    for rank in (0, 2):
        assert isinstance(errors[rank], CommunicationError)
        assert "worker 1 ran out of data" in str(errors[rank])
    group.reset()
    results, errors = run_members(group, lambda c: c.all_reduce(np.ones(2)).tolist())
    assert results == [[3.0, 3.0]] * 3


def test_a_missing_member_times_out():
    group = LocalGroup(2, timeout=0.2)
    with pytest.raises(CommunicationError, match="timed out after 0.2 s"):
        group.communicators[0].all_reduce(np.zeros(2))


def test_bad_arguments_are_named():
    group = LocalGroup(2)
    with pytest.raises(ValueError, match="op must be one of"):
        group.communicators[0].all_reduce(np.zeros(2), "max")
    with pytest.raises(ValueError, match="flat"):
        group.communicators[0].all_reduce(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="root must be a rank from 0 to 1"):
        group.communicators[0].broadcast(np.zeros(2), root=2)
    with pytest.raises(ValueError, match="size must be"):
        LocalGroup(0)


def test_single_process_is_the_identity():
    communicator = SingleProcess()
    buffer = np.arange(3.0)
    assert communicator.all_reduce(buffer, "mean") is buffer and buffer.tolist() == [0.0, 1.0, 2.0]
    assert communicator.all_gather("x") == ["x"] and communicator.gather(5) == [5]
    with pytest.raises(CommunicationError, match="stop"):
        communicator.abort("stop")


def run_shared_memory_group(size, mismatch=False):
    """Rank 0 here, ranks 1.. in processes started as MultiWorker starts its worker processes."""
    import multiprocessing
    from distributed_helpers import shared_memory_member
    from sigma.distributed.shared_memory import SharedMemoryGroup
    context = multiprocessing.get_context("forkserver")
    group = SharedMemoryGroup(size, capacity=8, dtype=np.float64, timeout=30.0)
    processes, pipes = [], []
    for rank in range(1, size):
        ours, theirs = context.Pipe()
        process = context.Process(target=shared_memory_member,
                                  args=(rank, size, group.member_link(rank), theirs, mismatch), daemon=True)
        process.start()
        group.watch(rank, process)
        group.send_region(rank)
        processes.append(process)
        pipes.append(ours)
    seen = [shared_memory_member(0, size, group.communicators[0], None, mismatch)]
    for pipe, process in zip(pipes, processes):
        assert pipe.poll(30), "a member hung"
        seen.append(pipe.recv())
        process.join(10)
    group.close()
    return seen


@pytest.mark.parametrize("size", [1, 3])
def test_shared_memory_group_collectives_across_processes(size):
    seen = run_shared_memory_group(size)
    for rank in range(size):
        assert "error" not in seen[rank], seen[rank]
        np.testing.assert_array_equal(seen[rank]["sum"], sum(np.arange(5) + 10 * r for r in range(size)))
        np.testing.assert_allclose(seen[rank]["mean"], np.full(3, (size - 1) / 2))
        np.testing.assert_array_equal(seen[rank]["broadcast"], np.full(4, float(size - 1)))
        assert seen[rank]["gathered"] == [2 * r for r in range(size)]


def test_shared_memory_group_refuses_mismatched_buffers_in_every_member():
    seen = run_shared_memory_group(3, mismatch=True)
    assert "mismatched collective: worker 2 called ('all_reduce', 4" in seen[0]["error"]
    for rank in (1, 2):
        assert "the group stopped (worker 2 called ('all_reduce', 4" in seen[rank]["error"]


def test_shared_region_carries_a_shard_that_outgrows_it():
    import multiprocessing
    import sigma
    from sigma.distributed.shared_memory import SharedRegion
    from sigma.training.worker_processes import ShardChannel, read_shard
    ours, theirs = multiprocessing.Pipe(duplex=True)
    channel = ShardChannel(ours)
    region = None
    for rows in (4, 3000):  # 4 rows fit the first megabyte; 3000 x 784 float32 (9.4 MB) need a new region
        inputs = np.random.default_rng(rows).random((rows, 784), dtype=np.float32)
        description = channel.write({"inputs": sigma.tensor(inputs), "targets": np.arange(rows), "name": "x"})
        while theirs.poll():
            _, _, size = theirs.recv()
            region = SharedRegion.receive(theirs, size)
        shard = read_shard(description, region, sigma.tensor([0.0]).backend)
        np.testing.assert_array_equal(shard["inputs"].numpy(), inputs)
        np.testing.assert_array_equal(shard["targets"], np.arange(rows))
        assert shard["name"] == "x" and region.size >= inputs.nbytes
    assert channel.generation == 2
