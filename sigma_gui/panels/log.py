"""The log panel: the runs' messages (hook warnings, commands, checkpoints, starts and stops), newest last."""
from __future__ import annotations

import time
from typing import Dict, Sequence

from PyQt6 import QtGui, QtWidgets

MAX_BLOCKS = 5000  # lines kept in the widget; older ones scroll away


class LogPanel(QtWidgets.QPlainTextEdit):
    """Appends the new log lines of every run at each refresh."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setReadOnly(True)
        self.setMaximumBlockCount(MAX_BLOCKS)
        self.setFont(QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont))
        self._shown: Dict[str, int] = {}

    def refresh(self, connections: Sequence) -> None:
        for connection in connections:
            lines = connection.state.log
            start = self._shown.get(connection.name, 0)
            if start >= len(lines):
                continue
            prefix = f"{connection.name}: " if len(connections) > 1 else ""
            text = "\n".join(f"{time.strftime('%H:%M:%S', time.localtime(line.time))} {line.level:<7} "
                             f"{prefix}{line.text}" for line in lines[start:])
            self.appendPlainText(text)
            self._shown[connection.name] = len(lines)

    def add(self, text: str, level: str = "info") -> None:
        """A line from the GUI itself (an error opening a run, a refused command)."""
        self.appendPlainText(f"{time.strftime('%H:%M:%S')} {level:<7} {text}")
