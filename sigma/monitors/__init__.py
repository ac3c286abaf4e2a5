"""Monitors: hooks that read observations and show or store them (progress bar, CSV/JSONL logs, run log).

Example:
    >>> from sigma.monitors import CSVLogger, JSONLLogger, ProgressBar, RunLog
    >>> ProgressBar().priority < 200
    True
"""
from sigma.monitors.csv_logger import CSVLogger
from sigma.monitors.jsonl_logger import JSONLLogger
from sigma.monitors.progress_bar import ProgressBar
from sigma.monitors.run_log import RunLog

__all__ = ["CSVLogger", "JSONLLogger", "ProgressBar", "RunLog"]
