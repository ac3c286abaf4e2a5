"""The control panel: pause, resume, step once, stop, checkpoint now; where the run stands and how fast it goes."""
from __future__ import annotations

import time
from typing import Optional

from PyQt6 import QtCore, QtWidgets

from sigma_gui.control import ControlError


def format_seconds(seconds: float) -> str:
    """``3725`` -> ``'1:02:05'``; under an hour ``'2:05'``.

    Example:
        >>> from sigma_gui.panels.control import format_seconds
        >>> format_seconds(3725.4), format_seconds(125)
        ('1:02:05', '2:05')
    """
    seconds = int(round(max(seconds, 0.0)))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class ControlPanel(QtWidgets.QWidget):
    """Buttons that become commands to the current run, and its read-outs."""

    message = QtCore.pyqtSignal(str)  # what happened, for the status bar

    COMMANDS = (("Pause", "pause", {}), ("Resume", "resume", {}), ("Step", "step", {"count": 1}),
                ("Stop", "stop", {}), ("Checkpoint now", "checkpoint", {}))

    def __init__(self, parent=None):
        super().__init__(parent)
        self.connection = None
        layout = QtWidgets.QVBoxLayout(self)
        buttons = QtWidgets.QGridLayout()
        self.buttons = {}
        for index, (label, command, arguments) in enumerate(self.COMMANDS):
            button = QtWidgets.QPushButton(label)
            button.setObjectName(f"command_{command}")
            button.clicked.connect(lambda _checked=False, c=command, a=arguments: self.send(c, **a))
            buttons.addWidget(button, index // 3, index % 3)
            self.buttons[command] = button
        layout.addLayout(buttons)
        form = QtWidgets.QFormLayout()
        self.fields = {}
        for name in ("run", "status", "ended because", "epoch", "iteration", "elapsed", "samples/s", "optimiser",
                     "operator", "connection"):
            label = QtWidgets.QLabel("-")
            label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setWordWrap(name == "ended because")
            form.addRow(name, label)
            self.fields[name] = label
        layout.addLayout(form)
        layout.addStretch(1)

    def send(self, command: str, **arguments) -> bool:
        """Send ``command`` to the current run; False (and a message) if it cannot take it."""
        if self.connection is None:
            self.message.emit("no run is selected")
            return False
        try:
            self.connection.send(command, **arguments)
        except ControlError as error:
            self.message.emit(str(error))
            return False
        self.message.emit(f"{command} sent to {self.connection.name}")
        return True

    def refresh(self, connection: Optional[object]) -> None:
        self.connection = connection
        if connection is None:
            for label in self.fields.values():
                label.setText("-")
            for button in self.buttons.values():
                button.setEnabled(False)
            return
        state = connection.state
        controllable = connection.can_control and state.live
        paused = state.status == "paused"
        enabled = {"pause": controllable and not paused, "resume": controllable and paused,
                   "step": controllable and paused, "stop": controllable, "checkpoint": controllable}
        for command, button in self.buttons.items():
            button.setEnabled(enabled[command])
        batches = state.batches_per_epoch
        throughput = state.latest.get("throughput")
        values = {
            "run": state.name, "status": state.status, "ended because": state.reason or "-",
            "epoch": f"{state.epoch_detail:.2f}" if batches else str(state.epoch),
            "iteration": f"{state.iteration:,}", "elapsed": format_seconds(state.elapsed(time.time())),
            "samples/s": f"{throughput:,.0f}" if throughput is not None else "-",
            "optimiser": state.optimiser, "operator": state.operator,
            "connection": ("in this process" if connection.in_process else
                           "control channel" if connection.can_control else "read-only"),
        }
        for name, text in values.items():
            if self.fields[name].text() != text:
                self.fields[name].setText(text)
