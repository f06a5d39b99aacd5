"""Group-by view: the mean of a metric (± its 95% interval, with n) per value of any variable, or
per pair of values as a pivot table, next to a bar chart with interval whiskers.

``wb.group_by`` (:mod:`promptlooper.grouping`) computes the table; this view formats it and sends
the chart's geometry as fractions of its scale, so the browser only draws bars. With two
variables the table is a pivot (first variable down, second across), each cell "mean ± half (n)".
"""

from __future__ import annotations

import math
from typing import Any

import traitlets

from ._assets import asset, esm
from ._base import TERMINAL, PLWidget, Reader, every, experiment_key
from ._format import clean, fmt_int, fmt_score, fmt_value
from .grouping_pivot import pivot_cells
from .matrix_export import export_frame

METRICS = ("score", "cost", "tokens", "latency_ms")


def bars(table: Any, keys: list[str]) -> list[dict[str, Any]]:
    """One bar per group: its label, mean, interval and their positions on a 0..top scale."""
    means = table["mean"].astype(float)
    highs = table["ci_high"].astype(float).fillna(means)
    top = float(max(highs.max(), means.max(), 0.0)) if len(table) else 1.0
    top = top if top > 0 and math.isfinite(top) else 1.0
    out = []
    for r in table.to_dict("records"):
        mean, low, high = (float(r[k]) if r[k] == r[k] else None for k in ("mean", "ci_low", "ci_high"))
        out.append({"key": " · ".join(fmt_value(r[k]) for k in keys), "mean": fmt_score(mean), "n": fmt_int(r["n"]),
                    "x": (mean or 0.0) / top, "low": None if low is None else low / top,
                    "high": None if high is None else high / top})
    return out


class GroupByView(PLWidget):
    """Mean ± interval with n per value (or pair of values) of the experiment's variables."""

    _esm = esm("groupby")
    _css = asset("groupby", "widget.css")

    choices = traitlets.List().tag(sync=True)  # variables to group by
    metrics = traitlets.List().tag(sync=True)
    by = traitlets.List().tag(sync=True)  # one or two variables
    metric = traitlets.Unicode("score").tag(sync=True)
    bars = traitlets.List().tag(sync=True)
    pivot = traitlets.Dict().tag(sync=True)  # {rows: [...], columns: [...], cells: [[text]]} for two variables
    download = traitlets.Dict().tag(sync=True)  # {name, mime, text, n}: the browser saves it

    def __init__(self, wb: Any, experiment: Any, by: str | list[str] | None = None, *, metric: str = "score",
                 readonly: bool | None = None):
        super().__init__(readonly=readonly)
        self.wb = wb
        self.experiment = experiment_key(experiment)
        frame = wb.runs(self.experiment, as_frame=True)
        params = list(frame.attrs.get("params", []))
        self.choices = [*params, "config_id", "sample_id"]
        self.metrics = [*METRICS, *frame.attrs.get("scorers", [])]
        self.metric = metric
        self.by = [by] if isinstance(by, str) else list(by or params[:1] or ["config_id"])
        self._reader = Reader(wb)
        self.refresh()

    def refresh(self) -> None:
        self._show(self._read(self.wb))

    def _read(self, wb: Any) -> Any:
        return wb.group_by(self.experiment, self.by if len(self.by) > 1 else self.by[0], metric=self.metric)

    def follow(self, handle: Any = None, interval: float = 2.0) -> None:
        """Re-read every ``interval`` s in a worker thread until the sweep ends."""
        async def step() -> bool:
            ended = bool(handle.done()) if handle is not None else \
                await self._reader.run(lambda ro: ro.status(self.experiment).get("status") in TERMINAL)
            table = await self._reader.run(self._read)
            if not self._closed:
                self._show(table)
            return ended or self._closed

        self._start_loop(("groupby", self.experiment), every(interval, step, self._reader.changes(self.experiment)))

    def _show(self, table: Any) -> None:
        self._table = table
        keys = list(table.attrs["by"])  # the table's own keys: a regrouping may have come in since the read
        self.bars = clean(bars(table, keys))
        self.pivot = clean(pivot_cells(table)) if len(keys) == 2 else {}

    def _on_export(self, fmt: str) -> None:
        keys = list(self._table.attrs["by"])
        stem = f"{self.experiment.replace('/', '-')}-by-{'-'.join(keys)}"
        name, mime, body = export_frame(self._table, stem, fmt, f"{self.experiment}: {self.metric} by {' x '.join(keys)}")
        self.download = {"name": name, "mime": mime, "text": body, "n": int(self.download.get("n", 0)) + 1}

    def _on_group(self, by: list[str], metric: str | None = None) -> None:
        keys = [k for k in by if k]
        if not 1 <= len(keys) <= 2 or len(set(keys)) != len(keys) or not set(keys) <= set(self.choices):
            raise ValueError(f"group by one or two different variables of: {', '.join(self.choices)}")
        if metric is not None and metric not in self.metrics:
            raise ValueError(f"no metric {metric!r}; choose one of: {', '.join(self.metrics)}")
        self.by, self.metric = keys, metric or self.metric
        self.refresh()
