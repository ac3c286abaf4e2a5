"""Saving and reading runs: HDF5 checkpoints, run directories, event logs.

Example:
    >>> import pathlib, tempfile, numpy as np
    >>> import sigma.io
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "weights.h5"
    >>> _ = sigma.io.save_checkpoint(path, {"network": {"parameters": {"w": np.zeros(3, np.float32)}}})
    >>> list(sigma.io.load_weights(path))
    ['w']
"""
from sigma.io.checkpoint import (FORMAT_VERSION, CheckpointError, load as load_checkpoint, load_weights,
                                 save as save_checkpoint, summary as checkpoint_summary)
from sigma.io.event_log import EventLog, read_events
from sigma.io.run_directory import RunDirectory, RunDirectoryError, list_runs

__all__ = ["FORMAT_VERSION", "CheckpointError", "load_checkpoint", "save_checkpoint", "load_weights",
           "checkpoint_summary", "EventLog", "read_events", "RunDirectory", "RunDirectoryError", "list_runs"]
