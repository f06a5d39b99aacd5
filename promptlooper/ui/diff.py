"""Diff view: two runs, or two configurations on the same sample, side by side.

Prompt, parameters and response are compared word by word with :mod:`difflib` here in Python;
the browser only paints the segments (``equal`` / ``del`` / ``ins``) it is sent, with both
runs' scores above them.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

import traitlets

from ._assets import asset, esm
from ._base import PLWidget, experiment_key
from ._format import clean, fmt_int, fmt_interval, fmt_score, fmt_value, short
from .leaderboard import classify_columns

_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")


def tokens(text: str) -> list[str]:
    """Words, runs of whitespace and single punctuation marks; joining them gives ``text`` back."""
    return _TOKEN.findall(text or "")


def _append(segments: list[dict[str, str]], op: str, text: str) -> None:
    if not text:
        return
    if segments and segments[-1]["op"] == op:
        segments[-1]["text"] += text
    else:
        segments.append({"op": op, "text": text})


def word_diff(a: str, b: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(left, right) segments: ``equal`` on both sides, ``del`` only left, ``ins`` only right."""
    ta, tb = tokens(a), tokens(b)
    left: list[dict[str, str]] = []
    right: list[dict[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ta, tb, autojunk=False).get_opcodes():
        if op == "equal":
            _append(left, "equal", "".join(ta[i1:i2]))
            _append(right, "equal", "".join(tb[j1:j2]))
        else:  # replace, delete, insert
            _append(left, "del", "".join(ta[i1:i2]))
            _append(right, "ins", "".join(tb[j1:j2]))
    return left, right


def messages_text(messages: Any) -> str:
    if isinstance(messages, list):
        return "\n".join(f"{m.get('role', '')}: {m.get('content', '')}" if isinstance(m, dict) else fmt_value(m) for m in messages)
    return "" if messages is None else fmt_value(messages)


def mapping_text(values: dict[str, Any] | None) -> str:
    return "\n".join(f"{k} = {fmt_value(v)}" for k, v in sorted((values or {}).items()))


def section(title: str, a: str, b: str) -> dict[str, Any]:
    left, right = word_diff(a, b)
    return {"title": title, "same": a == b, "left": left, "right": right}


def run_sections(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Prompt, parameters and response of every stage of two runs (stages paired by position)."""
    sa, sb = a.get("stages") or [], b.get("stages") or []
    out = []
    for i in range(max(len(sa), len(sb))):
        x = sa[i] if i < len(sa) else {}
        y = sb[i] if i < len(sb) else {}
        name = x.get("stage_name") or y.get("stage_name") or f"stage {i + 1}"
        params_x = {**(x.get("parameters") or {}), **({"model": x["model_used"]} if x.get("model_used") else {})}
        params_y = {**(y.get("parameters") or {}), **({"model": y["model_used"]} if y.get("model_used") else {})}
        out.append(section(f"{name} · prompt", messages_text(x.get("prompt_sent")), messages_text(y.get("prompt_sent"))))
        out.append(section(f"{name} · parameters", mapping_text(params_x), mapping_text(params_y)))
        out.append(section(f"{name} · response", x.get("response_raw") or x.get("error") or "",
                           y.get("response_raw") or y.get("error") or ""))
    if a.get("error") or b.get("error"):
        out.append(section("error", a.get("error") or "", b.get("error") or ""))
    return out


def run_side(detail: dict[str, Any], title: str | None = None) -> dict[str, Any]:
    """Header of one side: which run, its weighted score and each scorer."""
    return {
        "title": title or f"run {short(detail.get('id'), 8)}",
        "subtitle": f"sample #{detail.get('sample_index')} · config {short(detail.get('config_id'))} · {detail.get('status', '')}",
        "score": fmt_score(detail.get("score")),
        "scores": [{"scorer": s.get("scorer", ""), "value": fmt_score(s.get("value")), "source": s.get("source", "auto")}
                   for s in detail.get("scores") or []],
    }


def pair_runs(runs_a: list[dict[str, Any]], runs_b: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Runs of two configurations on the same sample (and repeat), in sample order."""
    by_key = {(r["sample_id"], r.get("repeat", 0)): r for r in runs_b}
    pairs = [(r, by_key[(r["sample_id"], r.get("repeat", 0))]) for r in runs_a if (r["sample_id"], r.get("repeat", 0)) in by_key]
    return sorted(pairs, key=lambda p: (p[0].get("sample_index", 0), p[0].get("repeat", 0)))


class DiffView(PLWidget):
    """Side-by-side word-level diff of two runs or two configurations."""

    _esm = esm("diff")
    _css = asset("diff", "widget.css")

    left = traitlets.Dict().tag(sync=True)
    right = traitlets.Dict().tag(sync=True)
    sections = traitlets.List().tag(sync=True)
    samples = traitlets.List().tag(sync=True)  # [{index, label}] when comparing configurations
    sample = traitlets.Int(0).tag(sync=True)
    hint = traitlets.Unicode("Pick two runs or two configurations to compare them.").tag(sync=True)

    def __init__(self, wb: Any, experiment: Any, *, readonly: bool | None = None):
        super().__init__(readonly=readonly)
        self.wb = wb
        self.experiment = experiment_key(experiment)
        self._pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self._configs: tuple[str, str] | None = None
        self._runs: tuple[str, str] | None = None
        self._board: Any = None

    def clear(self, hint: str | None = None) -> None:
        self.left, self.right, self.sections, self.samples = {}, {}, [], []
        self._pairs, self._configs, self._runs = [], None, None
        if hint is not None:
            self.hint = hint

    def compare_runs(self, run_a: str, run_b: str) -> None:
        a, b = self.wb.run_detail(run_a), self.wb.run_detail(run_b)
        self._configs, self._pairs, self.samples, self._runs = None, [], [], (run_a, run_b)
        self._show(a, b, run_side(a), run_side(b))

    def compare_configs(self, config_a: str, config_b: str, sample: int = 0, *, board: Any = None) -> None:
        """Two configurations (ids or prefixes): parameters, leaderboard scores, runs on one sample.

        ``board`` is a leaderboard frame already at hand (default: read it now).
        """
        if board is None:
            board = self.wb.leaderboard(self.experiment, include_rejected=True)
        self._board = board
        config_a, config_b = (_resolve(board, c) for c in (config_a, config_b))
        runs_a = self.wb.runs(self.experiment, config=config_a)
        runs_b = self.wb.runs(self.experiment, config=config_b)
        self._pairs = pair_runs(runs_a, runs_b)
        if not self._pairs:
            self.clear(f"{short(config_a)} and {short(config_b)} have no finished run on a common sample yet.")
            return
        self._configs, self._runs = (config_a, config_b), None
        self.samples = [{"index": i, "label": f"sample #{a.get('sample_index')}" + (f" · repeat {a['repeat']}" if a.get("repeat") else "")}
                        for i, (a, _) in enumerate(self._pairs)]
        self._show_pair(min(max(0, sample), len(self._pairs) - 1))

    def _show_pair(self, index: int) -> None:
        assert self._configs is not None
        board = self._board
        rows = {r["full_config_id"]: r for r in board.to_dict("records")}
        a, b = (self.wb.run_detail(r["id"]) for r in self._pairs[index])
        self.sample = index
        left, right = (self._config_side(cid, rows.get(cid), run) for cid, run in zip(self._configs, (a, b), strict=True))
        varied, _, _ = classify_columns(board)
        head = section("configuration", *(mapping_text({k: rows[c].get(k) for k in varied} if c in rows else {})
                                          for c in self._configs))
        self._show(a, b, left, right, extra=[head])

    def _config_side(self, config_id: str, row: dict[str, Any] | None, run: dict[str, Any]) -> dict[str, Any]:
        side = run_side(run, title=f"config {short(config_id)}")
        if row is not None:
            side["subtitle"] = (f"score {fmt_score(row.get('score'))} (n={fmt_int(row.get('n'))}, "
                                f"95% CI {fmt_interval(row.get('ci_low'), row.get('ci_high'))}) · "
                                f"this run {fmt_score(run.get('score'))} on sample #{run.get('sample_index')}")
        return side

    def _show(self, a: dict[str, Any], b: dict[str, Any], left: dict[str, Any], right: dict[str, Any],
              extra: list[dict[str, Any]] | None = None) -> None:
        self.left, self.right = clean(left), clean(right)
        self.sections = (extra or []) + run_sections(a, b)
        self.hint = ""

    # -- messages -------------------------------------------------------------
    def _on_sample(self, index: int) -> None:
        if self._configs is None or not 0 <= int(index) < len(self._pairs):
            raise ValueError("no such sample in this comparison")
        self._show_pair(int(index))

    def _on_swap(self) -> None:
        if self._configs is not None:
            self.compare_configs(self._configs[1], self._configs[0], self.sample, board=self._board)
        elif self._runs is not None:
            self.compare_runs(self._runs[1], self._runs[0])


def _resolve(board: Any, ref: str) -> str:
    """The full id of a configuration on the leaderboard from an id or a prefix of one."""
    found = [c for c in board["full_config_id"] if str(c).startswith(ref)] if len(board) else []
    if len(found) != 1:
        raise ValueError(f"configuration {ref!r} {'is ambiguous' if found else 'is not on the leaderboard'}")
    return str(found[0])
