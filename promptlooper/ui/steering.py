"""Steering controls: pause, resume, stop, fork, redirect, approve, reject, each through the facade.

Steering is state in the store, so this view polls ``Workbench.status`` about once a second
and shows what any process (the CLI, an agent over MCP, another notebook) did to the sweep.
Fork and redirect take the edited parameters / space as JSON or YAML text, parsed here.
"""

from __future__ import annotations

from typing import Any

import traitlets

from ..store.liveness import WORKERS
from ..store.sweeps import read_steering_request, request_queue
from ._assets import asset, esm
from ._base import PLWidget, Reader, every, experiment_key
from ._format import dump_mapping, fmt_int, fmt_value, parse_mapping, short
from .leaderboard import classify_columns

ACTIONS = ("pause", "resume", "stop", "fork", "redirect", "approve", "reject")
STRATEGIES = ("grid", "random", "guided")
LIVE = ("running", "paused")


def available_actions(wb: Any) -> dict[str, bool]:
    """Which steering verbs this Workbench offers (older ones lack fork / redirect / decisions)."""
    return {a: callable(getattr(wb, a, None)) for a in ACTIONS}


def status_view(status: dict[str, Any]) -> dict[str, Any]:
    """What the controls need from ``Workbench.status``: state, counts, and which verbs apply now."""
    sweep = status.get("sweep") or {}
    state = sweep.get("status") or "no sweep"
    # A sweep's own process takes its requests off the queue; a workers' sweep keeps them as a log.
    queue = [] if sweep.get("owner_host") == WORKERS else request_queue(sweep.get("requested"))
    requested = read_steering_request(queue[-1])[0] if queue else ""  # the latest request waiting
    text = state if state == "no sweep" else f"{state} · {fmt_int(sweep.get('done'))} / {fmt_int(sweep.get('total'))} runs"
    if requested and state in LIVE:
        text += f" · {requested} requested"
    if sweep.get("stop_reason") not in (None, "", "requested") and state in ("paused", "stopped"):
        text += f" · {sweep['stop_reason']}"
    return {
        "state": state, "text": text, "requested": requested,
        "can": {"pause": state == "running", "resume": state == "paused", "stop": state in LIVE},
    }


def fork_changes(edited: dict[str, Any], varied: dict[str, Any]) -> dict[str, Any]:
    """Only the values the user changed (a list means: sweep these values in the fork)."""
    return {k: v for k, v in edited.items() if k not in varied or varied[k] != v}


class Steering(PLWidget):
    """Buttons and editors that steer the experiment's sweep."""

    _esm = esm("steering")
    _css = asset("steering", "widget.css")

    status = traitlets.Dict().tag(sync=True)
    available = traitlets.Dict().tag(sync=True)
    selected = traitlets.Dict().tag(sync=True)  # {id, short, params}
    fork_text = traitlets.Unicode("").tag(sync=True)  # prefill: the selected configuration's values
    space_text = traitlets.Unicode("").tag(sync=True)  # prefill: the experiment's current space
    forks = traitlets.List().tag(sync=True)
    best = traitlets.Dict().tag(sync=True)  # {id, short, params}: what a fork starts from when nothing is ticked

    STEERING = frozenset({"pause", "resume", "stop", "fork", "redirect", "approve", "reject"})

    def __init__(self, wb: Any, experiment: Any, *, poll: float = 1.0, live: bool = True,
                 readonly: bool | None = None, by: str = "", slot: str = ""):
        super().__init__(readonly=readonly, slot=slot)
        self.wb = wb
        self.experiment = experiment_key(experiment)
        self.by = by
        self.fork_handles: dict[str, Any] = {}
        self._reader = Reader(wb)
        self._space: Any = None
        self._selected_varied: dict[str, Any] = {}
        self.available = available_actions(wb)
        self.apply_status(wb.status(self.experiment))
        self._apply_space(wb.experiment(self.experiment)["spec"].get("space") or {})
        if live:
            self._start_loop((wb.db_path, self.experiment), every(poll, self._poll, self._reader.changes(self.experiment)))

    async def _poll(self) -> bool:
        self.apply_status(await self._reader.call("status", self.experiment))
        exp = await self._reader.call("experiment", self.experiment)
        self._apply_space(exp["spec"].get("space") or {})
        return self._closed

    def apply_status(self, status: dict[str, Any]) -> None:
        view = status_view(status)
        if view != self.status:
            self.status = view

    def _apply_space(self, space: dict[str, Any]) -> None:
        if space != self._space:  # changed here or elsewhere (e.g. redirected over MCP)
            self._space = space
            self.space_text = dump_mapping(space)

    def offer_best(self, config_id: str | None, varied: dict[str, Any] | None = None) -> None:
        """The leaderboard's best configuration: the fork box shows its values while no row is ticked
        (the fork then starts from it), so the box never reads empty under "fork uses the best"."""
        self._best = (config_id, dict(varied or {})) if config_id else None
        self.best = {"id": config_id, "short": short(config_id),
                     "params": ", ".join(f"{k} = {fmt_value(v)}" for k, v in (varied or {}).items())} if config_id else {}
        if not self.selected:
            self.fork_text = dump_mapping(dict(varied or {})) if config_id else ""

    def select(self, config_id: str | None, varied: dict[str, Any] | None = None, *, ticked: int = 1) -> None:
        """The configuration that fork / approve / reject act on (the dashboard's selected row);
        ``ticked`` says how many rows are ticked, so the view can say which one it acts on."""
        if not config_id:
            best = getattr(self, "_best", None)
            self.selected, self._selected_varied = {}, {}
            self.fork_text = dump_mapping(best[1]) if best else ""
            return
        if varied is None:
            board = self.wb.leaderboard(self.experiment, include_rejected=True)
            cols, _, _ = classify_columns(board)
            row = next((r for r in board.to_dict("records") if str(r["full_config_id"]).startswith(config_id)), None)
            if row is None:
                raise ValueError(f"configuration {short(config_id)} is not on the leaderboard")
            config_id, varied = str(row["full_config_id"]), {k: row[k] for k in cols}
        self.selected = {"id": config_id, "short": short(config_id), "ticked": ticked,
                         "params": ", ".join(f"{k} = {fmt_value(v)}" for k, v in varied.items())}
        self._selected_varied = dict(varied)
        self.fork_text = dump_mapping(varied)

    # -- messages -------------------------------------------------------------
    def _on_pause(self, reason: str = "") -> None:
        self._steer("pause", reason)

    def _on_resume(self) -> None:
        self._steer("resume")

    def _on_stop(self, reason: str = "") -> None:
        self._steer("stop", reason)

    def _steer(self, verb: str, reason: str = "") -> None:
        # through the store, like every other process: the sweep applies it within its poll
        args = (reason,) if reason and verb != "resume" else ()
        getattr(self.wb, verb)(self.experiment, *args)
        self.notice = f"{verb} requested"
        self.apply_status(self.wb.status(self.experiment))

    def _on_approve(self, reason: str = "") -> None:
        self._decide("approve", reason)

    def _on_reject(self, reason: str = "") -> None:
        self._decide("reject", reason)

    def _decide(self, verb: str, reason: str) -> None:
        if not self.selected:
            raise ValueError("select a configuration first")
        self._require(verb)
        getattr(self.wb, verb)(self.experiment, self.selected["id"], by=self.by, reason=reason)
        self.notice = f"{'approved' if verb == 'approve' else 'rejected'} {self.selected['short']}"

    def _on_fork(self, changes: str = "", name: str = "", start: bool = False, strategy: str = "") -> None:
        self._require("fork")
        edited = parse_mapping(changes, "fork parameters")
        varied = self._selected_varied if self.selected else {}
        child = self.wb.fork(self.experiment, self.selected.get("id") or None, fork_changes(edited, varied),
                             name=name.strip() or None)
        self.forks = [*self.forks, child.key]
        if strategy and strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
        if start:
            # The start control's strategy: grid, random or guided (the space from the fork's changes).
            self.fork_handles[child.key] = self.wb.start(child, strategy=strategy or None)
        self.notice = f"forked {child.key}" + (f" and started a {strategy or child.strategy} sweep" if start else "")

    def _on_redirect(self, space: str = "") -> None:
        self._require("redirect")
        result = self.wb.redirect(self.experiment, parse_mapping(space, "space"))
        self._apply_space(result.get("space") or self._space)
        n = result.get("configurations")
        self.notice = "redirected" + (f": {n} configurations" if n is not None else "") + \
            ("" if result.get("live", True) else " (no live sweep: applies to the next run)")

    def _require(self, verb: str) -> None:
        if not self.available.get(verb):
            raise NotImplementedError(f"this PromptLooper has no Workbench.{verb}")
