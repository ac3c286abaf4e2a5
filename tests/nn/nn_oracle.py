"""Helpers for checking a Sigma layer against its PyTorch twin with the same weights."""
import numpy as np

import sigma

TOLERANCE = {"float64": dict(rtol=1e-9, atol=1e-10), "float32": dict(rtol=2e-4, atol=2e-5)}


def torch_dtype(torch, dtype):
    return {"float64": torch.float64, "float32": torch.float32}[dtype]


def copy_weights(sigma_module, torch_module):
    """Load the torch module's state into the Sigma module (names must agree exactly)."""
    torch_state = {name: value.detach().cpu().numpy() for name, value in torch_module.state_dict().items()}
    assert list(sigma_module.state_dict()) == list(torch_state)
    sigma_module.load_state_dict(torch_state)


def assert_close(sigma_value, torch_value, dtype, what):
    actual = sigma_value.numpy() if isinstance(sigma_value, sigma.Tensor) else np.asarray(sigma_value)
    expected = torch_value.detach().cpu().numpy()
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    np.testing.assert_allclose(actual, expected, err_msg=what, **TOLERANCE[dtype])


def check_against_torch(torch, sigma_module, torch_module, input_array, dtype="float64", train=True,
                        input_requires_grad=True, steps=1):
    """Forward, input gradient, every parameter gradient and every buffer agree with PyTorch.

    ``steps`` > 1 runs several forward/backward passes (running statistics).
    Returns the last pair of outputs.
    """
    torch_module = torch_module.to(torch_dtype(torch, dtype))
    sigma_module.to(dtype=dtype)
    copy_weights(sigma_module, torch_module)
    sigma_module.train(train)
    torch_module.train(train)
    rng = np.random.default_rng(1)
    for step in range(steps):
        data = np.asarray(input_array[step] if steps > 1 else input_array)
        if data.dtype.kind == "f":
            data = data.astype(dtype)
        requires_grad = input_requires_grad and data.dtype.kind == "f"
        x_sigma = sigma.tensor(data, requires_grad=requires_grad)
        x_torch = torch.tensor(data, requires_grad=requires_grad)
        out_sigma = sigma_module(x_sigma)
        out_torch = torch_module(x_torch)
        assert_close(out_sigma, out_torch, dtype, f"forward (step {step})")
        seed = rng.standard_normal(out_torch.shape).astype(dtype)
        sigma_module.zero_grad()
        torch_module.zero_grad()
        out_sigma.backward(sigma.tensor(seed))
        out_torch.backward(torch.tensor(seed))
        if requires_grad:
            assert_close(x_sigma.grad, x_torch.grad, dtype, f"input gradient (step {step})")
        torch_parameters = dict(torch_module.named_parameters())
        sigma_parameters = dict(sigma_module.named_parameters())
        assert list(sigma_parameters) == list(torch_parameters)
        for name, parameter in torch_parameters.items():
            if parameter.grad is None:
                assert sigma_parameters[name].grad is None, name
            else:
                assert_close(sigma_parameters[name].grad, parameter.grad, dtype, f"gradient of {name} (step {step})")
        torch_buffers = dict(torch_module.named_buffers())
        sigma_buffers = dict(sigma_module.named_buffers())
        assert list(sigma_buffers) == list(torch_buffers)
        for name, buffer in torch_buffers.items():
            if buffer.dtype.is_floating_point:
                assert_close(sigma_buffers[name], buffer, dtype, f"buffer {name} (step {step})")
            else:
                assert sigma_buffers[name].numpy().tolist() == buffer.numpy().tolist(), name
    return out_sigma, out_torch
