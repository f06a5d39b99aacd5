"""Plotly figures of a sweep, as Optuna Dashboard draws them: history with the best so far,
parameter importance, parallel coordinates, a two-parameter contour (heatmap), slices, and score
vs cost with the Pareto front.

Plain functions of :func:`promptlooper.analysis.configuration_table` (and of the importance table)
returning ``plotly.graph_objects.Figure``; no widget, no store. ``Workbench.sweep_plots`` builds them
all for an experiment. Costs are in US dollars, and labelled so.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..analysis import pareto_front

MARGIN = {"t": 60, "l": 60, "r": 20, "b": 50}
SCORE_RANGE = [-0.02, 1.02]


def _numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def history(configs: pd.DataFrame) -> Any:
    """Each configuration's score in the order the sweep finished it, and the best so far."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(go.Scatter(x=configs["order"], y=configs["score"], mode="markers", name="configuration",
                             text=configs["config_id"], hovertemplate="#%{x} config %{text}: %{y:.3f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=configs["order"], y=configs["best_so_far"], mode="lines", name="best so far",
                             line={"shape": "hv", "color": "#d1495b"}))
    fig.update_layout(title="History: score per configuration and the best so far", xaxis_title="configuration (in order finished)",
                      yaxis_title="weighted score", yaxis_range=SCORE_RANGE, height=360, margin=MARGIN)
    return fig


def importance(table: pd.DataFrame) -> Any:
    """Horizontal bars: each varied parameter's share of the score's variance (Optuna's evaluator)."""
    import plotly.graph_objects as go

    ordered = table.iloc[::-1]
    fig = go.Figure(go.Bar(x=ordered["importance"], y=ordered["parameter"], orientation="h",
                           text=[f"{v:.2f}" for v in ordered["importance"]], textposition="auto"))
    evaluator = {"fanova": "fANOVA", "ped_anova": "PED-ANOVA", "mean_decrease_impurity": "mean decrease impurity"}.get(
        table.attrs.get("evaluator", ""), "Optuna")
    fig.update_layout(title=f"Parameter importance ({evaluator} over the configurations)" if len(table) else
                      "Parameter importance: needs two scored configurations and a varied parameter",
                      xaxis_title="importance (share, sums to 1)", xaxis_range=[0, 1], height=120 + 40 * max(1, len(table)),
                      margin=MARGIN)
    return fig


def _dimension(configs: pd.DataFrame, p: str) -> dict[str, Any]:
    col = configs[p]
    if _numeric(col):
        return {"label": p, "values": col.astype(float).tolist()}
    labels = col.astype("string").fillna("–")
    choices = sorted(set(labels))
    codes = {v: i for i, v in enumerate(choices)}
    return {"label": p, "values": [codes[v] for v in labels], "tickvals": list(range(len(choices))), "ticktext": choices}


def parallel_coordinates(configs: pd.DataFrame) -> Any:
    """One axis per varied parameter and one for the score; each line a configuration, coloured by score."""
    import plotly.graph_objects as go

    scored = configs.dropna(subset=["score"])
    dims = [_dimension(scored, p) for p in configs.attrs.get("params", [])]
    dims.append({"label": "score", "values": scored["score"].tolist(), "range": [0, 1]})
    fig = go.Figure(go.Parcoords(dimensions=dims, line={"color": scored["score"].tolist(), "colorscale": "Viridis",
                                                        "cmin": 0, "cmax": 1, "showscale": True}))
    fig.update_layout(title="Parallel coordinates (colour: score)", height=400, margin={**MARGIN, "t": 80})
    return fig


def contour(configs: pd.DataFrame, x: str | None = None, y: str | None = None) -> Any:
    """Mean score over two parameters as a heatmap (any types: each value is a cell); default the
    first two varied parameters."""
    import plotly.graph_objects as go

    params = configs.attrs.get("params", [])
    x = x or (params[0] if params else None)
    y = y or (params[1] if len(params) > 1 else None)
    fig = go.Figure()
    if x is None or y is None or x == y:
        fig.update_layout(title="Contour: needs two different varied parameters", height=360, margin=MARGIN)
        return fig
    for p in (x, y):
        if p not in params:
            raise KeyError(f"{p!r} is not a varied parameter; choose from: {', '.join(params)}")
    grid = configs.dropna(subset=["score"]).pivot_table(index=y, columns=x, values="score", aggfunc="mean", observed=True)
    grid = grid.sort_index().sort_index(axis=1)
    fig.add_trace(go.Heatmap(z=grid.to_numpy(), x=[str(v) for v in grid.columns], y=[str(v) for v in grid.index],
                             colorscale="Viridis", zmin=0, zmax=1, colorbar={"title": "score"},
                             hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>score %{{z:.3f}}<extra></extra>"))
    fig.update_layout(title=f"Score over {x} × {y}", xaxis_title=x, yaxis_title=y, height=400, margin=MARGIN,
                      xaxis_type="category", yaxis_type="category")
    return fig


def slices(configs: pd.DataFrame) -> Any:
    """One panel per varied parameter: each configuration's score against that parameter's value."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    params = configs.attrs.get("params", []) or ["config_id"]
    fig = make_subplots(rows=1, cols=len(params), shared_yaxes=True, subplot_titles=params)
    for i, p in enumerate(params, start=1):
        xs = configs[p] if _numeric(configs[p]) else configs[p].astype("string").fillna("–")
        fig.add_trace(go.Scatter(x=xs.tolist(), y=configs["score"].tolist(), mode="markers", name=p, showlegend=False,
                                 # Blues from a mid tone: the first configurations stay visible on white.
                                 marker={"color": configs["order"].tolist(), "colorscale": "Blues", "size": 8,
                                         "cmin": -0.5 * len(configs), "cmax": max(1, len(configs))},
                                 text=configs["config_id"].tolist(),
                                 hovertemplate=f"{p}=%{{x}}<br>score %{{y:.3f}}<br>config %{{text}}<extra></extra>"),
                      row=1, col=i)
    fig.update_yaxes(range=SCORE_RANGE)
    fig.update_yaxes(title_text="weighted score", row=1, col=1)
    fig.update_layout(title="Slices: score against each parameter (darker: finished later)", height=360, margin=MARGIN)
    return fig


def score_vs_cost(configs: pd.DataFrame) -> Any:
    """Each configuration's score against its total cost in dollars, the Pareto front as a step line."""
    import plotly.graph_objects as go

    front = pareto_front(configs)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=configs["cost"], y=configs["score"], mode="markers", name="configurations",
                             text=configs["config_id"], hovertemplate="config %{text}: $%{x:.4f}, %{y:.3f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=front["cost"], y=front["score"], mode="lines+markers", name="Pareto front",
                             line={"shape": "hv", "color": "#d1495b"}, marker={"symbol": "diamond", "size": 11},
                             text=front["config_id"], hovertemplate="config %{text}: $%{x:.4f}, %{y:.3f}<extra></extra>"))
    fig.update_layout(title="Score vs cost (Pareto front: nothing is both cheaper and better)",
                      xaxis_title="cost (USD, all runs of the configuration)", xaxis_tickprefix="$",
                      xaxis_tickformat=_dollars(configs["cost"]),
                      yaxis_title="weighted score", yaxis_range=SCORE_RANGE, height=360, margin=MARGIN)
    return fig


def _dollars(costs: pd.Series) -> str:
    """A d3 tick format showing dollars as decimals (plotly's default writes $20µ for 0.00002)."""
    top = float(costs.abs().max()) if len(costs) and costs.notna().any() else 0.0
    decimals = 2 if top >= 1 or top == 0 else min(8, 2 - math.floor(math.log10(top)))
    return f",.{decimals}~f"


def all_figures(configs: pd.DataFrame, importances: pd.DataFrame) -> dict[str, Any]:
    return {"history": history(configs), "importance": importance(importances),
            "parallel": parallel_coordinates(configs), "contour": contour(configs), "slices": slices(configs),
            "cost": score_vs_cost(configs)}


__all__ = ["all_figures", "contour", "history", "importance", "parallel_coordinates", "score_vs_cost", "slices"]
