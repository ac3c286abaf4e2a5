"""A conformance kit for optimisers: run it on yours before you publish it.

``check_optimiser(MyOptimiser, lr=0.1)`` trains a small quadratic with the
given hyperparameters and raises ``AssertionError`` naming the first promise
the optimiser breaks:

* it lowers the loss (float32 and float64, on every available backend), and
  leaves the parameters' shape, dtype and device alone;
* its ``state_dict()`` is a snapshot of plain data (numbers, strings, numpy
  arrays, lists, tuples and dicts of them) that later steps do not change;
* an optimiser restored from it mid-run continues bit-identically to one that
  never stopped, and loading a state that does not fit raises ``ValueError``;
* two runs from the same seed give identical parameters;
* each parameter group's own hyperparameters are used (a group with
  ``lr=0`` does not move);
* gradient optimisers leave parameters without a gradient alone.
"""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Sequence

import numpy as np

import backends
import sigma
from sigma.optim.forward import ForwardOptimiser
from sigma.optim.optimiser import Optimiser

__all__ = ["check_optimiser"]

_SHAPES = ((4, 3), (3,))
_STEPS = 40
_PLAIN_TYPES = (bool, int, float, str, type(None), np.ndarray, np.generic)


def check_optimiser(optimiser_class: type, **hyperparameters: Any) -> List[str]:
    """Check that ``optimiser_class`` keeps the promises of a Sigma optimiser; returns the checks passed.

    ``hyperparameters`` are passed to every optimiser the kit makes (choose a
    learning rate that makes progress on a quadratic in 40 steps).

    Example:
        >>> import sigma.optim
        >>> from sigma.testing import check_optimiser
        >>> "state round trip" in check_optimiser(sigma.optim.SGD, lr=0.1, momentum=0.9)
        True
    """
    if not (isinstance(optimiser_class, type) and issubclass(optimiser_class, Optimiser)):
        raise TypeError(f"check_optimiser takes a subclass of sigma.optim.Optimiser, got {optimiser_class!r}")
    kit = _Kit(optimiser_class, hyperparameters)
    passed = []
    for name, check in [("lowers the loss", kit.lowers_the_loss),
                        ("deterministic under a seed", kit.deterministic_under_a_seed),
                        ("state_dict is a plain snapshot", kit.state_dict_is_a_plain_snapshot),
                        ("state round trip", kit.state_round_trip),
                        ("rejects a state that does not fit", kit.rejects_a_state_that_does_not_fit),
                        ("uses each group's hyperparameters", kit.uses_each_groups_hyperparameters),
                        ("leaves parameters without gradients alone", kit.leaves_parameters_without_gradients),
                        ("every available backend", kit.every_available_backend)]:
        try:
            check()
        except _Failure as failure:
            raise AssertionError(f"check_optimiser({optimiser_class.__name__}): {name}: {failure}") from None
        except Exception as error:
            raise AssertionError(f"check_optimiser({optimiser_class.__name__}): {name}: raised "
                                 f"{type(error).__name__}: {error}") from error
        passed.append(name)
    return passed


class _Failure(Exception):
    pass


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise _Failure(message)


class _Kit:
    def __init__(self, optimiser_class: type, hyperparameters: Dict[str, Any]):
        self.cls = optimiser_class
        self.hyperparameters = hyperparameters
        self.forward_only = issubclass(optimiser_class, ForwardOptimiser)
        generator = np.random.default_rng(20260101)
        # loss = sum(curvature * (param - target) ** 2): a bowl with unequal
        # curvatures, so that a per-element scaling matters.
        self.targets = [generator.standard_normal(s) for s in _SHAPES]
        self.curvatures = [generator.uniform(0.5, 2.0, s) for s in _SHAPES]
        self.starts = [generator.standard_normal(s) for s in _SHAPES]

    # -- the problem ---------------------------------------------------------------------
    def parameters(self, device: str = "cpu", dtype: str = "float32", values=None) -> List[sigma.Tensor]:
        values = self.starts if values is None else values
        return [sigma.tensor(np.array(v, dtype=dtype), device=device, requires_grad=True) for v in values]

    def loss(self, params: Sequence[sigma.Tensor]) -> sigma.Tensor:
        total = None
        for param, target, curvature in zip(params, self.targets, self.curvatures):
            target = sigma.tensor(target.astype(param.dtype), device=param.device)
            curvature = sigma.tensor(curvature.astype(param.dtype), device=param.device)
            term = (curvature * (param - target) ** 2).sum()
            total = term if total is None else total + term
        return total

    def make(self, params, groups=None) -> Optimiser:
        return self.cls(params if groups is None else groups, **self.hyperparameters)

    def run(self, optimiser: Optimiser, params: Sequence[sigma.Tensor], steps: int) -> None:
        for _ in range(steps):
            if self.forward_only:
                optimiser.step(lambda: self.loss(params))
            else:
                def closure():
                    optimiser.zero_grad()
                    loss = self.loss(params)
                    loss.backward()
                    return loss
                optimiser.step(closure)

    @staticmethod
    def values(params: Sequence[sigma.Tensor]) -> List[np.ndarray]:
        return [np.array(p.numpy(), copy=True) for p in params]

    # -- the checks ------------------------------------------------------------------------
    def lowers_the_loss(self, device: str = "cpu") -> None:
        for dtype in ("float32", "float64"):
            params = self.parameters(device, dtype)
            before = float(self.loss(params).item())
            self.run(self.make(params), params, _STEPS)
            after = float(self.loss(params).item())
            _require(np.isfinite(after), f"the loss became {after} on {device} in {dtype}")
            _require(after < 0.99 * before, f"the loss went from {before:.6g} to {after:.6g} in {_STEPS} steps on "
                                            f"{device} in {dtype}; it should fall (is the step's sign right, and "
                                            "the learning rate large enough?)")
            for i, (param, shape) in enumerate(zip(params, _SHAPES)):
                _require(param.shape == shape and str(param.dtype) == dtype and param.device == device,
                         f"parameter {i} became shape {param.shape}, {param.dtype} on {param.device}; it was "
                         f"{shape}, {dtype} on {device}")
                _require(param.backend.is_array(param.data), f"parameter {i}'s data is a {type(param.data)}, "
                                                             f"not an array of {device}")

    def state_dict_is_a_plain_snapshot(self) -> None:
        params = self.parameters()
        optimiser = self.make(params)
        self.run(optimiser, params, 3)
        saved = optimiser.state_dict()
        _require(isinstance(saved, dict) and {"state", "param_groups"} <= set(saved),
                 f"state_dict() returned {type(saved).__name__} with keys "
                 f"{sorted(saved) if isinstance(saved, dict) else '-'}; it needs 'state' and 'param_groups'")
        _check_plain(saved, "state_dict()")
        frozen = copy.deepcopy(saved)
        self.run(optimiser, params, 3)
        _require(_equal(saved, frozen), "state_dict() changed when the optimiser took more steps; it must hold "
                                        "copies, not the live state")

    def state_round_trip(self) -> None:
        params = self.parameters()
        optimiser = self.make(params)
        self.run(optimiser, params, 5)
        saved = copy.deepcopy(optimiser.state_dict())
        middle = self.values(params)
        self.run(optimiser, params, 5)
        expected = self.values(params)

        restored_params = self.parameters(values=middle)
        restored = self.make(restored_params)
        restored.load_state_dict(copy.deepcopy(saved))
        _require(_equal(restored.state_dict(), saved),
                 "state_dict() after load_state_dict(saved) differs from saved")
        self.run(restored, restored_params, 5)
        for i, (want, got) in enumerate(zip(expected, self.values(restored_params))):
            if not np.array_equal(want, got):
                raise _Failure(f"after restoring at step 5 and taking 5 more steps, parameter {i} differs from the "
                               f"run that never stopped by up to {np.max(np.abs(want - got)):.3g}; "
                               "some state is missing from state_dict()")

    def rejects_a_state_that_does_not_fit(self) -> None:
        params = self.parameters()
        optimiser = self.make(params)
        self.run(optimiser, params, 2)
        saved = optimiser.state_dict()
        one_group = self.make(self.parameters()[:1])
        try:
            one_group.load_state_dict(copy.deepcopy(saved))
        except ValueError:
            pass
        else:
            raise _Failure("load_state_dict accepted a state saved for 2 parameters into an optimiser of 1")
        has_arrays = any(isinstance(v, np.ndarray) and v.shape == _SHAPES[int(i)]
                         for i, state in saved["state"].items() for v in state.values())
        if has_arrays:
            swapped = self.parameters(values=[np.zeros(_SHAPES[1]), np.zeros(_SHAPES[0])])
            try:
                self.make(swapped).load_state_dict(copy.deepcopy(saved))
            except ValueError:
                pass
            else:
                raise _Failure("load_state_dict accepted state arrays whose shapes do not match the parameters")

    def deterministic_under_a_seed(self) -> None:
        runs = []
        for _ in range(2):
            sigma.manual_seed(1234)
            params = self.parameters()
            self.run(self.make(params), params, 10)
            runs.append(self.values(params))
        for i, (a, b) in enumerate(zip(*runs)):
            _require(np.array_equal(a, b), f"two runs from seed 1234 differ in parameter {i} by up to "
                                           f"{np.max(np.abs(a - b)):.3g}; draw randomness from a seeded stream")

    def uses_each_groups_hyperparameters(self) -> None:
        if "lr" not in self.cls.defaults:
            return
        params = self.parameters()
        groups = [{"params": [params[0]]}, {"params": [params[1]], "lr": 0.0}]
        self.run(self.make(params, groups), params, 5)
        _require(not np.array_equal(params[0].numpy(), self.starts[0].astype(np.float32)),
                 "the parameters of the first group did not move")
        _require(np.array_equal(params[1].numpy(), self.starts[1].astype(np.float32)),
                 "a group with lr=0 moved; the optimiser must read each group's own hyperparameters")

    def leaves_parameters_without_gradients(self) -> None:
        if self.forward_only:
            return
        params = self.parameters()
        idle = sigma.tensor(np.ones(3, np.float32), requires_grad=True)
        optimiser = self.make(params + [idle])
        self.run(optimiser, params, 3)
        _require(np.array_equal(idle.numpy(), np.ones(3, np.float32)),
                 "a parameter that never had a gradient changed")
        optimiser.zero_grad()
        _require(all(p.grad is None for p in params), "zero_grad() left gradients behind")

    def every_available_backend(self) -> None:
        for device in backends.available():
            self.lowers_the_loss(device)


def _check_plain(value: Any, where: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _require(isinstance(key, (str, int, np.integer)), f"{where} has a key of type {type(key).__name__}")
            _check_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    else:
        _require(isinstance(value, _PLAIN_TYPES), f"{where} is a {type(value).__module__}.{type(value).__name__}; "
                                                  "a state_dict holds numbers, strings, numpy arrays and "
                                                  "lists/tuples/dicts of them, so it can be written to HDF5")


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and set(a) == set(b) and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and np.array_equal(a, b, equal_nan=True))
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return type(a) is type(b) and a == b
