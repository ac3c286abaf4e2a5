"""The optimiser base: parameter groups, per-parameter state and its serialisation.

Everything an optimiser has in common lives here, whatever it does in a
step: gradient optimisers (:class:`sigma.optim.GradientOptimiser`) and
forward-only ones (:class:`sigma.optim.ForwardOptimiser`) both build on it.
"""
from __future__ import annotations

import copy
import numbers
from typing import Any, ClassVar, Dict, Iterable, Iterator, List, Mapping

import numpy as np

from sigma.tensor import Tensor

__all__ = ["Optimiser", "check_non_negative"]


class Optimiser:
    """Holds parameter groups and per-parameter state; subclasses define ``step``.

    ``params`` is an iterable of tensors, or of dicts ``{"params": [...],
    "lr": ...}`` whose hyperparameters override the defaults for that group.
    A subclass lists its hyperparameters and their defaults in the class
    attribute ``defaults``; ``self.defaults`` is that merged with the ones given.

    ``state`` maps each parameter tensor to a dict (e.g. ``{"step": 3,
    "exp_avg": array}``); ``state_dict()`` turns it into plain data keyed by
    parameter index, with numpy arrays, as PyTorch does.

    Example:
        >>> import sigma
        >>> w = sigma.zeros(3, requires_grad=True)
        >>> b = sigma.zeros(1, requires_grad=True)
        >>> optimiser = sigma.optim.SGD([{"params": [w]}, {"params": [b], "lr": 0.5}], lr=0.1)
        >>> [group["lr"] for group in optimiser.param_groups]
        [0.1, 0.5]
    """

    defaults: ClassVar[Dict[str, Any]] = {}

    def __init__(self, params: Iterable, **hyperparameters: Any):
        cls_name = type(self).__name__
        known = type(self).defaults
        unknown = sorted(set(hyperparameters) - set(known))
        if unknown:
            raise TypeError(f"{cls_name}: unknown hyperparameter(s) {unknown}; it takes {sorted(known)}")
        self.defaults: Dict[str, Any] = {**known, **hyperparameters}
        self.param_groups: List[Dict[str, Any]] = []
        self.state: Dict[Tensor, Dict[str, Any]] = {}
        if isinstance(params, Tensor):
            raise TypeError(f"{cls_name}: params must be an iterable of tensors or of dicts, got a single tensor; "
                            "wrap it in a list")
        if isinstance(params, dict):
            params = [params]
        try:
            groups = list(params)
        except TypeError:
            raise TypeError(f"{cls_name}: params must be an iterable of tensors or of dicts, "
                            f"got {type(params).__name__}") from None
        if not groups:
            raise ValueError(f"{cls_name} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # -- groups -------------------------------------------------------------------
    def add_param_group(self, group: Dict[str, Any]) -> None:
        """Add a group of parameters with its own hyperparameters (missing ones take the defaults)."""
        cls_name = type(self).__name__
        if not isinstance(group, dict):
            raise TypeError(f"{cls_name}: a parameter group is a dict with a 'params' entry, "
                            f"got {type(group).__name__}")
        if "params" not in group:
            raise ValueError(f"{cls_name}: parameter group {len(self.param_groups)} has no 'params' entry")
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for i, param in enumerate(params):
            if not isinstance(param, Tensor):
                raise TypeError(f"{cls_name}: parameter {i} of group {len(self.param_groups)} is a "
                                f"{type(param).__name__}, not a sigma.Tensor")
            if param.data.dtype.kind != "f":
                raise TypeError(f"{cls_name}: can only optimise float tensors; parameter {i} of group "
                                f"{len(self.param_groups)} is {param.dtype}")
            if param._node is not None:
                raise ValueError(f"{cls_name}: parameter {i} of group {len(self.param_groups)} is not a leaf "
                                 "(it was computed from other tensors); optimise the tensors it came from")
        unknown = sorted(set(group) - set(self.defaults) - {"params"})
        if unknown:
            raise TypeError(f"{cls_name}: parameter group {len(self.param_groups)} has unknown hyperparameter(s) "
                            f"{unknown}; it takes {sorted(self.defaults)}")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        ids = [id(p) for p in params]
        if len(set(ids)) != len(ids) or seen.intersection(ids):
            raise ValueError(f"{cls_name}: a parameter appears twice (in one group or in two groups); "
                             "each tensor may belong to one group once")
        full = {**self.defaults, **{k: v for k, v in group.items() if k != "params"}, "params": params}
        self.check_hyperparameters(full)
        self.param_groups.append(full)

    def check_hyperparameters(self, group: Dict[str, Any]) -> None:
        """Raise ``ValueError`` naming a bad hyperparameter of ``group`` (subclasses override)."""

    def parameters(self) -> Iterator[Tensor]:
        """Every parameter, group by group."""
        for group in self.param_groups:
            yield from group["params"]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: ``grad = None`` (or zeros with ``set_to_none=False``)."""
        for param in self.parameters():
            if set_to_none or param.grad is None:
                param.grad = None
            else:
                # A new tensor rather than an in-place fill: grads may share memory.
                param.grad = param.grad.zeros_like()

    def step(self, closure=None):
        """Update the parameters once; returns the closure's loss when one is given."""
        raise NotImplementedError(f"{type(self).__name__} does not define step()")

    # -- serialisation --------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        """A snapshot as plain data: ``{"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}``.

        Arrays are numpy copies (so the snapshot can go into HDF5 and does not
        change as training goes on); parameters are numbered in group order.

        Example:
            >>> import sigma
            >>> w = sigma.tensor([1.0, 2.0], requires_grad=True)
            >>> optimiser = sigma.optim.SGD([w], lr=0.1, momentum=0.9)
            >>> w.grad = sigma.tensor([1.0, 1.0]); optimiser.step()
            >>> saved = optimiser.state_dict()
            >>> saved["state"][0]["momentum_buffer"], saved["param_groups"][0]["params"]
            (array([1., 1.], dtype=float32), [0])
        """
        index_of: Dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {key: copy.deepcopy(value) for key, value in group.items() if key != "params"}
            packed["params"] = [index_of.setdefault(id(p), len(index_of)) for p in group["params"]]
            groups.append(packed)
        state = {}
        for param in self.parameters():
            entries = self.state.get(param)
            if entries:
                state[index_of[id(param)]] = {key: _to_plain(value, param) for key, value in entries.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict`: hyperparameters of each group and every parameter's state.

        Everything is checked before anything changes; a state that does not
        fit (other group sizes, other shapes, another optimiser's state) raises
        ``ValueError`` saying where.
        """
        cls_name = type(self).__name__
        if not isinstance(state_dict, Mapping) or not {"state", "param_groups"} <= set(state_dict):
            found = sorted(state_dict) if isinstance(state_dict, Mapping) else type(state_dict).__name__
            raise ValueError(f"{cls_name}.load_state_dict: expected a dict with 'state' and 'param_groups', "
                             f"got {found}")
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{cls_name}.load_state_dict: the optimiser has {len(self.param_groups)} parameter "
                             f"group(s), the state has {len(saved_groups)}")
        params: List[Tensor] = []
        new_groups = []
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            saved_params = list(saved.get("params", []))
            if len(saved_params) != len(group["params"]):
                raise ValueError(f"{cls_name}.load_state_dict: group {i} has {len(group['params'])} parameter(s), "
                                 f"the state's group {i} has {len(saved_params)}")
            missing = sorted(set(self.defaults) - set(saved))
            if missing:
                raise ValueError(f"{cls_name}.load_state_dict: the state's group {i} lacks hyperparameter(s) "
                                 f"{missing}; was it saved from another optimiser?")
            new_group = {**{k: copy.deepcopy(v) for k, v in saved.items() if k != "params"},
                         "params": group["params"]}
            self.check_hyperparameters(new_group)
            new_groups.append(new_group)
            params.extend(group["params"])
        group_of = {id(p): g for g in new_groups for p in g["params"]}
        new_state: Dict[Tensor, Dict[str, Any]] = {}
        for key, entries in dict(state_dict["state"]).items():
            index = _index(key, cls_name)
            if not 0 <= index < len(params):
                raise ValueError(f"{cls_name}.load_state_dict: state for parameter {index}, but the optimiser "
                                 f"has {len(params)} parameter(s)")
            if not isinstance(entries, Mapping):
                raise ValueError(f"{cls_name}.load_state_dict: state of parameter {index} is a "
                                 f"{type(entries).__name__}, not a dict")
            param = params[index]
            restored = {name: _from_plain(value, param) for name, value in entries.items()}
            self.check_state(index, param, group_of[id(param)], restored)
            new_state[param] = restored
        for group, new_group in zip(self.param_groups, new_groups):
            group.clear()
            group.update(new_group)
        self.state = new_state

    def check_state(self, index: int, param: Tensor, group: Dict[str, Any], state: Dict[str, Any]) -> None:
        """Raise ``ValueError`` if a loaded ``state`` cannot belong to ``param`` (subclasses override)."""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"  group {i}: {len(group['params'])} parameter(s)")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]!r}")
        lines.append(")")
        return "\n".join(lines)


def check_non_negative(optimiser: Optimiser, group: Dict[str, Any], *names: str) -> None:
    """Raise ``ValueError`` unless each named hyperparameter of ``group`` is a number >= 0."""
    for name in names:
        value = group[name]
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
            raise ValueError(f"{type(optimiser).__name__}: {name} must be a number >= 0, got {value!r}")


def _index(key: Any, cls_name: str) -> int:
    # HDF5 groups and JSON objects key by strings; accept "3" for 3.
    try:
        return int(key)
    except (TypeError, ValueError):
        raise ValueError(f"{cls_name}.load_state_dict: state is keyed by parameter index, got key {key!r}") from None


def _to_plain(value: Any, param: Tensor) -> Any:
    """A snapshot of one state value: arrays become numpy copies, containers are copied."""
    if isinstance(value, np.generic):
        return value.item()
    if param.backend.is_array(value) or isinstance(value, np.ndarray):
        return np.array(param.backend.to_host(value), copy=True)
    if isinstance(value, Tensor):
        return np.array(value.numpy(), copy=True)
    if isinstance(value, dict):
        return {k: _to_plain(v, param) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_plain(v, param) for v in value)
    return copy.deepcopy(value)


def _from_plain(value: Any, param: Tensor) -> Any:
    """A state value moved onto the parameter's backend; float arrays take the parameter's dtype."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) or param.backend.is_array(value):
        host = np.array(param.backend.to_host(value) if param.backend.is_array(value) else value, copy=True)
        if host.dtype.kind == "f":
            host = host.astype(param.dtype, copy=False)
        return param.backend.asarray(host)
    if isinstance(value, dict):
        return {k: _from_plain(v, param) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_from_plain(v, param) for v in value)
    return copy.deepcopy(value)
