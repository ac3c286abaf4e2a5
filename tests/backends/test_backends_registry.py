"""The backend registry: names, errors, third-party kinds through entry points."""
from importlib import metadata

import numpy as np
import pytest

import backends
import sigma
from backends import Backend


def test_get_returns_one_shared_cpu_backend():
    assert backends.get("cpu") is backends.get("CPU ")
    assert backends.get("cpu").xp is np
    assert backends.get(backends.get("cpu")) is backends.get("cpu")


def test_unknown_kind_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown backend 'tpu:0'.*'cpu'"):
        backends.get("tpu:0")


def test_bad_cpu_name_and_type():
    with pytest.raises(ValueError, match="cpu"):
        backends.get("cpu:3")
    with pytest.raises(TypeError, match="string"):
        backends.get(3)


def test_available_always_lists_cpu():
    assert backends.available()[0] == "cpu"


def test_cuda_without_gpu_says_why():
    if "cuda:0" in backends.available():
        pytest.skip("a GPU is present: the error path cannot be exercised")
    with pytest.raises(RuntimeError, match="cuda backend"):
        backends.get("cuda:0")


class _FakeBackend(Backend):
    kind = "fake"

    def __init__(self, name):
        self.name = name
        self.xp = np


def test_third_party_kind_through_entry_point(monkeypatch):
    entry = metadata.EntryPoint(name="fake", value=f"{__name__}:_FakeBackend", group=backends.ENTRY_POINT_GROUP)
    original = metadata.entry_points

    def entry_points(**kwargs):
        if kwargs.get("group") == backends.ENTRY_POINT_GROUP:
            return [entry]
        return original(**kwargs)

    monkeypatch.setattr(metadata, "entry_points", entry_points)
    monkeypatch.setattr(backends, "_entry_points_loaded", False)
    monkeypatch.setattr(backends, "_factories", dict(backends._factories))
    monkeypatch.setattr(backends, "_instances", dict(backends._instances))
    device = backends.get("fake:1")
    assert isinstance(device, _FakeBackend)
    assert device.name == "fake:1"


def test_register_rejects_bad_kind():
    with pytest.raises(ValueError, match="without ':'"):
        backends.register("a:b", _FakeBackend)


def test_for_array_finds_the_owner():
    assert backends.for_array(np.zeros(2)) is backends.get("cpu")
    with pytest.raises(TypeError, match="no backend owns"):
        backends.for_array([1, 2])


def test_default_backend_switch():
    assert sigma.use("cpu") is backends.get("cpu")
    assert sigma.zeros(2).device == "cpu"
    with pytest.raises(ValueError, match="unknown backend"):
        sigma.use("nowhere")


def test_operations_call_the_kernels_of_the_tensors_backend(monkeypatch):
    """A third-party backend may hold numpy arrays too: its own kernels must run,
    not the cpu backend's (the op knows the tensors' backend, not just the arrays)."""
    from backends.cpu import CPUBackend

    calls = []

    class CountingBackend(CPUBackend):
        kind = "counting"

        def im2col(self, *args):
            calls.append("im2col")
            return super().im2col(*args)

        def max_pool2d(self, *args):
            calls.append("max_pool2d")
            return super().max_pool2d(*args)

    monkeypatch.setattr(backends, "_factories", dict(backends._factories))
    monkeypatch.setattr(backends, "_instances", dict(backends._instances))
    backends.register("counting", CountingBackend)
    device = backends.get("counting")
    x = sigma.ones(1, 1, 4, 4, device=device)
    y = sigma.max_pool2d(sigma.conv2d(x, sigma.ones(1, 1, 3, 3, device=device), padding=1), 2)
    assert y.device == "counting"
    assert y.tolist() == [[[[9.0, 9.0], [9.0, 9.0]]]]  # every 2x2 window holds an interior 9
    assert calls == ["im2col", "max_pool2d"]
