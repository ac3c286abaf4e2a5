"""Networks: ``Module``, layers, losses, initialisers.

Example:
    >>> import sigma
    >>> from sigma import nn
    >>> net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    >>> loss = nn.CrossEntropyLoss()(net(sigma.randn(8, 4)), sigma.randint(0, 3, (8,)))
    >>> loss.backward()
    >>> net[0].weight.grad.shape
    (16, 4)
"""
from sigma.nn.parameter import Parameter
from sigma.nn.module import HookHandle, LoadResult, Module
from sigma.nn.containers import ModuleDict, ModuleList, Sequential
from sigma.nn.layers import *  # noqa: F401,F403
from sigma.nn.layers import __all__ as _layers_all
from sigma.nn.losses import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, L1Loss, MSELoss, NLLLoss)
from sigma.nn import functional, init
from sigma.nn.describe import Description, LayerRecord, describe

__all__ = ["Parameter", "Module", "HookHandle", "LoadResult", "Sequential", "ModuleList", "ModuleDict",
           "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "HuberLoss", "L1Loss", "MSELoss", "NLLLoss",
           "functional", "init", "describe", "Description", "LayerRecord"] + list(_layers_all)
