"""Turn an elementwise update rule into one fused pass over memory.

A rule is a plain Python function of scalars::

    def rule(param, grad, exp_avg, lr, beta):
        exp_avg = beta * exp_avg + (1 - beta) * grad
        return param - lr * exp_avg, exp_avg

Its arguments are the parameter element, the gradient element, one element of
each state buffer (named as the optimiser's state) and then scalars (the
hyperparameters). It returns the new parameter element, followed by the new
state elements when there is state.

:class:`UpdateRule` applies such a rule in place:

* on the CPU it compiles the rule with numba and drives it over the
  flattened arrays in one loop, so Adam reads and writes each element once
  instead of making a dozen numpy temporaries;
* on CUDA it traces the rule into C and builds one cupy ``ElementwiseKernel``;
* on any other backend it calls the rule once with whole arrays.

Example:
    >>> import numpy as np
    >>> import backends
    >>> def rule(param, grad, lr):
    ...     return param - lr * grad
    >>> param, grad = np.ones(3, np.float32), np.arange(3, dtype=np.float32)
    >>> UpdateRule(rule, ()).apply(backends.get("cpu"), param, grad, [], {"lr": 0.5})
    >>> param.tolist()
    [1.0, 0.5, 0.0]
"""
from __future__ import annotations

import ast
import hashlib
import inspect
import os
import pathlib
import sys
import textwrap
import types
import weakref
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numba
import numpy as np

from sigma.optim import elementwise

__all__ = ["UpdateRule", "rule_for", "cuda_kernel_source", "kernel_cache_directory"]

_NUMBA_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
# Parameters with at least this many elements are updated on all of numba's threads (in this thread's share of
# them); below it, starting the threads costs more than the update (a bias, a small layer).
PARALLEL_UPDATE_SIZE = 1 << 16


class UpdateRule:
    """An elementwise update rule with its state names, compiled on first use per backend and dtype."""

    def __init__(self, function: Callable, state_names: Sequence[str]):
        self.function = function
        self.state_names = tuple(state_names)
        self.name = getattr(function, "__qualname__", repr(function))
        arguments = _positional_arguments(function, self.name)
        needed = 2 + len(self.state_names)
        if len(arguments) < needed:
            raise TypeError(f"update rule {self.name}{tuple(arguments)} must take (param, grad, "
                            f"{', '.join(self.state_names) + ', ' if self.state_names else ''}...scalars)")
        if tuple(arguments[2:needed]) != self.state_names:
            raise TypeError(f"update rule {self.name}: arguments 3 to {needed} are {tuple(arguments[2:needed])} "
                            f"but the state is named {self.state_names}; list the state in the same order")
        self.scalar_names = tuple(arguments[needed:])
        self._check_returns()
        self._cpu_kernels: Dict[np.dtype, Callable] = {}
        self._cpu_parallel_kernels: Dict[np.dtype, Callable] = {}
        self._cuda_kernel = None

    def _check_returns(self) -> None:
        # One call with numbers gives a clear error for a wrong return shape,
        # where numba would report a typing failure deep in generated code.
        probe = [np.float64(0.5)] * (2 + len(self.state_names) + len(self.scalar_names))
        try:
            with np.errstate(all="ignore"):
                result = self.function(*probe)
        except Exception as error:
            raise TypeError(f"update rule {self.name} failed when called with numbers "
                            f"({type(error).__name__}: {error}); a rule must work on plain scalars") from error
        count = len(result) if isinstance(result, tuple) else 1
        expected = 1 + len(self.state_names)
        if count != expected or (self.state_names and not isinstance(result, tuple)):
            shape = "the new parameter" + (", then " + ", ".join(self.state_names) if self.state_names else "")
            raise TypeError(f"update rule {self.name} returned {count} value(s); it must return {shape}")

    # -- applying ------------------------------------------------------------------------
    def apply(self, backend, param, grad, states: Sequence, scalars: Mapping[str, float]) -> None:
        """Update ``param`` and ``states`` (arrays of ``backend``) in place from ``grad``."""
        try:
            values = [scalars[name] for name in self.scalar_names]
        except KeyError as error:
            raise KeyError(f"update rule {self.name} takes the scalar {error.args[0]!r}, which is neither "
                           f"a state buffer nor among the scalars {sorted(scalars)}") from None
        if grad.shape != param.shape:
            raise ValueError(f"update rule {self.name}: gradient of shape {tuple(grad.shape)} for a parameter "
                             f"of shape {tuple(param.shape)}")
        if grad.dtype != param.dtype:
            grad = grad.astype(param.dtype)
        kind = getattr(backend, "kind", None)
        if kind == "cpu":
            self._apply_numba(param, grad, states, values)
        elif kind == "cuda":
            self._apply_cuda(backend, param, grad, states, values)
        else:
            self.apply_with_arrays(param, grad, states, values)

    def apply_with_arrays(self, param, grad, states: Sequence, values: Sequence[float]) -> None:
        """Call the rule once on whole arrays (numpy temporaries); the portable fallback."""
        result = self.function(param, grad, *states, *values)
        outputs = result if isinstance(result, tuple) else (result,)
        for target, value in zip((param, *states), outputs):
            target[...] = value

    def _apply_numba(self, param, grad, states, values) -> None:
        dtype = param.dtype
        if dtype not in _NUMBA_FLOATS:
            self.apply_with_arrays(param, grad, states, values)
            return
        parallel = param.size >= PARALLEL_UPDATE_SIZE and numba.get_num_threads() > 1
        kernels = self._cpu_parallel_kernels if parallel else self._cpu_kernels
        kernel = kernels.get(dtype)
        if kernel is None:
            kernel = kernels[dtype] = _numba_kernel(self.function, len(self.state_names), len(self.scalar_names),
                                                    dtype, parallel)
        targets = [param, *states]
        # The kernel walks flat views; anything not C-contiguous is updated
        # through a contiguous copy that is written back afterwards.
        flat = [a.reshape(-1) if a.flags.c_contiguous else np.ascontiguousarray(a).reshape(-1) for a in targets]
        scalar = dtype.type
        kernel(flat[0], np.ascontiguousarray(grad).reshape(-1), *flat[1:], *[scalar(v) for v in values])
        for target, updated in zip(targets, flat):
            if not target.flags.c_contiguous:
                target[...] = updated.reshape(target.shape)

    def _apply_cuda(self, backend, param, grad, states, values) -> None:  # pragma: no cover - needs a GPU
        if self._cuda_kernel is None:
            import cupy
            source = cuda_kernel_source(self.function, len(self.state_names), len(self.scalar_names))
            inputs = ", ".join(["T grad"] + [f"T scalar{i}" for i in range(len(self.scalar_names))])
            outputs = ", ".join(["T param"] + [f"T state{i}" for i in range(len(self.state_names))])
            self._cuda_kernel = cupy.ElementwiseKernel(inputs, outputs, source, "sigma_update_rule")
        scalar = param.dtype.type
        with backend.device:
            # ElementwiseKernel reads each output element before writing it, so
            # passing the parameter and state as outputs updates them in place.
            self._cuda_kernel(backend.xp.ascontiguousarray(grad), *[scalar(v) for v in values], param, *states)


_rules: "weakref.WeakKeyDictionary[Callable, Dict[Tuple[str, ...], UpdateRule]]" = weakref.WeakKeyDictionary()


def rule_for(function: Callable, state_names: Sequence[str]) -> UpdateRule:
    """The shared :class:`UpdateRule` of ``function`` (so each rule compiles once per process)."""
    by_state = _rules.setdefault(function, {})
    key = tuple(state_names)
    if key not in by_state:
        by_state[key] = UpdateRule(function, key)
    return by_state[key]


def _positional_arguments(function: Callable, name: str) -> List[str]:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError) as error:
        raise TypeError(f"update rule {name} must be a Python function") from error
    names = []
    for parameter in parameters:
        if parameter.kind not in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            raise TypeError(f"update rule {name}: argument {parameter.name!r} must be a plain positional "
                            "argument (no *args, **kwargs or keyword-only arguments)")
        names.append(parameter.name)
    return names


# -- CPU: numba ------------------------------------------------------------------------
#
# The rule and a loop driving it are written out as one small Python module
# whose name is the hash of its text, and compiled by numba with cache=True:
# a later process loads the machine code instead of compiling again (about
# half a second per rule and dtype). A changed rule has another text, hence
# another module, so a stale kernel is never loaded.

def kernel_cache_directory() -> Optional[pathlib.Path]:
    """Where compiled update kernels are kept: ``$SIGMA_KERNEL_CACHE``, else ``~/.cache/sigma/kernels``;
    ``None`` when it cannot be created (kernels are then compiled in each process)."""
    directory = pathlib.Path(os.environ.get("SIGMA_KERNEL_CACHE") or pathlib.Path.home() / ".cache/sigma/kernels")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return directory if os.access(directory, os.W_OK) else None


def _numba_kernel(function: Callable, state_count: int, scalar_count: int, dtype: np.dtype,
                  parallel: bool = False) -> Callable:
    import numba

    rule_source = _typed_rule_source(function)
    states = [f"state{i}" for i in range(state_count)]
    scalars = [f"scalar{i}" for i in range(scalar_count)]
    call = ", ".join(["param[i]", "grad[i]"] + [f"{s}[i]" for s in states] + scalars)
    targets = ", ".join(["param[i]"] + [f"{s}[i]" for s in states])
    # error_model="numpy": a division by zero gives inf/NaN as in numpy and
    # PyTorch instead of raising inside the loop.
    arguments = ", ".join(["param", "grad"] + states + scalars)
    # Two drivers of the same rule: a plain loop, and one spread over numba's threads for large parameters
    # (compiled only if it is called).
    kernel_source = (f"@numba.njit(error_model='numpy', cache=CACHE)\n"
                     f"def kernel({arguments}):\n"
                     f"    for i in range(param.shape[0]):\n"
                     f"        {targets} = rule({call})\n\n\n"
                     f"@numba.njit(error_model='numpy', cache=CACHE, parallel=True)\n"
                     f"def kernel_parallel({arguments}):\n"
                     f"    for i in numba.prange(param.shape[0]):\n"
                     f"        {targets} = rule({call})\n")
    if rule_source is None:
        # No source to rewrite (a rule made by exec or a closure): compile the
        # function as it is, in this process only.
        namespace = {"numba": numba, "CACHE": False, "rule": numba.njit(error_model="numpy")(function)}
        exec(compile(kernel_source, f"<update kernel of {getattr(function, '__qualname__', 'a rule')}>", "exec"),
             namespace)
        return namespace["kernel_parallel" if parallel else "kernel"]
    text = (f"# An update kernel generated by sigma.optim.fused for {function.__module__}."
            f"{getattr(function, '__qualname__', '?')} ({np.dtype(dtype).name}).\n"
            f"import numba\nimport numpy\n__sigma_literal__ = numpy.{np.dtype(dtype).name}\n\n"
            f"@numba.njit(error_model='numpy', cache=CACHE)\n{rule_source}\n\n{kernel_source}")
    used_globals = _used_globals(function)
    # The numba forms of sigma.optim.elementwise are compiled into the kernel
    # too, so their source is part of the key.
    key = hashlib.sha256("\n".join([text, _fingerprint(used_globals), inspect.getsource(elementwise),
                                    numba.__version__, np.__version__]).encode()).hexdigest()[:24]
    namespace = dict(used_globals)
    directory = kernel_cache_directory()
    filename = f"<update kernel {key}>"
    if directory is not None:
        path = directory / f"sigma_update_{key}.py"
        try:
            if not path.exists():
                temporary = path.with_suffix(f".{os.getpid()}.tmp")
                temporary.write_text(text)
                os.replace(temporary, path)  # atomic: a parallel process sees the whole file or none
            filename = str(path)
            namespace["CACHE"] = True
        except OSError:
            namespace["CACHE"] = False
    else:
        namespace["CACHE"] = False
    # A real module, registered by name: numba finds cached code through the
    # source file's name and rebuilds its environment by importing the module.
    module_name = f"sigma_update_{key}"
    module = sys.modules.get(module_name)
    if module is None:
        module = types.ModuleType(module_name)
        module.__file__ = filename
        module.__dict__.update(namespace)
        exec(compile(text, filename, "exec"), module.__dict__)
        sys.modules[module_name] = module
    return module.kernel_parallel if parallel else module.kernel


def _used_globals(function: Callable) -> Dict[str, object]:
    """The module-level names the rule refers to (functions such as ``sqrt``, constants, modules)."""
    names = set(function.__code__.co_names)
    return {name: value for name, value in function.__globals__.items() if name in names}


def _fingerprint(values: Mapping[str, object]) -> str:
    """Text that changes when a global the rule uses changes: constants by value, functions by source."""
    parts = []
    for name in sorted(values):
        value = values[name]
        if isinstance(value, (bool, int, float, complex, str, bytes, tuple, np.number)):
            parts.append(f"{name}={value!r}")
        elif inspect.ismodule(value):
            parts.append(f"{name}=module {value.__name__}")
        else:
            try:
                parts.append(f"{name}={inspect.getsource(getattr(value, 'py_func', value))}")
            except (OSError, TypeError):
                parts.append(f"{name}={getattr(value, '__module__', '')}.{getattr(value, '__qualname__', repr(value))}")
    return "\n".join(parts)


class _TypeLiterals(ast.NodeTransformer):
    """Wrap number literals in a call to the parameters' scalar type.

    numba types ``1 - beta`` as float64 when ``beta`` is float32, and float64
    arithmetic (its divisions above all) makes a float32 Adam step three times
    slower. Exponents stay as written: numba turns ``x ** 2`` into ``x * x``.
    """

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        node.left = self.visit(node.left)
        if not isinstance(node.op, ast.Pow):
            node.right = self.visit(node.right)
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if type(node.value) in (int, float):
            return ast.copy_location(ast.Call(ast.Name("__sigma_literal__", ast.Load()), [node], []), node)
        return node


def _typed_rule_source(function: Callable) -> Optional[str]:
    """The rule's source as a function named ``rule`` whose number literals call ``__sigma_literal__``
    (the parameters' scalar type); ``None`` when the source is not available or the rule is a closure."""
    if getattr(function, "__closure__", None) or getattr(function, "__defaults__", None):
        return None
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        return None
    try:
        tree = ast.parse(source)
    except SyntaxError:  # e.g. a lambda cut out of a longer line
        return None
    definition = tree.body[0] if tree.body else None
    if not isinstance(definition, ast.FunctionDef):
        return None
    definition.name = "rule"
    definition.decorator_list = []
    definition.body = [_TypeLiterals().visit(statement) for statement in definition.body]
    ast.fix_missing_locations(tree)
    return ast.unparse(definition)


# -- CUDA: trace the rule into C ----------------------------------------------------------

class _Symbol:
    """A value in a rule being traced: arithmetic on it records lines of C."""

    _sigma_rule_symbol = True
    __slots__ = ("code", "trace")

    def __init__(self, code: str, trace: "_Trace"):
        self.code = code
        self.trace = trace

    def _operand(self, value) -> str:
        if isinstance(value, _Symbol):
            return value.code
        if isinstance(value, (bool, np.bool_)):
            return "true" if value else "false"
        if isinstance(value, (int, float, np.integer, np.floating)):
            # Literals take the parameters' type, as on the CPU.
            return f"((T){float(value)!r})"
        raise TypeError(f"an update rule traced for CUDA met a {type(value).__name__}; only numbers and "
                        "the rule's own arguments can be combined")

    def _emit(self, expression: str) -> "_Symbol":
        return self.trace.emit(expression)

    def _binary(self, left, operator: str, right) -> "_Symbol":
        return self._emit(f"{self._operand(left)} {operator} {self._operand(right)}")

    def __add__(self, other): return self._binary(self, "+", other)
    def __radd__(self, other): return self._binary(other, "+", self)
    def __sub__(self, other): return self._binary(self, "-", other)
    def __rsub__(self, other): return self._binary(other, "-", self)
    def __mul__(self, other): return self._binary(self, "*", other)
    def __rmul__(self, other): return self._binary(other, "*", self)
    def __truediv__(self, other): return self._binary(self, "/", other)
    def __rtruediv__(self, other): return self._binary(other, "/", self)
    def __lt__(self, other): return self._binary(self, "<", other)
    def __le__(self, other): return self._binary(self, "<=", other)
    def __gt__(self, other): return self._binary(self, ">", other)
    def __ge__(self, other): return self._binary(self, ">=", other)
    def __neg__(self): return self._emit(f"-{self.code}")
    def __pos__(self): return self
    def __abs__(self): return self._function("abs", self)

    def __pow__(self, other):
        if isinstance(other, int) and other == 2:
            return self._emit(f"{self.code} * {self.code}")
        return self._emit(f"pow({self.code}, {self._operand(other)})")

    def __rpow__(self, other):
        return self._emit(f"pow({self._operand(other)}, {self.code})")

    def __bool__(self):
        raise TypeError("an update rule cannot use if/else, and/or or min/max on array values; "
                        "use sigma.optim.elementwise.where, maximum and minimum")

    def _function(self, name: str, *arguments) -> "_Symbol":
        a = [self._operand(x) for x in arguments]
        if name in ("sqrt", "exp", "log"):
            return self._emit(f"{name}({a[0]})")
        if name == "abs":
            return self._emit(f"fabs({a[0]})")
        if name == "sign":
            return self._emit(f"(isnan({a[0]}) ? {a[0]} : (T)(({a[0]} > (T)0) - ({a[0]} < (T)0)))")
        if name == "maximum":
            return self._emit(f"(({a[0]} > {a[1]} || isnan({a[0]})) ? {a[0]} : {a[1]})")
        if name == "minimum":
            return self._emit(f"(({a[0]} < {a[1]} || isnan({a[0]})) ? {a[0]} : {a[1]})")
        if name == "where":
            return self._emit(f"({a[0]} ? {a[1]} : {a[2]})")
        raise TypeError(f"no CUDA form for {name}")  # pragma: no cover - the names above are all there are


class _Trace:
    def __init__(self):
        self.lines: List[str] = []

    def emit(self, expression: str) -> _Symbol:
        name = f"t{len(self.lines)}"
        self.lines.append(f"const auto {name} = {expression};")
        return _Symbol(name, self)


def cuda_kernel_source(function: Callable, state_count: int, scalar_count: int) -> str:
    """The body of a cupy ``ElementwiseKernel`` doing what ``function`` does to one element.

    Its inputs are ``grad, scalar0, ...`` and its outputs ``param, state0, ...``
    (read, then overwritten). Exposed so that the tracing can be checked
    without a GPU.

    Example:
        >>> def rule(param, grad, lr):
        ...     return param - lr * grad
        >>> print(cuda_kernel_source(rule, 0, 1))
        const T in_param = param;
        const T in_grad = grad;
        const T in_scalar0 = scalar0;
        const auto t0 = in_scalar0 * in_grad;
        const auto t1 = in_param - t0;
        param = t1;
    """
    trace = _Trace()
    names = ["param", "grad"] + [f"state{i}" for i in range(state_count)] + [f"scalar{i}" for i in range(scalar_count)]
    header = [f"const T in_{name} = {name};" for name in names]
    arguments = [_Symbol(f"in_{name}", trace) for name in names]
    result = function(*arguments)
    outputs = result if isinstance(result, tuple) else (result,)
    targets = ["param"] + [f"state{i}" for i in range(state_count)]
    assignments = []
    for target, value in zip(targets, outputs):
        code = value.code if isinstance(value, _Symbol) else _Symbol("", trace)._operand(value)
        assignments.append(f"{target} = {code};")
    return "\n".join(header + trace.lines + assignments)
