"""MCP tools of the data views: runs export (a page of rows in a format), group by, compare
experiments. Registered by :func:`promptlooper.mcp_server.build_server` with its ``tool``
decorator (errors naming the argument, key values redacted); each is a thin call to the facade."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import Field

# Imported by build_server once mcp_server is loaded: the argument types are shared with its tools.
from .errors import PromptLooperError
from .mcp_server import ExperimentRef, Full
from .runs_table import encode
from .workbench import Workbench

MAX_ROWS = 1000

RowFormat = Annotated[Literal["records", "csv", "jsonl"], Field(
    description="records: a list of objects; csv / jsonl: the rows as text (one page of them).")]
Limit = Annotated[int, Field(ge=1, le=MAX_ROWS, description=f"Rows in this page (at most {MAX_ROWS}).")]
Offset = Annotated[int, Field(ge=0, description="Rows to skip (next_offset of the previous page).")]
Metric = Annotated[str, Field(description="What to average: score (weighted, default), a scorer's label, cost, tokens or latency_ms.")]


def register(tool: Callable[..., Any], wb: Workbench, experiment_row: Callable[..., dict[str, Any]],
             arg: Callable[[str], Any], truncate: Callable[[Any, bool], Any]) -> None:
    def name(row: dict[str, Any]) -> str:
        return f"{row['project']}/{row['name']}"

    @tool
    def export_runs(
        experiment: ExperimentRef,
        format: RowFormat = "records",
        limit: Limit = 100,
        offset: Offset = 0,
        config_id: Annotated[str | None, Field(description="Only this configuration's runs (an id prefix).")] = None,
        full: Full = False,
    ) -> dict[str, Any]:
        """The runs as a tidy table, one page at a time: one row per run with every varied parameter, every
        scorer, tokens, cost (USD), latency, status and error. `total` counts all rows; page on with next_offset."""
        row = experiment_row(experiment)
        with arg("config_id"):
            df = wb.runs(row["id"], config_id, as_frame=True)
        page = df.iloc[offset: offset + limit].copy()
        if not full:
            page["output"] = [truncate(v, False) if isinstance(v, str) else v for v in page["output"]]
        out: dict[str, Any] = {"experiment": name(row), "format": format, "total": len(df), "offset": offset,
                               "returned": len(page), "columns": list(page.columns)}
        if offset + len(page) < len(df):
            out["next_offset"] = offset + len(page)
        if format == "records":
            out["rows"] = json.loads(page.to_json(orient="records", date_format="iso"))
        else:
            out["text"] = encode(page, format).decode("utf-8")
        return out

    @tool
    def group_by(
        experiment: ExperimentRef,
        by: Annotated[list[str], Field(min_length=1, max_length=2, description=(
            "One or two variables: a varied parameter (e.g. 'persona', 'answer.temperature'), config_id, sample_id "
            "or status. Two give one row per pair of values."))],
        metric: Metric = "score",
    ) -> dict[str, Any]:
        """Mean, 95% interval and n per value of any variable (or pair of values), best first. n counts
        (configuration, sample) pairs, repeats averaged."""
        row = experiment_row(experiment)
        with arg("by"):
            df = wb.group_by(row["id"], by, metric=metric)
        return {"experiment": name(row), "by": by, "metric": metric, "groups": json.loads(df.to_json(orient="records"))}

    @tool
    def compare_experiments(
        experiment_a: ExperimentRef,
        experiment_b: ExperimentRef,
        scorer: Annotated[str | None, Field(description="Rank by this scorer instead of the weighted score.")] = None,
        top: Annotated[int, Field(ge=1, le=100, description="Configurations per experiment.")] = 10,
    ) -> dict[str, Any]:
        """Two experiments' leaderboards side by side over their SHARED samples (a fork and its parent, or any
        two): each side's top configurations with score, 95% interval, n and in_both (it ran in the other too).
        For a paired test of two configurations from different experiments, use compare_configurations."""
        a, b = experiment_row(experiment_a, "experiment_a"), experiment_row(experiment_b, "experiment_b")
        with arg("scorer"):
            df = wb.compare_experiments(a["id"], b["id"], scorer=scorer)
        sides = {}
        for row in (a, b):
            part = df[df.experiment == name(row)].drop(columns=["experiment", "full_config_id"]).head(top)
            sides[name(row)] = json.loads(part.to_json(orient="records"))
        return {"experiment_a": name(a), "experiment_b": name(b), "metric": df.attrs["metric"],
                "shared_samples": df.attrs["shared_samples"], "only_a": df.attrs["only_a"], "only_b": df.attrs["only_b"],
                "leaderboards": sides}


def compare_across(wb: Workbench, experiment: str, refs: dict[str, str | int], scorer: str | None) -> dict[str, Any]:
    """compare_configurations when a side is OTHER_EXPERIMENT:CONFIG: each side resolved on its own,
    so an error names the argument it is about."""
    from .comparing import split_ref
    from .mcp_server import _ArgError, _message
    from .stats import _resolve_config

    qualified = {}
    for arg, ref in refs.items():
        exp_ref, config = split_ref(ref if isinstance(ref, str) else str(ref), experiment)
        try:
            row = wb.experiment(exp_ref)
            config_id = _resolve_config(wb, row, int(config) if config.isdigit() and len(config) < 6 else config)
        except (PromptLooperError, KeyError, ValueError, LookupError) as exc:
            raise _ArgError(arg, _message(exc)) from exc
        qualified[arg] = f"{row['id']}:{config_id}"
    try:
        out = wb.compare_across(qualified["config_a"], qualified["config_b"], scorer=scorer)
    except (PromptLooperError, KeyError) as exc:
        raise _ArgError("scorer", _message(exc)) from exc
    out["config_a"], out["config_b"] = out["config_a"][:12], out["config_b"][:12]
    return out


__all__ = ["MAX_ROWS", "compare_across", "register"]
