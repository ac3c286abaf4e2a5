"""Metric charts: raw and smoothed lines per run, x by iteration / epoch / time, log y, outlier clipping.

A :class:`MetricChart` draws one or more metric keys for every open run
(each run in its own colour). It hands pyqtgraph views of the series'
arrays with clip-to-view and peak downsampling on, so a million points per
line draw only the few thousand that can be seen, and recomputes the
smoothed line only for points added since the last frame.
:class:`ChartsPanel` holds a chart per key (made as keys appear) under
shared settings; :func:`accuracy_chart` is one chart of every accuracy key.
"""
from __future__ import annotations

import fnmatch
import pathlib
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtWidgets

from sigma_gui.series import X_AXES, Smoother, clipped_range
from sigma_gui.style import run_colour

pg.setConfigOptions(antialias=False, background="w", foreground="k")

SPARE_CHARTS = 6  # charts a panel builds ahead: a run's usual keys (losses, accuracies, learning rate)


class ChartSettings(QtCore.QObject):
    """Settings shared by the charts of a panel; ``changed`` fires on every edit."""

    changed = QtCore.pyqtSignal()

    def __init__(self):
        super().__init__()
        self.smoothing = 0.6
        self.x_axis = "iteration"
        self.log_y = False
        self.clip_outliers = True
        self.show_raw = True

    def update(self, **values) -> None:
        for name, value in values.items():
            if not hasattr(self, name):
                raise AttributeError(f"no chart setting {name!r}")
            setattr(self, name, value)
        self.changed.emit()


class _Line:
    """The raw and smoothed curves of one (run, key) pair."""

    def __init__(self, plot: pg.PlotItem, colour, label: str):
        self.colour = colour
        # One-pixel pens: Qt strokes a wider line several times slower (8000 points: 4 ms more per paint), and
        # the colour alone tells the smoothed line from the paler raw one.
        self.raw = plot.plot([], [], pen=pg.mkPen(colour.lighter(190), width=1))
        self.smoothed = plot.plot([], [], pen=pg.mkPen(colour, width=1))
        for curve in (self.raw, self.smoothed):
            curve.setClipToView(True)
            curve.setDownsampling(auto=True, method="peak")
        self.smoother = Smoother(0.0)
        self.drawn = (-1, None)  # (points drawn, settings stamp)

    def remove(self, plot: pg.PlotItem, legend=None) -> None:
        if legend is not None:
            legend.removeItem(self.smoothed)
        plot.removeItem(self.raw)
        plot.removeItem(self.smoothed)


class MetricChart(QtWidgets.QWidget):
    """A chart of the metric keys matching ``keys`` (names or shell patterns) for every run."""

    def __init__(self, title: str, keys: Sequence[str], settings: ChartSettings, parent=None):
        super().__init__(parent)
        self.title = title
        self.patterns = list(keys)
        self.settings = settings
        self.lines: Dict[Tuple[str, str], _Line] = {}
        self._connections: List = []
        self._stamp = 0
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        header = QtWidgets.QHBoxLayout()
        self.title_label = QtWidgets.QLabel(f"<b>{title}</b>")
        self.readout = QtWidgets.QLabel("")
        self.readout.setObjectName("readout")
        header.addWidget(self.title_label)
        header.addStretch(1)
        header.addWidget(self.readout)
        for text, slot in (("PNG", self._ask_png), ("CSV", self._ask_csv)):
            button = QtWidgets.QToolButton()
            button.setText(text)
            button.setToolTip(f"export this chart as {text}")
            button.clicked.connect(slot)
            header.addWidget(button)
        layout.addLayout(header)
        self.plot_widget = pg.PlotWidget()
        self.plot_widget.setMinimumHeight(160)
        self.plot = self.plot_widget.getPlotItem()
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        for side in ("left", "bottom"):
            # Grid lines at the labelled ticks only: the minor ticks' lines doubled the cost of a paint.
            self.plot.getAxis(side).setStyle(maxTickLevel=0)
        self.legend = None
        layout.addWidget(self.plot_widget)
        self.plot_widget.scene().sigMouseMoved.connect(self._hover)
        # A user who zooms or pans keeps that view; pyqtgraph's "A" button (auto range) hands it back.
        self.user_view = False
        self.plot.vb.sigRangeChangedManually.connect(self._viewed_by_hand)
        settings.changed.connect(self._settings_changed)
        self._settings_changed()

    def show_keys(self, title: str, keys: Sequence[str]) -> None:
        """Give a chart built ahead (with no keys) its title and keys."""
        self.title = title
        self.patterns = list(keys)
        self.title_label.setText(f"<b>{title}</b>")

    @property
    def _several_keys(self) -> bool:
        return len(self.patterns) > 1 or any(c in "".join(self.patterns) for c in "*?[")

    # -- data ---------------------------------------------------------------------------------------
    def matches(self, key: str) -> bool:
        return any(fnmatch.fnmatchcase(key, pattern) for pattern in self.patterns)

    def refresh(self, connections: Sequence) -> None:
        """Draw what is new in the runs' series (cheap when nothing changed)."""
        self._connections = list(connections)
        wanted = set()
        drawn = False
        for index, connection in enumerate(connections):
            keys = [k for k in connection.state.metric_keys() if self.matches(k)]
            for key in keys:
                wanted.add((connection.name, key))
                line = self.lines.get((connection.name, key))
                if line is None:
                    label = key if len(connections) == 1 else f"{connection.name}: {key}"
                    # One key: a colour per run; several keys: a colour per line, kept as lines come and go.
                    colour = run_colour(index if not self._several_keys else len(self.lines))
                    line = self.lines[(connection.name, key)] = _Line(self.plot, colour, label)
                    if self.legend is None and (len(connections) > 1 or self._several_keys):
                        # Accuracies climb: their legend goes where the curves are not, at the bottom.
                        corner = (-5, -5) if "accuracy" in "".join(self.patterns) else (-5, 5)
                        self.legend = self.plot.addLegend(offset=corner)
                        self.legend.addItem(line.smoothed, label)
                    elif self.legend is not None:
                        self.legend.addItem(line.smoothed, label)
                drawn = self._draw(line, connection.state.series[key]) or drawn
        for gone in set(self.lines) - wanted:
            self.lines.pop(gone).remove(self.plot, self.legend)
        if drawn and self.isVisible():
            # Let the view settle its new range and axes now: left to the paint itself, that work dirties
            # the view again and Qt paints every chart twice per redraw.
            self.plot_widget.scene().prepareForPaint()

    def _draw(self, line: _Line, series) -> bool:
        """Hand ``line`` the series if it changed since it was last drawn; whether it did."""
        settings = self.settings
        if line.drawn == (len(series), self._stamp):
            return False
        x = series.x(settings.x_axis)
        y = series.values
        if settings.smoothing != line.smoother.weight:
            line.smoother.weight = settings.smoothing
        smoothed = line.smoother.update(y)
        if settings.log_y:  # pyqtgraph's log mode would take the log of the whole array every frame anyway
            with np.errstate(divide="ignore", invalid="ignore"):
                y = np.where(y > 0, y, np.nan)
                smoothed = np.where(smoothed > 0, smoothed, np.nan)
        line.raw.setData(x, y, connect="finite")
        line.raw.setVisible(settings.show_raw and settings.smoothing > 0)
        # A handful of points (evaluations once an epoch) would be invisible or a bare segment without markers.
        symbol = {"symbol": "o", "symbolSize": 5, "symbolBrush": line.colour, "symbolPen": None} \
            if len(series) <= 50 else {"symbol": None}
        line.smoothed.setData(x, smoothed, connect="finite", **symbol)
        line.drawn = (len(series), self._stamp)
        self._fit_y()
        return True

    def _viewed_by_hand(self, *_mask) -> None:
        self.user_view = True

    def _fit_y(self) -> None:
        if self.user_view:
            if not any(self.plot.vb.state["autoRange"]):
                return
            self.user_view = False
        if not self.settings.clip_outliers:
            self.plot.enableAutoRange(axis="y")
            return
        values = [line.smoothed.yData for line in self.lines.values() if line.smoothed.yData is not None]
        values += [line.raw.yData for line in self.lines.values()
                   if line.raw.isVisible() and line.raw.yData is not None]
        values = [v for v in values if len(v)]
        if not values:
            return
        # Quantiles of a large series cost; a strided sample gives the same range to the eye.
        sample = np.concatenate([v[:: max(1, len(v) // 20000)] for v in values])
        # With few points (evaluations once an epoch) none is an outlier; the range still pads a lone value.
        quantile = 0.01 if len(sample) >= 50 else 0.0
        if self.settings.log_y:
            sample = sample[sample > 0]
            if not len(sample):
                return
            sample = np.log10(sample)
        low, high = clipped_range(sample, quantile)
        # Both ranges in one call: the view changes (and the chart repaints) once per refresh, not twice.
        starts = [line.smoothed.xData[0] for line in self.lines.values() if line.smoothed.xData is not None
                  and len(line.smoothed.xData)]
        ends = [line.smoothed.xData[-1] for line in self.lines.values() if line.smoothed.xData is not None
                and len(line.smoothed.xData)]
        first, last = float(min(starts)), float(max(ends))
        margin = 0.02 * (last - first) if last > first else 0.5
        self.plot.setRange(xRange=(first - margin, last + margin), yRange=(low, high), padding=0)

    def _settings_changed(self) -> None:
        self._stamp += 1
        self.plot.setLogMode(y=self.settings.log_y)
        self.plot.setLabel("bottom", {"iteration": "iteration", "epoch": "epoch", "time": "seconds"}
                           [self.settings.x_axis])
        if self._connections:
            self.refresh(self._connections)

    # -- read-out and export ----------------------------------------------------------------------------
    def _hover(self, position) -> None:
        if not self.plot.sceneBoundingRect().contains(position):
            return
        x = self.plot.vb.mapSceneToView(position).x()
        self.readout.setText(self.readout_at(x))

    def readout_at(self, x: float) -> str:
        """The values nearest to ``x`` of every line, as shown when the mouse is over the chart."""
        parts = []
        for (run, key), line in self.lines.items():
            xs, ys = line.smoothed.xData, line.smoothed.yData
            if xs is None or not len(xs):
                continue
            index = int(np.clip(np.searchsorted(xs, x), 0, len(xs) - 1))
            raw = line.raw.yData[index] if line.raw.yData is not None else ys[index]
            label = key if len(self._connections) <= 1 else f"{run}:{key}"
            parts.append(f"{label} @ {xs[index]:g}: {raw:.4g} (smoothed {ys[index]:.4g})")
        return "   ".join(parts)

    def export_png(self, path: "str | pathlib.Path") -> pathlib.Path:
        path = pathlib.Path(path)
        if not self.plot_widget.grab().save(str(path), "PNG"):
            raise OSError(f"could not write {path}")
        return path

    def export_csv(self, path: "str | pathlib.Path") -> pathlib.Path:
        """The raw points of every line: ``run,key,iteration,epoch,time,value`` rows."""
        path = pathlib.Path(path)
        rows = ["run,key,iteration,epoch,time,value"]
        for connection in self._connections:
            for key in connection.state.metric_keys():
                if not self.matches(key):
                    continue
                series = connection.state.series[key]
                for i, e, t, v in zip(series.iterations, series.epochs, series.times, series.values):
                    rows.append(f"{connection.name},{key},{int(i)},{float(e)!r},{float(t)!r},{float(v)!r}")
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
        return path

    def _ask_png(self) -> None:
        self._ask_path("PNG image (*.png)", ".png", self.export_png)

    def _ask_csv(self) -> None:
        self._ask_path("CSV table (*.csv)", ".csv", self.export_csv)

    def _ask_path(self, pattern: str, suffix: str, write: Callable) -> None:
        name = self.title.replace("/", "_") + suffix
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, f"Export {self.title}", name, pattern)
        if path:
            try:
                write(path)
            except OSError as error:
                QtWidgets.QMessageBox.warning(self, "Export failed", str(error))


class ChartSettingsBar(QtWidgets.QWidget):
    """Smoothing slider, x axis, log y, outlier clipping and raw-line switch for a ChartSettings."""

    def __init__(self, settings: ChartSettings, parent=None):
        super().__init__(parent)
        self.settings = settings
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(QtWidgets.QLabel("smoothing"))
        self.smoothing = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.smoothing.setRange(0, 99)
        self.smoothing.setValue(round(settings.smoothing * 100))
        self.smoothing.setMinimumWidth(120)
        self.smoothing.setMaximumWidth(200)
        self.smoothing_value = QtWidgets.QLabel(f"{settings.smoothing:.2f}")
        self.smoothing.valueChanged.connect(self._smoothing)
        layout.addWidget(self.smoothing)
        layout.addWidget(self.smoothing_value)
        layout.addWidget(QtWidgets.QLabel("x by"))
        self.x_axis = QtWidgets.QComboBox()
        self.x_axis.addItems(X_AXES)
        self.x_axis.currentTextChanged.connect(lambda text: settings.update(x_axis=text))
        layout.addWidget(self.x_axis)
        self.log_y = QtWidgets.QCheckBox("log y")
        self.log_y.toggled.connect(lambda on: settings.update(log_y=on))
        self.clip = QtWidgets.QCheckBox("clip outliers")
        self.clip.setChecked(settings.clip_outliers)
        self.clip.toggled.connect(lambda on: settings.update(clip_outliers=on))
        self.raw = QtWidgets.QCheckBox("raw")
        self.raw.setChecked(settings.show_raw)
        self.raw.toggled.connect(lambda on: settings.update(show_raw=on))
        for box in (self.log_y, self.clip, self.raw):
            layout.addWidget(box)
        self.filter = QtWidgets.QLineEdit()
        self.filter.setPlaceholderText("filter keys, e.g. *loss*")
        self.filter.setClearButtonEnabled(True)
        layout.addWidget(self.filter, 1)

    def _smoothing(self, value: int) -> None:
        self.smoothing_value.setText(f"{value / 100:.2f}")
        self.settings.update(smoothing=value / 100)


class ChartsPanel(QtWidgets.QWidget):
    """A chart per metric key of the open runs, two columns, under one settings bar."""

    def __init__(self, settings: Optional[ChartSettings] = None, parent=None,
                 hidden_keys: Sequence[str] = ("time/step",), spare_charts: int = SPARE_CHARTS):
        super().__init__(parent)
        self.settings = settings or ChartSettings()
        self.hidden_keys = set(hidden_keys)
        self.charts: Dict[str, MetricChart] = {}
        self.spares: List[MetricChart] = []
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.bar = ChartSettingsBar(self.settings)
        self.bar.filter.textChanged.connect(self._apply_filter)
        layout.addWidget(self.bar)
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        self.grid_host = QtWidgets.QWidget()
        self.grid = QtWidgets.QGridLayout(self.grid_host)
        scroll.setWidget(self.grid_host)
        layout.addWidget(scroll, 1)
        self._keys_seen: Tuple[str, ...] = ()
        self.build_spares(spare_charts)

    def build_spares(self, count: int) -> None:
        """Build charts ahead, before any run trains, so that there are ``count`` spare ones.

        A chart takes pyqtgraph about 25 ms to build, holding the interpreter
        lock; built when a run's first metrics arrive, the demo's six charts
        held up its training thread for 0.15 s at once.
        """
        while len(self.spares) < count:
            chart = MetricChart("", [], self.settings, parent=self.grid_host)
            chart.hide()
            self.spares.append(chart)

    def _chart_for(self, key: str) -> MetricChart:
        if self.spares:
            chart = self.spares.pop(0)
            chart.show_keys(key, [key])
            return chart
        return MetricChart(key, [key], self.settings)

    def refresh(self, connections: Sequence) -> None:
        keys = sorted({k for c in connections for k in c.state.metric_keys()
                       if k not in self.hidden_keys and not k.startswith(("weights/", "gradient_norm/"))})
        if tuple(keys) != self._keys_seen:
            self._keys_seen = tuple(keys)
            for key in keys:
                if key not in self.charts:
                    self.charts[key] = self._chart_for(key)
            self._layout_charts()
        for chart in self.charts.values():
            # Charts scrolled out of sight or filtered away wait until they are seen again.
            if not chart.lines or (chart.isVisibleTo(self) and not chart.visibleRegion().isEmpty()):
                chart.refresh(connections)

    def _layout_charts(self) -> None:
        pattern = self.bar.filter.text().strip()
        shown = [k for k in sorted(self.charts) if not pattern or fnmatch.fnmatchcase(k, pattern if any(
            c in pattern for c in "*?[") else f"*{pattern}*")]
        for chart in self.charts.values():
            self.grid.removeWidget(chart)
        for index, key in enumerate(shown):
            self.grid.addWidget(self.charts[key], index // 2, index % 2)
        for key, chart in self.charts.items():  # only after adding: a parentless widget shown becomes a window
            chart.setVisible(key in shown)

    def _apply_filter(self, _text: str) -> None:
        self._layout_charts()


def accuracy_chart(settings: ChartSettings) -> MetricChart:
    """One chart of every accuracy key (``*/accuracy``, ``*/top5_accuracy``, ...) of every run."""
    return MetricChart("accuracy (top-k)", ["*accuracy"], settings)
