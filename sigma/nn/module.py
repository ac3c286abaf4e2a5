"""``Module``: the base class of layers and networks.

A module finds its parameters, buffers and sub-modules by walking its own
attributes (``vars(self)``), including lists, tuples and dicts of them. There
is no registration table to keep in step with the attributes, so reading
``self.weight`` in ``forward`` is a plain attribute access. The only things
recorded on the side are the names of buffers (a tensor attribute is a buffer
only if ``register_buffer`` named it) and forward hooks.

Names are dotted paths: an attribute ``features`` holding a list of modules
gives ``features.0.weight``, ``features.1.bias``, ...

Order: a module lists its own parameters (and buffers) first, in the order
the attributes were set, then those of its sub-modules, depth first. This
is also PyTorch's order, so state dicts line up name for name.
"""
from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterator, List, Mapping, NamedTuple, Optional, Tuple

import numpy as np

from sigma import device as _device
from sigma.tensor import Tensor
from sigma.nn.parameter import Parameter

# Attributes the machinery itself keeps on a module; never walked.
_BOOKKEEPING = frozenset({"training", "_buffer_names", "_forward_hooks", "_entries"})


class LoadResult(NamedTuple):
    """What ``load_state_dict(strict=False)`` skipped."""
    missing_keys: List[str]
    unexpected_keys: List[str]


class HookHandle:
    """Returned by ``register_forward_hook``; ``remove()`` takes the hook off again."""

    __slots__ = ("_hooks", "_key")

    def __init__(self, hooks: dict, key: int):
        self._hooks, self._key = hooks, key

    def remove(self) -> None:
        self._hooks.pop(self._key, None)


_hook_keys = itertools.count(1)


def _flatten(name: str, value: Any) -> Iterator[Tuple[str, Any]]:
    """(dotted name, Module or Parameter) for an attribute value, looking inside containers."""
    if isinstance(value, (Module, Parameter)):
        yield name, value
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _flatten(f"{name}.{i}", item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(f"{name}.{key}", item)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


class Module:
    """Base class of everything with parameters: layers, blocks, whole networks.

    Subclasses set parameters (:class:`Parameter`), sub-modules and buffers
    as attributes in ``__init__`` and write ``forward``; calling the module
    calls ``forward``. Any Python control flow in ``forward`` is fine: the
    graph is recorded as it runs (residual connections, several inputs or
    outputs, one layer used twice).

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> class Residual(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.inner = nn.Linear(4, 4)
        ...     def forward(self, x):
        ...         return x + self.inner(x).relu()
        >>> block = Residual()
        >>> [name for name, _ in block.named_parameters()]
        ['inner.weight', 'inner.bias']
        >>> block(sigma.ones(2, 4)).shape
        (2, 4)
    """

    training: bool = True
    _forward_hooks: Optional[Dict[int, Callable]] = None

    def __init__(self) -> None:
        self.training = True

    # -- calling --------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        output = self.forward(*args, **kwargs)
        if self._forward_hooks:
            for hook in list(self._forward_hooks.values()):
                replaced = hook(self, args, output)
                if replaced is not None:
                    output = replaced
        return output

    def register_forward_hook(self, hook: Callable) -> HookHandle:
        """Call ``hook(module, inputs, output)`` after every forward.

        A hook that returns something other than ``None`` replaces the output.

        Example:
            >>> import sigma
            >>> from sigma import nn
            >>> layer, shapes = nn.Linear(3, 2), []
            >>> handle = layer.register_forward_hook(lambda m, inputs, out: shapes.append(out.shape))
            >>> _ = layer(sigma.ones(5, 3)); handle.remove(); _ = layer(sigma.ones(1, 3))
            >>> shapes
            [(5, 2)]
        """
        if not callable(hook):
            raise TypeError(f"register_forward_hook: the hook must be callable, got {type(hook).__name__}")
        hooks = self.__dict__.get("_forward_hooks")
        if hooks is None:
            hooks = {}
            self.__dict__["_forward_hooks"] = hooks
        key = next(_hook_keys)
        hooks[key] = hook
        return HookHandle(hooks, key)

    # -- attributes -----------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        old = self.__dict__.get(name)
        if isinstance(old, Parameter) and value is not None and not isinstance(value, Parameter):
            raise TypeError(f"cannot assign {type(value).__name__} to {type(self).__name__}.{name}, which is a "
                            "Parameter; assign a Parameter, or change the values in place with .copy_()")
        if name in self.__dict__.get("_buffer_names", ()):
            if value is not None and (not isinstance(value, Tensor) or isinstance(value, Parameter)):
                raise TypeError(f"{type(self).__name__}.{name} is a buffer: assign a plain Tensor (or None), "
                                f"got {type(value).__name__}")
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, tensor: Optional[Tensor], persistent: bool = True) -> None:
        """Keep a tensor that is state but not trained (e.g. running statistics).

        Buffers move with ``.to()``; persistent ones are part of ``state_dict()``.

        Example:
            >>> import sigma
            >>> from sigma import nn
            >>> m = nn.Module()
            >>> m.register_buffer("count", sigma.zeros(1))
            >>> list(m.state_dict())
            ['count']
        """
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"register_buffer: the name must be a non-empty string without '.', got {name!r}")
        if tensor is not None and (not isinstance(tensor, Tensor) or isinstance(tensor, Parameter)):
            raise TypeError(f"register_buffer: {name!r} must be a plain Tensor or None, got {type(tensor).__name__}")
        if name in self.__dict__ and name not in self.__dict__.get("_buffer_names", ()):
            raise KeyError(f"register_buffer: {type(self).__name__} already has an attribute {name!r}")
        names = self.__dict__.get("_buffer_names")
        if names is None:
            names = {}
            self.__dict__["_buffer_names"] = names
        names[name] = bool(persistent)
        object.__setattr__(self, name, tensor)

    def _members(self) -> Iterator[Tuple[str, Any]]:
        """(name, value) for each direct sub-module and parameter, in attribute order."""
        buffer_names = self.__dict__.get("_buffer_names", ())
        for name, value in self.__dict__.items():
            if name in _BOOKKEEPING or name in buffer_names:
                continue
            yield from _flatten(name, value)

    def _own_buffers(self, persistent_only: bool = False) -> Iterator[Tuple[str, Tensor]]:
        for name, persistent in self.__dict__.get("_buffer_names", {}).items():
            value = self.__dict__.get(name)
            if value is not None and (persistent or not persistent_only):
                yield name, value

    # -- walking --------------------------------------------------------------
    def named_children(self) -> Iterator[Tuple[str, "Module"]]:
        """Direct sub-modules with their names (``"0"``, ``"encoder"``, ``"blocks.2"``)."""
        seen = set()
        for name, value in self._members():
            if isinstance(value, Module) and id(value) not in seen:
                seen.add(id(value))
                yield name, value

    def children(self) -> Iterator["Module"]:
        for _, module in self.named_children():
            yield module

    def named_modules(self, prefix: str = "", remove_duplicate: bool = True) -> Iterator[Tuple[str, "Module"]]:
        """This module (named ``prefix``, ``""`` by default) and every module below it, depth first.

        A module reachable along several paths is listed once unless
        ``remove_duplicate=False``; a module that contains itself is never
        walked twice along one path.
        """
        seen = set() if remove_duplicate else None
        yield from self._walk_modules(prefix, seen, ())

    def _walk_modules(self, prefix: str, seen: Optional[set], ancestors: tuple):
        if seen is not None:
            if id(self) in seen:
                return
            seen.add(id(self))
        yield prefix, self
        ancestors = ancestors + (id(self),)
        for name, value in self._members():
            if isinstance(value, Module) and id(value) not in ancestors:
                yield from value._walk_modules(_join(prefix, name), seen, ancestors)

    def modules(self) -> Iterator["Module"]:
        for _, module in self.named_modules():
            yield module

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[Tuple[str, Parameter]]:
        """Every parameter with its dotted name; a shared parameter is listed once (under its first name).

        Example:
            >>> from sigma import nn
            >>> net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
            >>> [name for name, _ in net.named_parameters()]
            ['0.weight', '0.bias', '2.weight', '2.bias']
        """
        modules = self.named_modules(prefix, remove_duplicate) if recurse else [(prefix, self)]
        seen = set()
        for module_name, module in modules:
            for name, value in module._members():
                if isinstance(value, Parameter):
                    if remove_duplicate:
                        if id(value) in seen:
                            continue
                        seen.add(id(value))
                    yield _join(module_name, name), value

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every parameter once, in a fixed order (what optimisers take)."""
        for _, parameter in self.named_parameters(recurse=recurse):
            yield parameter

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[Tuple[str, Tensor]]:
        """Every buffer (persistent or not) with its dotted name."""
        modules = self.named_modules(prefix, remove_duplicate) if recurse else [(prefix, self)]
        seen = set()
        for module_name, module in modules:
            for name, value in module._own_buffers():
                if remove_duplicate:
                    if id(value) in seen:
                        continue
                    seen.add(id(value))
                yield _join(module_name, name), value

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def apply(self, function: Callable[["Module"], Any]) -> "Module":
        """Call ``function(module)`` on every sub-module, then on this one; returns ``self``."""
        for module in list(self.children()):
            module.apply(function)
        function(self)
        return self

    # -- state ----------------------------------------------------------------
    def _state_tensors(self) -> "OrderedDict[str, Tensor]":
        """name -> the live tensor, for parameters and persistent buffers, every name a tensor has."""
        state = OrderedDict()
        for module_name, module in self.named_modules(remove_duplicate=False):
            for name, value in module._members():
                if isinstance(value, Parameter):
                    state[_join(module_name, name)] = value
            for name, value in module._own_buffers(persistent_only=True):
                state[_join(module_name, name)] = value
        return state

    def state_dict(self) -> "OrderedDict[str, Tensor]":
        """Parameters and persistent buffers by dotted name, as tensors sharing the live arrays.

        A parameter shared between two places appears under both names (as in
        PyTorch), so a state dict loads into an unshared copy of the network too.
        Copy the arrays (``{k: v.numpy().copy() ...}``) to keep a snapshot.

        Example:
            >>> from sigma import nn
            >>> list(nn.BatchNorm1d(3).state_dict())
            ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
        """
        return OrderedDict((name, tensor.detach()) for name, tensor in self._state_tensors().items())

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> LoadResult:
        """Copy values into the parameters and buffers, in place (optimisers keep their references).

        Values may be tensors (on any backend), numpy arrays or nested lists;
        they are cast to each target's dtype. Nothing is written unless every
        value fits: a value whose shape differs always raises; missing and
        unexpected names raise when ``strict`` (the default) and are returned
        otherwise.

        Example:
            >>> import sigma
            >>> from sigma import nn
            >>> a, b = nn.Linear(2, 2), nn.Linear(2, 2)
            >>> b.load_state_dict(a.state_dict())
            LoadResult(missing_keys=[], unexpected_keys=[])
            >>> bool((a.weight == b.weight).all())
            True
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"load_state_dict: expected a mapping of name -> array, got {type(state).__name__}")
        targets = self._state_tensors()
        missing = [name for name in targets if name not in state]
        unexpected = [name for name in state if name not in targets]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict into {type(self).__name__}: missing keys {missing}, "
                           f"unexpected keys {unexpected}")
        arrays = {}
        mismatched = []
        for name, target in targets.items():
            if name not in state:
                continue
            array = _as_array_for(target, state[name], name)
            if tuple(array.shape) != target.shape:
                mismatched.append(f"{name!r} expects shape {target.shape}, got {tuple(array.shape)}")
            arrays[name] = array
        if mismatched:
            raise ValueError("load_state_dict: shape mismatch: " + "; ".join(mismatched))
        for name, array in arrays.items():
            targets[name].data[...] = array
        return LoadResult(missing, unexpected)

    # -- modes, devices, gradients ------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Set training mode (dropout active, batch norm uses batch statistics) here and below."""
        if not isinstance(mode, bool):
            raise TypeError(f"train(mode): mode must be True or False, got {mode!r}")
        for module in self.modules():
            module.training = mode
        return self

    def eval(self) -> "Module":
        """Set evaluation mode here and below; same as ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Freeze (``False``) or unfreeze every parameter."""
        for parameter in self.parameters():
            parameter.requires_grad_(requires_grad)
        return self

    def zero_grad(self) -> None:
        """Drop every parameter's gradient (set ``.grad`` to ``None``)."""
        for parameter in self.parameters():
            parameter.grad = None

    def to(self, device: Any = None, dtype: Any = None) -> "Module":
        """Move parameters and buffers to ``device`` and/or cast float ones to ``dtype``, in place.

        The tensor objects stay the same (their ``.data`` and ``.backend`` are
        rebound), so an optimiser made before the move keeps working.

        Example:
            >>> from sigma import nn
            >>> layer = nn.Linear(2, 2)
            >>> weight = layer.weight
            >>> _ = layer.to("cpu", dtype="float64")
            >>> layer.weight is weight, layer.weight.dtype
            (True, dtype('float64'))
        """
        target = _device.resolve(device) if device is not None else None
        float_dtype = None
        if dtype is not None:
            float_dtype = np.dtype(dtype)
            if float_dtype.kind != "f":
                raise TypeError(f"to(dtype=...): parameters must stay float, got {float_dtype}")
        seen = set()
        tensors = [t for _, t in self.named_parameters()] + [t for _, t in self.named_buffers()]
        for tensor in tensors:
            if id(tensor) in seen:
                continue
            seen.add(id(tensor))
            _move(tensor, target, float_dtype)
            if tensor.grad is not None:
                _move(tensor.grad, target, float_dtype)
        return self

    def describe(self, input_shape, dtype: Any = None, device: Any = None):
        """Layers, output shapes and parameter counts for an input of ``input_shape``.

        See :func:`sigma.nn.describe.describe`; print the result for a table.
        """
        from sigma.nn.describe import describe
        return describe(self, input_shape, dtype=dtype, device=device)

    # -- printing -------------------------------------------------------------
    def extra_repr(self) -> str:
        """The text inside this module's parentheses in ``repr`` (its settings)."""
        return ""

    def __repr__(self) -> str:
        children = list(self.named_children())
        extra = self.extra_repr()
        if not children:
            return f"{type(self).__name__}({extra})"
        lines = [f"{type(self).__name__}(" + (extra if extra else "")]
        for name, child in children:
            text = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {text}")
        lines.append(")")
        return "\n".join(lines)


def _move(tensor: Tensor, target, float_dtype) -> None:
    if target is not None and tensor.backend is not target:
        moved = tensor.detach().to(target)
        tensor.data, tensor.backend = moved.data, moved.backend
    if float_dtype is not None and tensor.data.dtype.kind == "f" and tensor.data.dtype != float_dtype:
        tensor.data = tensor.data.astype(float_dtype)


def _as_array_for(target: Tensor, value: Any, name: str):
    """``value`` as an array on ``target``'s backend with ``target``'s dtype."""
    if isinstance(value, Tensor):
        value = value.data if value.backend is target.backend else value.numpy()
    try:
        return target.backend.asarray(value, dtype=target.data.dtype)
    except (TypeError, ValueError) as error:
        raise TypeError(f"load_state_dict: the value for {name!r} ({type(value).__name__}) cannot be read as "
                        f"{target.data.dtype} numbers: {error}") from None
