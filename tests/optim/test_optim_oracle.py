"""Every optimiser, schedule and clipping function against torch.optim: 20 steps, float64, same data."""
import warnings

import numpy as np
import pytest

import sigma
import sigma.optim

torch = pytest.importorskip("torch")

STEPS = 20
SHAPES = [(3, 4), (5,)]
RTOL, ATOL = 1e-10, 1e-12


def _start(seed=0):
    rng = np.random.default_rng(seed)
    values = [rng.standard_normal(shape) for shape in SHAPES]
    noise = [[rng.standard_normal(shape) for shape in SHAPES] for _ in range(STEPS)]
    return values, noise


def _gradient(value, noise):
    # Depends on the parameter, so that a wrong update also changes later gradients.
    return 0.5 * value + np.sin(3 * value) + noise


def _groups(params, group_options):
    if group_options is None:
        return params
    return [{"params": [p], **options} for p, options in zip(params, group_options)]


# (sigma class, torch class, hyperparameters, per-group overrides or None)
CASES = [
    ("SGD", "SGD", {"lr": 0.1}, None),
    ("SGD", "SGD", {"lr": 0.1, "momentum": 0.9}, None),
    ("SGD", "SGD", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.01}, None),
    ("SGD", "SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}, None),
    ("SGD", "SGD", {"lr": 0.1, "momentum": 0.5}, [{"lr": 0.01}, {"lr": 0.2, "momentum": 0.0}]),
    ("Adagrad", "Adagrad", {"lr": 0.1}, None),
    ("Adagrad", "Adagrad", {"lr": 0.1, "lr_decay": 0.05, "weight_decay": 0.1, "initial_accumulator_value": 0.3,
                            "eps": 1e-6}, None),
    ("Adagrad", "Adagrad", {"lr": 0.1}, [{"lr": 0.5}, {"lr": 0.01, "weight_decay": 0.2}]),
    ("Adadelta", "Adadelta", {}, None),
    ("Adadelta", "Adadelta", {"lr": 0.5, "rho": 0.8, "eps": 1e-4, "weight_decay": 0.05}, None),
    ("Adadelta", "Adadelta", {"lr": 1.0}, [{"lr": 2.0}, {"lr": 0.3, "rho": 0.5}]),
    ("RMSProp", "RMSprop", {"lr": 0.01}, None),
    ("RMSProp", "RMSprop", {"lr": 0.01, "centered": True, "alpha": 0.9}, None),
    ("RMSProp", "RMSprop", {"lr": 0.01, "momentum": 0.5, "weight_decay": 0.1}, None),
    ("RMSProp", "RMSprop", {"lr": 0.01, "centered": True, "momentum": 0.7, "eps": 1e-4}, None),
    ("RMSProp", "RMSprop", {"lr": 0.01}, [{"lr": 0.03, "centered": True}, {"momentum": 0.9}]),
    ("Adam", "Adam", {"lr": 0.01}, None),
    ("Adam", "Adam", {"lr": 0.01, "amsgrad": True}, None),
    ("Adam", "Adam", {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}, None),
    ("Adam", "Adam", {"lr": 0.02, "amsgrad": True, "weight_decay": 0.05}, [{"lr": 0.1}, {"lr": 0.001}]),
    ("AdamW", "AdamW", {"lr": 0.01}, None),
    ("AdamW", "AdamW", {"lr": 0.05, "weight_decay": 0.2, "amsgrad": True, "betas": (0.7, 0.95)}, None),
    ("AdamW", "AdamW", {"lr": 0.01}, [{"lr": 0.1, "weight_decay": 0.5}, {"weight_decay": 0.0}]),
]


def _case_id(case):
    name, _, options, groups = case
    text = ",".join(f"{k}={v}" for k, v in options.items())
    return f"{name}[{text}{',groups' if groups else ''}]"


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_optimiser_matches_torch_for_20_steps(case):
    sigma_name, torch_name, options, group_options = case
    values, noise = _start()
    ours = [sigma.tensor(v.copy(), dtype="float64", requires_grad=True) for v in values]
    theirs = [torch.tensor(v.copy(), dtype=torch.float64, requires_grad=True) for v in values]
    optimiser = getattr(sigma.optim, sigma_name)(_groups(ours, group_options), **options)
    reference = getattr(torch.optim, torch_name)(_groups(theirs, group_options), **options)
    for step in range(STEPS):
        for mine, other, n in zip(ours, theirs, noise[step]):
            mine.grad = sigma.tensor(_gradient(mine.numpy(), n), dtype="float64")
            other.grad = torch.tensor(_gradient(other.detach().numpy(), n))
        optimiser.step()
        reference.step()
        for i, (mine, other) in enumerate(zip(ours, theirs)):
            np.testing.assert_allclose(mine.numpy(), other.detach().numpy(), rtol=RTOL, atol=ATOL,
                                       err_msg=f"parameter {i} after step {step + 1}")
    # The state buffers carry PyTorch's names and values too.
    for mine, other in zip(ours, theirs):
        their_state = reference.state[other]
        for name, expected in their_state.items():
            value = optimiser.state[mine][name]
            expected = expected.item() if name == "step" else expected.numpy()
            np.testing.assert_allclose(np.asarray(value), expected, rtol=RTOL, atol=ATOL, err_msg=name)


def test_optimiser_float32_stays_close_to_torch():
    values, noise = _start(1)
    ours = [sigma.tensor(v.astype(np.float32), requires_grad=True) for v in values]
    theirs = [torch.tensor(v.astype(np.float32), requires_grad=True) for v in values]
    optimiser = sigma.optim.Adam(ours, lr=0.01, amsgrad=True, weight_decay=0.01)
    reference = torch.optim.Adam(theirs, lr=0.01, amsgrad=True, weight_decay=0.01)
    for step in range(STEPS):
        for mine, other, n in zip(ours, theirs, noise[step]):
            g = _gradient(mine.numpy().astype(np.float64), n).astype(np.float32)
            mine.grad, other.grad = sigma.tensor(g), torch.tensor(g)
        optimiser.step()
        reference.step()
    for mine, other in zip(ours, theirs):
        assert mine.dtype == np.float32
        np.testing.assert_allclose(mine.numpy(), other.detach().numpy(), rtol=1e-5, atol=1e-6)


# -- schedules ----------------------------------------------------------------------------

def _two_group_optimisers(lr=(0.1, 0.03)):
    ours = sigma.optim.SGD([{"params": [sigma.zeros(1, requires_grad=True)], "lr": lr[0]},
                            {"params": [sigma.zeros(1, requires_grad=True)], "lr": lr[1]}])
    theirs = torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)], "lr": lr[0]},
                              {"params": [torch.zeros(1, requires_grad=True)], "lr": lr[1]}])
    return ours, theirs


SCHEDULES = [
    ("StepLR", lambda o: sigma.optim.StepLR(o, step_size=3, gamma=0.5),
     lambda t: torch.optim.lr_scheduler.StepLR(t, step_size=3, gamma=0.5)),
    ("ExponentialLR", lambda o: sigma.optim.ExponentialLR(o, gamma=0.9),
     lambda t: torch.optim.lr_scheduler.ExponentialLR(t, gamma=0.9)),
    ("CosineAnnealingLR", lambda o: sigma.optim.CosineAnnealingLR(o, T_max=7, eta_min=0.001),
     lambda t: torch.optim.lr_scheduler.CosineAnnealingLR(t, T_max=7, eta_min=0.001)),
    ("CosineAnnealingLR-no-floor", lambda o: sigma.optim.CosineAnnealingLR(o, T_max=20),
     lambda t: torch.optim.lr_scheduler.CosineAnnealingLR(t, T_max=20)),
    ("LinearWarmup", lambda o: sigma.optim.LinearWarmup(o, warmup_steps=6, start_factor=0.1, end_factor=0.9),
     lambda t: torch.optim.lr_scheduler.LinearLR(t, start_factor=0.1, end_factor=0.9, total_iters=6)),
]


@pytest.mark.parametrize("name,make_ours,make_theirs", SCHEDULES, ids=[s[0] for s in SCHEDULES])
def test_schedule_matches_torch_for_20_steps(name, make_ours, make_theirs):
    ours, theirs = _two_group_optimisers()
    schedule, reference = make_ours(ours), make_theirs(theirs)
    _compare_schedules(ours, theirs, schedule, reference)


def _compare_schedules(ours, theirs, schedule, reference):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for step in range(STEPS + 1):
            mine = [group["lr"] for group in ours.param_groups]
            expected = [group["lr"] for group in theirs.param_groups]
            np.testing.assert_allclose(mine, expected, rtol=1e-12, atol=1e-15, err_msg=f"step {step}")
            assert schedule.get_last_lr() == mine
            ours.step()
            theirs.step()
            schedule.step()
            reference.step()


def test_warmup_then_cosine_matches_torch_sequential_lr():
    ours, theirs = _two_group_optimisers()
    warmup = sigma.optim.LinearWarmup(ours, warmup_steps=5, start_factor=0.2)
    cosine = sigma.optim.CosineAnnealingLR(ours, T_max=10, eta_min=0.002)
    schedule = sigma.optim.SequentialSchedule(ours, [warmup, cosine], milestones=[5])
    reference = torch.optim.lr_scheduler.SequentialLR(
        theirs, [torch.optim.lr_scheduler.LinearLR(theirs, start_factor=0.2, total_iters=5),
                 torch.optim.lr_scheduler.CosineAnnealingLR(theirs, T_max=10, eta_min=0.002)], milestones=[5])
    _compare_schedules(ours, theirs, schedule, reference)


def test_three_stage_chain_matches_torch_sequential_lr():
    ours, theirs = _two_group_optimisers()
    schedule = sigma.optim.SequentialSchedule(
        ours, [sigma.optim.LinearWarmup(ours, 3, start_factor=0.5), sigma.optim.StepLR(ours, 4, gamma=0.5),
               sigma.optim.ExponentialLR(ours, gamma=0.8)], milestones=[3, 11])
    reference = torch.optim.lr_scheduler.SequentialLR(
        theirs, [torch.optim.lr_scheduler.LinearLR(theirs, start_factor=0.5, total_iters=3),
                 torch.optim.lr_scheduler.StepLR(theirs, 4, gamma=0.5),
                 torch.optim.lr_scheduler.ExponentialLR(theirs, gamma=0.8)], milestones=[3, 11])
    _compare_schedules(ours, theirs, schedule, reference)


PLATEAU_METRICS = [5.0, 4.0, 4.0, 3.9999, 4.1, 4.0, 4.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 2.99, 3.0, 3.0, 3.0, 3.0,
                   3.0, 3.0]


@pytest.mark.parametrize("options", [
    {},
    {"factor": 0.5, "patience": 1},
    {"factor": 0.5, "patience": 2, "cooldown": 2, "threshold": 0.01, "threshold_mode": "abs"},
    {"factor": 0.2, "patience": 0, "min_lr": [0.01, 0.005]},
    {"mode": "max", "factor": 0.5, "patience": 1, "threshold": 0.1},
    {"mode": "max", "factor": 0.5, "patience": 1, "threshold_mode": "abs", "min_lr": 0.02},
], ids=["defaults", "patience1", "cooldown-abs", "min_lr-list", "max-rel", "max-abs"])
def test_reduce_on_plateau_matches_torch(options):
    ours, theirs = _two_group_optimisers()
    schedule = sigma.optim.ReduceLROnPlateau(ours, **options)
    reference = torch.optim.lr_scheduler.ReduceLROnPlateau(theirs, **options)
    metrics = PLATEAU_METRICS if options.get("mode") != "max" else [-m for m in PLATEAU_METRICS]
    for step, metric in enumerate(metrics):
        schedule.step(metric)
        reference.step(metric)
        expected = [group["lr"] for group in theirs.param_groups]
        np.testing.assert_allclose(schedule.get_last_lr(), expected, rtol=1e-12, err_msg=f"step {step}")


# -- clipping -------------------------------------------------------------------------------

@pytest.mark.parametrize("max_norm,norm_type", [(0.5, 2.0), (100.0, 2.0), (1.0, 1.0), (0.3, float("inf")),
                                                (2.0, 3.0)])
def test_clip_grad_norm_matches_torch(max_norm, norm_type):
    rng = np.random.default_rng(3)
    grads = [rng.standard_normal(shape) for shape in SHAPES]
    ours = [sigma.zeros(*shape, dtype="float64", requires_grad=True) for shape in SHAPES]
    theirs = [torch.zeros(shape, dtype=torch.float64, requires_grad=True) for shape in SHAPES]
    for mine, other, g in zip(ours, theirs, grads):
        mine.grad, other.grad = sigma.tensor(g), torch.tensor(g)
    total = sigma.optim.clip_grad_norm(ours, max_norm, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    assert total.item() == pytest.approx(expected.item(), rel=1e-12)
    for mine, other in zip(ours, theirs):
        np.testing.assert_allclose(mine.grad.numpy(), other.grad.numpy(), rtol=1e-12)


def test_clip_grad_value_matches_torch():
    rng = np.random.default_rng(4)
    grads = [rng.standard_normal(shape) * 2 for shape in SHAPES]
    ours = [sigma.zeros(*shape, dtype="float64", requires_grad=True) for shape in SHAPES]
    theirs = [torch.zeros(shape, dtype=torch.float64, requires_grad=True) for shape in SHAPES]
    for mine, other, g in zip(ours, theirs, grads):
        mine.grad, other.grad = sigma.tensor(g), torch.tensor(g)
    total = sigma.optim.clip_grad_value(ours, 0.7)
    torch.nn.utils.clip_grad_value_(theirs, 0.7)
    assert total.item() == pytest.approx(float(np.sqrt(sum((g ** 2).sum() for g in grads))), rel=1e-12)
    for mine, other in zip(ours, theirs):
        np.testing.assert_array_equal(mine.grad.numpy(), other.grad.numpy())
