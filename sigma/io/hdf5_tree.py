"""Nested Python state (dicts, lists, arrays, numbers) to HDF5 groups and back.

The mapping, chosen so that ``h5dump`` and ``sigma inspect`` show readable
names and so that state comes back exactly as it went in:

* a dict becomes a group; a list or tuple holding arrays becomes a group
  with children ``"0"``, ``"1"``, ...;
* an array (numpy, or a ``sigma.Tensor``, saved from the host) becomes a
  dataset of the same dtype and shape; a numpy scalar becomes a 0-d dataset
  and loads back as a numpy scalar of its dtype;
* anything without arrays inside (numbers, strings, ``None``, lists,
  dicts) is stored as JSON in an attribute of its parent group; tuples stay
  tuples and integer dict keys stay integers.

Key names may hold any characters: ``/``, ``%`` and a leading ``@`` are
escaped (``validation/accuracy`` is stored as ``validation%2Faccuracy``).
Attributes starting with ``@`` are this module's own bookkeeping.

Example:
    >>> import h5py, io, numpy as np
    >>> from sigma.io.hdf5_tree import read_tree, write_tree
    >>> state = {"step": 3, "betas": (0.9, 0.999), "state": {0: {"moment": np.ones(2, np.float32)}},
    ...          "lr": np.float32(0.1)}
    >>> with h5py.File(io.BytesIO(), "w", track_order=True) as f:
    ...     write_tree(f, state)
    ...     back = read_tree(f)
    >>> back["step"], back["betas"], back["state"][0]["moment"].dtype, type(back["lr"]).__name__
    (3, (0.9, 0.999), dtype('float32'), 'float32')
"""
from __future__ import annotations

import json
from typing import Any, Dict, Mapping

import numpy as np

_KIND = "@kind"          # group attribute: "dict" (default), "list" or "tuple"
_INT_KEYS = "@int_keys"  # group attribute: JSON list of child/attribute names whose key was an int
_SCALAR = "@scalar"      # dataset attribute: load back as a numpy scalar, not a 0-d array
_ORDER = "@order"        # group attribute: JSON list of names, when values are split between attributes and children


def escape(key: str) -> str:
    """A key as an HDF5 name: ``%``, ``/`` and a leading ``@`` or ``.`` escaped."""
    name = key.replace("%", "%25").replace("/", "%2F")
    if name.startswith("@"):
        name = "%40" + name[1:]
    if name in ("", ".") or name.startswith("."):
        name = "%2E" + name[1:] if name else "%00"
    return name


def unescape(name: str) -> str:
    if name == "%00":
        return ""
    if name.startswith("%2E"):
        name = "." + name[3:]
    if name.startswith("%40"):
        name = "@" + name[3:]
    return name.replace("%2F", "/").replace("%25", "%")


def _is_array(value: Any) -> bool:
    return isinstance(value, (np.ndarray, np.generic)) or (hasattr(value, "backend") and hasattr(value, "data"))


def _holds_arrays(value: Any) -> bool:
    if _is_array(value):
        return True
    if isinstance(value, Mapping):
        return any(_holds_arrays(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_arrays(item) for item in value)
    return False


def _to_json(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return {"@tuple": [_to_json(item, where) for item in value]}
    if isinstance(value, list):
        return [_to_json(item, where) for item in value]
    if isinstance(value, Mapping):
        if all(isinstance(key, str) for key in value):
            return {"@dict": {key: _to_json(item, f"{where}/{key}") for key, item in value.items()}}
        if all(isinstance(key, (str, int)) and not isinstance(key, bool) for key in value):
            return {"@items": [[key, _to_json(item, f"{where}/{key}")] for key, item in value.items()]}
    raise TypeError(f"cannot save {where or 'the value'}: {type(value).__name__} is not a number, string, list, "
                    "dict or array")


def _from_json(value: Any) -> Any:
    if isinstance(value, list):
        return [_from_json(item) for item in value]
    if isinstance(value, dict):
        if "@tuple" in value:
            return tuple(_from_json(item) for item in value["@tuple"])
        if "@dict" in value:
            return {key: _from_json(item) for key, item in value["@dict"].items()}
        if "@items" in value:
            return {key: _from_json(item) for key, item in value["@items"]}
    return value


def dumps(value: Any, where: str = "") -> str:
    """JSON text for a value without arrays (tuples and int keys survive :func:`loads`)."""
    return json.dumps(_to_json(value, where))


def loads(text: str) -> Any:
    return _from_json(json.loads(text))


def _host_array(value: Any, where: str) -> np.ndarray:
    if hasattr(value, "backend") and hasattr(value, "data"):  # a sigma.Tensor
        value = value.backend.to_host(value.data)
    array = np.asarray(value)
    if array.dtype.kind in "OUSV":
        raise TypeError(f"cannot save {where}: arrays of {array.dtype} cannot be stored, only numbers")
    return array


def _write_item(group, key: Any, value: Any, where: str) -> None:
    name = escape(str(key))
    if not _holds_arrays(value):
        group.attrs[name] = dumps(value, where)
    elif _is_array(value):
        dataset = group.create_dataset(name, data=_host_array(value, where))
        if isinstance(value, np.generic):
            dataset.attrs[_SCALAR] = True
    elif isinstance(value, Mapping):
        write_tree(group.create_group(name, track_order=True), value, where)
    else:
        child = group.create_group(name, track_order=True)
        child.attrs[_KIND] = "tuple" if isinstance(value, tuple) else "list"
        for i, item in enumerate(value):
            _write_item(child, i, item, f"{where}/{i}")


def write_tree(group, state: Mapping, where: str = "") -> None:
    """Write a mapping into an open h5py group (or file)."""
    if not isinstance(state, Mapping):
        raise TypeError(f"cannot save {where or 'state'}: expected a dict, got {type(state).__name__}")
    int_keys = []
    for key, value in state.items():
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            raise TypeError(f"cannot save {where or 'state'}: keys must be strings or ints, got {key!r}")
        if isinstance(key, int):
            int_keys.append(escape(str(key)))
        _write_item(group, key, value, f"{where}/{key}")
    if int_keys:
        group.attrs[_INT_KEYS] = json.dumps(int_keys)
    if len(group) and len(group) < len(state):  # some values went to attributes, some to children
        group.attrs[_ORDER] = json.dumps([escape(str(key)) for key in state])


def _read_item(node) -> Any:
    import h5py
    if isinstance(node, h5py.Dataset):
        value = node[()]
        if node.attrs.get(_SCALAR, False):
            return value
        return np.asarray(value)
    kind = node.attrs.get(_KIND, "dict")
    if kind in ("list", "tuple"):
        items = read_tree(node)
        ordered = [items[i] for i in range(len(items))]
        return tuple(ordered) if kind == "tuple" else ordered
    return read_tree(node)


def read_tree(group) -> Dict[Any, Any]:
    """Read back what :func:`write_tree` wrote (arrays as numpy)."""
    int_keys = set(json.loads(group.attrs[_INT_KEYS])) if _INT_KEYS in group.attrs else set()
    kind = group.attrs.get(_KIND, "dict")
    result: Dict[Any, Any] = {}

    def key_of(name: str) -> Any:
        if kind in ("list", "tuple") or name in int_keys:
            return int(unescape(name))
        return unescape(name)

    for name, text in group.attrs.items():
        if name.startswith("@"):
            continue
        result[key_of(name)] = loads(text)
    for name, node in group.items():
        result[key_of(name)] = _read_item(node)
    if _ORDER in group.attrs:
        result = {key_of(name): result[key_of(name)] for name in json.loads(group.attrs[_ORDER])}
    return result
