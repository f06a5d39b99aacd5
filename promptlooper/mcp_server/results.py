"""Tools that read results: the leaderboard, the best configuration exported, a paired comparison
of two configurations (of one experiment or two), and a human's rating of a run."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from ..comparing import split_ref
from ..errors import NotFoundError
from .boundary import ArgumentError, argument, message
from .context import ToolContext, key
from .replies import board_rows
from .schemas import By, ExperimentRef, RunRef

_ConfigSide = Annotated[str | int, Field(description="A configuration id prefix, 'best', or a leaderboard rank (1 = best); "
                                                     "'OTHER_EXPERIMENT:CONFIG' for one of another experiment.")]


def _side(ref: str | int) -> str | int:
    """A CONFIG written after 'EXPERIMENT:' is text; a short number there is a leaderboard rank."""
    return int(ref) if isinstance(ref, str) and ref.isdigit() and len(ref) < 6 else ref


def register(server: Any, context: ToolContext) -> None:
    wb, tool = context.wb, context.tool(server)

    @tool
    def get_leaderboard(
        experiment: ExperimentRef,
        top: Annotated[int, Field(ge=1, le=1000, description="How many configurations.")] = 5,
        sort: Annotated[str | None, Field(description="A scorer column, tokens, cost or latency_ms (default: weighted score).")] = None,
        include_rejected: Annotated[bool, Field(description="Also list rejected configurations.")] = False,
        all_definitions: Annotated[bool, Field(description="Every configuration and sample ever run, not only those of "
                                                           "the experiment's current definition.")] = False,
    ) -> dict[str, Any]:
        """Top configurations by weighted score: varied params, score, 95% interval, n (samples), whether
        each is distinguishable from the best ('best', 'yes', 'no'), failed runs and their most common reason."""
        row = context.experiment(experiment)
        with argument("sort" if sort else "experiment"):
            df = wb.leaderboard(row["id"], sort=sort, include_rejected=include_rejected, all_definitions=all_definitions)
        return {"experiment": key(row), "configurations": len(df), "top": board_rows(df, top)}

    @tool
    def export_best_config(
        experiment: ExperimentRef,
        format: Annotated[Literal["json", "yaml", "env", "report"],
                          Field(description="json, yaml, env (a .env snippet) or report (markdown).")] = "json",
    ) -> dict[str, Any]:
        """The best configuration (the approved one, else the top of the leaderboard) in a drop-in format.
        Never contains key values."""
        row = context.experiment(experiment)
        with argument("experiment"):
            text = wb.export(row["id"], format)
        return {"experiment": key(row), "format": format, "text": text}

    @tool
    def compare_configurations(
        experiment: ExperimentRef,
        config_a: _ConfigSide,
        config_b: _ConfigSide,
        scorer: Annotated[str | None, Field(description="Compare one scorer's column instead of the weighted score.")] = None,
    ) -> dict[str, Any]:
        """Paired comparison of two configurations over the samples both finished: mean difference (a - b),
        its 95% interval, p-value, and which is better if the difference is significant."""
        row = context.experiment(experiment)
        # Each side resolved on its own, so an error names the argument it is about.
        across = any(isinstance(ref, str) and ":" in ref for ref in (config_a, config_b))
        sides: dict[str, tuple[dict[str, Any], str]] = {}
        for arg, ref in (("config_a", config_a), ("config_b", config_b)):
            with argument(arg):
                if isinstance(ref, str) and ":" in ref:
                    exp_ref, config = split_ref(ref, key(row))
                    side_row = wb.experiment(exp_ref)
                    sides[arg] = side_row, wb.config_id(side_row["id"], _side(config))
                else:
                    sides[arg] = row, wb.config_id(row["id"], ref)
        (row_a, id_a), (row_b, id_b) = sides["config_a"], sides["config_b"]
        with argument("scorer"):
            if across:
                out = wb.compare_across(f"{row_a['id']}:{id_a}", f"{row_b['id']}:{id_b}", scorer=scorer)
            else:
                out = wb.compare(row["id"], id_a, id_b, scorer=scorer)
        out["config_a"], out["config_b"] = out["config_a"][:12], out["config_b"][:12]
        return out

    @tool
    def add_human_score(
        run_id: RunRef,
        thumbs: Annotated[Literal["up", "down"] | None, Field(description="'up' or 'down'.")] = None,
        stars: Annotated[int | None, Field(ge=1, le=5, description="1 to 5 stars.")] = None,
        comment: Annotated[str, Field(description="Why.")] = "",
        by: By = "",
    ) -> dict[str, Any]:
        """Rate a finished run's output (thumbs and/or stars); shown in the leaderboard as human_* columns."""
        rating = "thumbs" if thumbs is not None and stars is None else "stars" if stars is not None and thumbs is None else "rating"
        with argument(rating):
            try:
                return wb.rate(run_id, thumbs=thumbs, stars=stars, comment=comment, by=by)
            except NotFoundError as exc:  # the run is what was not found
                raise ArgumentError("run_id", message(exc)) from exc

__all__ = ["register"]
