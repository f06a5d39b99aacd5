"""Output matrix view: samples down, configurations (or any variable's values) across, a run's
output in each cell with its score colour, a pass / fail badge per scorer and its human rating.

Design: :meth:`Workbench.matrix` (the facade, :mod:`promptlooper.matrix`) does all filtering and
search; this view keeps the filters, the page and the picked cells, and sends the browser only
the page on screen (``page_rows`` samples x ``page_cols`` columns), so the DOM stays the same
size at 200 configurations x 100 samples. The browser patches that page by key (cell = sample +
column), so a live sweep filling cells in does not rebuild what the user is looking at.

Clicking a cell opens the run (``detail``); picking two cells fills ``diff`` with the sections of
:func:`promptlooper.ui.diff.run_sections`. Thumbs / stars in a cell go through ``wb.rate`` and
are refused in read-only mode (where the browser does not draw them either).
"""

from __future__ import annotations

import getpass
import math
from typing import Any

import traitlets

from ._assets import asset, esm
from ._base import TERMINAL, PLWidget, Reader, every, experiment_key
from ._format import clean, fmt_score, short
from .diff import run_sections, run_side
from .matrix_export import export_text

PAGE_ROWS = 20
PAGE_COLS = 8
MAX_OUTPUT = 400  # characters of an output shown in a cell; the run view shows it all
HUMAN = ("human_thumbs", "human_stars")
FILTER_KEYS = ("differ", "failures", "where", "score", "search")
SORTS = ("", "score", "-score")  # as read (sample / column order), lowest mean score first, highest first


def ordered(cells: Any, key: str, names: list[str], sort: str) -> list[str]:
    """``names`` (samples or columns of ``cells[key]``) in ``sort`` order of their mean score;
    names without a score go last, ties keep the matrix's order."""
    if not sort:
        return names
    means = cells.groupby(key, sort=False)["score"].mean().to_dict()
    sign = -1.0 if sort == "-score" else 1.0

    def rank(item: tuple[int, str]) -> tuple[bool, float, int]:
        i, name = item
        mean = means.get(name)
        missing = mean is None or mean != mean  # NaN: no scored run
        return missing, 0.0 if missing else sign * float(mean), i

    return [name for _, name in sorted(enumerate(names), key=rank)]


def tone(score: Any, failed: bool) -> str:
    """The cell's colour class: a failed run, no score yet, or the score's band."""
    if failed:
        return "failed"
    if score is None or (isinstance(score, float) and math.isnan(score)):
        return "none"
    return "good" if score >= 0.75 else "mid" if score >= 0.5 else "bad"


def check_filters(given: dict[str, Any], params: dict[str, list[Any]]) -> dict[str, Any]:
    """The filters as :meth:`Workbench.matrix` takes them, from what the browser sent."""
    out: dict[str, Any] = {}
    unknown = set(given) - set(FILTER_KEYS)
    if unknown:
        raise ValueError(f"unknown filter {sorted(unknown)[0]!r}; filters are {', '.join(FILTER_KEYS)}")
    if given.get("differ"):
        out["differ"] = True
    if given.get("failures"):
        out["failures"] = True
    where = {k: v for k, v in (given.get("where") or {}).items() if v not in (None, "", [])}
    for k, v in where.items():
        if k not in params:
            raise ValueError(f"{k!r} is not a varied parameter")
        known = {str(x): x for x in params[k]}  # the browser sends values as text
        values = v if isinstance(v, list) else [v]
        out.setdefault("where", {})[k] = [known.get(str(x), x) for x in values]
    score = given.get("score")
    if score not in (None, [], ""):
        low, high = (float(x) for x in score)
        if not low <= high:
            raise ValueError("score range: low must not be above high")
        out["score"] = [low, high]
    search = str(given.get("search") or "").strip()
    if search:
        out["search"] = search
    return out


class MatrixView(PLWidget):
    """The output matrix of one experiment, filtered, searched and paged in Python."""

    _esm = esm("matrix")
    _css = asset("matrix", "widget.css")

    by = traitlets.Unicode("config").tag(sync=True)
    choices = traitlets.List().tag(sync=True)  # what ``by`` can be: "config" and the varied parameters
    params = traitlets.List().tag(sync=True)  # [{name, values}] for the parameter filters
    filters = traitlets.Dict().tag(sync=True)
    columns = traitlets.List().tag(sync=True)  # the page's columns: [{key, label}]
    rows = traitlets.List().tag(sync=True)  # the page's samples: [{key, label, cells: [...]}]
    page = traitlets.Dict().tag(sync=True)  # {row, rows, col, cols, page_rows, page_cols}
    sort = traitlets.Dict({"rows": "", "cols": ""}).tag(sync=True)  # each one of SORTS
    summary = traitlets.Unicode("").tag(sync=True)
    detail = traitlets.Dict().tag(sync=True)  # the opened run
    picked = traitlets.List().tag(sync=True)  # run ids picked for the diff (at most two)
    diff = traitlets.Dict().tag(sync=True)  # {left, right, sections} of the two picked runs
    download = traitlets.Dict().tag(sync=True)  # {name, mime, text, n}: the browser saves it

    STEERING = frozenset({"rate"})

    def __init__(self, wb: Any, experiment: Any, *, by: str = "config", readonly: bool | None = None,
                 page_rows: int = PAGE_ROWS, page_cols: int = PAGE_COLS, rater: str | None = None, slot: str = ""):
        super().__init__(readonly=readonly, slot=slot)
        self.wb = wb
        self.experiment = experiment_key(experiment)
        self.by = by
        self.page_rows, self.page_cols = max(1, page_rows), max(1, page_cols)
        self.rater = rater if rater is not None else (getattr(wb, "actor", "") or _user())  # the Workbench's actor
        self._row = self._col = 0
        self._downloads = 0
        self._reader = Reader(wb)
        self._matrix: Any = None
        self._labels: dict[str, str] = {}  # configuration short id -> its varied values
        self.refresh()

    # -- reading ------------------------------------------------------------
    def refresh(self) -> None:
        """Read the matrix again (filters kept) and redraw the page."""
        self._show(self._read(self.wb))

    def _read(self, wb: Any) -> Any:
        return wb.matrix(self.experiment, by=self.by, **self.filters)

    def _show(self, m: Any) -> None:
        self._matrix = m
        if not self.params or not set(m.columns) <= set(self._labels) | {None}:  # first read, or new configurations
            self._describe(self.wb.runs(self.experiment, as_frame=True))
        self._row = min(self._row, max(0, len(m.samples) - 1))
        self._col = min(self._col, max(0, len(m.columns) - 1))
        self._draw()

    def _describe(self, frame: Any) -> None:
        """Parameter filters, the choices of ``by``, and each configuration's varied values (its
        column's subtitle): read from the runs table once, and again when configurations appear."""
        names = frame.attrs.get("params", [])
        self.params = [{"name": p, "values": clean(sorted(frame[p].dropna().unique().tolist(), key=str))} for p in names]
        self.choices = ["config", *names]
        configs = frame.drop_duplicates("config_id")
        self._labels = {short(str(r["config_id"])): " · ".join(f"{p}={clean(r[p])}" for p in names)
                        for r in configs.to_dict("records")}

    def _draw(self) -> None:
        m = self._matrix
        samples = ordered(m.cells, "sample_id", m.samples, self.sort["rows"])[self._row:self._row + self.page_rows]
        cols = ordered(m.cells, "column", m.columns, self.sort["cols"])[self._col:self._col + self.page_cols]
        cells = m.cells[m.cells["sample_id"].isin(samples) & m.cells["column"].isin(cols)]
        badges = [s for s in m.scorers if s not in HUMAN]
        rated = self._ratings(cells) if any(s in m.scorers for s in HUMAN) else {}
        by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for rec in cells.to_dict("records"):
            by_key.setdefault((rec["sample_id"], rec["column"]), []).append(rec)
        picked = set(self.picked)
        rows = []
        for sid in samples:
            runs = [by_key.get((sid, c)) for c in cols]
            index = next((r[0]["sample_index"] for r in runs if r), None)
            rows.append({"key": sid, "label": f"#{clean(index)}", "title": f"sample {sid}",
                         "cells": [self._cell(sid, c, r, badges, rated, picked) for c, r in zip(cols, runs, strict=True)]})
        by_config = m.by in ("config", "config_id")
        self.columns = [{"key": c, "label": c, "detail": self._labels.get(c, "") if by_config else ""} for c in cols]
        self.rows = rows
        self.page = {"row": self._row, "rows": len(m.samples), "col": self._col, "cols": len(m.columns),
                     "page_rows": self.page_rows, "page_cols": self.page_cols}
        self.summary = (f"{len(m.samples)} samples x {len(m.columns)} {'configurations' if m.by in ('config', 'config_id') else m.by}"
                        f" · {len(m.cells)} runs shown")

    def _cell(self, sid: str, col: str, runs: list[dict[str, Any]] | None, badges: list[str],
              rated: dict[str, dict[str, Any]], picked: set[str]) -> dict[str, Any]:
        key = f"{sid}\x1f{col}"
        if not runs:
            return {"key": key, "empty": True}
        run = runs[0]
        failed = run["status"] == "failed"
        output = str(run["output"] if run["output"] is not None and run["output"] == run["output"] else run["error"] or "")
        score = clean(run["score"])
        human = rated.get(run["run_id"], {})
        return {
            "key": key, "run_id": run["run_id"], "status": run["status"], "tone": tone(score, failed),
            "score": fmt_score(score), "output": output[:MAX_OUTPUT] + ("…" if len(output) > MAX_OUTPUT else ""),
            "badges": [{"scorer": s, "passed": bool(run[f"passed:{s}"])} for s in badges],
            "repeats": len(runs), "picked": run["run_id"] in picked,
            "thumbs": human.get("thumbs"), "stars": human.get("stars"),
        }

    def _ratings(self, cells: Any) -> dict[str, dict[str, Any]]:
        """Human ratings of the page's runs (a page is small: at most page_rows x page_cols)."""
        done = cells[cells["status"].isin(["completed", "cached"])]
        return {rid: self.wb.ratings(rid) for rid in done["run_id"]}

    # -- live ---------------------------------------------------------------
    def follow(self, handle: Any = None, interval: float = 1.0) -> None:
        """Re-read every ``interval`` s in a worker thread until the sweep ends (``handle``, or
        the stored sweep state); the browser patches the cells that changed."""
        async def step() -> bool:
            # whether the sweep had ended is asked BEFORE the read, so the last read sees its last runs
            ended = bool(handle.done()) if handle is not None else \
                await self._reader.run(lambda ro: ro.status(self.experiment).get("status") in TERMINAL)
            m = await self._reader.run(self._read)
            if self._closed:
                return True
            self._show(m)
            return ended

        self._start_loop(("matrix", self.experiment), every(interval, step, self._reader.changes(self.experiment)))

    def filter(self, **given: Any) -> None:
        """Narrow the matrix from a notebook as the browser does: ``differ``, ``failures``,
        ``where={param: value}``, ``score=(low, high)``, ``search``; ``None`` clears one."""
        self._on_filter(**given)

    # -- messages -------------------------------------------------------------
    def _on_filter(self, **given: Any) -> None:
        params = {p["name"]: p["values"] for p in self.params}
        self.filters = check_filters({**self.filters, **given}, params)
        self._row = self._col = 0
        self.refresh()

    def _on_clear(self) -> None:
        self.filters = {}
        self.refresh()

    def _on_by(self, by: str) -> None:
        if by not in self.choices:
            raise ValueError(f"cannot put {by!r} across; choose one of {', '.join(self.choices)}")
        self.by, self._col = by, 0
        self.refresh()

    def _on_page(self, row: int | None = None, col: int | None = None) -> None:
        m = self._matrix
        if row is not None:
            self._row = max(0, min(int(row), max(0, len(m.samples) - self.page_rows)))
        if col is not None:
            self._col = max(0, min(int(col), max(0, len(m.columns) - self.page_cols)))
        self._draw()

    def _on_sort(self, rows: str | None = None, cols: str | None = None) -> None:
        """Order samples and / or columns by their mean score (``score`` lowest first, ``-score``
        highest first, ``""`` as read); the page goes back to the start."""
        for value in (rows, cols):
            if value is not None and value not in SORTS:
                raise ValueError(f"sort by one of {SORTS}, not {value!r}")
        self.sort = {"rows": self.sort["rows"] if rows is None else rows, "cols": self.sort["cols"] if cols is None else cols}
        self._row = self._col = 0
        self._draw()

    def _on_open(self, run_id: str) -> None:
        d = self.wb.run_detail(run_id)
        stage = (d.get("stages") or [{}])[-1]
        side = run_side(d)
        side["scores"] = [s for s in side["scores"] if s["source"] != "human"]  # a rating shows as thumbs / stars
        self.detail = clean({**side, "id": d["id"], "output": d.get("output") or d.get("error") or "",
                             "prompt": "\n".join(f"{m.get('role', '')}: {m.get('content', '')}" for m in stage.get("prompt_sent") or []
                                                 if isinstance(m, dict)),
                             "ratable": d.get("status") in ("completed", "cached"), **self.wb.ratings(d["id"])})

    def _on_close(self) -> None:
        self.detail = {}

    def _on_pick(self, run_id: str) -> None:
        picked = [r for r in self.picked if r != run_id] if run_id in self.picked else [*self.picked, run_id][-2:]
        self.picked = picked
        if len(picked) == 2:
            a, b = (self.wb.run_detail(r) for r in picked)
            self.diff = clean({"left": run_side(a), "right": run_side(b), "sections": run_sections(a, b)})
        else:
            self.diff = {}
        self._draw()

    def _on_rate(self, run_id: str, thumbs: Any = None, stars: Any = None) -> None:
        stars = int(stars) if stars not in (None, "") else None
        self.wb.rate(run_id, thumbs=thumbs or None, stars=stars, by=self.rater)
        self.notice = f"rated run {short(run_id, 8)}"
        if self.detail.get("id") == run_id:
            self._on_open(run_id)
        self.refresh()

    def _on_export(self, fmt: str) -> None:
        name, mime, body = export_text(self._matrix, self.experiment, fmt, self.filters)
        self._downloads += 1
        self.download = {"name": name, "mime": mime, "text": body, "n": self._downloads}


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        return ""
