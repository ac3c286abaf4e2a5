"""MultiGPU: one model copy per device, gradients summed across devices, the same update everywhere.

Here the devices are CPUs (a list may name a device twice), which runs every line but the copies between
GPUs; the GPU run skips with its reason where there is none."""
import numpy as np
import pytest

from sigma.training.operators import Inline, ModelAveraging, MultiGPU

from conftest import GPU_SKIP_REASON
from distributed_helpers import assert_close, make_trainer


def parameters(network):
    return {name: tensor.numpy().copy() for name, tensor in network.state_dict().items()}


@pytest.mark.parametrize("devices,batch_size", [(["cpu", "cpu"], 32), (["cpu", "cpu", "cpu"], 7)])
def test_all_reduce_equals_inline_and_keeps_every_copy_identical(devices, batch_size):
    inline = make_trainer(Inline(), batch_size=batch_size)
    inline_result = inline.run(epochs=2)
    operator = MultiGPU(devices)
    parallel = make_trainer(operator, batch_size=batch_size)
    parallel_result = parallel.run(epochs=2)
    assert operator.transport == "host"
    assert_close(parameters(inline.network), parameters(parallel.network))
    for worker in operator.workers[1:]:
        assert worker.network is not parallel.network  # its own copy, not shared arrays
        assert_close(parameters(worker.network), parameters(parallel.network), tolerance=0)
    assert parallel_result.iteration == inline_result.iteration
    assert parallel_result.metrics["train/loss"] == pytest.approx(inline_result.metrics["train/loss"], rel=1e-4)
    assert not np.allclose(parameters(inline.network)["0.weight"], make_trainer(Inline()).network[0].weight.numpy())


def test_batch_norm_running_statistics_are_averaged_into_every_copy():
    # One step from zero: each running mean is momentum x its shard's mean; the mean over two equal shards is
    # the whole batch's, so every copy holds Inline's running mean.
    inline = make_trainer(Inline(), batch_norm=True)
    inline.run(iterations=1)
    operator = MultiGPU(["cpu", "cpu"])
    make_trainer(operator, batch_norm=True).run(iterations=1)
    expected = parameters(inline.network)["1.running_mean"]
    assert np.abs(expected).max() > 1e-3
    for worker in operator.workers:
        np.testing.assert_allclose(parameters(worker.network)["1.running_mean"], expected, rtol=1e-5, atol=1e-6)


def test_model_averaging_ends_with_equal_copies_that_learned():
    operator = MultiGPU(["cpu", "cpu"], merge=ModelAveraging(every=3))
    trainer = make_trainer(operator)
    result = trainer.run(epochs=4)
    assert_close(parameters(operator.workers[1].network), parameters(trainer.network), tolerance=1e-6)
    assert result.metrics["train/accuracy"] > 0.8


def test_checkpoints_move_between_multigpu_and_inline(tmp_path):
    operator = MultiGPU(["cpu", "cpu"])
    source = make_trainer(operator)
    source.run(iterations=5)
    source.save_checkpoint(tmp_path / "multi.h5")
    single = make_trainer(Inline())
    single.restore(tmp_path / "multi.h5")
    assert_close(parameters(single.network), parameters(source.network), tolerance=0)

    target_operator = MultiGPU(["cpu", "cpu"])
    target = make_trainer(target_operator)
    target.restore(tmp_path / "multi.h5")
    # the second device's copy took worker 0's restored weights and optimiser state
    assert_close(parameters(target_operator.workers[1].network), parameters(source.network), tolerance=0)
    source.run(iterations=8)
    target.run(iterations=8)
    assert_close(parameters(target.network), parameters(source.network), tolerance=1e-6)
    assert_close(parameters(target_operator.workers[1].network), parameters(source.network), tolerance=1e-6)


@pytest.mark.parametrize("arguments,message", [
    ({"devices": []}, "non-empty list"),
    ({"devices": "cuda:0"}, "non-empty list"),
    ({"devices": ["cpu"], "transport": "carrier pigeon"}, "transport must be"),
    ({"devices": ["nowhere:3"]}, "nowhere"),
])
def test_bad_arguments_name_the_problem(arguments, message):
    with pytest.raises((ValueError, KeyError)) as error:
        MultiGPU(**arguments)
    assert message in str(error.value)


def test_asking_for_nccl_without_gpus_says_what_is_missing():
    with pytest.raises(RuntimeError, match="every device to be a GPU"):
        make_trainer(MultiGPU(["cpu", "cpu"], transport="nccl"))


@pytest.mark.cuda
@pytest.mark.skipif(GPU_SKIP_REASON is not None, reason=str(GPU_SKIP_REASON))
def test_two_workers_on_a_gpu_equal_inline():
    inline = make_trainer(Inline())
    inline.network.to("cuda:0")
    inline.run(iterations=6)
    operator = MultiGPU(["cuda:0", "cuda:0"], transport="host")
    parallel = make_trainer(operator)
    parallel.run(iterations=6)
    assert_close(parameters(inline.network), parameters(parallel.network), tolerance=1e-5)
