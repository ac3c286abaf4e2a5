"""Built-in trainer hooks, one module per family.

=====================  =====================================================  ==========
hook                   what it does                                           priority
=====================  =====================================================  ==========
``Timer``              ``throughput`` (samples/s), ``time/step``              writer+100
``LearningRate``       ``lr``                                                 writer
``Evaluator``          ``<name>/loss``, ``<name>/accuracy``, top-k            writer
``GradientNorm``       ``train/gradient_norm`` (and per parameter)            writer
``WeightStatistics``   ``weights/<parameter>/<mean|std|norm|min|max>``        writer
``NonFiniteGuard``     stops at NaN/Inf, naming step and key                  editor+50
``EarlyStopping``      stops when a value stops improving; restores the best  editor
``LRSchedule``         steps a learning-rate schedule                         editor
``Checkpoint``         saves checkpoints: top-k by a key, ``last.h5``         reader
``Lambda``             calls your function                                    reader
=====================  =====================================================  ==========

Progress bar and loggers live in :mod:`sigma.monitors`.

Example:
    >>> from sigma.training import hooks
    >>> hooks.PRIORITY_WRITER > hooks.PRIORITY_EDITOR > hooks.PRIORITY_READER
    True
"""
from sigma.training.hooks.base import PRIORITY_EDITOR, PRIORITY_READER, PRIORITY_WRITER, Hook
from sigma.training.hooks.checkpointing import Checkpoint
from sigma.training.hooks.custom import Lambda
from sigma.training.hooks.evaluation import Evaluator
from sigma.training.hooks.guards import NonFiniteError, NonFiniteGuard
from sigma.training.hooks.schedule import LearningRate, LRSchedule
from sigma.training.hooks.statistics import GradientNorm, WeightStatistics
from sigma.training.hooks.stopping import EarlyStopping
from sigma.training.hooks.timing import Timer

__all__ = ["Hook", "PRIORITY_WRITER", "PRIORITY_EDITOR", "PRIORITY_READER", "Checkpoint", "Lambda", "Evaluator",
           "NonFiniteError", "NonFiniteGuard", "LearningRate", "LRSchedule", "GradientNorm", "WeightStatistics",
           "EarlyStopping", "Timer"]
