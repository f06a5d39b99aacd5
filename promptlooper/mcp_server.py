"""The MCP server: AI agents drive the same engine as the CLI and notebooks, and can steer it.

Every tool is a thin call to the :class:`~promptlooper.workbench.Workbench` facade; everything it
does lands in the same SQLite store, so a sweep an agent starts is visible (and steerable) from any
other process, and an agent can pause a sweep a terminal or a notebook started.

    promptlooper mcp                                   # stdio (an MCP client launches it)
    promptlooper mcp --transport http --port 8401      # streamable HTTP on 127.0.0.1, bearer key

Over HTTP a bearer key is required: ``$PROMPTLOOPER_MCP_KEY``, or one generated at start-up and
printed once to stderr. It is never logged elsewhere and never stored.

Replies are compact and intent-level (a leaderboard is the top N configurations with their varied
parameters, score, 95% interval and n); details come on request (``get_run_detail``, ``full``).
Bad arguments give a tool error naming the argument, never a traceback. Input schemas come from
the same pydantic models the Python API validates with (``create_experiment`` takes an
:class:`~promptlooper.spec.Experiment` as JSON, where function stages and ``python`` scorers may
name a registered function, an installed plugin, or an import path the operator allows: see
:mod:`promptlooper.functions`).
"""

from __future__ import annotations

import functools
import hmac
import inspect
import logging
import math
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, ValidationError, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

from . import __version__, keys, mcp_grants
from .bounds import shown
from .errors import NotFoundError, Problem, PromptLooperError, SpecError
from .functions import ALLOW_IMPORTS, function_problem, registered_functions
from .spec import EndpointSpec, Experiment, FunctionStage, Linked, PromptStage, _stage_kind
from .workbench import Workbench

log = logging.getLogger("promptlooper.mcp")

KEY_ENV = "PROMPTLOOPER_MCP_KEY"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8401
TRUNCATE = 400  # characters of long text shown unless full=true
SERVER_NAME = "promptlooper"

INSTRUCTIONS = """PromptLooper finds the best prompt x model x parameters for an LLM pipeline by measuring.
Typical flow: create_experiment (samples, stages, space, scorers) -> plan -> run_sweep (background)
-> get_experiment_status (poll) -> get_leaderboard -> export_best_config. Steer with pause_sweep,
resume_sweep, stop_sweep, redirect_sweep, fork_experiment, approve_configuration,
reject_configuration. Guided search by the agent: ask_configurations -> evaluate_configurations
(or evaluate yourself and tell_result). Experiments are referenced as 'project/name'."""


# --------------------------------------------------------------------------- input schemas
class _NamedFunctionStage(FunctionStage):
    """A stage that runs a Python function of the server process, by name."""

    function: str = Field(  # type: ignore[assignment]
        description="A function registered in the server process, an installed plugin (entry point group "
                    "'promptlooper.functions'), or 'module:function' for a module the operator allows "
                    "($PROMPTLOOPER_ALLOW_IMPORTS)."
    )


_McpStage = Annotated[
    Annotated[PromptStage, Tag("prompt")] | Annotated[_NamedFunctionStage, Tag("function")],
    Discriminator(_stage_kind),
]


class _McpExperiment(Experiment):
    """The Experiment schema as JSON: function stages by name (registered, plugin, or an allowed import path)."""

    stages: list[_McpStage] = Field(min_length=1, description=Experiment.model_fields["stages"].description)  # type: ignore[assignment]
    base_dir: SkipJsonSchema[str | None] = Field(None, exclude=True)


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """A self-contained copy of a pydantic JSON schema (``$ref``s to ``$defs`` inlined)."""
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                target = walk(defs[ref.removeprefix("#/$defs/")])
                extra = {k: walk(v) for k, v in node.items() if k != "$ref"}
                return {**target, **extra}
            return {k: walk(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)  # type: ignore[no-any-return]


EXPERIMENT_SCHEMA = _inline_refs(_McpExperiment.model_json_schema())
EXPERIMENT_SCHEMA["description"] = (
    "An experiment, with the same fields as pl.Experiment / an experiment YAML file: samples, 1..N stages, "
    "space (what to vary: 'stage.field', a bare stage field or a template variable -> list of values or "
    "{min,max,step}), weighted scorers, strategy, budget... Function stages and python scorers name a "
    "registered function, an installed plugin, or module:function for a module the operator allows."
)


def _field(model: Any, name: str, extra: str = "") -> str:
    text = model.model_fields[name].description or ""
    return f"{text} {extra}".strip()


ExperimentJSON = Annotated[dict[str, Any], WithJsonSchema(EXPERIMENT_SCHEMA)]
ExperimentRef = Annotated[str, Field(description="A stored experiment: 'project/name', its id, or a unique name.")]
ConfigRef = Annotated[str, Field(description="A configuration id (a prefix from get_leaderboard is enough).")]
RunRef = Annotated[str, Field(description="A run id (a unique prefix is enough).")]
Point = Annotated[dict[str, Any], Field(
    description="One value for every space key, e.g. {\"answer.temperature\": 0.3, \"persona\": \"terse\"}.")]
_STRATEGIES = Experiment.model_fields["strategy"].annotation  # Literal["grid", "random", ...], declared once in spec.py
Strategy = Annotated[_STRATEGIES | None,  # type: ignore[valid-type]
                     Field(description="Override the experiment's strategy (grid, random, guided).")]
MaxConfigs = Annotated[int | None, Field(ge=1, description=_field(Experiment, "max_configs", "Also caps grid sweeps."))]
Seed = Annotated[int | None, Field(description="Random / guided sweeps: the sampler's seed.")]
Concurrency = Annotated[int | None, Field(ge=1, le=4096, description=_field(Experiment, "concurrency"))]
MaxCalls = Annotated[int | None, Field(ge=1, description=(
    "The most model calls you accept for this sweep. Required when the sweep would exceed the operator's "
    "confirmation limits (PROMPTLOOPER_CONFIRM_CALLS / _COST); a sweep over it is refused, not started."))]
Full = Annotated[bool, Field(description="Return long texts (prompts, responses) in full instead of truncated.")]
By = Annotated[str, Field(description="Who decides (recorded in the event).")]
Reason = Annotated[str, Field(description="Why (recorded in the event).")]
Confirm = Annotated[bool, Field(description="Must be true: deleting cannot be undone (archive hides instead).")]
ProjectName = Annotated[str, Field(min_length=1, description="A project's name.")]


# --------------------------------------------------------------------------- errors
class _ArgError(Exception):
    def __init__(self, arg: str, message: str):
        super().__init__(f"{arg}: {message}")


@contextmanager
def _arg(name: str) -> Iterator[None]:
    """Errors raised inside name the argument they are about."""
    try:
        yield
    except SpecError:
        raise
    except (PromptLooperError, KeyError, ValueError, LookupError) as exc:
        raise _ArgError(name, _message(exc)) from exc


def _message(exc: BaseException) -> str:
    if isinstance(exc, SpecError):
        first, more = shown(exc.problems)
        lines = [f"- {p}" for p in first] + ([f"- … and {more:,} more"] if more else [])
        return f"{len(exc.problems)} problem(s); nothing was run:\n" + "\n".join(lines)
    if isinstance(exc, ValidationError):
        from .validation import problems_from_validation_error

        return _message(SpecError(problems_from_validation_error(exc)))
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc) or type(exc).__name__


def _tool_error(exc: BaseException) -> Exception:
    from mcp.server.mcpserver.exceptions import ToolError

    return ToolError(keys.redact(_message(exc)))


def _clean(value: Any) -> Any:
    """JSON-safe: NaN / inf -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, str | bytes):
        try:
            value = value.item()
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _truncate(text: Any, full: bool) -> Any:
    if full or not isinstance(text, str) or len(text) <= TRUNCATE:
        return text
    return text[:TRUNCATE] + f"… [{len(text) - TRUNCATE} more characters; full=true shows all]"


# --------------------------------------------------------------------------- the server
def build_server(wb: Workbench | None = None, *, db: str | None = None, **server_options: Any) -> Any:
    """An MCPServer whose tools drive ``wb`` (default: a Workbench on ``db`` or $PROMPTLOOPER_DB)."""
    from mcp.server.mcpserver.exceptions import ToolError

    from .mcp_arguments import StrictServer

    wb = wb or Workbench(db)
    wb.store  # noqa: B018 - open (and migrate) the store once, before tools run on worker threads
    wb.keep_delivering_webhooks()  # the server holds the store: it delivers queued webhook events
    server = StrictServer(SERVER_NAME, instructions=INSTRUCTIONS, version=__version__, **server_options)
    server.workbench = wb  # type: ignore[attr-defined]

    def tool(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                # A client's calls grant no key (promptlooper.keys); no key value is ever in a reply.
                with keys.for_client():
                    return keys.redact(_clean(fn(*args, **kwargs)), _endpoint_key_vars(wb))
            except ToolError:
                raise
            except _ArgError as exc:
                raise ToolError(keys.redact(str(exc))) from None
            except (PromptLooperError, KeyError, ValueError, LookupError, ValidationError) as exc:
                raise _tool_error(exc) from None
            except Exception as exc:  # noqa: BLE001 - a message for the agent, the traceback for the log
                log.exception("tool %s failed", fn.__name__)
                raise _tool_error(RuntimeError(f"{type(exc).__name__}: {exc}")) from None

        server.add_tool(wrapper, name=fn.__name__, description=inspect.cleandoc(fn.__doc__ or ""))
        return wrapper

    def experiment_row(ref: str, arg: str = "experiment") -> dict[str, Any]:
        with _arg(arg):
            return wb.experiment(ref)

    def key(row: dict[str, Any]) -> str:
        return f"{row['project']}/{row['name']}"

    def load(ref: str) -> Experiment:
        with _arg("experiment"):
            return wb.load(ref)

    def resolve_config(row: dict[str, Any], ref: str, arg: str = "config_id") -> str:
        with _arg(arg):
            return str(wb.store.configuration(row["id"], ref)["id"])

    def needs(method: str, tool_name: str) -> Callable[..., Any]:
        fn = getattr(wb, method, None)
        if fn is None:
            raise PromptLooperError(f"{tool_name} needs Workbench.{method}, which this PromptLooper version does not have yet")
        return fn  # type: ignore[no-any-return]

    def check_point(row: dict[str, Any], point: dict[str, Any], arg: str) -> None:
        axes = load(row["id"]).space
        for k, v in point.items():
            if isinstance(v, list | dict) and not (isinstance(v, dict) and isinstance(axes.get(k), Linked)):  # a bundle is one value
                raise _ArgError(f"{arg}.{k}", "give one value, not a list or range (run_sweep / fork_experiment sweep several)")
        space = list(axes)
        unknown = [k for k in point if k not in space]
        missing = [k for k in space if k not in point]
        if unknown or missing:
            parts = ([f"not space keys: {', '.join(unknown)}"] if unknown else []) + \
                    ([f"missing values for: {', '.join(missing)}"] if missing else [])
            raise _ArgError(arg, f"{'; '.join(parts)} (the space keys are: {', '.join(space) or 'none'})")

    def sweep_summary(sweep: dict[str, Any] | None) -> dict[str, Any] | None:
        if not sweep:
            return None
        keys = ("status", "requested", "strategy", "done", "total", "cached", "failed", "tokens_in", "tokens_out",
                "cost", "best_config_id", "best_score", "stop_reason", "started_at", "finished_at")
        out = {"id": sweep["id"][:8], **{k: sweep.get(k) for k in keys if sweep.get(k) not in (None, "")}}
        if out.get("best_config_id"):
            out["best_config_id"] = out["best_config_id"][:12]
        return out

    def board_rows(ref: str, top: int | None, sort: str | None = None, include_rejected: bool = False,
                   all_definitions: bool = False) -> tuple[list[dict[str, Any]], int]:
        with _arg("sort" if sort else "experiment"):
            df = wb.leaderboard(ref, sort=sort, include_rejected=include_rejected, all_definitions=all_definitions)
        columns = list(df.columns)
        varied = columns[columns.index("config_id") + 1: columns.index("score")] if "score" in columns else []
        rows = []
        for rec in df.head(top).to_dict(orient="records") if top else df.to_dict(orient="records"):
            row = {"rank": rec["rank"], "config_id": rec["config_id"], "params": {k: rec[k] for k in varied},
                   "score": rec["score"], "ci": [rec["ci_low"], rec["ci_high"]], "n": rec["n"],
                   "distinguishable": rec["distinguishable"]}
            if rec.get("failed"):
                row["failed"], row["failure"] = rec["failed"], rec.get("failure") or ""
            if rec.get("missing"):
                row["missing"] = rec["missing"]  # missing scores: left out of the score, not counted as 0
            if rec.get("decision"):
                row["decision"] = rec["decision"]
            rows.append(row)
        return rows, len(df)

    # ------------------------------------------------------------------ projects & experiments
    @tool
    def create_project(
        name: Annotated[str, Field(min_length=1, description="Project name (experiments reference it as 'project/name').")],
        description: Annotated[str, Field(description="What the project is for.")] = "",
    ) -> dict[str, Any]:
        """Create a project workspace (or return the existing one of that name)."""
        create = getattr(wb, "create_project", None)
        pid = create(name, description) if create else wb.store.upsert_project(name, description)
        return {"project": name, "id": pid}

    @tool
    def create_experiment(experiment: ExperimentJSON) -> dict[str, Any]:
        """Define (or update) an experiment: samples, 1..N stages, the space to vary, weighted scorers.

        It is validated before anything is stored: every problem comes back with its field path.
        Nothing is called; start it with run_sweep (plan first to see the cost)."""
        if not isinstance(experiment, dict):
            raise _ArgError("experiment", "give the experiment as a JSON object")
        experiment = dict(experiment)
        problems = _named_only(experiment) + mcp_grants.experiment_problems(wb, experiment)
        from .validation import parse_experiment

        try:
            exp = parse_experiment(dict(experiment))
        except SpecError as exc:
            partial = getattr(exc, "partial", None)
            seen = {(p.path, p.message) for p in exc.problems}
            more = [p for p in wb.validate(partial) if (p.path, p.message) not in seen] if partial else []
            raise SpecError(problems + _other(exc.problems + more, problems)) from None
        problems += _other(wb.validate(exp), problems)
        if problems:
            raise SpecError(problems)
        experiment_id = wb.register(exp)
        return {"experiment": exp.key, "id": experiment_id, "configurations": len(wb.configurations(exp)),
                "strategy": exp.strategy, "next": "plan / run_sweep / run_single"}

    @tool
    def list_experiments(
        project: Annotated[str | None, Field(description="Only this project's experiments (and its notes).")] = None,
        include_archived: Annotated[bool, Field(description="Archived experiments too.")] = False,
    ) -> dict[str, Any]:
        """Experiments in the store, with status and run counts (archived ones only if asked); with a
        project, its notes too."""
        rows = wb.experiments(project, include_archived=include_archived)
        out: dict[str, Any] = {"experiments": [
            {"experiment": f"{r['project']}/{r['name']}", "status": r["status"], "runs": r["runs"], "updated_at": r["updated_at"],
             **({"parent_id": r["parent_id"]} if r.get("parent_id") else {}), **({"archived": True} if r.get("archived_at") else {})}
            for r in rows]}
        if project and rows:
            out["notes"] = [{"ts": n["created_at"], "text": n["text"], "by": n["by"]} for n in wb.notes(project)]
        return out

    # ------------------------------------------------------------------ housekeeping
    def confirmed(confirm: bool) -> None:
        if not confirm:
            raise _ArgError("confirm", "deleting cannot be undone: pass confirm=true, or archive instead to hide it")

    @tool
    def delete_experiment(experiment: ExperimentRef, confirm: Confirm = False) -> dict[str, Any]:
        """Delete an experiment with its runs, scores, sweeps and events (cached responses stay). Refused
        while a sweep of it runs or is paused: stop_sweep first."""
        confirmed(confirm)
        row = experiment_row(experiment)
        with _arg("experiment"):
            return wb.delete_experiment(row["id"])

    @tool
    def archive_experiment(
        experiment: ExperimentRef,
        archived: Annotated[bool, Field(description="false brings an archived experiment back.")] = True,
    ) -> dict[str, Any]:
        """Hide an experiment from list_experiments (its runs are kept; it stays reachable by name)."""
        row = experiment_row(experiment)
        with _arg("experiment"):
            return wb.archive_experiment(row["id"], archived)

    @tool
    def delete_project(project: ProjectName, confirm: Confirm = False) -> dict[str, Any]:
        """Delete a project, every experiment in it and its notes. Refused while one of its experiments is swept."""
        confirmed(confirm)
        with _arg("project"):
            return wb.delete_project(project)

    @tool
    def archive_project(
        project: ProjectName,
        archived: Annotated[bool, Field(description="false brings an archived project back.")] = True,
    ) -> dict[str, Any]:
        """Hide a project and its experiments from lists (kept, reachable by name)."""
        with _arg("project"):
            return wb.archive_project(project, archived)

    @tool
    def add_project_note(
        project: ProjectName,
        text: Annotated[str, Field(min_length=1, max_length=10_000, description="The note: what was tried, found or decided.")],
        by: By = "agent",
    ) -> dict[str, Any]:
        """Leave a dated note on a project (listed with its experiments, in status and list_experiments)."""
        with _arg("project"):
            return wb.add_note(project, text, by=by)

    @tool
    def configure_endpoint(
        name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]+$", description="Endpoint name; stages use models as 'name/model'.")],
        base_url: Annotated[str, Field(description=_field(EndpointSpec, "base_url"))],
        api_key_env: Annotated[str | None, Field(description=_field(EndpointSpec, "api_key_env", "Never the key itself."))] = None,
        max_concurrency: Annotated[int, Field(ge=1, le=4096, description="Calls in flight to this endpoint at most.")] = 32,
        timeout: Annotated[float, Field(gt=0, description="Seconds per call.")] = 60.0,
        max_retries: Annotated[int, Field(ge=0, le=50, description="Retries of a retryable failure (429, 5xx, timeouts).")] = 6,
    ) -> dict[str, Any]:
        """Add or update an OpenAI-compatible endpoint (vLLM, Ollama, OpenAI...). The API key is referenced
        by environment variable NAME only; its value is never stored or returned. A key variable must be
        allowed for MCP clients by the operator and granted by them to this base URL."""
        problem = mcp_grants.key_problem(wb, api_key_env, base_url)
        if problem:
            raise _ArgError("api_key_env", problem)
        with _arg("api_key_env" if api_key_env else "base_url"):
            try:
                info = wb.add_endpoint(name, base_url, api_key_env=api_key_env, max_concurrency=max_concurrency,
                                       timeout=timeout, max_retries=max_retries)
            except ValidationError as exc:
                raise ValueError("; ".join(str(p) for p in _validation_problems(exc))) from None
        out = {k: info.get(k) for k in ("name", "base_url", "api_key_env", "max_concurrency") if k in info}
        if api_key_env:
            out["key_set"] = bool(os.environ.get(api_key_env))
        return out

    @tool
    def list_models() -> dict[str, Any]:
        """Models across all configured endpoints (each endpoint is asked; failures reported per endpoint)."""
        out = []
        for ep in wb.endpoints():
            entry: dict[str, Any] = {"endpoint": ep["name"], "kind": ep.get("kind"), "base_url": ep.get("base_url")}
            if ep.get("problem"):
                entry["error"] = ep["problem"]
                entry["models"] = []
            else:
                try:
                    entry["models"] = [f"{ep['name']}/{m}" for m in wb.test_endpoint(ep["name"])]
                except Exception as exc:  # noqa: BLE001 - reported, not raised
                    entry["models"] = []
                    entry["error"] = _message(exc)
            out.append(entry)
        return {"endpoints": out}

    @tool
    def plan(
        experiment: ExperimentRef,
        strategy: Strategy = None,
        max_configs: MaxConfigs = None,
        seed: Seed = None,
    ) -> dict[str, Any]:
        """Before any call: configurations, runs, model calls needed (stages and scorers such as a judge), already
        cached, estimated tokens and cost, and the models with no price (counted as $0)."""
        exp = load(experiment)
        return wb.plan(exp, strategy=strategy, max_configs=max_configs, seed=seed)

    # ------------------------------------------------------------------ running
    @tool
    def run_single(
        experiment: ExperimentRef,
        point: Point,
        full: Full = False,
    ) -> dict[str, Any]:
        """Run ONE configuration of an experiment on all its samples and return its score and outputs
        (blocks until done; calls already made come from the cache)."""
        row = experiment_row(experiment)
        evaluate = needs("evaluate", "run_single")
        check_point(row, point, "point")
        with _arg("point"):
            [result] = evaluate(row["id"], [point])
        target, cid = key(row), str(result["config_id"])
        runs = wb.runs(target, cid) if cid else []
        return {"experiment": target, "config_id": cid[:12], "point": point, "score": result.get("score"),
                "n": result.get("n"),
                "runs": [{"run_id": r["id"][:12], "sample": r["sample_index"], "status": r["status"], "score": r["score"],
                          "output": _truncate(r["output"], full), **({"error": r["error"]} if r.get("error") else {})}
                         for r in runs[: None if full else 5]],
                **({"more_runs": len(runs) - 5} if not full and len(runs) > 5 else {})}

    @tool
    def run_sweep(
        experiment: ExperimentRef,
        strategy: Strategy = None,
        max_configs: MaxConfigs = None,
        seed: Seed = None,
        concurrency: Concurrency = None,
        max_calls: MaxCalls = None,
    ) -> dict[str, Any]:
        """Start a sweep of a stored experiment in the BACKGROUND and return at once. Poll
        get_experiment_status / get_leaderboard; steer with pause_sweep, resume_sweep, stop_sweep, redirect_sweep.
        Running it again resumes: finished runs are kept, calls come from the cache. Call `plan` first:
        a large sweep needs max_calls, the most calls you accept."""
        exp = load(experiment)
        with _arg("experiment"):
            size = wb.sweep_size(exp, strategy=strategy, max_configs=max_configs)
        if max_calls is not None and size.calls > max_calls:
            raise _ArgError("max_calls", f"the sweep would make up to {size.calls:,} calls, over your max_calls "
                                         f"({max_calls:,}); narrow it with max_configs or strategy 'random'")
        if max_calls is None and size.needs_confirmation:
            raise _ArgError("max_calls", f"{size.describe()}; pass max_calls (at least {size.calls}) to confirm, "
                                         "or narrow it with max_configs or strategy 'random'")
        with _arg("experiment"):
            handle = wb.start(exp, strategy=strategy, max_configs=max_configs, seed=seed, concurrency=concurrency)
        deadline = time.monotonic() + 5
        while handle.sweep_id is None and not handle.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        if handle.done() and handle._future is not None and handle._future.exception() is not None:
            raise handle._future.exception()  # type: ignore[misc]
        progress = handle.progress
        return {"experiment": exp.key, "sweep_id": (handle.sweep_id or "")[:8], "status": progress.status,
                "total_runs": progress.total, "done": progress.done,
                "poll": "get_experiment_status", "steer": "pause_sweep / resume_sweep / stop_sweep / redirect_sweep"}

    @tool
    def get_experiment_status(experiment: ExperimentRef) -> dict[str, Any]:
        """An experiment's status, run counts by status, its latest sweep (progress, best so far), the
        experiment it was forked from (parent) and its forks."""
        with _arg("experiment"):
            st = wb.status(experiment)
        return {"experiment": st["experiment"], "status": st["status"], "runs": st["runs"], "sweep": sweep_summary(st["sweep"]),
                "parent": st.get("parent"), "forks": st.get("forks", [])}

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
        row = experiment_row(experiment)
        rows, total = board_rows(row["id"], top, sort, include_rejected, all_definitions)
        return {"experiment": key(row), "configurations": total, "top": rows}

    @tool
    def get_run_detail(run_id: RunRef, full: Full = False) -> dict[str, Any]:
        """One run: its configuration, prompts sent, responses, scores (long text truncated unless full=true)."""
        with _arg("run_id"):
            run = wb.run_detail(run_id)
        return {
            "run_id": run["id"], "config_id": run["config_id"][:12], "sample": run["sample_index"], "repeat": run["repeat"],
            "status": run["status"], "error": run.get("error"), "score": run["score"],
            "scores": {s["scorer"]: s["value"] for s in run["scores"]},
            "tokens": (run.get("tokens_in") or 0) + (run.get("tokens_out") or 0), "cost": run.get("cost"),
            "latency_ms": run.get("latency_ms"), "output": _truncate(run.get("output"), full),
            "stages": [{"stage": s["stage_name"], "kind": s["kind"], "model": s.get("model_used"),
                        "parameters": s.get("parameters"), "cached": bool(s.get("cached")),
                        "prompt": [{**m, "content": _truncate(m.get("content"), full)} for m in s["prompt_sent"]]
                        if isinstance(s.get("prompt_sent"), list) else _truncate(s.get("prompt_sent"), full),
                        "response": _truncate(s.get("response_raw"), full), "endpoint": s.get("endpoint"),
                        **({"tool_calls": s["tool_calls"]} if "tool_calls" in s else {})} for s in run["stages"]],
        }

    @tool
    def get_events(
        experiment: Annotated[str | None, Field(description="A stored experiment (default: all).")] = None,
        types: Annotated[list[str] | None, Field(description="Event types or families, e.g. ['run.failed', 'experiment.*'].")] = None,
        after_id: Annotated[int, Field(ge=0, description="Only events after this id (poll with the last id you saw).")] = 0,
        limit: Annotated[int, Field(ge=1, le=1000)] = 50,
    ) -> dict[str, Any]:
        """The event timeline (experiment.*, run.*, new_best_found, budget.exhausted, configuration.*, human_needed)."""
        if experiment is not None:
            experiment_row(experiment)
        events = wb.events(experiment, types or None, after_id, limit)
        return {"events": [{"id": e["id"], "ts": e["ts"], "type": e["type"], "payload": e["payload"]} for e in events],
                "last_id": events[-1]["id"] if events else after_id}

    @tool
    def export_best_config(
        experiment: ExperimentRef,
        format: Annotated[Literal["json", "yaml", "env", "report"],
                          Field(description="json, yaml, env (a .env snippet) or report (markdown).")] = "json",
    ) -> dict[str, Any]:
        """The best configuration (the approved one, else the top of the leaderboard) in a drop-in format.
        Never contains key values."""
        row = experiment_row(experiment)
        with _arg("experiment"):
            text = wb.export(row["id"], format)
        return {"experiment": key(row), "format": format, "text": text}

    # ------------------------------------------------------------------ steering
    def steer(verb: str, experiment: str, reason: str = "") -> dict[str, Any]:
        row = experiment_row(experiment)
        fn = getattr(wb, verb)
        with _arg("experiment"):
            sweep = fn(row["id"], reason) if reason else fn(row["id"])
        return {"experiment": key(row), "requested": verb, "sweep": sweep_summary(sweep),
                "note": "applied by the sweep's process within about a second"}

    @tool
    def pause_sweep(experiment: ExperimentRef, reason: Reason = "") -> dict[str, Any]:
        """Pause the experiment's running sweep, whichever process runs it: calls in flight finish, no new ones start."""
        return steer("pause", experiment, reason)

    @tool
    def resume_sweep(experiment: ExperimentRef) -> dict[str, Any]:
        """Resume a paused sweep (also after a budget pause, once the budget is raised)."""
        return steer("resume", experiment)

    @tool
    def stop_sweep(experiment: ExperimentRef, reason: Reason = "") -> dict[str, Any]:
        """Stop the experiment's sweep; finished runs stay (run_sweep again resumes)."""
        return steer("stop", experiment, reason)

    @tool
    def redirect_sweep(
        experiment: ExperimentRef,
        space: Annotated[dict[str, Any], Field(description="The new space: key -> list of values or {min, max, step}. "
                                                           + (Experiment.model_fields["space"].description or ""))],
    ) -> dict[str, Any]:
        """Change the remaining space of a running sweep (runs already done stay and count); with no live
        sweep it becomes the space of the next run."""
        row = experiment_row(experiment)
        with _arg("space"):
            return wb.redirect(row["id"], space)

    @tool
    def fork_experiment(
        experiment: ExperimentRef,
        changes: Annotated[dict[str, Any], Field(description="Space key -> a value (fixed) or a list of values (swept).")] = {},  # noqa: B006
        config_id: Annotated[str | None, Field(description="Fork from this configuration (default: the approved one, else the best).")] = None,
        name: Annotated[str | None, Field(description="The fork's name (default: '<name>-forkN').")] = None,
        start: Annotated[bool, Field(description="Start the fork's sweep in the background right away.")] = False,
    ) -> dict[str, Any]:
        """A new experiment from a configuration (default: the approved one, else the best) with changed parameters; calls it
        shares with its parent come from the cache."""
        row = experiment_row(experiment)
        if config_id is not None:
            config_id = resolve_config(row, config_id)
        with _arg("changes"):
            child = wb.fork(row["id"], config_id, changes, name=name)
        out: dict[str, Any] = {"experiment": child.key, "parent": key(row), "space": child.model_dump(mode="json")["space"],
                               "configurations": len(wb.configurations(child))}
        if start:
            out["sweep"] = run_sweep(child.key)
        return out

    @tool
    def approve_configuration(experiment: ExperimentRef, config_id: ConfigRef, by: By = "agent", reason: Reason = "") -> dict[str, Any]:
        """Mark a configuration good enough: it becomes the exported best."""
        row = experiment_row(experiment)
        return wb.approve(row["id"], resolve_config(row, config_id), by=by, reason=reason)

    @tool
    def reject_configuration(experiment: ExperimentRef, config_id: ConfigRef, by: By = "agent", reason: Reason = "") -> dict[str, Any]:
        """Exclude a configuration from the leaderboard (its runs are kept)."""
        row = experiment_row(experiment)
        return wb.reject(row["id"], resolve_config(row, config_id), by=by, reason=reason)

    @tool
    def request_human(
        experiment: ExperimentRef,
        reason: Annotated[str, Field(min_length=1, description="What the human should look at or decide.")],
        context: Annotated[dict[str, Any] | None, Field(description="Anything that helps (config ids, numbers).")] = None,
    ) -> dict[str, Any]:
        """Raise the human_needed event (shown in notebooks, dashboards and webhooks)."""
        row = experiment_row(experiment)
        event_id = wb.request_human(row["id"], reason, context)
        return {"experiment": key(row), "event_id": event_id, "type": "human_needed"}

    @tool
    def add_human_score(
        run_id: RunRef,
        thumbs: Annotated[Literal["up", "down"] | None, Field(description="'up' or 'down'.")] = None,
        stars: Annotated[int | None, Field(ge=1, le=5, description="1 to 5 stars.")] = None,
        comment: Annotated[str, Field(description="Why.")] = "",
        by: By = "agent",
    ) -> dict[str, Any]:
        """Rate a finished run's output (thumbs and/or stars); shown in the leaderboard as human_* columns."""
        try:
            from .ratings import rate
        except ImportError:
            raise PromptLooperError("add_human_score needs promptlooper.ratings, which this version does not have") from None
        with _arg("run_id"):
            wb.run_detail(run_id)
        with _arg("thumbs" if thumbs is not None and stars is None else "stars" if stars is not None and thumbs is None else "rating"):
            return rate(wb.store, run_id, thumbs=thumbs, stars=stars, comment=comment, by=by)

    @tool
    def compare_configurations(
        experiment: ExperimentRef,
        config_a: Annotated[str | int, Field(description="A configuration id prefix, 'best', or a leaderboard rank (1 = best); "
                                                         "'OTHER_EXPERIMENT:CONFIG' for one of another experiment.")],
        config_b: Annotated[str | int, Field(description="A configuration id prefix, 'best', or a leaderboard rank; "
                                                         "'OTHER_EXPERIMENT:CONFIG' for one of another experiment.")],
        scorer: Annotated[str | None, Field(description="Compare one scorer's column instead of the weighted score.")] = None,
    ) -> dict[str, Any]:
        """Paired comparison of two configurations over the samples both finished: mean difference (a - b),
        its 95% interval, p-value, and which is better if the difference is significant."""
        try:
            from .stats import compare
        except ImportError:
            raise PromptLooperError("compare_configurations needs promptlooper.stats, which this version does not have") from None
        row = experiment_row(experiment)
        if any(isinstance(ref, str) and ":" in ref for ref in (config_a, config_b)):
            from .mcp_views import compare_across

            return compare_across(wb, key(row), {"config_a": config_a, "config_b": config_b}, scorer)
        for arg, ref in (("config_a", config_a), ("config_b", config_b)):
            if isinstance(ref, str) and ref != "best":
                resolve_config(row, ref, arg)
            elif isinstance(ref, int):
                with _arg(arg):
                    total = len(wb.leaderboard(row["id"]))
                    if not 1 <= ref <= total:
                        raise NotFoundError(f"no configuration ranked {ref}; the leaderboard has {total}")
        with _arg("scorer"):
            out = compare(wb, row["id"], config_a, config_b, scorer=scorer)
        out["config_a"], out["config_b"] = out["config_a"][:12], out["config_b"][:12]
        return out

    # ------------------------------------------------------------------ guided search by the agent
    @tool
    def ask_configurations(
        experiment: ExperimentRef,
        n: Annotated[int, Field(ge=1, le=256, description="How many configurations to propose.")] = 1,
    ) -> dict[str, Any]:
        """Guided search: the next configurations worth trying (from what was measured or told so far).
        Evaluate them with evaluate_configurations, or yourself and report with tell_result."""
        row = experiment_row(experiment)
        ask = needs("ask", "ask_configurations")
        with _arg("experiment"):
            proposals = ask(row["id"], n=n)
        return {"experiment": key(row), "configurations": [{"config_id": str(p["config_id"])[:12], "point": p["point"]} for p in proposals]}

    @tool
    def tell_result(
        experiment: ExperimentRef,
        config_id: ConfigRef,
        score: Annotated[float, Field(ge=0, le=1, description="The configuration's score, 0..1 (higher is better).")],
    ) -> dict[str, Any]:
        """Guided search: report the score of a configuration you evaluated yourself; the search learns from it."""
        row = experiment_row(experiment)
        tell = needs("tell", "tell_result")
        with _arg("config_id"):
            out = tell(row["id"], config_id, score, source="agent")
        return {"experiment": key(row), "config_id": config_id, "score": score, "told": True,
                **(out if isinstance(out, dict) else {})}

    @tool
    def evaluate_configurations(
        experiment: ExperimentRef,
        points: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=256,
                                                      description="Points to run, each {space key: value} (e.g. from ask_configurations).")],
    ) -> dict[str, Any]:
        """Run configurations (each on all samples; blocks until done) and return their scores and n."""
        row = experiment_row(experiment)
        evaluate = needs("evaluate", "evaluate_configurations")
        for i, point in enumerate(points):
            check_point(row, point, f"points[{i}]")
        with _arg("points"):
            results = evaluate(row["id"], points)
        return {"experiment": key(row), "results": [{"config_id": str(r["config_id"])[:12], "point": r.get("point"), "score": r.get("score"),
                                                      "ci": r.get("ci"), "n": r.get("n")} for r in results]}

    # ------------------------------------------------------------------ data views (export_runs, group_by, compare_experiments)
    from .mcp_views import register as register_view_tools

    register_view_tools(tool, wb, experiment_row, _arg, _truncate)
    return server


# --------------------------------------------------------------------------- helpers
def _endpoint_key_vars(wb: Workbench) -> list[str]:
    """Key variables the stored endpoints name: their values are redacted from replies too."""
    return [str(e["api_key_env"]) for e in wb.store.endpoints().values() if e.get("api_key_env")]


def _validation_problems(exc: ValidationError) -> list[Problem]:
    from .validation import problems_from_validation_error

    return problems_from_validation_error(exc)


def _other(problems: list[Problem], seen: list[Problem]) -> list[Problem]:
    """``problems`` at paths not already reported in ``seen``."""
    paths = {p.path for p in seen}
    return [p for p in problems if p.path not in paths]


def _named_only(data: dict[str, Any]) -> list[Problem]:
    """Over MCP, function stages and python scorers name a registered function, an installed plugin, or an
    import path the operator allowed (:mod:`promptlooper.functions`); a refused module is never imported."""
    problems = []
    hint = (f"registered: {', '.join(sorted(registered_functions())) or 'none'}; the operator registers functions in the "
            f"server process, installs a plugin, or allows a module with {ALLOW_IMPORTS}")
    stages, scorers = data.get("stages"), data.get("scorers")
    for i, stage in enumerate(stages if isinstance(stages, list) else []):
        if isinstance(stage, dict) and (stage.get("kind") == "function" or "function" in stage):
            fn = stage.get("function")
            problem = function_problem(fn) if isinstance(fn, str) else f"{fn!r} is not a function name"
            if problem:
                problems.append(Problem(f"stages[{i}].function", problem, hint))
    for i, sc in enumerate(scorers if isinstance(scorers, list) else []):
        if isinstance(sc, dict) and sc.get("name") == "python":
            args = sc.get("args") if isinstance(sc.get("args"), dict) else {}
            fn = sc.get("function", args.get("function"))
            problem = function_problem(fn) if isinstance(fn, str) else f"{fn!r} is not a function name"
            if problem:
                problems.append(Problem(f"scorers[{i}].function", problem, hint))
    return problems


# --------------------------------------------------------------------------- transports
def bearer(app: Any, key: str) -> Any:
    """ASGI wrapper: every HTTP request needs ``Authorization: Bearer <key>`` (else 401)."""
    expected = f"Bearer {key}".encode()

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            got = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(got, expected):
                # error="invalid_token" tells MCP clients (the Inspector among them) that a bearer
                # key is what is missing; a bare "Bearer" makes them start an OAuth discovery flow.
                challenge = b'Bearer error="invalid_token", error_description="missing or wrong bearer key"'
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"www-authenticate", challenge), (b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": b'{"error": "missing or wrong bearer key"}'})
                return
        await app(scope, receive, send)

    return asgi


def http_app(wb: Workbench, key: str, host: str = DEFAULT_HOST) -> Any:
    return bearer(build_server(wb).streamable_http_app(host=host), key)


def serve(wb: Workbench, transport: str = "stdio", host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> int:
    """Run the server until the client (stdio) or a signal (http) ends it."""
    if transport == "stdio":
        build_server(wb, log_level="WARNING").run()
        return 0
    import uvicorn

    key = os.environ.get(KEY_ENV, "")
    if not key:
        key = secrets.token_urlsafe(32)
        print(f"promptlooper mcp: bearer key (shown once; set ${KEY_ENV} to choose it): {key}", file=sys.stderr, flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"promptlooper mcp: warning: listening on {host}, not only on this machine", file=sys.stderr, flush=True)
    print(f"promptlooper mcp: http://{host}:{port}/mcp (database {wb.db_path})", file=sys.stderr, flush=True)
    app = bearer(build_server(wb, log_level="WARNING").streamable_http_app(host=host), key)
    uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0


__all__ = ["EXPERIMENT_SCHEMA", "bearer", "build_server", "http_app", "serve"]
