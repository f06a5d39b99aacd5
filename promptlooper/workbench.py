"""The Python API: one facade that the CLI, the widgets, the dashboards and the MCP server share.

    >>> import promptlooper as pl
    >>> wb = pl.Workbench("promptlooper.db")
    >>> exp = pl.Experiment.from_yaml("examples/quickstart.yaml")
    >>> wb.run(exp)                      # scripts: blocks until done
    >>> handle = wb.start(exp)           # notebooks: runs on the kernel loop; `await handle`
    >>> wb.leaderboard(exp.key)          # a pandas DataFrame

Nothing here knows about SQL or HTTP: it validates, plans and delegates to the store and engine.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import keys
from . import leaderboard as _leaderboard
from .asktell import OutsideDriver
from .asyncutil import run_sync
from .bounds import SweepSize, confirm_limits
from .data_views import DataViews
from .definitions import definition_of
from .engine.calls import cache_key_material
from .engine.handle import SweepHandle
from .engine.progress import Progress
from .engine.runner import BoundScorer
from .engine.sweep import Sweep, SweepPlan
from .env_files import load_env_files
from .errors import EndpointError, NotFoundError, Problem, SpecError
from .functions import add_search_dir, resolve_function
from .hashing import canonical_json, content_hash
from .housekeeping import HousekeepingVerbs
from .providers.pricing import cost
from .providers.registry import LOCAL, EndpointPool, split_model
from .samples import sample_id
from .scorers.base import computed
from .scoring import weights_of
from .spec import EndpointSpec, Experiment, FunctionStage, parse_endpoint
from .steering import SteeringVerbs
from .store import Store, default_path
from .store.batchwriter import wait_for_writers
from .sweeps.guided import guided_defaults
from .sweeps.space import build_configuration, grid_points, grid_size, random_points, values_of
from .validation import ensure_valid, load_samples, validate
from .webhooks import CourierThread

DEFAULT_RANDOM_CONFIGS = 20

if TYPE_CHECKING:
    import pandas as pd  # a sweep and the CLI never import pandas: notebooks' frames build it lazily


class Workbench(SteeringVerbs, OutsideDriver, HousekeepingVerbs, DataViews):
    """PromptLooper on one database file (default ``./promptlooper.db`` or ``$PROMPTLOOPER_DB``).

    The steering verbs (pause, resume, stop, redirect, fork, approve, reject, budgets) live in
    :mod:`promptlooper.steering`, the ask / tell / evaluate loop in :mod:`promptlooper.asktell`,
    the data views (matrix, group by, comparing experiments, sweep analysis) in
    :mod:`promptlooper.data_views`; all are mixed in here so that every front end sees one facade.
    """

    def __init__(self, db: str | os.PathLike[str] | None = None, *, readonly: bool = False, create: bool = True):
        self.db_path = str(db or default_path())
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
            self._store = Store(self.db_path, readonly=self.readonly, create=self.create)
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
            from .validation import load_file

            try:
                exp = load_file(exp)
            except SpecError as exc:
                partial = getattr(exc, "partial", None)
                seen = {(p.path, p.message) for p in exc.problems}
                more = [p for p in self.validate(partial) if (p.path, p.message) not in seen] if partial else []
                return exc.problems + more
        samples, problems = load_samples(exp)
        return problems + validate(exp, self.pool(exp), samples)

    def configurations(self, exp: Experiment, *, strategy: str | None = None, max_configs: int | None = None,
                       seed: int | None = None) -> list[Any]:
        strategy = strategy or exp.strategy
        if strategy == "guided":
            # Decided as the search goes; for planning, as many random points as it may try.
            n = guided_defaults(exp, max_configs).max_configs or 20
            return [build_configuration(exp, p) for p in random_points(exp, n, exp.seed if seed is None else seed)]
        if strategy == "random":
            n = max_configs or exp.max_configs or min(DEFAULT_RANDOM_CONFIGS, grid_size(exp))
            points = random_points(exp, n, exp.seed if seed is None else seed)
        else:
            points = list(grid_points(exp))
            if max_configs:
                points = points[:max_configs]
        return [build_configuration(exp, p) for p in points]

    def configuration_count(self, exp: Experiment, *, strategy: str | None = None,
                            max_configs: int | None = None) -> int:
        """How many configurations :meth:`configurations` gives, counted without building them."""
        strategy = strategy or exp.strategy
        size = grid_size(exp)
        if strategy == "guided":
            return guided_defaults(exp, max_configs).max_configs or 20
        if strategy == "random":
            n = max_configs or exp.max_configs or min(DEFAULT_RANDOM_CONFIGS, size)
            continuous = any(getattr(v, "step", 0) is None for v in exp.space.values())
            return n if continuous else min(n, size)
        return min(size, max_configs) if max_configs else size

    def sweep_size(self, exp: Experiment, *, strategy: str | None = None,
                   max_configs: int | None = None) -> SweepSize:
        """The calls and estimated cost a sweep would make, for asking before a large one starts."""
        from .scorers import base as scorer_registry

        samples, _ = load_samples(exp)
        configs = self.configuration_count(exp, strategy=strategy, max_configs=max_configs)
        runs = configs * len(samples) * exp.repeat
        try:
            runs -= min(runs, len(self.store.finished_run_ids(self.store.experiment(exp.key)["id"])))
        except NotFoundError:
            pass  # a new experiment: nothing finished yet
        pool = self.pool(exp)
        words = sum(len(str(v).split()) for v in (samples[0].values() if samples else ()))
        per_run_calls, per_run_cost = 0, 0.0
        for stage in exp.stages:
            if isinstance(stage, FunctionStage):
                continue
            per_run_calls += 1
            models = [m for m in values_of(exp.space[f"{stage.name}.model"])] if f"{stage.name}.model" in exp.space \
                else [stage.model]
            turns = " ".join(getattr(m, "content", "") for m in stage.messages or [])  # a chat stage's templated turns
            tokens_in = 1.3 * (words + len(f"{stage.system or ''} {turns} {stage.user or ''}".split()))
            tokens_out = float(stage.params.as_dict().get("max_tokens") or 128)
            prices = []
            for model in models:
                try:
                    prices.append(cost(int(tokens_in), int(tokens_out), pool.price(*split_model(str(model)))))
                except Exception:  # noqa: BLE001 - an unknown model is validation's to report
                    prices.append(0.0)
            per_run_cost += max(prices, default=0.0)
        for sc in exp.scorers:
            try:
                per_run_calls += bool(scorer_registry.get(sc.name).model_calls)
            except scorer_registry.ScorerError:
                pass
        calls_limit, cost_limit = confirm_limits()
        return SweepSize(configurations=configs, runs=runs, calls=runs * per_run_calls,
                         estimated_cost=round(runs * per_run_cost, 4), confirm_calls=calls_limit, confirm_cost=cost_limit)

    def register(self, exp: Experiment, *, parent_id: str | None = None) -> str:
        """Store (or update) the experiment's description; returns its id."""
        keys.grant_experiment(self.store, exp)
        experiment_id = self.store.upsert_experiment(exp.project, exp.name, exp.to_record(), exp.description, parent_id)
        # The operator's folder, for running it again from the store; an MCP client's experiment has none.
        self.store.set_experiment_folder(experiment_id, None if keys.acting_for_client() else exp.base_dir)
        return experiment_id

    def _prepare(self, exp: Experiment, *, strategy: str | None, max_configs: int | None, seed: int | None,
                 concurrency: int | None, points: list[dict[str, Any]] | None = None) -> tuple[Sweep, str]:
        pool = self.pool(exp)
        samples = ensure_valid(exp, pool)  # raises SpecError before any call
        experiment_id = self.register(exp)
        definition_id, definition = definition_of(exp, [sample_id(s) for s in samples])
        self.store.record_definition(experiment_id, definition_id, definition, [sample_id(s) for s in samples])
        strategy = strategy or exp.strategy
        guided = strategy == "guided" and points is None
        if points is not None:
            configs = [build_configuration(exp, p) for p in points]
        elif guided:
            configs = []
        else:
            configs = self.configurations(exp, strategy=strategy, max_configs=max_configs, seed=seed)
        self.store.add_configurations(experiment_id, ((c.id, c.as_record(), c.varied) for c in configs))
        plan = SweepPlan(
            experiment_id=experiment_id, configurations=configs,
            samples=[(sample_id(s), s) for s in samples], repeat=exp.repeat,
            strategy=strategy or exp.strategy,
            options={"max_configs": max_configs, "seed": exp.seed if seed is None else seed},
        )
        # Resolved here, once, by whoever starts the sweep (an MCP client's imports are checked here).
        functions = {s.name: resolve_function(s.function) for s in exp.stages if isinstance(s, FunctionStage)}
        budget = exp.budget.model_dump(exclude_none=True)
        if "max_tokens" not in budget and os.environ.get("MAX_TOKENS_PER_SWEEP", "0") not in ("", "0"):
            budget["max_tokens"] = int(os.environ["MAX_TOKENS_PER_SWEEP"])
        sweep = Sweep(self.db_path, plan, pool, [BoundScorer(s) for s in computed(exp.scorers)],
                      concurrency=concurrency or exp.concurrency, budget=budget, functions=functions)
        self._specs[experiment_id] = exp

        def replan(space: dict[str, Any]) -> list[Any]:
            redirected = self._with_space(exp, space)
            return self.configurations(redirected, strategy=strategy, max_configs=max_configs, seed=seed)

        sweep.replan = replan
        if guided:
            from .sweeps.guided import GuidedDriver

            options = guided_defaults(exp, max_configs)
            driver = GuidedDriver(exp, options, plan.samples, exp.repeat, exp.seed if seed is None else seed,
                                  self.db_path, experiment_id, weights_of(exp.scorers))
            sweep.source = driver.source
            sweep.run_listeners.append(driver.on_run)
            sweep.driver = driver.run
            sweep.progress.total = options.max_configs * len(samples) * exp.repeat  # an upper bound
            sweep.guided = driver
        return sweep, experiment_id

    def _with_space(self, exp: Experiment, space: dict[str, Any]) -> Experiment:
        data = exp.model_dump(exclude={"stages"})
        data["stages"] = exp.stages
        data["space"] = space
        data["base_dir"] = exp.base_dir
        changed = Experiment.model_validate(data)
        problems = validate(changed, self.pool(changed))
        if problems:
            raise SpecError(problems)
        return changed

    def start(self, exp: Experiment, *, strategy: str | None = None, max_configs: int | None = None,
              seed: int | None = None, concurrency: int | None = None,
              on_progress: Callable[[Progress], None] | None = None) -> SweepHandle:
        """Start a sweep in the background and return its handle.

        In a notebook it runs on the kernel's loop (``await handle`` to wait); starting the same
        experiment again stops the earlier sweep of this process first, so two loops never drive
        one experiment.
        """
        sweep, experiment_id = self._prepare(exp, strategy=strategy, max_configs=max_configs, seed=seed, concurrency=concurrency)
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

    async def sweep(self, exp: Experiment, **options: Any) -> Progress:
        """Async form: run the sweep on the current loop and return its final progress."""
        sweep, _ = self._prepare(exp, strategy=options.get("strategy"), max_configs=options.get("max_configs"),
                                 seed=options.get("seed"), concurrency=options.get("concurrency"))
        for listener in options.get("listeners", []):
            sweep.listeners.append(listener)
        # Seconds an endpoint may stay unhealthy (its breaker open) before the sweep stops; None: it
        # waits, paused, for a probe to be answered or a resume (a notebook); the CLI sets it.
        sweep.failures.unhealthy_timeout = options.get("unhealthy_timeout")
        sweep.stop_on_budget = bool(options.get("stop_on_budget"))
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

    def run(self, exp: Experiment, **options: Any) -> Progress:
        """Sync form (scripts, CLI): blocks until the sweep ends."""
        return run_sync(self.sweep(exp, **options))  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ reading
    def experiment(self, ref: str | Experiment) -> dict[str, Any]:
        return self.store.experiment(ref.key if isinstance(ref, Experiment) else ref)

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

        return rate(self, run, thumbs=thumbs, stars=stars, comment=comment, by=by)

    def ratings(self, run: str) -> dict[str, Any]:
        from .ratings import ratings

        return ratings(self, run)

    def rescore(self, ref: str | Experiment, scorers: list[Any] | None = None, *, model_calls: bool = True) -> dict[str, Any]:
        """Re-score every stored run (new or changed scorers) without calling a model again
        (judges take their calls from the cache when present; model_calls=False skips them)."""
        from .rescoring import rescore

        key = ref.key if isinstance(ref, Experiment) else ref
        if isinstance(ref, Experiment):
            self.register(ref)  # the experiment's current scorers are what to score with
        self._search_folder(self.experiment(key))
        return rescore(self, key, scorers, model_calls=model_calls)

    def compare(self, ref: str | Experiment, config_a: str | int, config_b: str | int, *,
                scorer: str | None = None) -> dict[str, Any]:
        """A vs B: paired comparison over the samples both ran (difference, 95% interval, p-value)."""
        from .stats import compare

        return compare(self, ref.key if isinstance(ref, Experiment) else ref, config_a, config_b, scorer=scorer)

    def calibration(self, ref: str | Experiment, *, scorers: list[str] | None = None) -> pd.DataFrame:
        """Per judge: agreement with human ratings (Spearman rho, Cohen's kappa, n)."""
        from .stats import calibration

        return calibration(self, ref.key if isinstance(ref, Experiment) else ref, scorers=scorers)

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
        return {"experiment": f"{exp['project']}/{exp['name']}", "id": exp["id"], "status": sweep["status"] if sweep else exp["status"],
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
    def plan(self, exp: Experiment, *, strategy: str | None = None, max_configs: int | None = None,
             seed: int | None = None) -> dict[str, Any]:
        from .planning import plan as _plan

        pool = self.pool(exp)
        samples = ensure_valid(exp, pool)
        configs = self.configurations(exp, strategy=strategy, max_configs=max_configs, seed=seed)
        return _plan(self.store, exp, configs, samples, pool)

    def export(self, ref: str | Experiment, format: str = "json") -> str:
        """The best configuration as json / yaml / env, or a markdown report. Never key values."""
        from .export import export as _export

        exp = self.experiment(ref)
        board = self.leaderboard(exp["id"])
        return _export(self.store, exp, board, format)

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
        from .webhooks import webhooks

        return webhooks(self.store)

    def remove_webhook(self, webhook_id: str) -> None:
        from .webhooks import remove_webhook

        remove_webhook(self.store, webhook_id)

    def webhook_deliveries(self, webhook_id: str | None = None) -> list[dict[str, Any]]:
        from .webhooks import deliveries

        return deliveries(self.store, webhook_id)

    def webhook_outbox(self, state: str | None = None) -> list[dict[str, Any]]:
        """Every queued delivery (pending, delivered or failed) with its attempts and last error."""
        from .webhooks import outbox

        return outbox(self.store, state)

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
        from .store.outbox import has_active_webhooks

        if self.readonly or not has_active_webhooks(self.store):
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
        run = self.store.run(run_ref)
        spec = self.store.experiment(run["experiment_id"])["spec"]
        inline = {k: parse_endpoint(v) for k, v in (spec.get("endpoints") or {}).items()}
        pool = EndpointPool(self.store.endpoints(), inline, grants=keys.KeyGrants(self.store))
        out = []
        for stage in run["stages"]:
            if stage["kind"] != "prompt":
                out.append({"stage": stage["stage_name"], "kind": "function", "cache_key": None})
                continue
            identity = pool.provider(stage["endpoint"]).identity if pool.has(stage["endpoint"]) else stage["endpoint"]
            material = cache_key_material(_Identity(identity), stage["model_used"], stage["prompt_sent"], stage["parameters"] or {})  # type: ignore[arg-type]
            key = content_hash("call", material)
            out.append({"stage": stage["stage_name"], "kind": "prompt", "cache_key": stage["cache_key"],
                        "recomputed_key": key, "matches": key == stage["cache_key"], "material": material,
                        "canonical_json": canonical_json(material),
                        "in_cache": self.store.cache_entry(stage["cache_key"]) is not None})
        return out

    def invalidate_cache(self, *, run: str | None = None, experiment: str | Experiment | None = None) -> int:
        if run:
            return self.store.invalidate_cache(run_id=self.store.run(run)["id"])
        if experiment is not None:
            return self.store.invalidate_cache(experiment_id=self.experiment(experiment)["id"])
        raise ValueError("give run= or experiment=")


class _Identity:
    def __init__(self, identity: str):
        self.identity = identity


_default: Workbench | None = None


def default_workbench() -> Workbench:
    global _default
    if _default is None or _default.db_path != default_path():
        _default = Workbench()
    return _default


__all__ = ["SpecError", "Workbench", "default_workbench", "run_sync"]
