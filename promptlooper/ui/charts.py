"""Plotly charts of an experiment: score vs each varied parameter (per model), the score
distribution of each configuration, and score vs cost with the Pareto front marked.

The figure builders are plain functions of the leaderboard (and of the runs), returning
``plotly.graph_objects.Figure``; :class:`Charts` shows them as :class:`PlotlyChart` tabs (plotly.js
sent once per page, only when a chart is shown) and refreshes them in place while a sweep runs.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from ..engine.gcfreeze import HeapHold
from ._base import Reader, every, experiment_key, log, replace_loop
from ._format import clean, fmt_value, short
from .leaderboard import classify_columns

MAX_BOXES = 20


def pareto_front(costs: list[float], scores: list[float]) -> list[int]:
    """Indices of the points no other point beats (cost ≤ and score ≥, one strictly), by cost."""
    pts = [(c, s, i) for i, (c, s) in enumerate(zip(costs, scores, strict=True))
           if c is not None and s is not None and not (math.isnan(c) or math.isnan(s))]
    front, best = [], -math.inf
    for _cost, s, i in sorted(pts, key=lambda p: (p[0], -p[1])):
        if s > best:
            front.append(i)
            best = s
    return front


def model_keys(varied: list[str]) -> list[str]:
    """Varied keys that choose a model (``model`` or ``<stage>.model``)."""
    return [k for k in varied if k.split(".")[-1] == "model"]


def _records(board: Any) -> list[dict[str, Any]]:
    return [clean(r) for r in board.to_dict("records")] if len(board) else []


def score_vs_params(board: Any) -> Any:
    """One panel per varied parameter: each configuration's score (with its interval), one colour per model."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    varied, _, _ = classify_columns(board)
    models = model_keys(varied)
    params = [k for k in varied if k not in models] or varied or ["config_id"]
    rows = _records(board)
    fig = make_subplots(rows=1, cols=len(params), shared_yaxes=True, subplot_titles=params)
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        label = " · ".join(fmt_value(r.get(m)) for m in models) if models else "all"
        groups.setdefault(label, []).append(r)
    for col, p in enumerate(params, start=1):
        for g, (label, members) in enumerate(sorted(groups.items())):
            members = [m for m in members if m.get("score") is not None]
            fig.add_trace(go.Scatter(
                x=[_label(m.get(p)) if not isinstance(m.get(p), int | float) else m.get(p) for m in members],
                y=[m["score"] for m in members],
                error_y={"type": "data", "symmetric": False,
                         "array": [(m["ci_high"] - m["score"]) if m.get("ci_high") is not None else 0 for m in members],
                         "arrayminus": [(m["score"] - m["ci_low"]) if m.get("ci_low") is not None else 0 for m in members]},
                mode="markers", name=label, legendgroup=label, showlegend=col == 1 and len(groups) > 1,
                marker={"size": 9, "color": _colour(g)},
                text=[f"config {m.get('config_id')} · n={m.get('n')}" for m in members], hoverinfo="x+y+text",
            ), row=1, col=col)
    fig.update_yaxes(title_text="weighted score", range=[-0.02, 1.02], row=1, col=1)
    fig.update_layout(title="Score vs each varied parameter" + (f" (colour: {', '.join(models)})" if models else ""),
                      height=360, margin={"t": 60, "l": 50, "r": 20, "b": 40}, legend_title_text=", ".join(models) or None)
    return fig


LABEL_CHARS = 28


def _label(value: Any) -> str:
    """A category label that fits under its axis: long prompts are cut (the hover shows the config)."""
    text = " ".join(fmt_value(value).split())
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def score_distribution(board: Any, runs: list[dict[str, Any]]) -> Any:
    """A box of per-run scores for each of the top configurations (leaderboard order)."""
    import plotly.graph_objects as go

    order = [r["full_config_id"] for r in _records(board)][:MAX_BOXES]
    by_config: dict[str, list[float]] = {c: [] for c in order}
    for run in runs:
        if run.get("config_id") in by_config and run.get("score") is not None and run.get("status") in ("completed", "cached"):
            by_config[run["config_id"]].append(float(run["score"]))
    fig = go.Figure()
    for i, cid in enumerate(order):
        fig.add_trace(go.Box(y=by_config[cid], name=short(cid, 8), boxpoints="all", jitter=0.3, pointpos=0,
                             marker={"color": _colour(i)}, showlegend=False))
    fig.update_layout(title=f"Score distribution per configuration (top {len(order)})", yaxis_title="run score",
                      yaxis_range=[-0.02, 1.02], height=360, margin={"t": 60, "l": 50, "r": 20, "b": 40})
    return fig


def score_vs_cost(board: Any) -> Any:
    """Score against cost (tokens when no prices are set), the Pareto front drawn as a line."""
    import plotly.graph_objects as go

    rows = [r for r in _records(board) if r.get("score") is not None]
    use_cost = any((r.get("cost") or 0) > 0 for r in rows)
    key, label = ("cost", "cost (USD)") if use_cost else ("tokens", "tokens (no prices set)")
    xs = [float(r.get(key) or 0) for r in rows]
    ys = [float(r["score"]) for r in rows]
    front = pareto_front(xs, ys)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name="configurations", marker={"size": 9, "color": "#8aa4c8"},
                             text=[f"config {r.get('config_id')}" for r in rows], hoverinfo="x+y+text"))
    fig.add_trace(go.Scatter(x=[xs[i] for i in front], y=[ys[i] for i in front], mode="lines+markers", name="Pareto front",
                             line={"color": "#d1495b", "shape": "hv"}, marker={"size": 11, "color": "#d1495b", "symbol": "diamond"},
                             text=[f"config {rows[i].get('config_id')}" for i in front], hoverinfo="x+y+text"))
    fig.update_layout(title=f"Score vs {key} (Pareto front: nothing is both cheaper and better)", xaxis_title=label,
                      yaxis_title="weighted score", yaxis_range=[-0.02, 1.02], height=360,
                      margin={"t": 60, "l": 50, "r": 20, "b": 40})
    if use_cost:  # dollars, not SI prefixes ("150µ")
        fig.update_xaxes(tickprefix="$", tickformat=",.6~f", exponentformat="none", hoverformat="$,.6~f")
    return fig


NAMES = ("Score vs parameters", "Distribution", "Score vs cost")


def figures(board: Any, runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Score vs parameters": score_vs_params(board), "Distribution": score_distribution(board, runs),
            "Score vs cost": score_vs_cost(board)}


_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def _colour(i: int) -> str:
    return _PALETTE[i % len(_PALETTE)]


_TRACE_PROPS = ("x", "y", "name", "text", "error_y", "marker", "showlegend", "legendgroup")


def patch(fw: Any, fig: Any) -> bool:
    """Update ``fw`` to ``fig`` by changing data properties only, if both have the same traces.

    A full replacement re-validates the whole figure (~60 ms for a few hundred points on the
    kernel's loop); changing x / y / names of existing traces costs a few ms. Returns False when
    the traces differ in number or type (the caller replaces everything then).
    """
    if len(fw.data) != len(fig.data) or any(a.type != b.type for a, b in zip(fw.data, fig.data, strict=True)):
        return False
    with fw.batch_update():
        for old, new in zip(fw.data, fig.data, strict=True):
            for prop in _TRACE_PROPS:
                if prop in new and new[prop] != old[prop]:
                    old[prop] = new[prop]
        for path in ("title.text", "xaxis.title.text"):
            value = fig.layout[path]
            if fw.layout[path] != value:
                fw.layout[path] = value
    return True


class Charts:
    """The three charts as FigureWidget tabs (``.widget``), refreshed while the sweep runs.

    Standalone it polls the store; in the dashboard it follows the leaderboard view
    (``source=``), so the leaderboard is computed once per refresh, not twice.
    """

    def __init__(self, wb: Any, experiment: Any, *, live: bool = True, interval: float = 2.0, slot: str = "",
                 source: Any = None):
        import ipywidgets

        from .plotly_chart import PlotlyChart

        self.wb = wb
        self.experiment = experiment_key(experiment)
        self.interval = interval
        self._reader = Reader(wb)
        self._seen: Any = None
        self._offered: Any = None
        self._wake = asyncio.Event()
        self._heap = HeapHold()  # polling the store itself: see _base.PLWidget._following
        self.updates = 0
        board = source.frame if source is not None and source.frame is not None else wb.leaderboard(self.experiment)
        # Following a live view, the first figures are drawn by the loop, after the cell has
        # shown the page: reading every run and building three figures (~0.7 s) would delay the
        # leaderboard's first paint for charts that sit in a hidden tab.
        deferred = live and source is not None
        if deferred:
            import plotly.graph_objects as go

            figs = {name: go.Figure() for name in NAMES}
        else:
            figs = figures(board, wb.runs(self.experiment))
        self.figures = {name: PlotlyChart(fig) for name, fig in figs.items()}
        self.widget = ipywidgets.Tab(children=list(self.figures.values()))
        for i, name in enumerate(self.figures):
            self.widget.set_title(i, name)
        self._task = None
        if live:
            key = ("Charts", wb.db_path, self.experiment, slot)
            if source is not None:
                source.on_frame(self._offer)
                self._offer(board)
                self._task = replace_loop(key, self._follow())
            else:
                self._task = replace_loop(key, every(interval, self._tick, self._reader.changes(self.experiment)))
                if self._task is not None:  # replaced by a re-run cell or closed: the share goes back
                    self._task.add_done_callback(lambda _task: self._heap.give_back())

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def refresh(self) -> None:
        self.update(figures(self.wb.leaderboard(self.experiment), self.wb.runs(self.experiment)))

    def update(self, figs: dict[str, Any]) -> None:
        """Show new figures in the same chart widgets (the page redraws them with Plotly.react)."""
        for name, fig in figs.items():
            self.figures[name].update(fig)
        self.updates += 1

    async def _redraw(self, board: Any) -> None:
        from .plotly_chart import figure_json

        runs = await self._reader.call("runs", self.experiment)

        def build() -> dict[str, tuple[Any, dict[str, Any]]]:
            # figures and their JSON are built off the kernel's loop: cells stay responsive
            return {name: (fig, figure_json(fig)) for name, fig in figures(board, runs).items()}

        for name, (fig, shown) in (await asyncio.to_thread(build)).items():
            self.figures[name].update(fig, shown)
        self.updates += 1

    async def _tick(self) -> bool:
        status = await self._reader.call("status", self.experiment)
        sweep = status.get("sweep") or {}
        marker = (sweep.get("id"), sweep.get("done"), sweep.get("status"))
        if sweep.get("status") == "running":
            self._heap.take()
        else:
            self._heap.give_back()
        if marker != self._seen:
            self._seen = marker
            await self._redraw(await self._reader.call("leaderboard", self.experiment))
        return False

    def _offer(self, board: Any) -> None:
        self._offered = board
        self._wake.set()

    async def _follow(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            board, self._offered = self._offered, None
            if board is not None:
                try:
                    await self._redraw(board)
                except Exception as exc:  # noqa: BLE001 - a failed redraw must not end the view
                    log.warning("chart refresh failed: %r", exc)
            await asyncio.sleep(self.interval)  # at most one redraw per interval

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._heap.give_back()
        self._reader.close()
        for fw in self.figures.values():
            fw.close()
        self.widget.close()
