"""Training: the ``Trainer``, its hooks, time steps and criteria, and operators.

Example:
    >>> from sigma.training import every, on, best, patience
    >>> trigger = every(1, "epoch") & best("validation/accuracy", "max")
    >>> stop_when = patience(5, "validation/loss") | on("error")
    >>> trigger
    (every(1, 'epoch') & best('validation/accuracy', 'max'))
"""
from sigma.training.condition import Always, Condition, Never
from sigma.training.criteria import best, nonfinite, patience, threshold
from sigma.training.observation import Averager, Observation
from sigma.training.operators import MPI, Inline, ModelAveraging, MultiGPU, MultiWorker, Operator, Worker
from sigma.training.position import Moment, Position
from sigma.training.timesteps import at, every, on
from sigma.training import hooks
from sigma.training.hooks import NonFiniteError
from sigma.training.trainer import Command, RunResult, Trainer

__all__ = ["Trainer", "RunResult", "Command", "Condition", "Always", "Never", "every", "at", "on", "threshold",
           "best", "patience", "nonfinite", "Observation", "Averager", "Operator", "Inline", "MultiWorker", "MultiGPU", "MPI", "ModelAveraging", "Worker", "Moment",
           "Position", "hooks", "NonFiniteError"]
