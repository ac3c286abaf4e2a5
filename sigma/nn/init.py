"""Initialisers, and applying them to a network by parameter-name pattern.

Each initialiser is an object made by a factory (``he_normal()``,
``zeros()``, ...) and called on a tensor to fill it in place. Random ones
draw from the tensor's backend stream (seeded by ``sigma.manual_seed``), or,
given ``seed=``, from their own generator: that stream is drawn on the host
and copied over, so a seed gives the same values on every backend, and it
continues from tensor to tensor (two weights initialised by one seeded
initialiser differ; two initialisers with the same seed agree).

Example:
    >>> import sigma
    >>> from sigma import nn
    >>> from sigma.nn import init
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> chosen = init.apply(net, {"*.weight": init.he_normal(), "*.bias": init.zeros(), "2.weight": init.zeros()})
    >>> chosen["*.weight"], chosen["2.weight"]
    (['0.weight'], ['2.weight'])
    >>> float(net[2].weight.numpy().sum())
    0.0

Formulas (``fan_in`` / ``fan_out``: input / output units of a weight times
its receptive field, for a conv weight ``(out, in/groups, kh, kw)``:
``in/groups*kh*kw`` / ``out*kh*kw``):

* Glorot & Bengio (2010), "Understanding the difficulty of training deep
  feedforward neural networks": ``std = gain * sqrt(2 / (fan_in + fan_out))``.
* He et al. (2015), "Delving deep into rectifiers": ``std = gain / sqrt(fan)``
  with ``gain = sqrt(2 / (1 + a^2))`` for (leaky) ReLU.
* Saxe et al. (2014), "Exact solutions to the nonlinear dynamics of learning
  in deep linear neural networks": orthogonal matrices from the QR
  decomposition of a Gaussian matrix, signs fixed by R's diagonal.
* Uniform variants use ``bound = sqrt(3) * std`` (the same variance).
"""
from __future__ import annotations

import fnmatch
import math
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np

from sigma.autograd.grad_mode import no_grad
from sigma.tensor import Tensor

__all__ = ["Initialiser", "zeros", "ones", "constant", "uniform", "normal", "xavier_uniform", "xavier_normal",
           "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "kaiming_uniform", "kaiming_normal",
           "orthogonal", "calculate_gain", "fans", "apply", "specificity"]


def calculate_gain(nonlinearity: str = "linear", param: Optional[float] = None) -> float:
    """The factor that keeps activations' scale through a nonlinearity (as in PyTorch).

    Example:
        >>> from sigma.nn.init import calculate_gain
        >>> round(calculate_gain("relu"), 4), round(calculate_gain("tanh"), 4)
        (1.4142, 1.6667)
    """
    linear = ("linear", "identity", "sigmoid", "conv1d", "conv2d", "conv3d",
              "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise ValueError(f"calculate_gain: the leaky_relu slope must be a number, got {param!r}")
        return math.sqrt(2.0 / (1.0 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4.0
    raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}; known: "
                     f"{list(linear) + ['tanh', 'relu', 'leaky_relu', 'selu']}")


def fans(shape: Tuple[int, ...]) -> Tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of ``shape`` = (out, in, *kernel).

    Example:
        >>> from sigma.nn.init import fans
        >>> fans((64, 32, 3, 3))
        (288, 576)
    """
    if len(shape) < 2:
        raise ValueError(f"fan_in/fan_out need a weight with at least 2 dimensions, got shape {tuple(shape)}")
    receptive_field = 1
    for size in shape[2:]:
        receptive_field *= size
    return shape[1] * receptive_field, shape[0] * receptive_field


class Initialiser:
    """Base class: subclasses implement ``sample(shape, dtype, draw)`` returning an array.

    ``draw`` is a :class:`~backends.RandomStream`-like object (``uniform``,
    ``normal``) on the right device. Calling the initialiser fills a tensor in
    place and returns it.
    """

    def __init__(self, seed: Optional[int] = None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"{type(self).__name__}: seed must be an int, got {seed!r}")
        self.seed = seed
        self._generator = None if seed is None else np.random.Generator(np.random.PCG64(int(seed)))

    def sample(self, shape: Tuple[int, ...], dtype: np.dtype, draw) -> Any:
        raise NotImplementedError

    def __call__(self, tensor: Tensor) -> Tensor:
        if not isinstance(tensor, Tensor):
            raise TypeError(f"{type(self).__name__}: expected a Tensor, got {type(tensor).__name__}")
        if tensor.data.dtype.kind != "f":
            raise TypeError(f"{type(self).__name__}: can only fill float tensors, got {tensor.data.dtype}")
        if self._generator is None:
            values = self.sample(tensor.shape, tensor.data.dtype, tensor.backend.random)
        else:
            values = tensor.backend.asarray(self.sample(tensor.shape, tensor.data.dtype, _HostDraw(self._generator)))
        with no_grad():
            tensor.data[...] = values
        return tensor

    def _settings(self) -> str:
        return ""

    def __repr__(self) -> str:
        settings = self._settings()
        if self.seed is not None:
            settings = f"{settings}, seed={self.seed}" if settings else f"seed={self.seed}"
        return f"{type(self).__name__}({settings})"


class _HostDraw:
    """The ``uniform``/``normal`` calls of a random stream, on a private numpy generator."""

    def __init__(self, generator: np.random.Generator):
        self.generator = generator

    def uniform(self, shape, low=0.0, high=1.0, dtype=np.float32):
        return self.generator.uniform(low, high, size=tuple(shape)).astype(dtype)

    def normal(self, shape, mean=0.0, std=1.0, dtype=np.float32):
        return self.generator.normal(mean, std, size=tuple(shape)).astype(dtype)


class Constant(Initialiser):
    def __init__(self, value: float):
        super().__init__()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"constant: value must be a number, got {value!r}")
        self.value = float(value)

    def sample(self, shape, dtype, draw):
        return np.full(shape, self.value, dtype=dtype)

    def __call__(self, tensor: Tensor) -> Tensor:
        if not isinstance(tensor, Tensor):
            raise TypeError(f"constant: expected a Tensor, got {type(tensor).__name__}")
        with no_grad():
            tensor.data[...] = self.value
        return tensor

    def _settings(self) -> str:
        return f"value={self.value}"


class Uniform(Initialiser):
    def __init__(self, low: float = 0.0, high: float = 1.0, seed: Optional[int] = None):
        super().__init__(seed)
        if not low < high:
            raise ValueError(f"uniform: need low < high, got low={low}, high={high}")
        self.low, self.high = float(low), float(high)

    def sample(self, shape, dtype, draw):
        return draw.uniform(shape, low=self.low, high=self.high, dtype=dtype)

    def _settings(self) -> str:
        return f"low={self.low}, high={self.high}"


class Normal(Initialiser):
    def __init__(self, mean: float = 0.0, std: float = 1.0, seed: Optional[int] = None):
        super().__init__(seed)
        if not std >= 0:
            raise ValueError(f"normal: std must be >= 0, got {std}")
        self.mean, self.std = float(mean), float(std)

    def sample(self, shape, dtype, draw):
        return draw.normal(shape, mean=self.mean, std=self.std, dtype=dtype)

    def _settings(self) -> str:
        return f"mean={self.mean}, std={self.std}"


class Glorot(Initialiser):
    """Xavier/Glorot: variance ``2 gain^2 / (fan_in + fan_out)``."""

    def __init__(self, distribution: str, gain: float = 1.0, seed: Optional[int] = None):
        super().__init__(seed)
        self.distribution, self.gain = distribution, float(gain)

    def sample(self, shape, dtype, draw):
        fan_in, fan_out = fans(shape)
        std = self.gain * math.sqrt(2.0 / (fan_in + fan_out))
        return _draw_with_std(self.distribution, std, shape, dtype, draw)

    def _settings(self) -> str:
        return f"{self.distribution}, gain={self.gain}"


class He(Initialiser):
    """He/Kaiming: variance ``gain^2 / fan``, ``fan`` being fan_in or fan_out."""

    def __init__(self, distribution: str, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                 seed: Optional[int] = None):
        super().__init__(seed)
        if mode not in ("fan_in", "fan_out"):
            raise ValueError(f"he_{distribution}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
        self.distribution, self.a, self.mode, self.nonlinearity = distribution, float(a), mode, nonlinearity
        self.gain = calculate_gain(nonlinearity, a)

    def sample(self, shape, dtype, draw):
        fan_in, fan_out = fans(shape)
        fan = fan_in if self.mode == "fan_in" else fan_out
        if fan == 0:
            raise ValueError(f"he_{self.distribution}: a weight of shape {tuple(shape)} has {self.mode} = 0")
        std = self.gain / math.sqrt(fan)
        return _draw_with_std(self.distribution, std, shape, dtype, draw)

    def _settings(self) -> str:
        return f"{self.distribution}, a={self.a}, mode={self.mode!r}, nonlinearity={self.nonlinearity!r}"


class Orthogonal(Initialiser):
    """Rows (or columns, whichever are fewer) orthonormal, times ``gain``."""

    def __init__(self, gain: float = 1.0, seed: Optional[int] = None):
        super().__init__(seed)
        self.gain = float(gain)

    def sample(self, shape, dtype, draw):
        if len(shape) < 2:
            raise ValueError(f"orthogonal: needs a weight with at least 2 dimensions, got shape {tuple(shape)}")
        rows = shape[0]
        cols = int(np.prod(shape[1:]))
        gaussian = draw.normal((max(rows, cols), min(rows, cols)), dtype=np.float64)
        xp = _array_module(gaussian)
        q, r = xp.linalg.qr(gaussian)
        # Sign correction makes the distribution uniform over orthogonal matrices (Mezzadri 2007).
        signs = xp.sign(xp.diagonal(r))
        signs = xp.where(signs == 0, 1.0, signs)
        q = q * signs
        if rows < cols:
            q = q.T
        return (self.gain * q).reshape(shape).astype(dtype)

    def _settings(self) -> str:
        return f"gain={self.gain}"


def _array_module(array):
    if isinstance(array, np.ndarray):
        return np
    import backends
    return backends.for_array(array).xp


def _draw_with_std(distribution: str, std: float, shape, dtype, draw):
    if distribution == "normal":
        return draw.normal(shape, mean=0.0, std=std, dtype=dtype)
    bound = math.sqrt(3.0) * std
    return draw.uniform(shape, low=-bound, high=bound, dtype=dtype)


# -- factories ------------------------------------------------------------------

def zeros() -> Initialiser:
    """Fill with 0."""
    return Constant(0.0)


def ones() -> Initialiser:
    """Fill with 1."""
    return Constant(1.0)


def constant(value: float) -> Initialiser:
    """Fill with ``value``."""
    return Constant(value)


def uniform(low: float = 0.0, high: float = 1.0, seed: Optional[int] = None) -> Initialiser:
    """Uniform on ``[low, high)``."""
    return Uniform(low, high, seed)


def normal(mean: float = 0.0, std: float = 1.0, seed: Optional[int] = None) -> Initialiser:
    """Gaussian with ``mean`` and ``std``."""
    return Normal(mean, std, seed)


def xavier_uniform(gain: float = 1.0, seed: Optional[int] = None) -> Initialiser:
    """Glorot uniform: ``U(-b, b)``, ``b = gain * sqrt(6 / (fan_in + fan_out))``."""
    return Glorot("uniform", gain, seed)


def xavier_normal(gain: float = 1.0, seed: Optional[int] = None) -> Initialiser:
    """Glorot normal: ``N(0, gain^2 * 2 / (fan_in + fan_out))``."""
    return Glorot("normal", gain, seed)


glorot_uniform = xavier_uniform
glorot_normal = xavier_normal


def he_uniform(a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
               seed: Optional[int] = None) -> Initialiser:
    """He uniform: ``U(-b, b)``, ``b = gain * sqrt(3 / fan)``.

    The default ``nonlinearity="leaky_relu"`` with slope ``a`` gives
    ``gain = sqrt(2 / (1 + a^2))``, which is ReLU's ``sqrt(2)`` for ``a = 0``;
    ``a = sqrt(5)`` is PyTorch's default for Linear and Conv weights.

    Example:
        >>> import sigma
        >>> from sigma.nn.init import he_uniform
        >>> w = he_uniform()(sigma.zeros(64, 100))
        >>> bool(abs(w.numpy()).max() <= (6 / 100) ** 0.5)
        True
    """
    return He("uniform", a, mode, nonlinearity, seed)


def he_normal(a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
              seed: Optional[int] = None) -> Initialiser:
    """He normal: ``N(0, gain^2 / fan)``."""
    return He("normal", a, mode, nonlinearity, seed)


kaiming_uniform = he_uniform
kaiming_normal = he_normal


def orthogonal(gain: float = 1.0, seed: Optional[int] = None) -> Initialiser:
    """A (semi-)orthogonal matrix times ``gain``; higher-dimensional weights are flattened to (out, rest).

    Example:
        >>> import sigma, numpy as np
        >>> from sigma.nn.init import orthogonal
        >>> w = orthogonal(seed=0)(sigma.zeros(3, 5)).numpy()
        >>> bool(np.allclose(w @ w.T, np.eye(3), atol=1e-5))
        True
    """
    return Orthogonal(gain, seed)


# -- applying by name pattern -------------------------------------------------------

_WILDCARD_CHARACTERS = "*?["


def specificity(pattern: str) -> Tuple[int, int]:
    """How specific a pattern is; the larger tuple wins.

    Fewer wildcard characters (``*``, ``?``, ``[``) is more specific; among
    equals, the longer pattern is (it spells out more of the name). So
    ``"fc.weight"`` (no wildcard) beats ``"*.weight"``, which beats the
    shorter ``"fc.*"`` (one wildcard each), which beats ``"*"``.

    Example:
        >>> from sigma.nn.init import specificity
        >>> sorted(["*", "*.weight", "fc.*", "fc.weight"], key=specificity, reverse=True)
        ['fc.weight', '*.weight', 'fc.*', '*']
    """
    wildcards = sum(pattern.count(c) for c in _WILDCARD_CHARACTERS)
    return (-wildcards, len(pattern))


def apply(module, rules: Mapping[str, Callable[[Tensor], Any]], strict: bool = True) -> Dict[str, List[str]]:
    """Initialise ``module``'s parameters by dotted-name pattern; returns pattern -> names it set.

    Patterns are shell-style wildcards matched against the whole name
    (``*`` also crosses dots: ``"*.weight"`` matches ``"features.0.weight"``).
    Where several patterns match one parameter, the most specific wins (see
    :func:`specificity`); two equally specific matches are an error, as
    is (with ``strict=True``) a pattern that matches no parameter at all.
    Parameters that no pattern matches keep their values. A shared parameter
    is initialised once.

    Example:
        >>> from sigma import nn
        >>> from sigma.nn import init
        >>> layer = nn.Linear(3, 3)
        >>> init.apply(layer, {"*": init.ones(), "bias": init.zeros()})
        {'*': ['weight'], 'bias': ['bias']}
        >>> layer.bias.tolist()
        [0.0, 0.0, 0.0]
    """
    if not isinstance(rules, Mapping):
        raise TypeError(f"init.apply: rules must be a mapping of pattern -> initialiser, got {type(rules).__name__}")
    for pattern, initialiser in rules.items():
        if not isinstance(pattern, str) or not pattern:
            raise TypeError(f"init.apply: patterns must be non-empty strings, got {pattern!r}")
        if not callable(initialiser):
            raise TypeError(f"init.apply: the initialiser for {pattern!r} is not callable: {initialiser!r}")
    chosen: Dict[str, List[str]] = {pattern: [] for pattern in rules}
    matched_any = set()
    plan = []
    for name, parameter in module.named_parameters():
        matches = [p for p in rules if fnmatch.fnmatchcase(name, p)]
        if not matches:
            continue
        matched_any.update(matches)
        best = max(matches, key=specificity)
        ties = [p for p in matches if specificity(p) == specificity(best)]
        if len(ties) > 1:
            raise ValueError(f"init.apply: patterns {ties} match {name!r} and are equally specific; "
                             "make one of them more specific")
        plan.append((best, name, parameter))
    unmatched = [p for p in rules if p not in matched_any]
    if strict and unmatched:
        names = [name for name, _ in module.named_parameters()]
        shown = names if len(names) <= 20 else names[:20] + [f"... ({len(names)} in all)"]
        raise KeyError(f"init.apply: patterns {unmatched} match no parameter (pass strict=False to allow); "
                       f"parameters: {shown}")
    for pattern, name, parameter in plan:
        rules[pattern](parameter)
        chosen[pattern].append(name)
    return chosen
