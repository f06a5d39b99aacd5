"""Compare view: two experiments' leaderboards side by side over their shared samples (a fork
against its parent by default), and a paired comparison of one configuration from each.

The numbers come from the facade (``wb.compare_experiments``, ``wb.compare_across``, ``wb.status``
for parent and forks); this view formats them as rows for the browser and keeps which
configuration is picked on each side. Nothing here writes: read-only mode changes nothing.
"""

from __future__ import annotations

from typing import Any

import traitlets

from ._assets import asset, esm
from ._base import PLWidget, experiment_key
from ._format import clean, fmt_int, fmt_interval, fmt_score, fmt_value
from .matrix_export import export_frame

SIDES = ("a", "b")


def board_rows(board: Any, name: str, params: list[str]) -> list[dict[str, Any]]:
    """One side's rows, formatted, in rank order."""
    part = board[board["experiment"] == name]
    return [{"key": r["full_config_id"], "rank": int(r["rank"]), "config": r["config_id"], "score": fmt_score(r["score"]),
             "ci": fmt_interval(r["ci_low"], r["ci_high"]), "n": fmt_int(r["n"]), "in_both": bool(r["in_both"]),
             "params": " · ".join(f"{p}={fmt_value(r[p])}" for p in params if p in r and r[p] == r[p])}
            for r in part.to_dict("records")]


def pair_summary(result: dict[str, Any]) -> dict[str, Any]:
    """A paired comparison as the view shows it: the difference, its interval, p and the verdict."""
    verdict = ("no significant difference" if not result["significant"]
               else f"{'A' if result['better'] == 'a' else 'B'} is better")
    return clean({"n": result["n"], "mean_diff": fmt_score(result["mean_diff"]),
                  "ci": fmt_interval(result.get("ci_low"), result.get("ci_high")),
                  "p_value": "–" if result.get("p_value") != result.get("p_value") else f"{result['p_value']:.3g}",
                  "verdict": verdict, "only_a": result["only_a"], "only_b": result["only_b"], "metric": result["metric"]})


class CompareView(PLWidget):
    """Experiment ``a`` against ``b`` (default: ``a``'s parent, or its first fork)."""

    _esm = esm("compare")
    _css = asset("compare", "widget.css")

    names = traitlets.Dict().tag(sync=True)  # {a, b}
    boards = traitlets.Dict().tag(sync=True)  # {a: [rows], b: [rows]}
    shared = traitlets.Dict().tag(sync=True)  # {shared_samples, only_a, only_b, metric}
    related = traitlets.List().tag(sync=True)  # [{name, relation}]: parent and forks of a
    picked = traitlets.Dict().tag(sync=True)  # {a: config id, b: config id}
    pair = traitlets.Dict().tag(sync=True)  # the paired comparison of the picked configurations
    download = traitlets.Dict().tag(sync=True)  # {name, mime, text, n}: the browser saves it

    def __init__(self, wb: Any, a: Any, b: Any = None, *, readonly: bool | None = None, scorer: str | None = None):
        super().__init__(readonly=readonly)
        self.wb = wb
        self.scorer = scorer
        first = experiment_key(a)
        status = wb.status(first)
        self.related = [{"name": status["parent"], "relation": "parent"}] * bool(status["parent"]) + \
            [{"name": f, "relation": "fork"} for f in status["forks"]]
        other = experiment_key(b) if b is not None else next((r["name"] for r in self.related), None)
        if other is None:
            raise ValueError(f"{first} has no parent and no fork: name the experiment to compare it with")
        self.names = {"a": status["experiment"], "b": wb.status(other)["experiment"]}
        self.refresh()

    def refresh(self) -> None:
        board = self.wb.compare_experiments(self.names["a"], self.names["b"], scorer=self.scorer)
        self._board = board
        fixed = {"experiment", "rank", "config_id", "score", "ci_low", "ci_high", "n", "in_both", "full_config_id"}
        params = [c for c in board.columns if c not in fixed]
        self.boards = {s: board_rows(board, self.names[s], params) for s in SIDES}
        self.shared = clean({k: board.attrs.get(k) for k in ("shared_samples", "only_a", "only_b", "metric")})
        if len(self.picked) == 2:
            self._compare()

    def _compare(self) -> None:
        result = self.wb.compare_across(f"{self.names['a']}:{self.picked['a']}", f"{self.names['b']}:{self.picked['b']}",
                                        scorer=self.scorer)
        self.pair = pair_summary(result)

    # -- messages -------------------------------------------------------------
    def _on_pick(self, side: str, config_id: str) -> None:
        if side not in SIDES or not any(r["key"] == config_id for r in self.boards.get(side, [])):
            raise ValueError(f"no configuration {config_id!r} on side {side!r}")
        self.picked = {**self.picked, side: config_id}
        self.pair = {}
        if len(self.picked) == 2:
            self._compare()

    def _on_export(self, fmt: str) -> None:
        stem = f"compare-{self.names['a']}-vs-{self.names['b']}".replace("/", "-")
        name, mime, body = export_frame(self._board, stem, fmt, f"{self.names['a']} vs {self.names['b']} over shared samples")
        self.download = {"name": name, "mime": mime, "text": body, "n": int(self.download.get("n", 0)) + 1}

    def _on_against(self, name: str) -> None:
        """Compare with another related experiment (the parent or a fork)."""
        if name not in [r["name"] for r in self.related]:
            raise ValueError(f"{name!r} is neither the parent nor a fork of {self.names['a']}")
        self.names = {**self.names, "b": name}
        self.picked, self.pair = {}, {}
        self.refresh()
