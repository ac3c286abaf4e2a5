"""The main window: charts in the middle, every other panel in a dock; several runs side by side.

A timer on the GUI thread (20 times a second) polls every open run's
connection and refreshes the panels; nothing here runs on the training
thread. The dock layout and window geometry are saved with ``QSettings``
when the window closes and restored when it opens.

Example (the tests and ``sigma_gui.app`` build it the same way)::

    window = MainWindow()
    window.open_run_directory("runs/demo-mlp")
    window.show()
"""
from __future__ import annotations

import os
import pathlib
import time
from typing import Dict, List, Optional

from PyQt6 import QtCore, QtGui, QtWidgets

from sigma_gui.connection import RunConnection, open_run
from sigma_gui.panels.charts import ChartSettings, ChartsPanel, accuracy_chart
from sigma_gui.panels.checkpoints import CheckpointsPanel
from sigma_gui.panels.control import ControlPanel
from sigma_gui.panels.draw import DrawPanel
from sigma_gui.panels.hyperparameters import HyperparameterPanel
from sigma_gui.panels.log import LogPanel
from sigma_gui.panels.predictions import PredictionsPanel
from sigma_gui.panels.structure import HistogramPanel, StructurePanel
from sigma_gui.sources import RunSourceError
from sigma_gui.style import run_colour

REFRESH_HZ = 10
# While a run trains, charts are redrawn at most once a chart interval. Drawing axes and curves is work on the
# GUI thread that competes with the training for the interpreter and the cores (one redraw of the demo's charts
# costs about 0.05 s of CPU on a 2-core machine, most of it painting), so the interval adapts: each redraw cycle
# (from one redraw to the next) measures the GUI thread's CPU share over the cycle, which holds exactly one
# redraw, and scales the interval by share / GUI_CPU_TARGET (at most x3, at least x0.5 per cycle). With a
# redraw costing C seconds and the rest of the GUI a share b, the interval settles at C / (GUI_CPU_TARGET - b)
# within a few cycles; it stays at CHART_INTERVAL where redraws are cheap.
CHART_INTERVAL = 1.0
MAX_CHART_INTERVAL = 15.0
GUI_CPU_TARGET = 0.02
READOUT_INTERVAL = 0.5  # seconds between updates of the other panels while a run trains
# A timer tick this late (seconds) means the GUI was stopped (Ctrl-Z, SIGSTOP, a laptop's sleep) or its timer was.
STOPPED_GAP = 1.0
SETTINGS_ORGANISATION, SETTINGS_APPLICATION = "Sigma", "Sigma GUI"
LAYOUT_VERSION = 1  # bump when docks are added or renamed, so an old saved layout is not misapplied


class MainWindow(QtWidgets.QMainWindow):
    """Sigma's monitor window. ``settings``: where the layout is remembered (default: the user's QSettings)."""

    def __init__(self, settings: Optional[QtCore.QSettings] = None, refresh_hz: float = REFRESH_HZ,
                 chart_interval: float = CHART_INTERVAL):
        super().__init__()
        self.chart_interval = self.minimum_chart_interval = chart_interval
        self.gui_cpu_share = 0.0  # the GUI thread's CPU seconds per second, over the last redraw cycle
        self._charts_drawn_at = -float("inf")
        self._readouts_drawn_at = -float("inf")
        self._cycle_started = (time.monotonic(), time.thread_time())
        self._last_tick = time.monotonic()
        self.setWindowTitle("Sigma")
        self.resize(1280, 860)
        self.settings = settings if settings is not None else QtCore.QSettings(SETTINGS_ORGANISATION,
                                                                               SETTINGS_APPLICATION)
        self.connections: List[RunConnection] = []
        self.error_dialogs: List[QtWidgets.QMessageBox] = []
        self._broken: Dict[str, str] = {}
        self.chart_settings = ChartSettings()
        self.charts = ChartsPanel(self.chart_settings)
        self.setCentralWidget(self.charts)
        self.accuracy = accuracy_chart(self.chart_settings)
        self.control = ControlPanel()
        self.hyperparameters = HyperparameterPanel()
        self.structure = StructurePanel()
        self.histograms = HistogramPanel()
        self.predictions = PredictionsPanel()
        self.draw = DrawPanel()
        self.log = LogPanel()
        self.checkpoints = CheckpointsPanel()
        self.docks: Dict[str, QtWidgets.QDockWidget] = {}
        area = QtCore.Qt.DockWidgetArea
        self._default_areas = (
            ("Control", self.control, area.LeftDockWidgetArea),
            ("Hyperparameters", self.hyperparameters, area.LeftDockWidgetArea),
            ("Accuracy", self.accuracy, area.LeftDockWidgetArea),
            ("Network", self.structure, area.RightDockWidgetArea),
            ("Histograms", self.histograms, area.RightDockWidgetArea),
            ("Draw a digit", self.draw, area.RightDockWidgetArea),
            ("Predictions", self.predictions, area.RightDockWidgetArea),
            ("Checkpoints", self.checkpoints, area.BottomDockWidgetArea),
            ("Log", self.log, area.BottomDockWidgetArea))
        for title, widget, where in self._default_areas:
            self.docks[title] = self._dock(title, widget, where)
        for panel in (self.control, self.hyperparameters, self.checkpoints, self.draw):
            panel.message.connect(self.say)
        self.structure.layer_selected.connect(self._layer_selected)
        self._build_toolbar()
        self._build_menu()
        # Tabify only when there is no saved layout: restoring over tabified docks leaves Qt's old tab bars
        # drawn on top of the new ones.
        if not self.restore_layout():
            self._tabify_defaults()
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(int(1000 / refresh_hz))
        self.timer.timeout.connect(self.tick)
        self.timer.start()

    # -- building ------------------------------------------------------------------------------------------
    def _dock(self, title: str, widget: QtWidgets.QWidget, where) -> QtWidgets.QDockWidget:
        dock = QtWidgets.QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower().replace(' ', '_')}")
        dock.setWidget(widget)
        # A panel brought to the front catches up at once (hidden ones are not refreshed).
        dock.visibilityChanged.connect(lambda visible: self.refresh() if visible and hasattr(self, "timer") else None)
        self.addDockWidget(where, dock)
        return dock

    def _build_toolbar(self) -> None:
        toolbar = self.addToolBar("Runs")
        toolbar.setObjectName("toolbar_runs")
        open_action = toolbar.addAction("Open run…")
        open_action.triggered.connect(self._ask_run_directory)
        toolbar.addSeparator()
        toolbar.addWidget(QtWidgets.QLabel(" current run: "))
        self.run_selector = QtWidgets.QComboBox()
        self.run_selector.setMinimumContentsLength(18)
        self.run_selector.currentIndexChanged.connect(lambda _index: self.refresh())
        toolbar.addWidget(self.run_selector)
        close_action = toolbar.addAction("Close run")
        close_action.triggered.connect(lambda: self.close_run(self.current))

    def _build_menu(self) -> None:
        view = self.menuBar().addMenu("&View")
        for dock in self.docks.values():
            view.addAction(dock.toggleViewAction())
        view.addSeparator()
        reset = view.addAction("Reset layout")
        reset.triggered.connect(self.reset_layout)

    # -- runs -------------------------------------------------------------------------------------------------
    @property
    def current(self) -> Optional[RunConnection]:
        """The run the control, hyperparameter and model panels act on."""
        index = self.run_selector.currentIndex()
        return self.connections[index] if 0 <= index < len(self.connections) else None

    def add_connection(self, connection: RunConnection) -> RunConnection:
        """Show a run (a :class:`~sigma_gui.connection.RunConnection`) beside the ones already open."""
        names = {c.name for c in self.connections}
        if connection.name in names:  # two runs of the same name from different folders
            number = 2
            while f"{connection.name} ({number})" in names:
                number += 1
            connection.state.name = f"{connection.name} ({number})"
        self.connections.append(connection)
        pixmap = QtGui.QPixmap(12, 12)
        pixmap.fill(run_colour(len(self.connections) - 1))
        self.run_selector.addItem(QtGui.QIcon(pixmap), connection.name)
        self.run_selector.setCurrentIndex(len(self.connections) - 1)
        self.refresh()
        return connection

    def open_run_directory(self, path: "str | os.PathLike") -> Optional[RunConnection]:
        """Open a run directory; a broken or foreign folder gives an error dialog (and ``None``), not a crash."""
        try:
            connection = open_run(path)
        except (RunSourceError, OSError) as error:
            self.show_error("Cannot open run", f"{path} cannot be opened as a Sigma run:\n\n{error}")
            return None
        return self.add_connection(connection)

    def close_run(self, connection: Optional[RunConnection]) -> None:
        if connection is None:
            return
        index = self.connections.index(connection)
        connection.close()
        del self.connections[index]
        self.run_selector.removeItem(index)
        self.refresh()

    def _ask_run_directory(self) -> None:
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Open a run directory", str(pathlib.Path("runs")))
        if path:
            self.open_run_directory(path)

    # -- messages ---------------------------------------------------------------------------------------------
    def say(self, text: str) -> None:
        self.statusBar().showMessage(text, 8000)
        self.log.add(text)

    def show_error(self, title: str, text: str) -> QtWidgets.QMessageBox:
        """A non-blocking error dialog (kept in ``error_dialogs``), also written to the log panel."""
        dialog = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Critical, title, text,
                                       QtWidgets.QMessageBox.StandardButton.Ok, self)
        dialog.setModal(False)
        dialog.open()
        self.error_dialogs.append(dialog)
        self.log.add(text.replace("\n\n", " "), "error")
        return dialog

    # -- refreshing -----------------------------------------------------------------------------------------------
    def poll(self) -> int:
        """Fold every run's new records into its state; returns how many records arrived."""
        arrived = 0
        for connection in self.connections:
            if connection.name in self._broken:
                continue
            try:
                arrived += connection.poll()
            except (OSError, ValueError) as error:
                self._broken[connection.name] = str(error)
                self.show_error("Run no longer readable", f"{connection.name}: {error}")
        return arrived

    def refresh(self, force_charts: bool = True) -> None:
        """Poll the runs and bring every panel up to date. The timer calls this with ``force_charts=False``:
        the charts and histograms are then redrawn at most once a ``chart_interval`` while a run trains."""
        self.poll()
        connections = self.connections
        current = self.current
        now = time.monotonic()
        training = any(c.state.live for c in connections)
        if force_charts or not training or now - self._charts_drawn_at >= self.chart_interval:
            if not force_charts:
                self.govern(training, now, time.thread_time())
            self._charts_drawn_at = now
            self.charts.refresh(connections)
            self.accuracy.refresh(connections)
            if _in_view(self.histograms):  # a panel behind another tab waits until it is shown
                self.histograms.refresh(current)
        self.draw.refresh(current)  # every tick: the answer to a drawing should come at once
        if force_charts or not training or now - self._readouts_drawn_at >= READOUT_INTERVAL:
            # Read-outs change at every step; repainting them at every tick would cost more than it shows.
            self._readouts_drawn_at = now
            self.control.refresh(current)
            self.hyperparameters.refresh(current)
            self.structure.refresh(current)
            if _in_view(self.predictions):
                self.predictions.refresh(current)
            self.checkpoints.refresh(current)
            self.log.refresh(connections)
            title = "Sigma" if current is None else f"Sigma — {current.name} ({current.state.status})"
            if self.windowTitle() != title:
                self.setWindowTitle(title)

    def tick(self, now: Optional[float] = None) -> None:
        """The timer's refresh. A tick long overdue means the GUI was stopped, or its timer was: the redraw
        clocks skip that time, as if it had not passed. Counted, it would make the governor take the stop
        for cheap drawing and redraw more often, and every chart would be redrawn at once on waking."""
        now = time.monotonic() if now is None else now
        gap = now - self._last_tick
        self._last_tick = now
        if gap > STOPPED_GAP:
            skipped = gap - self.timer.interval() / 1000
            wall, cpu = self._cycle_started
            self._cycle_started = (wall + skipped, cpu)
            self._charts_drawn_at += skipped
            self._readouts_drawn_at += skipped
        self.refresh(force_charts=False)

    def govern(self, training: bool, now: float, cpu: float) -> None:
        """End a redraw cycle at wall time ``now`` and GUI-thread CPU time ``cpu``, and set the next
        ``chart_interval`` so that the GUI thread uses about GUI_CPU_TARGET of a core while a run trains."""
        started_wall, started_cpu = self._cycle_started
        self._cycle_started = (now, cpu)
        elapsed = now - started_wall
        if elapsed <= 0:
            return
        self.gui_cpu_share = (cpu - started_cpu) / elapsed
        if not training:
            self.chart_interval = self.minimum_chart_interval
            return
        factor = min(3.0, max(0.5, self.gui_cpu_share / GUI_CPU_TARGET))
        self.chart_interval = min(MAX_CHART_INTERVAL, max(self.minimum_chart_interval, self.chart_interval * factor))

    def _layer_selected(self, layer: str) -> None:
        self.docks["Histograms"].raise_()
        self.histograms.refresh(self.current)  # it may have been behind its tab, and not refreshed
        self.histograms.select_layer(layer)

    # -- layout ---------------------------------------------------------------------------------------------------
    def restore_layout(self) -> bool:
        geometry = self.settings.value("geometry")
        state = self.settings.value("window_state")
        restored = False
        if isinstance(geometry, QtCore.QByteArray):
            restored = self.restoreGeometry(geometry)
        if isinstance(state, QtCore.QByteArray):
            restored = self.restoreState(state, LAYOUT_VERSION) and restored
        return restored

    def save_layout(self) -> None:
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("window_state", self.saveState(LAYOUT_VERSION))
        self.settings.sync()

    def _tabify_defaults(self) -> None:
        self.tabifyDockWidget(self.docks["Network"], self.docks["Histograms"])
        self.tabifyDockWidget(self.docks["Draw a digit"], self.docks["Predictions"])
        self.tabifyDockWidget(self.docks["Log"], self.docks["Checkpoints"])
        for title in ("Network", "Draw a digit", "Log"):
            self.docks[title].raise_()

    def reset_layout(self) -> None:
        """Every panel back in its first place, shown and docked."""
        for title, _widget, where in self._default_areas:
            dock = self.docks[title]
            dock.setFloating(False)
            self.addDockWidget(where, dock)
            dock.show()
        self._tabify_defaults()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.timer.stop()
        self.save_layout()
        for connection in self.connections:
            connection.close()
        super().closeEvent(event)


def _in_view(widget: QtWidgets.QWidget) -> bool:
    """Whether any of ``widget`` can be seen (a dock behind another's tab counts as visible to Qt, yet is not)."""
    return widget.isVisible() and not widget.visibleRegion().isEmpty()
