"""A model split into stages: consecutive layers with their own parameters.

Marketplace gives every stage its own vendors, so a stage must own at least
one parameter, no parameter may belong to two stages, and no layer may mix
samples of a batch (batch statistics would mix the vendors' products, which
share one pass). A stage made only of layers the wide pass knows (see
:mod:`sigma_marketplace.layers`) runs all its vendors in one pass; any other
stage (a custom block, a recurrent layer) runs once per vendor on the whole
chunk of products, which is still no loop over paths.
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence

from sigma import nn
from sigma.tensor import Tensor

from sigma_marketplace.layers import MIXING_LAYERS, wide_layer_for

__all__ = ["Stage", "Stages"]


def _leaves(module: nn.Module) -> List[nn.Module]:
    if isinstance(module, nn.Sequential):
        return [leaf for child in module for leaf in _leaves(child)]
    return [module]


def _check_no_mixing(stage_index: int, module: nn.Module) -> None:
    for name, sub in module.named_modules():
        where = f"stage {stage_index}" + (f" ({name})" if name else "")
        if isinstance(sub, MIXING_LAYERS):
            raise ValueError(f"{where} holds {type(sub).__name__}, whose batch statistics would mix the products of "
                             "different vendors in one pass; use InstanceNorm2d (as the Marketplace reference does) "
                             "or LayerNorm")
        if isinstance(sub, nn.Dropout) and sub.p > 0:
            raise ValueError(f"{where} holds Dropout(p={sub.p}): random masks would make the paths' losses on the "
                             "same batch incomparable; remove it or set p=0")
        if isinstance(sub, nn.InstanceNorm2d) and sub.track_running_stats:
            raise ValueError(f"{where} holds InstanceNorm2d(track_running_stats=True): forward-only probes would "
                             "have to update its running statistics; use track_running_stats=False")


class Stage:
    """One stage: its module, its parameters in order, and whether it runs vectorised over vendors."""

    def __init__(self, index: int, module: nn.Module):
        if not isinstance(module, nn.Module):
            raise TypeError(f"stage {index} must be a sigma.nn.Module, got {type(module).__name__}")
        _check_no_mixing(index, module)
        self.index = index
        self.module = module
        self.parameters: List[Tensor] = list(module.parameters())
        if not self.parameters:
            raise ValueError(f"stage {index} ({type(module).__name__}) has no parameters, so it cannot have vendors; "
                             "merge it into a neighbouring stage")
        self.position: Dict[int, int] = {id(p): i for i, p in enumerate(self.parameters)}
        self.layers = _leaves(module)
        self.vectorised = all(wide_layer_for(layer) is not None for layer in self.layers)

    def __repr__(self) -> str:
        kind = "vectorised" if self.vectorised else "one pass per vendor"
        return f"Stage({self.index}, {len(self.parameters)} parameter(s), {kind})"


class Stages:
    """A network cut into stages for Marketplace.

    Give the stages as modules (``Stages([block_a, block_b])``) or cut a
    ``Sequential`` with :meth:`split`. The stages share their modules (and
    so their parameters) with the network they came from.

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> stages = Stages.split(net, [2])
        >>> len(stages), [len(s.parameters) for s in stages]
        (2, [2, 2])
        >>> x = sigma.randn(5, 4)
        >>> bool((stages.forward(x) == net(x)).all().item())
        True
    """

    def __init__(self, modules: Sequence[nn.Module]):
        if isinstance(modules, nn.Module):
            raise TypeError("Stages needs a list of stage modules; to cut one Sequential use "
                            "Stages.split(network, ends)")
        modules = list(modules)
        if not modules:
            raise ValueError("Stages needs at least one stage")
        self.stages: List[Stage] = [Stage(i, module) for i, module in enumerate(modules)]
        owner: Dict[int, int] = {}
        for stage in self.stages:
            for param in stage.parameters:
                if id(param) in owner:
                    raise ValueError(f"a parameter of shape {param.shape} belongs to stages {owner[id(param)]} and "
                                     f"{stage.index}; each stage needs parameters of its own")
                owner[id(param)] = stage.index
        backends = {param.backend.name for stage in self.stages for param in stage.parameters}
        if len(backends) != 1:
            raise ValueError(f"the stages' parameters live on several backends {sorted(backends)}; move the network "
                             "to one device first")
        for stage in self.stages:
            for param in stage.parameters:
                if param.data.dtype.kind != "f":
                    raise TypeError(f"stage {stage.index} has a {param.dtype} parameter; Marketplace perturbs "
                                    "float parameters only")

    @classmethod
    def split(cls, network: nn.Module, ends: Sequence[int]) -> "Stages":
        """Cut a ``Sequential`` before each index in ``ends``: ``ends=[6, 13]`` gives layers 0-5, 6-12, 13-.

        Example:
            >>> from sigma import nn
            >>> net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 2))
            >>> [len(stage.layers) for stage in Stages.split(net, [1])]
            [1, 2]
        """
        if not isinstance(network, nn.Sequential):
            raise TypeError(f"Stages.split cuts a Sequential; got {type(network).__name__}. Give the stages as a "
                            "list of modules instead: Stages([stage_0, stage_1, ...])")
        ends = list(ends)
        bounds = [0] + ends + [len(network)]
        if any(isinstance(e, bool) or not isinstance(e, int) for e in ends) or \
                any(a >= b for a, b in zip(bounds, bounds[1:])):
            raise ValueError(f"Stages.split: ends must be increasing integers strictly between 0 and "
                             f"{len(network)} (the network's length), got {ends}")
        return cls([network[a:b] for a, b in zip(bounds, bounds[1:])])

    def __len__(self) -> int:
        return len(self.stages)

    def __getitem__(self, index: int) -> Stage:
        return self.stages[index]

    def __iter__(self):
        return iter(self.stages)

    @property
    def backend(self):
        return self.stages[0].parameters[0].backend

    def parameters(self) -> List[Tensor]:
        """All parameters, stage by stage."""
        return [param for stage in self.stages for param in stage.parameters]

    def param_groups(self, **hyperparameters: Any) -> List[Dict[str, Any]]:
        """One optimiser parameter group per stage (the same ``hyperparameters`` in each)."""
        return [{"params": list(stage.parameters), **hyperparameters} for stage in self.stages]

    def forward(self, x: Tensor) -> Tensor:
        """The plain network: every stage with its parameters as they are."""
        for stage in self.stages:
            x = stage.module(x)
        return x

    __call__ = forward

    def train(self, mode: bool = True) -> "Stages":
        for stage in self.stages:
            stage.module.train(mode)
        return self

    def eval(self) -> "Stages":
        return self.train(False)

    def __repr__(self) -> str:
        return "Stages(\n" + "".join(f"  {stage!r}\n" for stage in self.stages) + ")"
