"""A custom optimiser as a plug-in: AdaBelief (Zhuang et al., NeurIPS 2020).

AdaBelief is Adam with the second moment taken of the gradient's surprise,
(g - m)^2, instead of g^2. Written against Sigma's plug-in API it is only the
per-parameter rule and its state; Sigma fuses the rule into one compiled
loop per parameter, registers it by name, and the conformance kit checks it.

    python examples/custom_optimiser.py            # kit + a few epochs on MNIST
    python examples/custom_optimiser.py --quick    # kit + a short run (CI)
"""
from __future__ import annotations

import argparse
import math

import numpy as np

import sigma
import sigma.data
from sigma import nn, optim
from sigma.optim.elementwise import sqrt
from sigma.testing import check_optimiser


@optim.register("adabelief")
class AdaBelief(optim.GradientOptimiser):
    """Adam whose step shrinks where gradients agree with their running mean."""

    defaults = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-16}
    state_names = ("exp_avg", "exp_avg_belief")

    def scalars(self, group, step):
        beta1, beta2 = group["betas"]
        return {"lr": group["lr"], "beta1": beta1, "beta2": beta2, "eps": group["eps"],
                "correction1": 1 - beta1 ** step, "root_correction2": math.sqrt(1 - beta2 ** step)}

    @staticmethod
    def rule(param, grad, exp_avg, exp_avg_belief, lr, beta1, beta2, eps, correction1, root_correction2):
        exp_avg = beta1 * exp_avg + (1 - beta1) * grad
        surprise = grad - exp_avg
        exp_avg_belief = beta2 * exp_avg_belief + (1 - beta2) * surprise * surprise + eps
        step = (lr / correction1) * exp_avg / (sqrt(exp_avg_belief) / root_correction2 + eps)
        return param - step, exp_avg, exp_avg_belief


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="CI version: 300 steps")
    args = parser.parse_args(argv)
    check_optimiser(AdaBelief, lr=1e-2)
    print("AdaBelief passes sigma.testing.check_optimiser")
    sigma.manual_seed(0)
    train, test = sigma.data.load("mnist", split="train"), sigma.data.load("mnist", split="test")
    scale = lambda images: (images.reshape(len(images), -1).astype(np.float32) / 255.0 - 0.1307) / 0.3081
    train_x, train_y, test_x, test_y = scale(train.inputs), train.targets, scale(test.inputs), test.targets
    net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    optimiser = optim.get("adabelief")(net.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    steps = 300 if args.quick else args.epochs * len(train_x) // 128
    for step in range(steps):
        index = rng.integers(0, len(train_x), 128)
        optimiser.zero_grad()
        loss = sigma.softmax_cross_entropy(net(sigma.tensor(train_x[index])), sigma.tensor(train_y[index]))
        loss.backward()
        optimiser.step()
    with sigma.no_grad():
        accuracy = float((net(sigma.tensor(test_x)).argmax(axis=1).numpy() == test_y).mean())
    print(f"MNIST test accuracy with AdaBelief after {steps} steps: {accuracy:.4f}")
    return {"test_accuracy": accuracy, "steps": steps}


if __name__ == "__main__":
    main()
