"""Modules that hold other modules: ``Sequential``, ``ModuleList``, ``ModuleDict``.

Their entries are named by position (``"0"``, ``"1"``, ...) or by key, so a
``Sequential``'s parameters are called ``0.weight``, ``2.bias``, as in PyTorch.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, Iterator, Mapping, Tuple, Union

from sigma.nn.module import Module


def _check_module(container: str, name: Any, value: Any) -> "Module":
    if not isinstance(value, Module):
        raise TypeError(f"{container}: entry {name!r} must be a Module, got {type(value).__name__}")
    return value


def _check_key(container: str, key: Any) -> str:
    if not isinstance(key, str) or not key or "." in key:
        raise ValueError(f"{container}: names must be non-empty strings without '.', got {key!r}")
    return key


class Sequential(Module):
    """Modules applied one after another: ``Sequential(a, b, c)(x) == c(b(a(x)))``.

    Give modules positionally (named ``"0"``, ``"1"``, ...) or as one dict of
    name -> module. Index with an int (negative too) or a name; a slice gives a
    new ``Sequential`` of the same module objects.

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
        >>> net.append(nn.Linear(8, 2))
        Sequential(
          (0): Linear(in_features=4, out_features=8, bias=True)
          (1): ReLU()
          (2): Linear(in_features=8, out_features=2, bias=True)
        )
        >>> net(sigma.ones(3, 4)).shape, len(net), type(net[-1]).__name__
        ((3, 2), 3, 'Linear')
    """

    def __init__(self, *modules: Union[Module, Mapping[str, Module]]):
        super().__init__()
        entries: Dict[str, Module] = {}
        if len(modules) == 1 and isinstance(modules[0], Mapping):
            for key, module in modules[0].items():
                entries[_check_key("Sequential", key)] = _check_module("Sequential", key, module)
        else:
            for i, module in enumerate(modules):
                entries[str(i)] = _check_module("Sequential", i, module)
        self._entries = entries

    def _members(self) -> Iterator[Tuple[str, Any]]:
        yield from self._entries.items()
        yield from super()._members()

    def forward(self, x):
        for module in self._entries.values():
            x = module(x)
        return x

    def _key_at(self, index: int) -> str:
        keys = list(self._entries)
        if not -len(keys) <= index < len(keys):
            raise IndexError(f"Sequential: index {index} out of range for {len(keys)} modules")
        return keys[index]

    def __getitem__(self, index: Union[int, str, slice]) -> Module:
        if isinstance(index, slice):
            keys = list(self._entries)[index]
            return Sequential({key: self._entries[key] for key in keys})
        if isinstance(index, str):
            if index not in self._entries:
                raise KeyError(f"Sequential: no module named {index!r}; names: {list(self._entries)}")
            return self._entries[index]
        return self._entries[self._key_at(index)]

    def __setitem__(self, index: Union[int, str], module: Module) -> None:
        key = index if isinstance(index, str) else self._key_at(index)
        self._entries[key] = _check_module("Sequential", key, module)

    def __getattr__(self, name: str) -> Module:
        # Only reached when ordinary lookup fails: named entries read as attributes.
        entries = self.__dict__.get("_entries")
        if entries is not None and name in entries:
            return entries[name]
        raise AttributeError(f"{type(self).__name__} has no attribute or module named {name!r}")

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._entries.values())

    def append(self, module: Module) -> "Sequential":
        """Add a module at the end (named by its position); returns ``self``."""
        key = str(len(self._entries))
        if key in self._entries:
            raise KeyError(f"Sequential.append: the name {key!r} is already taken; use __setitem__ with a new name")
        self._entries[key] = _check_module("Sequential", key, module)
        return self

    def extend(self, modules: Iterable[Module]) -> "Sequential":
        for module in modules:
            self.append(module)
        return self


class ModuleList(Module):
    """A list of modules whose parameters the owner finds (named ``"0"``, ``"1"``, ...).

    It has no ``forward``: the owner decides how the modules are used.

    Example:
        >>> from sigma import nn
        >>> blocks = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
        >>> blocks.append(nn.Linear(2, 1))
        ModuleList(
          (0): Linear(in_features=2, out_features=2, bias=True)
          (1): Linear(in_features=2, out_features=2, bias=True)
          (2): Linear(in_features=2, out_features=2, bias=True)
          (3): Linear(in_features=2, out_features=1, bias=True)
        )
        >>> len(blocks), [n for n, _ in blocks.named_parameters()][-1]
        (4, '3.bias')
    """

    def __init__(self, modules: Iterable[Module] = ()):
        super().__init__()
        self._entries = [_check_module("ModuleList", i, m) for i, m in enumerate(modules)]

    def _members(self) -> Iterator[Tuple[str, Any]]:
        for i, module in enumerate(self._entries):
            yield str(i), module
        yield from super()._members()

    def __getitem__(self, index: Union[int, slice]):
        if isinstance(index, slice):
            return ModuleList(self._entries[index])
        if not -len(self._entries) <= index < len(self._entries):
            raise IndexError(f"ModuleList: index {index} out of range for {len(self._entries)} modules")
        return self._entries[index]

    def __setitem__(self, index: int, module: Module) -> None:
        self._entries[index] = _check_module("ModuleList", index, module)

    def __delitem__(self, index: Union[int, slice]) -> None:
        del self._entries[index]

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._entries)

    def append(self, module: Module) -> "ModuleList":
        self._entries.append(_check_module("ModuleList", len(self._entries), module))
        return self

    def extend(self, modules: Iterable[Module]) -> "ModuleList":
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        self._entries.insert(index, _check_module("ModuleList", index, module))


class ModuleDict(Module):
    """A dict of modules whose parameters the owner finds (named by key), in insertion order.

    Example:
        >>> from sigma import nn
        >>> heads = nn.ModuleDict({"class": nn.Linear(4, 3), "box": nn.Linear(4, 4)})
        >>> list(heads.keys()), heads["box"].out_features
        (['class', 'box'], 4)
    """

    def __init__(self, modules: Mapping[str, Module] = None):
        super().__init__()
        self._entries: Dict[str, Module] = {}
        if modules is not None:
            self.update(modules)

    def _members(self) -> Iterator[Tuple[str, Any]]:
        yield from self._entries.items()
        yield from super()._members()

    def __getitem__(self, key: str) -> Module:
        if key not in self._entries:
            raise KeyError(f"ModuleDict: no module named {key!r}; names: {list(self._entries)}")
        return self._entries[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self._entries[_check_key("ModuleDict", key)] = _check_module("ModuleDict", key, module)

    def __delitem__(self, key: str) -> None:
        del self._entries[key]

    def __getattr__(self, name: str) -> Module:
        entries = self.__dict__.get("_entries")
        if entries is not None and name in entries:
            return entries[name]
        raise AttributeError(f"{type(self).__name__} has no attribute or module named {name!r}")

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def keys(self):
        return self._entries.keys()

    def values(self):
        return self._entries.values()

    def items(self):
        return self._entries.items()

    def update(self, modules: Mapping[str, Module]) -> None:
        for key, module in modules.items():
            self[key] = module
