"""The CPU backend's block pool: every block once, spread over threads, BLAS one thread meanwhile,
errors passed on, and a convolution run through it equal to PyTorch's."""
import threading
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import backends
from backends.cpu.block_pool import BlockPool, in_block_worker


def _blas_threads():
    return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]


def test_every_block_runs_once_spread_over_the_threads():
    pool = BlockPool()
    taken, lock = [], threading.Lock()

    def work(worker, block):
        time.sleep(0.005)   # long enough that the second thread starts before the first is done
        with lock:
            taken.append((worker, block, threading.get_ident(), in_block_worker(), _blas_threads()))

    pool.run(work, 12, workers=2)
    assert sorted(block for _, block, *_ in taken) == list(range(12))
    assert {worker for worker, *_ in taken} == {0, 1}
    assert len({thread for _, _, thread, *_ in taken}) == 2
    assert all(active for *_, active, _ in taken)
    assert all(threads == [1] * len(threads) for *_, threads in taken)
    assert not in_block_worker()


def test_each_worker_takes_a_fixed_share_of_the_blocks():
    # What a worker sums must not depend on thread timing: a resumed run has to repeat an uninterrupted one.
    taken, lock = [], threading.Lock()

    def work(worker, block):
        time.sleep(0.001 * (block % 3))   # uneven blocks: first come, first served would reshuffle them
        with lock:
            taken.append((worker, block))

    BlockPool().run(work, 9, workers=2)
    assert sorted(taken) == [(0, 0), (0, 2), (0, 4), (0, 6), (0, 8), (1, 1), (1, 3), (1, 5), (1, 7)]


def test_convolution_weight_gradient_is_the_same_bits_every_run(monkeypatch):
    import sigma
    from sigma.ops import convolution
    cpu = backends.get("cpu")
    monkeypatch.setattr(convolution, "CHUNK_BYTES", 1)
    monkeypatch.setattr(cpu.block_pool, "workers", lambda blocks: 2)
    rng = np.random.default_rng(1)
    x = sigma.tensor(rng.standard_normal((16, 3, 9, 9)).astype(np.float32))
    weight = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    grads = []
    for _ in range(5):
        w = sigma.tensor(weight, requires_grad=True)
        out = sigma.conv2d(x, w)
        (out * out).sum().backward()
        grads.append(w.grad.numpy().copy())
    assert all(np.array_equal(grads[0], g) for g in grads[1:])


def test_blas_threads_are_given_back_after_the_blocks():
    before = _blas_threads()
    BlockPool().run(lambda worker, block: None, 4, workers=2)
    assert _blas_threads() == before


def test_an_error_in_a_block_is_raised_after_the_other_threads_stop():
    pool = BlockPool()
    done = []

    def work(worker, block):
        if block == 3:
            raise ValueError("block 3 is bad")
        time.sleep(0.002)
        done.append(block)

    with pytest.raises(ValueError, match="block 3 is bad"):
        pool.run(work, 8, workers=2)
    seen = []
    pool.run(lambda worker, block: seen.append(block), 3, workers=2)   # still usable
    assert sorted(seen) == [0, 1, 2]


def test_a_second_operation_while_the_pool_is_busy_runs_in_its_own_thread():
    pool = BlockPool()
    inner = []
    started = threading.Event()

    def slow(worker, block):
        started.set()
        time.sleep(0.05)

    runner = threading.Thread(target=pool.run, args=(slow, 2), kwargs={"workers": 2})
    runner.start()
    started.wait(5)
    pool.run(lambda worker, block: inner.append((worker, threading.get_ident())), 3, workers=2)
    runner.join()
    # All in this thread, each block as the worker it would have gone to (the same per-worker sums).
    assert inner == [(0, threading.get_ident()), (1, threading.get_ident()), (0, threading.get_ident())]


def test_blocks_use_one_thread_inside_a_block_worker():
    pool = BlockPool()
    inside = []
    pool.run(lambda worker, block: inside.append(pool.workers(10)), 2, workers=2)
    assert inside == [1, 1]


def test_convolution_through_two_block_threads_matches_torch(monkeypatch):
    torch = pytest.importorskip("torch")
    import sigma
    from sigma.ops import convolution
    cpu = backends.get("cpu")
    monkeypatch.setattr(convolution, "CHUNK_BYTES", 1)   # one sample per block
    monkeypatch.setattr(cpu.block_pool, "workers", lambda blocks: 2)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 3, 9, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    xs, ws = sigma.tensor(x, requires_grad=True), sigma.tensor(w, requires_grad=True)
    out = sigma.conv2d(xs, ws, padding=1)
    grad = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(sigma.tensor(grad))
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    reference = torch.nn.functional.conv2d(xt, wt, padding=1)
    reference.backward(torch.tensor(grad))
    np.testing.assert_allclose(out.numpy(), reference.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(xs.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ws.grad.numpy(), wt.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_single_threaded_blas_holds_blas_to_one_thread_and_gives_the_rest_back():
    before = _blas_threads()
    with BlockPool().single_threaded_blas():
        assert _blas_threads() == [1] * len(before)
    assert _blas_threads() == before


@pytest.mark.parametrize("shape,where", [((8, 8, 8), "under"), ((128, 576, 10), "inside"),
                                         ((64, 256, 1024), "above")])
def test_cpu_matmul_of_every_size_equals_numpy_and_keeps_blas_threads(shape, where):
    from backends.cpu.backend import MATMUL_ONE_THREAD_MACS
    m, k, n = shape
    low, high = MATMUL_ONE_THREAD_MACS
    assert where == ("under" if m * k * n < low else "inside" if m * k * n < high else "above")
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((m, k)), rng.standard_normal((n, k)).T   # b a transposed view, as in LinearMap
    before = _blas_threads()
    np.testing.assert_allclose(backends.get("cpu").matmul(a, b), a @ b, rtol=1e-12, atol=1e-12)
    assert _blas_threads() == before


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_runs_blocks_on_threads_of_its_own():
    import os
    pool = BlockPool()
    pool.run(lambda worker, block: None, 4, workers=2)   # the parent's threads exist now
    read, write = os.pipe()
    child = os.fork()
    if child == 0:   # pragma: no cover - runs in the child
        try:
            seen = []
            pool.run(lambda worker, block: seen.append(block), 4, workers=2)
            os.write(write, bytes(sorted(seen)))
        finally:
            os._exit(0)
    os.close(write)
    deadline = time.monotonic() + 30
    while True:
        done, status = os.waitpid(child, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:   # the child waits for threads it does not have
            os.kill(child, 9)
            os.waitpid(child, 0)
            pytest.fail("the forked child's pool.run hung")
        time.sleep(0.05)
    assert os.read(read, 16) == bytes([0, 1, 2, 3]) and status == 0
