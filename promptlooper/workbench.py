"""The Python API: one facade that the CLI, the widgets, the dashboards and the MCP server share.

    >>> import promptlooper as pl
    >>> wb = pl.Workbench("promptlooper.db")
    >>> exp = pl.load_experiment("examples/quickstart.yaml")
    >>> wb.run(exp)                      # scripts: blocks until done
    >>> handle = wb.start(exp)           # notebooks: runs on the kernel loop; `await handle`
    >>> wb.leaderboard(exp.key)          # a pandas DataFrame

Nothing here knows about SQL or HTTP: it validates, plans and delegates to the store and engine.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from . import compiled, keys, sizing
from . import leaderboard as _leaderboard
from .actors import actor_of, configured, default_actor
from .asyncutil import run_sync
from .bounds import SweepSize
from .compiled import CompiledExperiment, compile_experiment, problems_of
from .definitions import definition_of
from .engine.handle import SweepHandle
from .engine.progress import Progress
from .engine.sweep import Sweep, SweepOptions
from .env_files import load_env_files
from .errors import EndpointError, NotFoundError, Problem, SpecError, SweepConflictError
from .functions import add_search_dir
from .providers.registry import LOCAL, EndpointPool
from .scoring import weights_of
from .spec import EndpointSpec, Experiment, parse_endpoint
from .store import Store, default_path, open_store
from .store.batchwriter import wait_for_writers
from .validation import load_file, validate
from .webhooks import CourierThread

if TYPE_CHECKING:
    import pandas as pd  # a sweep and the CLI never import pandas: notebooks' frames build it lazily

    from .matrix import Matrix
    from .workers.following import WorkersHandle

# What only other commands use (steering, workers, guided search, ask / tell, exports, housekeeping,
# data views) is imported by the methods that use it: a sweep from the command line never needs it,
# and importing it all cost 1-9 ms of CPU before the first call (measured in fresh processes, median of 20-25).


class Workbench:
    """PromptLooper on one database file (default ``./promptlooper.db`` or ``$PROMPTLOOPER_DB``).

    One class, every front end's API: each method resolves references (an experiment key or
    object, a run id prefix) and delegates to a module that takes the store, a compiled
    experiment or plain values, never the facade: :mod:`promptlooper.steering` (pause, resume,
    stop, redirect, fork, approve, reject, budgets), :mod:`promptlooper.asktell` (ask / tell /
    evaluate), :mod:`promptlooper.housekeeping`, :mod:`promptlooper.data_views` (matrix, group by,
    sweep analysis), :mod:`promptlooper.compiled` (what a sweep or a plan runs).
    """

    def __init__(self, db: str | os.PathLike[str] | None = None, *, readonly: bool = False, create: bool = True,
                 actor: str | None = None):
        self.db_path = str(db or default_path())
        # Who acts through this workbench, recorded with what it starts, steers, decides, rates and
        # notes (promptlooper.actors): given, else $PROMPTLOOPER_USER, else the OS user. named_actor
        # is "" in that last case: a service (the MCP server) then uses a name of its own instead.
        self.named_actor = (actor or "").strip() or configured()
        self.actor = self.named_actor or default_actor()
        self.readonly = readonly
        self.create = create  # False: a missing database file is an error, not a new empty one
        self._store: Store | None = None
        self._handles: dict[str, SweepHandle] = {}
        self._specs: dict[str, Experiment] = {}  # experiments seen in this process (with their callables)
        self._lock = threading.Lock()
        self._courier: CourierThread | None = None  # webhook deliveries of this process, started on need

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.db_path, readonly=self.readonly, create=self.create)  # type: ignore[assignment]
        return self._store

    def close(self) -> None:
        if self._store is not None and not self.readonly:
            self._webhook_courier()  # events this process raised, if any webhook wants them
        with self._lock:
            courier, self._courier = self._courier, None
        if courier is not None:
            courier.close()  # what is due goes out now; retries stay queued for the next process
        if self._store is not None:
            # Sweeps return once their results are committed; their writer processes may still be
            # checkpointing the file. After close, nothing of this workbench touches it any more.
            wait_for_writers(self._store.path)
            self._store.close()
            self._store = None

    # ------------------------------------------------------------------ endpoints
    def pool(self, exp: Experiment | None = None) -> EndpointPool:
        # Keys may come from a .env next to the experiment or in the working folder (never stored).
        load_env_files(exp.base_dir if exp else None, os.getcwd())
        prices = {k: tuple(v) for k, v in (self.store.get_setting("prices", {}) or {}).items()}
        return EndpointPool(self.store.endpoints(), exp.endpoints if exp else None, prices,  # type: ignore[arg-type]
                            grants=keys.KeyGrants(self.store))

    def add_endpoint(self, name: str, base_url: str, *, api_key_env: str | None = None, max_concurrency: int = 32,
                     timeout: float = 60.0, max_retries: int = 6, prices: dict[str, tuple[float, float]] | None = None) -> dict[str, Any]:
        """Add or update an OpenAI-compatible endpoint. The key is referenced by variable name only."""
        if name == LOCAL:
            raise EndpointError("'local' is the embedded model's endpoint; choose another name")
        spec = EndpointSpec(base_url=base_url, api_key_env=api_key_env, max_concurrency=max_concurrency,
                            timeout=timeout, max_retries=max_retries, prices=prices or {})
        self.store.save_endpoint(name, spec.model_dump())
        keys.grant(self.store, api_key_env, spec.base_url)  # the operator's registration (not an MCP client's)
        return self.pool().describe(name)

    def remove_endpoint(self, name: str) -> None:
        self.store.delete_endpoint(name)

    def endpoints(self) -> list[dict[str, Any]]:
        pool = self.pool()
        return [pool.describe(n) for n in pool.names()]

    def test_endpoint(self, name: str) -> list[str]:
        """Reach the endpoint and list its models (EndpointError says why it failed)."""
        pool = self.pool()

        async def go() -> list[str]:
            try:
                return await pool.provider(name).list_models()
            finally:
                await pool.aclose()

        return run_sync(go())  # type: ignore[no-any-return]

    def set_price(self, model: str, input_per_million: float, output_per_million: float) -> None:
        prices = self.store.get_setting("prices", {}) or {}
        prices[model] = [input_per_million, output_per_million]
        self.store.set_setting("prices", prices)

    # ------------------------------------------------------------------ experiments
    def create_project(self, name: str, description: str = "") -> str:
        """A workspace grouping experiments (created on first use by an experiment anyway)."""
        return self.store.upsert_project(name, description)

    def validate(self, exp: Experiment | str | os.PathLike[str]) -> list[Problem]:
        """Every problem of an experiment (or experiment file), with field paths; [] if runnable."""
        if not isinstance(exp, Experiment):
            try:
                exp = self.load_file(exp)
            except SpecError as exc:
                return exc.problems
        return problems_of(exp, self.pool(exp))[1]

    def load_file(self, path: str | os.PathLike[str]) -> Experiment:
        """An experiment file, read and parsed once, for the caller to validate and run as one object.

        A file that does not parse raises SpecError with every problem: those of the parse, and
        those :meth:`validate` finds in the parts that did parse.
        """
        try:
            return load_file(path)
        except SpecError as exc:
            partial = getattr(exc, "partial", None)
            if partial is None:
                raise
            seen = {(p.path, p.message) for p in exc.problems}
            more = [p for p in self.validate(partial) if (p.path, p.message) not in seen]
            raise SpecError(exc.problems + more) from exc

    def configurations(self, exp: Experiment, *, strategy: str | None = None, max_configs: int | None = None,
                       seed: int | None = None) -> list[Any]:
        return compiled.configurations(exp, strategy=strategy, max_configs=max_configs, seed=seed)

    def configuration_count(self, exp: Experiment, *, strategy: str | None = None,
                            max_configs: int | None = None) -> int:
        """How many configurations :meth:`configurations` gives, counted without building them."""
        return compiled.configuration_count(exp, strategy=strategy, max_configs=max_configs)

    def sweep_size(self, exp: Experiment | CompiledExperiment, *, strategy: str | None = None,
                   max_configs: int | None = None) -> SweepSize:
        """The calls and estimated cost a sweep would make, for asking before a large one starts
        (of a compiled experiment: its own strategy, configurations and samples)."""
        try:
            finished = len(self.store.finished_run_ids(self.store.experiment(exp.key)["id"]))
        except NotFoundError:
            finished = 0  # a new experiment: nothing finished yet
        if isinstance(exp, CompiledExperiment):
            return sizing.sweep_size(exp.experiment, exp.pool, exp.configuration_count(), finished, exp.sample_values)
        configs = self.configuration_count(exp, strategy=strategy, max_configs=max_configs)
        return sizing.sweep_size(exp, self.pool(exp), configs, finished)

    def register(self, exp: Experiment, *, parent_id: str | None = None) -> str:
        """Store (or update) the experiment's description; returns its id."""
        keys.grant_experiment(self.store, exp)
        experiment_id = self.store.upsert_experiment(exp.project, exp.name, exp.to_record(), exp.description, parent_id)
        # The operator's folder, for running it again from the store; an MCP client's experiment has none.
        self.store.set_experiment_folder(experiment_id, None if keys.acting_for_client() else exp.base_dir)
        return experiment_id

    def compile(self, exp: Experiment, **options: Any) -> CompiledExperiment:
        """``exp`` validated and prepared once for this workbench's endpoints (SpecError before any
        call); ``options``: strategy, max_configs, seed, concurrency, points."""
        return compile_experiment(exp, self.pool(exp), **options)

    def _prepare(self, exp: Experiment | CompiledExperiment, *, strategy: str | None, max_configs: int | None,
                 seed: int | None, concurrency: int | None, points: list[dict[str, Any]] | None = None,
                 options: SweepOptions | None = None) -> tuple[Sweep, str]:
        options = options or SweepOptions()
        options.actor = options.actor or self._by()  # who started it, in experiment.started
        # A compiled experiment (Workbench.compile) runs as compiled: its options were settled then.
        if isinstance(exp, CompiledExperiment):
            ready, exp = exp, exp.experiment
            max_configs, seed = ready.max_configs, ready.seed
        else:
            ready = self.compile(exp, strategy=strategy, max_configs=max_configs, seed=seed, concurrency=concurrency,
                                 points=points)
        experiment_id = self.register(exp)
        sample_ids = [sid for sid, _ in ready.samples]
        definition_id, definition = definition_of(exp, sample_ids)
        self.store.record_definition(experiment_id, definition_id, definition, sample_ids)
        self.store.add_configurations(experiment_id, ((c.id, c.as_record(), c.varied) for c in ready.configurations))
        self._specs[experiment_id] = exp

        def replan(space: dict[str, Any]) -> list[Any]:
            redirected = self._with_space(exp, space, ready.sample_values)
            return self.configurations(redirected, strategy=ready.strategy, max_configs=max_configs, seed=seed)

        driver = None
        if ready.guided:
            from .sweeps.guided import GuidedDriver, guided_defaults

            driver = GuidedDriver(exp, guided_defaults(exp, max_configs), ready.samples, exp.repeat, ready.seed,
                                  self.db_path, experiment_id, weights_of(exp.scorers))
        return Sweep(self.db_path, ready, experiment_id, options, replan=replan, driver=driver), experiment_id

    def _with_space(self, exp: Experiment, space: dict[str, Any], samples: list[dict[str, Any]] | None = None) -> Experiment:
        data = exp.model_dump(exclude={"stages"})
        data["stages"] = exp.stages
        data["space"] = space
        data["base_dir"] = exp.base_dir
        changed = Experiment.model_validate(data)
        problems = validate(changed, self.pool(changed), samples)
        if problems:
            raise SpecError(problems)
        return changed

    def start(self, exp: Experiment | CompiledExperiment, *, strategy: str | None = None, max_configs: int | None = None,
              seed: int | None = None, concurrency: int | None = None,
              on_progress: Callable[[Progress], None] | None = None, workers: bool = False,
              **worker_options: Any) -> SweepHandle | WorkersHandle:
        """Start a sweep in the background and return its handle.

        In a notebook it runs on the kernel's loop (``await handle`` to wait); starting the same
        experiment again stops the earlier sweep of this process first, so two loops never drive
        one experiment. ``workers=True``: queue it for ``promptlooper worker`` processes instead
        (any number, on any host reaching this database) and follow it through the store.
        """
        sweep, experiment_id = self._prepare(exp, strategy=strategy, max_configs=max_configs, seed=seed, concurrency=concurrency)
        if workers:
            return self._queue(sweep.compiled, experiment_id, on_progress, **worker_options)
        with self._lock:
            old = self._handles.get(experiment_id)
            if old is not None and not old.done():
                old.cancel()
        handle = SweepHandle(sweep, exp.key, experiment_id)
        if on_progress:
            handle.add_listener(on_progress)

        async def main() -> Progress:
            if old is not None and old._task is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(old._task), 30)
                except BaseException:  # noqa: BLE001 - the old sweep's fate is not ours
                    pass
            return await self._drive(sweep, exp.key)

        handle._start(main)
        with self._lock:
            self._handles[experiment_id] = handle
        return handle

    def _queue(self, ready: CompiledExperiment, experiment_id: str, on_progress: Callable[[Progress], None] | None = None,
               **options: Any) -> WorkersHandle:
        """Queue a compiled sweep for workers (``stop_on_budget``, ``unhealthy_timeout``, ``chunk_runs``)."""
        from .workers.following import WorkersHandle
        from .workers.queueing import queue_for_workers

        sweep_id = queue_for_workers(self.store, ready, experiment_id, **options)
        handle = WorkersHandle(self.db_path, sweep_id, ready.key, experiment_id, actor=self._by())
        if on_progress:
            handle.add_listener(on_progress)
        return handle

    def compile_stored(self, experiment_id: str, options: dict[str, Any]) -> CompiledExperiment:
        """A stored experiment compiled with the options a sweep of it was queued with (a worker's
        view of it): SpecError, or the import error of a Python stage or scorer, if it cannot be."""
        row = self.store.experiment(experiment_id)
        if "spec" in options:  # the spec the sweep was queued with (the row may have changed since)
            self._search_folder(row)
            exp = Experiment.model_validate({**options["spec"], "base_dir": row.get("folder")})
        else:
            exp = self._experiment_object(row)
        return self.compile(exp, strategy=options.get("strategy"), max_configs=options.get("max_configs"),
                            seed=options.get("seed"), concurrency=options.get("concurrency"), points=options.get("points"))

    async def sweep(self, exp: Experiment | CompiledExperiment, **options: Any) -> Progress:
        """Async form: run the sweep on the current loop and return its final progress.
        ``workers=True``: queue it for workers and follow it until they have finished it."""
        if options.pop("workers", False):
            sweep, experiment_id = self._prepare(exp, strategy=options.get("strategy"), max_configs=options.get("max_configs"),
                                                 seed=options.get("seed"), concurrency=options.get("concurrency"))
            handle = self._queue(sweep.compiled, experiment_id, stop_on_budget=bool(options.get("stop_on_budget")),
                                 unhealthy_timeout=options.get("unhealthy_timeout"), chunk_runs=options.get("chunk_runs"))
            for listener in options.get("listeners", []):
                handle.add_listener(listener)
            return await handle
        how = SweepOptions(stop_on_budget=bool(options.get("stop_on_budget")), unhealthy_timeout=options.get("unhealthy_timeout"),
                           listeners=list(options.get("listeners", [])))
        sweep, _ = self._prepare(exp, strategy=options.get("strategy"), max_configs=options.get("max_configs"),
                                 seed=options.get("seed"), concurrency=options.get("concurrency"), options=how)
        return await self._drive(sweep, exp.key)

    async def _drive(self, sweep: Sweep, key: str) -> Progress:
        """Run a sweep with webhook deliveries beside it, on their own thread (never in its way)."""
        courier = self._webhook_courier()
        if courier is not None:
            courier.hold()
        try:
            return await sweep.run()
        finally:
            if courier is not None:
                courier.release()

    def run(self, exp: Experiment | CompiledExperiment, **options: Any) -> Progress:
        """Sync form (scripts, CLI): blocks until the sweep ends."""
        return run_sync(self.sweep(exp, **options))  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ reading
    def experiment(self, ref: str | Experiment) -> dict[str, Any]:
        return self.store.experiment(_key(ref))

    def config_id(self, ref: str | Experiment, config: str | int) -> str:
        """The full id of one of the experiment's configurations: an id prefix, 'best', or a
        leaderboard rank (1 = best). NotFoundError says what there is instead."""
        from .stats import resolve_config  # stats imports numpy and pandas: only when asked

        return resolve_config(self.store, self.experiment(ref), config)

    def experiments(self, project: str | None = None, *, include_archived: bool = False) -> list[dict[str, Any]]:
        """Experiments (of one project), without archived ones unless ``include_archived``; each
        one's state as status() tells it: its latest sweep's."""
        rows = self.store.experiments(project, include_archived)
        for row in rows:
            sweep = self.store.settle_sweep(self.store.latest_sweep(row["id"]))
            if sweep:
                row["status"] = sweep["status"]
        return rows

    def leaderboard(self, ref: str | Experiment, *, sort: str | None = None, top: int | None = None,
                    include_rejected: bool = False, interval: str = "t", definition: int | None = None,
                    all_definitions: bool = False, as_frame: bool = True) -> pd.DataFrame | list[dict[str, Any]]:
        """Configurations ranked by weighted score over samples: n, mean, 95% interval ("t" or
        "bootstrap"), each scorer, tokens, cost, latency, failed runs and their most common
        reason, and whether each is distinguishable from the best (paired test over shared samples).

        The experiment as it is now is ranked; ``definition`` ranks an earlier one (a number from
        :meth:`definitions`), ``all_definitions`` every configuration and sample ever run.
        ``as_frame=False``: the same rows as dicts, without importing pandas (the CLI prints these)."""
        board = _leaderboard.leaderboard if as_frame else _leaderboard.board
        result = board(self.store, self.experiment(ref), sort=sort, top=top, include_rejected=include_rejected,
                       interval=interval, definition=definition, all_definitions=all_definitions)
        return result if as_frame else result.rows

    def dashboard(self, ref: str | Experiment, handle: SweepHandle | None = None, **options: Any) -> Any:
        """Every live view of the experiment in one widget (notebooks); see :mod:`promptlooper.ui`."""
        from . import ui  # anywidget and ipywidgets: imported when a notebook asks (start-up time)

        return ui.workbench(self, _key(ref), handle, **options)

    def definitions(self, ref: str | Experiment) -> list[dict[str, Any]]:
        """The experiment's definitions, oldest first: each time it ran with changed samples,
        stages, space or scorers. The last one is ``current`` (the one the leaderboard ranks)."""
        from .definitions import summary

        rows = self.store.definitions(self.experiment(ref)["id"])
        current = rows[-1]["number"] if rows else None
        return [summary(r, current) for r in rows]

    # ------------------------------------------------------------------ scores & rankings
    def rate(self, run: str, *, thumbs: str | None = None, stars: int | None = None, comment: str = "",
             by: str = "") -> dict[str, Any]:
        """A human rating of a run (thumbs up/down and/or 1-5 stars, with a comment)."""
        from .ratings import rate

        return rate(self.store, run, thumbs=thumbs, stars=stars, comment=comment, by=self._by(by))

    def ratings(self, run: str) -> dict[str, Any]:
        from .ratings import ratings

        return ratings(self.store, run)

    def rescore(self, ref: str | Experiment, scorers: list[Any] | None = None, *, model_calls: bool = True) -> dict[str, Any]:
        """Re-score every stored run (new or changed scorers) without calling a model again
        (judges take their calls from the cache when present; model_calls=False skips them)."""
        from .rescoring import rescore

        key = _key(ref)
        if isinstance(ref, Experiment):
            self.register(ref)  # the experiment's current scorers are what to score with
        self._search_folder(self.experiment(key))
        return rescore(self.store, key, scorers, model_calls=model_calls)

    def compare(self, ref: str | Experiment, config_a: str | int, config_b: str | int, *,
                scorer: str | None = None) -> dict[str, Any]:
        """A vs B: paired comparison over the samples both ran (difference, 95% interval, p-value)."""
        from .stats import compare

        return compare(self.store, _key(ref), config_a, config_b, scorer=scorer)

    def calibration(self, ref: str | Experiment, *, scorers: list[str] | None = None) -> pd.DataFrame:
        """Per judge: agreement with human ratings (Spearman rho, Cohen's kappa, n)."""
        from .stats import calibration

        return calibration(self.store, _key(ref), scorers=scorers)

    def status(self, ref: str | Experiment) -> dict[str, Any]:
        """The experiment's state, its run counts and its latest sweep. The state is the latest
        sweep's (running, paused, completed, stopped, or interrupted when its process is gone)."""
        exp = self.experiment(ref)
        sweep = self.store.settle_sweep(self.store.latest_sweep(exp["id"]))
        counts = self.store.run_counts(exp["id"])
        parent = None
        if exp.get("parent_id"):
            try:
                p = self.store.experiment(exp["parent_id"])
                parent = f"{p['project']}/{p['name']}"
            except NotFoundError:
                parent = exp["parent_id"]  # the parent was deleted: its id is all there is
        forks = [f"{f['project']}/{f['name']}" for f in self.store.forks(exp["id"])]
        started_by = json.loads(sweep.get("options") or "{}").get("started_by") if sweep else None
        return {"experiment": f"{exp['project']}/{exp['name']}", "id": exp["id"], "status": sweep["status"] if sweep else exp["status"],
                "started_by": started_by,
                "archived": bool(exp.get("archived_at")), "runs": counts, "sweep": sweep, "parent": parent, "forks": forks,
                "notes": [f"{n['created_at']}  {n['text']}" for n in self.store.notes(exp["project_id"])]}

    def run_detail(self, run_ref: str) -> dict[str, Any]:
        from .providers.tool_calls import parse

        run = self.store.run(run_ref)
        for stage in run["stages"]:  # a reply that called tools: its calls, readable (show RUN, MCP)
            reply = parse(stage.get("response_raw"))
            if reply is not None:
                stage["tool_calls"] = reply["tool_calls"]
        return run

    def runs(self, ref: str | Experiment, config: str | None = None, limit: int | None = None, *,
             as_frame: bool = False) -> Any:
        """The experiment's runs as dicts (``config``: an id prefix; ``limit``: the first N).

        ``as_frame=True``: ALL runs as one tidy DataFrame, one row per run with every varied
        parameter, every scorer, tokens, cost, latency, status and error as columns, in dtypes
        that ``to_parquet`` / ``to_csv`` take (see :mod:`promptlooper.runs_table`)."""
        if as_frame:
            from .runs_table import runs_frame

            df = runs_frame(self.store, self.experiment(ref))
            if config:
                df = df[df["config_id"].str.startswith(config)].reset_index(drop=True)
            return df.head(limit) if limit else df
        return self.store.runs(self.experiment(ref)["id"], config, limit)

    def events(self, ref: str | Experiment | None = None, types: list[str] | None = None, after_id: int = 0,
               limit: int | None = None) -> list[dict[str, Any]]:
        eid = self.experiment(ref)["id"] if ref is not None else None
        return self.store.events(eid, types, after_id, limit)

    def _experiment_object(self, row: dict[str, Any]) -> Experiment:
        """The Experiment behind a stored row: this process's object if known (it holds callables)."""
        if row["id"] in self._specs:
            return self._specs[row["id"]]
        self._search_folder(row)
        return Experiment.model_validate({**row["spec"], "base_dir": row.get("folder")})

    @staticmethod
    def _search_folder(row: dict[str, Any]) -> None:
        """Import paths of a stored experiment find the modules next to its file, as when the
        operator ran the file (never for an MCP client: see promptlooper.functions)."""
        if row.get("folder") and not keys.acting_for_client():
            add_search_dir(row["folder"])

    def load(self, ref: str) -> Experiment:
        """An experiment from the store as an Experiment object (function stages by registered name)."""
        return self._experiment_object(self.experiment(ref))

    # ------------------------------------------------------------------ planning & export
    def plan(self, exp: Experiment | CompiledExperiment, *, strategy: str | None = None, max_configs: int | None = None,
             seed: int | None = None) -> dict[str, Any]:
        from .planning import plan as _plan

        ready = exp if isinstance(exp, CompiledExperiment) else \
            self.compile(exp, strategy=strategy, max_configs=max_configs, seed=seed)
        # A guided search's configurations are decided as it goes: planned as the random points it may try.
        configs = ready.configurations or self.configurations(ready.experiment, strategy=ready.strategy,
                                                              max_configs=ready.max_configs, seed=ready.seed)
        return _plan(self.store, ready, configs)

    def export(self, ref: str | Experiment, format: str = "json") -> str:
        """The best configuration as json / yaml / env, or a markdown report. Never key values."""
        from .export import export as _export

        exp = self.experiment(ref)
        board = self.leaderboard(exp["id"])
        return _export(self.store, exp, board, format)

    # ------------------------------------------------------------------ steering (promptlooper.steering)
    def _by(self, by: str = "") -> str:
        """Who acts now: ``by`` if given, else the caller's context (an MCP tool call), else this workbench's actor."""
        return actor_of(by, self.actor)

    def pause(self, ref: str | Experiment, reason: str = "", *, by: str = "") -> dict[str, Any]:
        from . import steering

        return steering.steer(self.store, self.experiment(ref), "pause", reason, self._by(by))

    def resume(self, ref: str | Experiment, *, by: str = "") -> dict[str, Any]:
        from . import steering

        return steering.steer(self.store, self.experiment(ref), "resume", by=self._by(by))

    def stop(self, ref: str | Experiment, reason: str = "", *, by: str = "") -> dict[str, Any]:
        from . import steering

        return steering.steer(self.store, self.experiment(ref), "stop", reason, self._by(by))

    def redirect(self, ref: str | Experiment, space: dict[str, Any] | None = None, *,
                 changes: dict[str, Any] | None = None, by: str = "") -> dict[str, Any]:
        """Change the remaining space of a running sweep (runs already done stay and count).

        ``space`` replaces the whole space; ``changes`` replaces only the axes it names and keeps
        the others (what ``promptlooper redirect --set KEY=VALUES`` does). The new space is
        validated against the experiment first; with no live sweep it becomes the experiment's
        space for the next run.
        """
        from . import steering

        row = self.experiment(ref)
        exp = self._experiment_object(row)
        changed = self._with_space(exp, steering.new_space(exp, space, changes))  # raises SpecError with field paths
        live = steering.redirect(self.store, row, changed, self._by(by), shared=self._redirect_shared)
        self._events_raised()
        return {"experiment": f"{row['project']}/{row['name']}", "space": changed.to_record()["space"],
                "configurations": len(self.configurations(changed)), "live": live}

    def _redirect_shared(self, sweep: dict[str, Any], changed: Experiment, by: str) -> None:
        """Re-plan a workers' sweep: the new space compiled with the options it was queued with."""
        from .workers.replanning import redirect_shared

        options = {**json.loads(sweep.get("options") or "{}"), "spec": changed.to_record(), "points": None}
        if options.get("guided"):
            raise SweepConflictError("a guided search shared by workers decides its configurations from the space it was "
                                     "queued with: stop it, then queue the new space")
        redirect_shared(self.store, sweep, self.compile_stored(sweep["experiment_id"], options), by)

    def set_budget(self, ref: str | Experiment, *, max_tokens: int | None = None, max_cost: float | None = None,
                   by: str = "") -> dict[str, Any]:
        """Raise (or set) the budget of the live sweep; `resume` then continues a budget pause."""
        from . import steering

        row = self.experiment(ref)
        spec = self._experiment_object(row)
        budget = steering.set_budget(self.store, row, spec, self.pool(spec), max_tokens=max_tokens, max_cost=max_cost,
                                    by=self._by(by))
        self._events_raised()
        return budget

    def approve(self, ref: str | Experiment, config_id: str, *, by: str = "", reason: str = "") -> dict[str, Any]:
        """Mark a configuration good enough: it becomes the exported best."""
        return self._decide(ref, config_id, "approved", by, reason)

    def reject(self, ref: str | Experiment, config_id: str, *, by: str = "", reason: str = "") -> dict[str, Any]:
        """Exclude a configuration from the leaderboard (its runs are kept)."""
        return self._decide(ref, config_id, "rejected", by, reason)

    def clear_decision(self, ref: str | Experiment, config_id: str, *, by: str = "") -> dict[str, Any]:
        return self._decide(ref, config_id, None, by, "")

    def _decide(self, ref: str | Experiment, config_id: str, decision: str | None, by: str, reason: str) -> dict[str, Any]:
        from . import steering

        result = steering.decide(self.store, self.experiment(ref), config_id, decision, self._by(by), reason)
        self._events_raised()
        return result

    def fork(self, ref: str | Experiment, config_id: str | None = None, changes: dict[str, Any] | None = None, *,
             name: str | None = None) -> Experiment:
        """A new experiment from a configuration (default: the approved one, else the best) with changed parameters.

        ``changes`` maps space keys to a value (fixed) or a list of values (swept). Every call the
        fork shares with its parent is served from the cache.
        """
        from . import steering
        from .export import best_configuration

        row = self.experiment(ref)
        if config_id is None:
            try:  # the same choice as the export: the approved configuration when there is one
                config, _ = best_configuration(self.store, row, self.leaderboard(row["id"]))
            except NotFoundError:
                raise NotFoundError("the experiment has no scored configuration to fork from yet") from None
        else:
            config = self.store.configuration(row["id"], config_id)
        child = steering.fork_of(self.store, self._experiment_object(row), config, changes, name)
        problems = self.validate(child)
        if problems:
            raise SpecError(problems)
        child_id = self.register(child, parent_id=row["id"])
        self._specs[child_id] = child
        steering.record_fork(self.store, row, child, child_id, config["id"], changes, self._by())
        self._events_raised()
        return child

    def request_human(self, ref: str | Experiment, reason: str, context: dict[str, Any] | None = None) -> int:
        """Raise the human_needed event (shown in notebooks, dashboards and webhooks)."""
        event_id = self.store.add_event(self.experiment(ref)["id"], "human_needed",
                                        {"reason": reason, "context": context or {}, "by": self._by()})
        self._events_raised()
        return event_id

    # ------------------------------------------------------------------ ask / tell (promptlooper.asktell)
    def ask(self, ref: str | Experiment, n: int = 1) -> list[dict[str, Any]]:
        """Configurations a guided search would try next, learned from everything in the store.

        An outside driver (a notebook cell, an agent over MCP) runs them with :meth:`evaluate`,
        or evaluates them itself and reports with :meth:`tell`.
        """
        from . import asktell

        exp = ref if isinstance(ref, Experiment) else self.load(ref)
        return asktell.ask(self.store, exp, self.register(exp), self.db_path, n)

    def tell(self, ref: str | Experiment, config: str | dict[str, Any], score: float, *, source: str = "agent") -> dict[str, Any]:
        """Record a score an outside driver measured for a configuration (id prefix or point)."""
        from . import asktell

        if not 0.0 <= float(score) <= 1.0:
            raise ValueError(f"score must lie in 0..1, got {score}")
        exp = ref if isinstance(ref, Experiment) else self.load(ref)
        return asktell.tell(self.store, exp, self.register(exp), config, score, source)

    async def aevaluate(self, ref: str | Experiment, points: list[dict[str, Any]], **options: Any) -> list[dict[str, Any]]:
        from . import asktell

        exp = ref if isinstance(ref, Experiment) else self.load(ref)
        for space in asktell.point_spaces(exp, points):  # an agent's own proposals are checked like any space
            self._with_space(exp, space)
        sweep, experiment_id = self._prepare(exp, strategy="evaluate", max_configs=None, seed=None,
                                             concurrency=options.get("concurrency"), points=points)
        await self._drive(sweep, exp.key)
        return asktell.evaluated(sweep.plan.configurations, self.leaderboard(experiment_id))

    def evaluate(self, ref: str | Experiment, points: list[dict[str, Any]], **options: Any) -> list[dict[str, Any]]:
        """Run the given points (space key -> value) on every sample; their scores, intervals and n."""
        return run_sync(self.aevaluate(ref, points, **options))  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ housekeeping (promptlooper.housekeeping)
    def delete_experiment(self, ref: str) -> dict[str, Any]:
        """Delete an experiment with its runs, scores, sweeps and events (cached responses stay)."""
        from . import housekeeping

        return housekeeping.delete_experiment(self.store, self.experiment(ref))

    def archive_experiment(self, ref: str, archived: bool = True) -> dict[str, Any]:
        """Hide an experiment from lists (``archived=False`` brings it back); its runs are kept."""
        from . import housekeeping

        return housekeeping.archive_experiment(self.store, self.experiment(ref), archived)

    def projects(self, include_archived: bool = False) -> list[dict[str, Any]]:
        """Projects with their experiment and note counts (archived ones only with ``include_archived``)."""
        return self.store.project_list(include_archived)

    def delete_project(self, name: str) -> dict[str, Any]:
        """Delete a project, every experiment in it and its notes."""
        return {"deleted": name, **self.store.delete_project(name)}

    def archive_project(self, name: str, archived: bool = True) -> dict[str, Any]:
        """Hide a project and its experiments from lists (``archived=False`` brings them back)."""
        self.store.set_project_archived(name, archived)
        return {"project": name, "archived": archived}

    def add_note(self, project: str, text: str, *, by: str = "") -> dict[str, Any]:
        """A dated note on a project (what was tried, what was decided), listed with its experiments."""
        from . import housekeeping

        return housekeeping.add_note(self.store, project, text, self._by(by))

    def notes(self, project: str) -> list[dict[str, Any]]:
        return self.store.notes(self.store.project(project)["id"])

    def prices(self) -> list[dict[str, Any]]:
        """Every price known, USD per million tokens: set with ``prices set`` (``user``), then an
        endpoint's own table, then the built-in defaults (globs such as ``gpt-4o*``)."""
        from . import housekeeping

        return housekeeping.prices(self.store)

    # ------------------------------------------------------------------ data views (promptlooper.data_views)
    def matrix(self, ref: str | Experiment, *, by: str = "config", differ: bool = False, failures: bool = False,
               where: dict[str, Any] | None = None, score: Sequence[float] | None = None, search: str | None = None,
               threshold: float = 0.5) -> Matrix:
        """The output matrix: samples x configurations (``by="config"``) or x the values of any
        varied parameter, each cell a run's output, score and per-scorer pass / fail.

            >>> m = wb.matrix(exp, differ=True, where={"persona": "terse"}, search="paris")
            >>> m.outputs        # samples x columns of outputs; m.scores, m.cells (one row a run)

        Filters: ``differ`` (outputs not all the same), ``failures`` (a failed run or a scorer
        under ``threshold``), ``where`` (parameter values), ``score`` ((low, high) of the weighted
        score), ``search`` (text in the output or the prompts sent, case-insensitive)."""
        from . import data_views

        return data_views.matrix(self.store, self.experiment(ref), by=by, differ=differ, failures=failures, where=where,
                                 score=score, search=search, threshold=threshold)

    def group_by(self, ref: str | Experiment, by: str | list[str], *, metric: str = "score") -> pd.DataFrame:
        """Mean ± 95% interval with n per value of any variable, or per pair of values:

            >>> wb.group_by(exp, "persona")
            >>> wb.group_by(exp, ["persona", "answer.temperature"])   # pl.grouping.pivot(...) for a table

        ``metric``: the weighted score (default), a scorer, cost, tokens or latency_ms."""
        from . import data_views

        return data_views.group_by(self.store, self.experiment(ref), by, metric)

    def compare_experiments(self, a: str | Experiment, b: str | Experiment, *, scorer: str | None = None) -> pd.DataFrame:
        """Two experiments' leaderboards side by side over their shared samples (a fork and its
        parent, or any two); see :func:`promptlooper.comparing.compare_experiments`."""
        from .comparing import compare_experiments

        return compare_experiments(self.store, _key(a), _key(b), scorer=scorer)

    def compare_across(self, a: str, b: str, *, scorer: str | None = None) -> dict[str, Any]:
        """Paired comparison of two configurations of (possibly) different experiments, each
        ``EXPERIMENT:CONFIG`` (CONFIG: an id prefix, 'best' or a leaderboard rank)."""
        from .comparing import compare_configurations

        return compare_configurations(self.store, a, b, scorer=scorer)

    def forks(self, ref: str | Experiment) -> list[dict[str, Any]]:
        """The experiments forked from this one (``promptlooper fork``), oldest first."""
        return self.store.forks(self.experiment(ref)["id"])

    def sweep_analysis(self, ref: str | Experiment, *, evaluator: str = "auto") -> dict[str, pd.DataFrame]:
        """``configurations`` (one row each, in the order finished, with the best so far) and
        ``importance`` (each varied parameter's, from Optuna's evaluator: mean_decrease_impurity with
        scikit-learn installed, else ped_anova; or name one, fanova included) of the experiment's sweep."""
        from . import data_views

        return data_views.sweep_analysis(self.store, self.experiment(ref), evaluator)

    def sweep_plots(self, ref: str | Experiment) -> dict[str, Any]:
        """Plotly figures of the sweep: history (best so far), importance, parallel coordinates,
        contour, slices, and score vs cost (USD) with the Pareto front."""
        from . import data_views

        return data_views.sweep_plots(self.sweep_analysis(ref))

    # ------------------------------------------------------------------ webhooks
    def add_webhook(self, event_type: str, url: str, headers_env: dict[str, str] | None = None, *,
                    max_attempts: int | None = None, backoff: float | None = None) -> str:
        """POST events of ``event_type`` ('*', 'run.*', an exact type) to ``url``; each event is
        tried up to ``max_attempts`` times (default 8), ``backoff`` seconds (default 1, doubling) apart."""
        from .webhooks import BACKOFF, MAX_ATTEMPTS, add_webhook

        webhook_id = add_webhook(self.store, event_type, url, headers_env, max_attempts=max_attempts or MAX_ATTEMPTS,
                                 backoff=backoff or BACKOFF)
        for var in (headers_env or {}).values():
            keys.grant(self.store, var, url)
        return webhook_id

    def webhooks(self) -> list[dict[str, Any]]:
        return self.store.webhooks()

    def remove_webhook(self, webhook_id: str) -> None:
        from .webhooks import remove_webhook

        remove_webhook(self.store, webhook_id)

    def webhook_deliveries(self, webhook_id: str | None = None) -> list[dict[str, Any]]:
        return self.store.webhook_deliveries(webhook_id)

    def webhook_outbox(self, state: str | None = None) -> list[dict[str, Any]]:
        """Every queued delivery (pending, delivered or failed) with its attempts and last error."""
        return self.store.webhook_outbox(state)

    def deliver_webhooks(self, wait: float = 30.0) -> dict[str, Any]:
        """Deliver the queued webhook events now, in this process, until none is pending or ``wait``
        seconds pass (retries due later stay queued); returns the outbox's counts by state."""
        import time

        from .webhooks import Courier

        async def go() -> dict[str, Any]:
            courier = Courier(self.store)
            try:
                return await courier.deliver_until(time.monotonic() + wait)
            finally:
                await courier.aclose()

        return run_sync(go())  # type: ignore[no-any-return]

    def keep_delivering_webhooks(self) -> None:
        """Deliver webhook events in the background for as long as this workbench is open (a server)."""
        if self.readonly:
            return
        with self._lock:
            if self._courier is None:
                self._courier = CourierThread(self.db_path)
            courier = self._courier
        courier.hold()

    def _webhook_courier(self) -> CourierThread | None:
        """This process's courier, woken, if any webhook is active (else None: nothing to deliver)."""
        if self.readonly or not self.store.has_active_webhooks():
            return None
        with self._lock:  # a script's sweep runs on a thread of its own: one courier between them
            if self._courier is None:
                self._courier = CourierThread(self.db_path)
            courier = self._courier
        courier.wake()
        return courier

    def _events_raised(self) -> None:
        """After a verb recorded events outside a sweep: deliver them (in the background)."""
        self._webhook_courier()

    # ------------------------------------------------------------------ cache
    def explain_cache(self, run_ref: str) -> list[dict[str, Any]]:
        """For each model call of a run: its cache key and exactly what went into it."""
        from . import cache_explain

        run = self.store.run(run_ref)
        spec = self.store.experiment(run["experiment_id"])["spec"]
        inline = {k: parse_endpoint(v) for k, v in (spec.get("endpoints") or {}).items()}
        pool = EndpointPool(self.store.endpoints(), inline, grants=keys.KeyGrants(self.store))
        return cache_explain.explain(self.store, run, pool)

    def invalidate_cache(self, *, run: str | None = None, experiment: str | Experiment | None = None) -> int:
        if run:
            return self.store.invalidate_cache(run_id=self.store.run(run)["id"])
        if experiment is not None:
            return self.store.invalidate_cache(experiment_id=self.experiment(experiment)["id"])
        raise ValueError("give run= or experiment=")


def _key(ref: Any) -> str:
    return ref.key if isinstance(ref, Experiment) else str(ref)


_default: Workbench | None = None


def default_workbench() -> Workbench:
    global _default
    if _default is None or _default.db_path != default_path():
        _default = Workbench()
    return _default


__all__ = ["SpecError", "Workbench", "default_workbench", "run_sync"]
