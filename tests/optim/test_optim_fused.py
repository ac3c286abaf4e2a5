"""Update rules: the numba kernel, the whole-array fallback and the CUDA tracer agree; bad rules are explained."""
import shutil
import subprocess

import numpy as np
import pytest

import backends
import sigma
import sigma.optim
from sigma.optim.elementwise import abs as elementwise_abs
from sigma.optim.elementwise import exp, log, maximum, minimum, sign, sqrt, where
from sigma.optim.fused import UpdateRule, cuda_kernel_source, rule_for

CPU = backends.get("cpu")


def _adam_inputs(dtype, n=1000, seed=0):
    rng = np.random.default_rng(seed)
    param, grad = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    states = [rng.standard_normal(n).astype(dtype), rng.random(n).astype(dtype), rng.random(n).astype(dtype)]
    return param, grad, states


def _adam_scalars(step=3):
    optimiser = sigma.optim.Adam([sigma.zeros(1, requires_grad=True)], lr=0.01, weight_decay=0.1, amsgrad=True)
    return optimiser.scalars(optimiser.param_groups[0], step)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_kernel_equals_the_rule_on_whole_arrays(dtype):
    rule = rule_for(sigma.optim.Adam.amsgrad_rule, ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"))
    scalars = _adam_scalars()
    param, grad, states = _adam_inputs(dtype)
    expected_param, expected_states = param.copy(), [s.copy() for s in states]
    values = [dtype(scalars[name]) for name in rule.scalar_names]
    rule.apply_with_arrays(expected_param, grad, expected_states, values)
    rule.apply(CPU, param, grad, states, scalars)
    np.testing.assert_array_equal(param, expected_param)
    for got, want in zip(states, expected_states):
        np.testing.assert_array_equal(got, want)
    assert param.dtype == dtype


def test_number_literals_in_a_rule_compute_in_the_parameter_dtype():
    # In float32, 0.1 * g rounds before the subtraction; computed in float64 it
    # would not. The kernel must give the float32 answer, element for element.
    def rule(param, grad):
        return param - 0.1 * grad

    rng = np.random.default_rng(1)
    param, grad = rng.standard_normal(4000).astype(np.float32), rng.standard_normal(4000).astype(np.float32)
    in_float32 = param - np.float32(0.1) * grad
    in_float64 = (param.astype(np.float64) - 0.1 * grad.astype(np.float64)).astype(np.float32)
    assert not np.array_equal(in_float32, in_float64)  # the data can tell the two apart
    UpdateRule(rule, ()).apply(CPU, param, grad, [], {})
    np.testing.assert_array_equal(param, in_float32)


def test_rule_without_source_still_runs():
    namespace = {}
    exec("def rule(param, grad, lr):\n    return param - lr * grad * 2\n", namespace)
    param, grad = np.ones(3, np.float32), np.ones(3, np.float32)
    UpdateRule(namespace["rule"], ()).apply(CPU, param, grad, [], {"lr": 0.25})
    np.testing.assert_array_equal(param, np.full(3, 0.5, np.float32))


def test_non_contiguous_parameters_and_gradients_are_updated_in_place():
    base = np.arange(12, dtype=np.float64).reshape(3, 4)
    param = base.T  # a view that is not C-contiguous
    grad = np.ones((8, 3))[::2]
    state = np.zeros((4, 3)).T.copy().T
    rule = UpdateRule(sigma.optim.SGD.momentum_rule, ("momentum_buffer",))
    rule.apply(CPU, param, grad, [state], {"lr": 0.5, "weight_decay": 0.0, "momentum": 0.9, "keep": 1.0,
                                           "first": True, "nesterov": False})
    np.testing.assert_array_equal(base, np.arange(12).reshape(3, 4) - 0.5)
    np.testing.assert_array_equal(state, np.ones((4, 3)))


def test_rule_for_shares_one_compiled_rule():
    assert rule_for(sigma.optim.Adam.rule, ("exp_avg", "exp_avg_sq")) is \
        rule_for(sigma.optim.Adam.rule, ("exp_avg", "exp_avg_sq"))


def test_elementwise_functions_agree_between_numba_and_numpy():
    def rule(param, grad, a, b):
        value = where(grad > 0, sqrt(elementwise_abs(grad)) + exp(-a), log(1 + grad * grad) - b)
        value = maximum(value, minimum(param, b)) + sign(param - grad) + elementwise_abs(param) ** 2
        return value, a + b

    rng = np.random.default_rng(2)
    param, grad, a = (rng.standard_normal(200) for _ in range(3))
    param[3], grad[5] = np.nan, np.nan
    rule_object = UpdateRule(rule, ("a",))
    expected_param, expected_a = param.copy(), a.copy()
    with np.errstate(invalid="ignore"):
        rule_object.apply_with_arrays(expected_param, grad, [expected_a], [0.3])
    rule_object.apply(CPU, param, grad, [a], {"b": 0.3})
    np.testing.assert_allclose(param, expected_param, rtol=1e-14, equal_nan=True)
    np.testing.assert_array_equal(a, expected_a)
    assert np.isnan(param[3]) and np.isnan(param[5])


@pytest.mark.parametrize("rule,state,words", [
    (lambda param: param, (), "must take (param, grad"),
    (lambda param, grad, v, m: (param, m, v), ("m", "v"), "arguments 3 to 4 are ('v', 'm') but the state is named"),
    (lambda param, grad, *rest: param, (), "must be a plain positional argument"),
    (lambda param, grad, m: param, ("m",), "returned 1 value(s); it must return the new parameter, then m"),
    (lambda param, grad: (param, grad), (), "returned 2 value(s); it must return the new parameter"),
    (lambda param, grad: param.nonexistent, (), "failed when called with numbers (AttributeError"),
])
def test_bad_rules_are_explained(rule, state, words):
    with pytest.raises(TypeError) as raised:
        UpdateRule(rule, state)
    assert words in str(raised.value)


def test_missing_scalar_is_explained():
    rule = UpdateRule(lambda param, grad, lr: param - lr * grad, ())
    with pytest.raises(KeyError, match="takes the scalar 'lr', which is neither a state buffer nor among"):
        rule.apply(CPU, np.ones(2), np.ones(2), [], {"learning_rate": 0.1})


def test_unknown_backend_kind_uses_whole_arrays():
    class OtherBackend:
        kind = "other"
        xp = np

    param, grad = np.ones(3), np.full(3, 2.0)
    UpdateRule(lambda param, grad, lr: param - lr * grad, ()).apply(OtherBackend(), param, grad, [], {"lr": 0.5})
    np.testing.assert_array_equal(param, np.zeros(3))


# -- the CUDA tracer --------------------------------------------------------------------------

def test_cuda_source_refuses_branches_on_values():
    def rule(param, grad):
        return param - grad if grad > 0 else param

    with pytest.raises(TypeError, match="cannot use if/else"):
        cuda_kernel_source(rule, 0, 0)


def test_cuda_source_types_literals_and_squares_by_multiplying():
    source = cuda_kernel_source(lambda param, grad, lr: param - lr * grad ** 2 + 0.5, 0, 1)
    assert "in_grad * in_grad" in source and "((T)0.5)" in source and "pow" not in source
    assert source.splitlines()[-1].startswith("param = t")


_HARNESS = r"""
#include <cmath>
#include <cstdio>
using std::sqrt; using std::exp; using std::log; using std::pow; using std::fabs; using std::isnan;
typedef double T;
int main() {
    int n, states, scalars;
    if (scanf("%d %d %d", &n, &states, &scalars) != 3) return 1;
    double values[64];
    for (int i = 0; i < n; ++i) {
        for (int k = 0; k < 2 + states + scalars; ++k) if (scanf("%lf", &values[k]) != 1) return 1;
        T param = values[0]; const T grad = values[1];
        T state0 = states > 0 ? values[2] : 0, state1 = states > 1 ? values[3] : 0, state2 = states > 2 ? values[4] : 0;
        const T scalar0 = values[2 + states + 0], scalar1 = values[2 + states + 1], scalar2 = values[2 + states + 2],
                scalar3 = values[2 + states + 3], scalar4 = values[2 + states + 4], scalar5 = values[2 + states + 5],
                scalar6 = values[2 + states + 6], scalar7 = values[2 + states + 7];
        (void)state0; (void)state1; (void)state2; (void)scalar0; (void)scalar1; (void)scalar2; (void)scalar3;
        (void)scalar4; (void)scalar5; (void)scalar6; (void)scalar7;
        {
BODY
        }
        printf("%.17g %.17g %.17g %.17g\n", param, state0, state1, state2);
    }
    return 0;
}
"""


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++ to compile the traced kernel body as C++")
@pytest.mark.parametrize("name", ["adam-amsgrad", "sgd-nesterov", "rmsprop-centered-momentum"])
def test_cuda_kernel_body_computes_what_the_cpu_kernel_computes(name, tmp_path):
    # The body cupy would compile for a GPU is plain C++: compile it on the CPU
    # (T = double) and run it on the same numbers as the numba kernel.
    if name == "adam-amsgrad":
        rule = rule_for(sigma.optim.Adam.amsgrad_rule, ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"))
        scalars = _adam_scalars(step=2)
    elif name == "sgd-nesterov":
        rule = rule_for(sigma.optim.SGD.momentum_rule, ("momentum_buffer",))
        scalars = {"lr": 0.1, "weight_decay": 0.01, "momentum": 0.9, "keep": 0.8, "first": False, "nesterov": True}
    else:
        rule = rule_for(sigma.optim.RMSProp.centered_momentum_rule, ("square_avg", "grad_avg", "momentum_buffer"))
        scalars = {"lr": 0.01, "alpha": 0.9, "keep": 0.1, "eps": 1e-8, "weight_decay": 0.1, "momentum": 0.5}
    states_count = len(rule.state_names)
    param, grad, states = _adam_inputs(np.float64, n=50, seed=3)
    states = states[:states_count]
    values = [float(scalars[n]) for n in rule.scalar_names]
    body = cuda_kernel_source(rule.function, states_count, len(values))
    program = tmp_path / "kernel.cpp"
    program.write_text(_HARNESS.replace("BODY", body))
    subprocess.run(["g++", "-O1", "-o", str(tmp_path / "kernel"), str(program)], check=True, capture_output=True)
    lines = [f"{len(param)} {states_count} {len(values)}"]
    for i in range(len(param)):
        lines.append(" ".join(repr(float(v)) for v in [param[i], grad[i], *[s[i] for s in states], *values]))
    result = subprocess.run([str(tmp_path / "kernel")], input="\n".join(lines), capture_output=True, text=True,
                            check=True)
    traced = np.array([[float(x) for x in line.split()] for line in result.stdout.splitlines()])
    rule.apply(CPU, param, grad, states, scalars)
    np.testing.assert_allclose(traced[:, 0], param, rtol=1e-14, atol=1e-15)
    for k, state in enumerate(states):
        np.testing.assert_allclose(traced[:, 1 + k], state, rtol=1e-14, atol=1e-15)


def _rule_from_file(path, body):
    path.write_text(f"def rule(param, grad, lr):\n    return {body}\n")
    import runpy
    return runpy.run_path(str(path))["rule"]


def test_compiled_kernels_are_cached_on_disk_and_keyed_by_the_rule_text(tmp_path, monkeypatch):
    import sys
    monkeypatch.setenv("SIGMA_KERNEL_CACHE", str(tmp_path / "kernels"))
    rule = _rule_from_file(tmp_path / "first.py", "param - lr * grad")
    param, grad = np.ones(4, np.float32), np.ones(4, np.float32)
    UpdateRule(rule, ()).apply(CPU, param, grad, [], {"lr": 0.5})
    sources = sorted((tmp_path / "kernels").glob("sigma_update_*.py"))
    assert len(sources) == 1 and list((tmp_path / "kernels" / "__pycache__").glob("*.nbi"))

    # What a new process does: no module in memory, so numba loads the machine code from disk.
    monkeypatch.delitem(sys.modules, sources[0].stem)
    again = UpdateRule(rule, ())
    again.apply(CPU, param, grad, [], {"lr": 0.5})
    np.testing.assert_array_equal(param, np.zeros(4, np.float32))
    kernel = again._cpu_kernels[np.dtype(np.float32)]
    assert sum(kernel.stats.cache_hits.values()) == 1 and not kernel.stats.cache_misses

    # Another rule under the same name is another kernel, never the stale one.
    changed = _rule_from_file(tmp_path / "second.py", "param - 2 * lr * grad")
    UpdateRule(changed, ()).apply(CPU, param, grad, [], {"lr": 0.5})
    np.testing.assert_array_equal(param, np.full(4, -1.0, np.float32))
    assert len(list((tmp_path / "kernels").glob("sigma_update_*.py"))) == 2


def test_unwritable_cache_directory_falls_back_to_compiling_in_memory(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("SIGMA_KERNEL_CACHE", str(blocker / "kernels"))
    rule = _rule_from_file(tmp_path / "third.py", "param - lr * grad * 3")
    param = np.ones(2)
    UpdateRule(rule, ()).apply(CPU, param, np.ones(2), [], {"lr": 1.0})
    np.testing.assert_array_equal(param, [-2.0, -2.0])


def test_large_parameters_take_the_parallel_kernel_with_the_same_bits(monkeypatch):
    import numba
    from sigma.optim import fused
    from sigma.optim.adam import Adam
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has one thread here")
    previous = numba.get_num_threads()
    numba.set_num_threads(2)   # the test workers run with one (tests/conftest.py)
    try:
        _check_parallel_kernel_bits(monkeypatch, fused, Adam)
    finally:
        numba.set_num_threads(previous)


def _check_parallel_kernel_bits(monkeypatch, fused, Adam):
    rng = np.random.default_rng(0)
    size = fused.PARALLEL_UPDATE_SIZE + 7
    start, grads = rng.standard_normal(size).astype(np.float32), rng.standard_normal((3, size)).astype(np.float32)

    def three_adam_steps():
        param = sigma.tensor(start.copy(), requires_grad=True)
        optimiser = Adam([param], lr=1e-2)
        for grad in grads:
            param.grad = sigma.tensor(grad)
            optimiser.step()
        return param.numpy(), optimiser

    parallel, optimiser = three_adam_steps()
    assert rule_kernels(optimiser, parallel=True)   # the parallel driver did run
    monkeypatch.setattr(fused, "PARALLEL_UPDATE_SIZE", size + 1)
    serial, _ = three_adam_steps()
    np.testing.assert_array_equal(parallel, serial)


def rule_kernels(optimiser, parallel: bool):
    """The compiled kernels of the optimiser's update rule (parallel or plain ones)."""
    from sigma.optim.fused import rule_for
    names, function = optimiser.variant(optimiser.param_groups[0])
    rule = rule_for(function, names)
    return rule._cpu_parallel_kernels if parallel else rule._cpu_kernels
