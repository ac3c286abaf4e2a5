"""Draw a digit: a canvas whose drawing the current model classifies live.

The model is asked in this process, or, for a run another process trains
with a control channel, through a ``classify`` command whose answer comes
back in the run's event log (there only when a stroke ends, not while the
pen moves: each request is a line in that log).
"""
from __future__ import annotations

import itertools
import os
from typing import Optional, Sequence, Tuple

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtGui, QtWidgets

from sigma_gui.control import ControlError
from sigma_gui.drawing import to_digit_image
from sigma_gui.model_access import NotImages

CANVAS_SIZE = 280
PEN_WIDTH = 22


class Canvas(QtWidgets.QWidget):
    """A black square to draw on in white with the mouse; ``stroke_finished`` fires when the button is released."""

    stroke_finished = QtCore.pyqtSignal()
    stroke_moved = QtCore.pyqtSignal()

    def __init__(self, size: int = CANVAS_SIZE, parent=None):
        super().__init__(parent)
        self.setFixedSize(size, size)
        self.image = QtGui.QImage(size, size, QtGui.QImage.Format.Format_Grayscale8)
        self.image.fill(0)
        self._last: Optional[QtCore.QPointF] = None
        self.setCursor(QtCore.Qt.CursorShape.CrossCursor)

    def clear(self) -> None:
        self.image.fill(0)
        self.update()

    def draw_line(self, start: QtCore.QPointF, end: QtCore.QPointF) -> None:
        painter = QtGui.QPainter(self.image)
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        painter.setPen(QtGui.QPen(QtGui.QColor("white"), PEN_WIDTH, QtCore.Qt.PenStyle.SolidLine,
                                  QtCore.Qt.PenCapStyle.RoundCap, QtCore.Qt.PenJoinStyle.RoundJoin))
        painter.drawLine(start, end)
        painter.end()
        self.update()

    def draw_stroke(self, points: Sequence[Tuple[float, float]]) -> None:
        """Draw a polyline through ``points`` (canvas pixels), as a mouse stroke would."""
        points = [QtCore.QPointF(x, y) for x, y in points]
        for start, end in itertools.zip_longest(points, points[1:], fillvalue=None):
            self.draw_line(start, end if end is not None else start)
        self.stroke_finished.emit()

    def array(self) -> np.ndarray:
        """The drawing as floats, 0 (black) .. 1 (white)."""
        image = self.image
        row_bytes = image.bytesPerLine()
        data = np.frombuffer(image.constBits().asstring(row_bytes * image.height()), dtype=np.uint8)
        return data.reshape(image.height(), row_bytes)[:, :image.width()].astype(np.float64) / 255.0

    def paintEvent(self, event) -> None:
        painter = QtGui.QPainter(self)
        painter.drawImage(0, 0, self.image)
        painter.end()

    def mousePressEvent(self, event) -> None:
        self._last = event.position()
        self.draw_line(self._last, self._last)

    def mouseMoveEvent(self, event) -> None:
        if self._last is not None:
            position = event.position()
            self.draw_line(self._last, position)
            self._last = position
            self.stroke_moved.emit()

    def mouseReleaseEvent(self, event) -> None:
        self._last = None
        self.stroke_finished.emit()


class DrawPanel(QtWidgets.QWidget):
    """The canvas, the model's answer and its class probabilities."""

    message = QtCore.pyqtSignal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.connection = None
        self._requests = itertools.count(1)
        # Answers from a run's event log may be meant for another window: ids name this panel too.
        self._request_prefix = f"{os.getpid()}-{id(self):x}-"
        self._request: Optional[str] = None
        self._shown_request = None
        self.probabilities: Optional[np.ndarray] = None
        layout = QtWidgets.QVBoxLayout(self)
        top = QtWidgets.QHBoxLayout()
        self.canvas = Canvas()
        top.addWidget(self.canvas)
        side = QtWidgets.QVBoxLayout()
        self.answer = QtWidgets.QLabel("?")
        font = self.answer.font()
        font.setPointSize(48)
        font.setBold(True)
        self.answer.setFont(font)
        self.answer.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.confidence = QtWidgets.QLabel("draw a digit")
        self.confidence.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        clear = QtWidgets.QPushButton("Clear")
        clear.clicked.connect(self.clear)
        side.addWidget(self.answer)
        side.addWidget(self.confidence)
        side.addStretch(1)
        side.addWidget(clear)
        top.addLayout(side)
        layout.addLayout(top)
        self.plot = pg.PlotWidget()
        self.plot.setMaximumHeight(130)
        self.plot.setYRange(0, 1)
        self.plot.setMouseEnabled(False, False)
        self.bars: Optional[pg.BarGraphItem] = None
        layout.addWidget(self.plot)
        self.canvas.stroke_finished.connect(self.classify)
        self._move_timer = QtCore.QElapsedTimer()
        self._move_timer.start()
        self.canvas.stroke_moved.connect(self._moved)

    @property
    def predicted(self) -> Optional[int]:
        """The class the model gave the current drawing, once it answered."""
        return None if self.probabilities is None else int(np.argmax(self.probabilities))

    def clear(self) -> None:
        self.canvas.clear()
        self.probabilities = None
        self.answer.setText("?")
        self.confidence.setText("draw a digit")
        if self.bars is not None:
            self.plot.removeItem(self.bars)
            self.bars = None

    def _moved(self) -> None:
        if self.connection is None or not self.connection.in_process:
            return  # another process's run is asked once per stroke
        if self._move_timer.elapsed() > 150:  # live while drawing, a few times a second
            self._move_timer.restart()
            self.classify()

    def classify(self) -> None:
        """Ask the current run's model about the drawing (answered now, or at the trainer's next step)."""
        if self.connection is None:
            self.message.emit("open a run first")
            return
        if not self.connection.can_classify:
            self.confidence.setText("needs the model: a live run")
            return
        self._request = f"{self._request_prefix}{next(self._requests)}"
        try:
            probabilities = self.connection.classify(to_digit_image(self.canvas.array()), request=self._request)
        except (NotImages, ValueError, ControlError) as error:
            self.confidence.setText("cannot classify")
            self.message.emit(f"drawing not classified: {error}")
            return
        if probabilities is not None:
            self._shown_request = self._request
            self.show_probabilities(np.asarray(probabilities))

    def show_probabilities(self, probabilities: np.ndarray) -> None:
        self.probabilities = probabilities
        best = int(np.argmax(probabilities))
        self.answer.setText(str(best))
        self.confidence.setText(f"{100 * probabilities[best]:.1f}% sure")
        if self.bars is not None:
            self.plot.removeItem(self.bars)
        self.bars = pg.BarGraphItem(x=np.arange(len(probabilities)), height=probabilities, width=0.7,
                                    brush="#0072B2")
        self.plot.addItem(self.bars)

    def refresh(self, connection: Optional[object]) -> None:
        self.connection = connection
        self.setEnabled(connection is not None and connection.can_classify)
        answer = connection.state.classification if connection is not None else None
        if answer is not None and answer.get("request") == self._request and self._shown_request != self._request:
            self._shown_request = self._request
            self.show_probabilities(np.asarray(answer["probabilities"]))
