"""Tools for guided search driven by the agent (ask / tell, as optuna's): the next configurations
worth trying, a score the agent measured itself, or the configurations run here and scored."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from .boundary import argument
from .context import ToolContext, key
from .runs import check_point
from .schemas import ConfigRef, ExperimentRef


def register(server: Any, context: ToolContext) -> None:
    wb, tool = context.wb, context.tool(server)

    @tool
    def ask_configurations(
        experiment: ExperimentRef,
        n: Annotated[int, Field(ge=1, le=256, description="How many configurations to propose.")] = 1,
    ) -> dict[str, Any]:
        """Guided search: the next configurations worth trying (from what was measured or told so far).
        Evaluate them with evaluate_configurations, or yourself and report with tell_result."""
        row = context.experiment(experiment)
        with argument("experiment"):
            proposals = wb.ask(row["id"], n=n)
        return {"experiment": key(row), "configurations": [{"config_id": str(p["config_id"])[:12], "point": p["point"]} for p in proposals]}

    @tool
    def tell_result(
        experiment: ExperimentRef,
        config_id: ConfigRef,
        score: Annotated[float, Field(ge=0, le=1, description="The configuration's score, 0..1 (higher is better).")],
    ) -> dict[str, Any]:
        """Guided search: report the score of a configuration you evaluated yourself; the search learns from it."""
        row = context.experiment(experiment)
        with argument("config_id"):
            out = wb.tell(row["id"], config_id, score, source="agent")
        return {"experiment": key(row), "config_id": config_id, "score": score, "told": True, **out}

    @tool
    def evaluate_configurations(
        experiment: ExperimentRef,
        points: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=256,
                                                      description="Points to run, each {space key: value} (e.g. from ask_configurations).")],
    ) -> dict[str, Any]:
        """Run configurations (each on all samples; blocks until done) and return their scores and n."""
        row = context.experiment(experiment)
        for i, point in enumerate(points):
            check_point(context, row, point, f"points[{i}]")
        with argument("points"):
            results = wb.evaluate(row["id"], points)
        return {"experiment": key(row), "results": [{"config_id": str(r["config_id"])[:12], "point": r.get("point"), "score": r.get("score"),
                                                      "ci": r.get("ci"), "n": r.get("n")} for r in results]}


__all__ = ["register"]
