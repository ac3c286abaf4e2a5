"""A network's structure as data: each layer's name, type, output shape and parameter count.

``describe`` runs one forward pass on zeros of the given input shape, under
``no_grad`` and in evaluation mode (so batch-norm statistics and random
streams are untouched; the previous modes are restored afterwards), with a
forward hook on every sub-module that records what came out. Only modules
that the forward pass actually calls appear; a module called several times
(shared weights, a cell in a loop) has one record per call.

Records are ordered as the module tree (parent before children, siblings in
attribute order), so the table reads like the ``repr``; ``depth`` is the
nesting level (0 for the network itself).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence

from sigma import device as _device
from sigma.autograd.grad_mode import no_grad
from sigma.tensor import Tensor, zeros


@dataclass(frozen=True)
class LayerRecord:
    """One module call: ``name`` is the dotted path (``""`` for the network itself)."""
    name: str
    type: str
    output_shape: Any
    parameters: int
    depth: int

    def to_dict(self) -> Dict[str, Any]:
        record = asdict(self)
        record["output_shape"] = _jsonable(self.output_shape)
        return record


def _jsonable(shape: Any) -> Any:
    if isinstance(shape, tuple):
        return [_jsonable(s) for s in shape]
    if isinstance(shape, dict):
        return {k: _jsonable(v) for k, v in shape.items()}
    return shape


class Description(list):
    """The list of :class:`LayerRecord`, plus totals; ``str()`` gives a table.

    ``total_parameters`` counts every parameter value once (shared weights
    once); ``trainable_parameters`` those with ``requires_grad``.
    """

    def __init__(self, records: Sequence[LayerRecord], input_shapes: List[tuple], total_parameters: int,
                 trainable_parameters: int):
        super().__init__(records)
        self.input_shapes = input_shapes
        self.total_parameters = total_parameters
        self.trainable_parameters = trainable_parameters

    def to_dict(self) -> Dict[str, Any]:
        """Plain lists, dicts, strings and ints (JSON-ready), for checkpoints and the GUI."""
        return {"input_shapes": [list(s) for s in self.input_shapes],
                "layers": [record.to_dict() for record in self],
                "total_parameters": self.total_parameters,
                "trainable_parameters": self.trainable_parameters}

    def format(self) -> str:
        """A text table: one row per record, then the totals."""
        rows = [("layer", "type", "output shape", "parameters")]
        for record in self:
            name = "  " * record.depth + (record.name or "(network)")
            rows.append((name, record.type, _shape_text(record.output_shape), f"{record.parameters:,}"))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = []
        for i, row in enumerate(rows):
            lines.append("  ".join([row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].ljust(widths[2]),
                                    row[3].rjust(widths[3])]).rstrip())
            if i == 0:
                lines.append("-" * len(lines[0]))
        lines.append("-" * len(lines[0]))
        lines.append(f"total parameters: {self.total_parameters:,} (trainable: {self.trainable_parameters:,})")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def _shape_text(shape: Any) -> str:
    if shape is None:
        return "-"
    if isinstance(shape, tuple) and all(isinstance(s, int) for s in shape):
        return str(shape)
    if isinstance(shape, tuple):
        return "[" + ", ".join(_shape_text(s) for s in shape) + "]"
    if isinstance(shape, dict):
        return "{" + ", ".join(f"{k}: {_shape_text(v)}" for k, v in shape.items()) + "}"
    return type(shape).__name__


def _output_shape(output: Any) -> Any:
    if isinstance(output, Tensor):
        return tuple(output.shape)
    if isinstance(output, (tuple, list)):
        return tuple(_output_shape(o) for o in output)
    if isinstance(output, dict):
        return {str(k): _output_shape(v) for k, v in output.items()}
    return None


def _input_shapes(input_shape: Any) -> List[tuple]:
    def is_shape(value):
        return isinstance(value, (tuple, list)) and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                        for s in value)
    if is_shape(input_shape) and len(input_shape) > 0:
        return [tuple(input_shape)]
    if isinstance(input_shape, (tuple, list)) and input_shape and all(is_shape(s) for s in input_shape):
        return [tuple(s) for s in input_shape]
    raise ValueError(f"describe: input_shape must be a shape such as (1, 3, 32, 32), or a list of shapes for "
                     f"several inputs, got {input_shape!r}")


def _parameter_count(module) -> int:
    return sum(p.size for p in module.parameters())


def describe(module, input_shape: Any, dtype: Any = None, device: Any = None) -> Description:
    """Describe ``module`` for input(s) of ``input_shape`` (batch axis included).

    ``input_shape`` is one shape, or a list of shapes for a network whose
    ``forward`` takes several inputs. ``dtype`` is the inputs' dtype (the
    default float; ``"int64"`` for embedding indices), one for all or a list;
    ``device`` defaults to where the parameters are.

    Example:
        >>> from sigma import nn
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))
        >>> description = net.describe((1, 1, 28, 28))
        >>> [(r.name, r.type, r.output_shape, r.parameters) for r in description[1:]]
        [('0', 'Conv2d', (1, 4, 26, 26), 40), ('1', 'ReLU', (1, 4, 26, 26), 0), ('2', 'Flatten', (1, 2704), 0), ('3', 'Linear', (1, 10), 27050)]
        >>> print(description)
        layer      type        output shape    parameters
        -------------------------------------------------
        (network)  Sequential  (1, 10)             27,090
          0        Conv2d      (1, 4, 26, 26)          40
          1        ReLU        (1, 4, 26, 26)           0
          2        Flatten     (1, 2704)                0
          3        Linear      (1, 10)             27,050
        -------------------------------------------------
        total parameters: 27,090 (trainable: 27,090)
    """
    shapes = _input_shapes(input_shape)
    dtypes = list(dtype) if isinstance(dtype, (list, tuple)) else [dtype] * len(shapes)
    if len(dtypes) != len(shapes):
        raise ValueError(f"describe: {len(dtypes)} dtypes for {len(shapes)} inputs")
    if device is None:
        first = next(iter(module.parameters()), None)
        backend = first.backend if first is not None else _device.default_backend()
        if dtype is None and first is not None:
            dtypes = [first.dtype] * len(shapes)
    else:
        backend = _device.resolve(device)
    inputs = [zeros(shape, dtype=d, device=backend) for shape, d in zip(shapes, dtypes)]

    tree = []  # (name, module, depth) in tree order

    def walk(name, current, depth, ancestors):
        tree.append((name, current, depth))
        for child_name, child in current.named_children():
            if id(child) not in ancestors:
                walk(f"{name}.{child_name}" if name else child_name, child, depth + 1, ancestors | {id(child)})
    walk("", module, 0, {id(module)})

    calls: Dict[int, List[Any]] = {}
    handles = []
    seen_modules = set()
    for _, current, _ in tree:
        if id(current) in seen_modules:
            continue
        seen_modules.add(id(current))
        handles.append(current.register_forward_hook(
            lambda m, args, output: calls.setdefault(id(m), []).append(_output_shape(output))))
    modes = [(m, m.training) for m in module.modules()]
    try:
        module.eval()
        with no_grad():
            module(*inputs)
    finally:
        for handle in handles:
            handle.remove()
        for m, mode in modes:
            m.training = mode

    records = []
    listed = set()
    for name, current, depth in tree:
        if id(current) in listed:
            continue  # a module reachable by two paths is listed under its first name
        listed.add(id(current))
        count = _parameter_count(current)
        for shape in calls.get(id(current), []):
            records.append(LayerRecord(name, type(current).__name__, shape, count, depth))
    unique = {id(p): p for p in module.parameters()}
    total = sum(p.size for p in unique.values())
    trainable = sum(p.size for p in unique.values() if p.requires_grad)
    return Description(records, shapes, total, trainable)
