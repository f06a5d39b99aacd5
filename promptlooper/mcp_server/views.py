"""Tools of the data views: runs export (a page of rows in a format), group by, compare experiments.
Each is a thin call to the facade."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field

from ..runs_table import encode
from .boundary import argument
from .context import ToolContext, key
from .replies import truncate
from .schemas import ExperimentRef, Full

MAX_ROWS = 1000

RowFormat = Annotated[Literal["records", "csv", "jsonl"], Field(
    description="records: a list of objects; csv / jsonl: the rows as text (one page of them).")]
Limit = Annotated[int, Field(ge=1, le=MAX_ROWS, description=f"Rows in this page (at most {MAX_ROWS}).")]
Offset = Annotated[int, Field(ge=0, description="Rows to skip (next_offset of the previous page).")]
Metric = Annotated[str, Field(description="What to average: score (weighted, default), a scorer's label, cost, tokens or latency_ms.")]


def register(server: Any, context: ToolContext) -> None:
    wb, tool = context.wb, context.tool(server)

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
        row = context.experiment(experiment)
        with argument("config_id"):
            df = wb.runs(row["id"], config_id, as_frame=True)
        page = df.iloc[offset: offset + limit].copy()
        if not full:
            page["output"] = [truncate(v, False) if isinstance(v, str) else v for v in page["output"]]
        out: dict[str, Any] = {"experiment": key(row), "format": format, "total": len(df), "offset": offset,
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
        row = context.experiment(experiment)
        with argument("by"):
            df = wb.group_by(row["id"], by, metric=metric)
        return {"experiment": key(row), "by": by, "metric": metric, "groups": json.loads(df.to_json(orient="records"))}

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
        a, b = context.experiment(experiment_a, "experiment_a"), context.experiment(experiment_b, "experiment_b")
        with argument("scorer"):
            df = wb.compare_experiments(a["id"], b["id"], scorer=scorer)
        sides = {}
        for row in (a, b):
            part = df[df.experiment == key(row)].drop(columns=["experiment", "full_config_id"]).head(top)
            sides[key(row)] = json.loads(part.to_json(orient="records"))
        return {"experiment_a": key(a), "experiment_b": key(b), "metric": df.attrs["metric"],
                "shared_samples": df.attrs["shared_samples"], "only_a": df.attrs["only_a"], "only_b": df.attrs["only_b"],
                "leaderboards": sides}


__all__ = ["MAX_ROWS", "register"]
