"""Validation of an experiment before anything is called: every problem, with its field path.

Pydantic checks the shape and ranges; this module checks what needs several fields at once:
template variables against sample fields, earlier stages and space variables; scorer names and
arguments against the registry; space keys against stages; endpoints against the configuration
(and their key variables against the environment); samples files against the disk; and, with
:mod:`promptlooper.sample_checks`, duplicate samples and every template rendered with the first
samples.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from . import bounds, templates
from .engine import chat
from .errors import Problem, SpecError
from .functions import add_search_dir, resolve_function
from .prompt_files import inline_prompt_files
from .providers.registry import LOCAL, EndpointPool, split_fallback, split_model
from .ratings import LABELS as RATING_LABELS
from .sample_checks import duplicate_samples, trial_render
from .samples import read_samples
from .scorers import base as scorer_registry
from .spec import (
    STAGE_TEXT_FIELDS,
    EndpointGroupSpec,
    Experiment,
    FunctionStage,
    MessageTemplate,
    ModelParams,
    PromptStage,
    Range,
)
from .sweeps.space import PARAM_FIELDS, flat_axes, resolve_key, values_of

ALWAYS_AVAILABLE = {"sample", "loop", "range", "dict", "lipsum", "cycler", "joiner", "namespace"}


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if part in ("prompt", "function") and out.startswith("stages["):
            continue  # the discriminator tag pydantic inserts
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(experiment)"


def _union_tag(part: Any) -> bool:
    # pydantic names the member of a union it tried ("list[any]", "function-after[_ordered(), Range]",
    # "str"...) inside the location; users know fields, not union members.
    return isinstance(part, str) and ("[" in part or part in _TYPE_TAGS)


_TYPE_TAGS = {"str", "int", "float", "bool", "dict", "list", "none", "Range", "Linked", "is-instance[Path]"}


def _readable(errors: list[Any]) -> list[Any]:
    """One message per place. A union's members each report a wrong type; where one member got far
    enough to say something specific (at or below that place), that is the message kept, and the
    wrong-type reports left at one place are joined ("a valid list or a valid dictionary")."""
    tagged = [({**e, "loc": tuple(x for x in e["loc"] if not _union_tag(x))}) for e in errors]

    def specific_at_or_below(loc: tuple[Any, ...]) -> bool:
        return any(e["loc"][:len(loc)] == loc and (e["type"] not in _TYPE_ERRORS or len(e["loc"]) > len(loc))
                   for e in tagged)

    out: list[Any] = []
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for e in tagged:
        if e["type"] in _TYPE_ERRORS:
            if specific_at_or_below(e["loc"]):
                continue
            if e["loc"] in merged:
                first = merged[e["loc"]]
                first["msg"] += " or " + e["msg"].removeprefix("Input should be ")
                continue
            merged[e["loc"]] = e = dict(e)
        out.append(e)
    return out


_TYPE_ERRORS = {"list_type", "dict_type", "model_type", "string_type", "float_type", "int_type", "bool_type",
                "is_instance_of", "model_attributes_type"}


def problems_from_validation_error(exc: ValidationError) -> list[Problem]:
    problems = []
    for err in _readable(exc.errors()):
        loc = tuple(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        hint = ""
        if err["type"] == "extra_forbidden":
            msg = f"unknown field {loc[-1]!r}"
            hint = "check the spelling; see the experiment schema in the README"
        elif err["type"] == "missing":
            hint = "add this field"
        elif err["type"] == "union_tag_invalid":
            hint = "a stage has kind 'prompt' (default) or 'function'"
        elif err["type"] == "string_pattern_mismatch" and loc and loc[-1] in ("project", "name"):
            msg = f"{err.get('input')!r} may hold only letters, digits, '_', '.' and '-'"
            hint = "no '/' or spaces: an experiment is addressed as project/name"
        elif err["type"] in _TYPE_ERRORS and len(loc) == 2 and loc[0] == "space":
            hint = "a list of values, or a range such as {min: 0, max: 1, step: 0.1}"
        problems.append(Problem(_path(loc), msg, hint))
    return problems


def load_file(path: str | Path) -> Experiment:
    """Parse a YAML (or JSON) experiment file; raises SpecError with field paths."""
    p = Path(path)
    data = bounds.load_yaml(bounds.read_text(p), p.name)
    if not isinstance(data, dict):
        raise SpecError([Problem(p.name, "the file must hold a mapping (name:, samples:, stages:, ...)")])
    data.setdefault("base_dir", str(p.resolve().parent))
    add_search_dir(data["base_dir"])  # the operator's file: its functions may come from modules next to it
    return parse_experiment(data)


def _prune(data: Any, loc: tuple[Any, ...]) -> bool:
    """Delete the value at ``loc`` (dropping a discriminator tag); False if there is nothing to drop."""
    parts = [x for x in loc if x not in ("prompt", "function")]
    node = data
    for part in parts[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    last = parts[-1] if parts else None
    if isinstance(node, dict) and last in node:
        del node[last]
        return True
    if isinstance(node, list) and isinstance(last, int) and last < len(node):
        node.pop(last)
        return True
    return False


def parse_experiment(data: dict[str, Any]) -> Experiment:
    """Validate a mapping into an Experiment, or raise SpecError with every shape problem.

    To report *every* problem in one go, invalid values are pruned and the rest validated again;
    the pruned experiment rides on the error (``exc.partial``) so semantic checks can run on it.
    """
    import copy

    data = copy.deepcopy(data)
    file_problems = inline_prompt_files(data)  # {file: ...} templates become the files' text
    try:
        exp = Experiment.model_validate(data)
    except ValidationError as exc:
        problems = file_problems + problems_from_validation_error(exc)
        first = exc
    else:
        if not file_problems:
            return exp
        error = SpecError(file_problems)
        error.partial = exp  # type: ignore[attr-defined]
        raise error
    trial = copy.deepcopy(data)
    partial = None
    for _ in range(20):
        try:
            partial = Experiment.model_validate(trial)
            break
        except ValidationError as exc:
            if not any(_prune(trial, tuple(err["loc"])) for err in exc.errors() if err["type"] != "missing"):
                break
    error = SpecError(problems)
    error.partial = partial  # type: ignore[attr-defined]
    raise error from first


def load_samples(exp: Experiment) -> tuple[list[dict[str, Any]], list[Problem]]:
    path = exp.samples_path()
    if path is None:
        return list(exp.samples), []  # type: ignore[arg-type]
    return read_samples(path)


def _unknown(name: str, available: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(available), n=1)
    listing = ", ".join(sorted(available - ALWAYS_AVAILABLE)) or "none"
    return (f"did you mean {close[0]!r}? " if close else "") + f"available: {listing}"


def validate(exp: Experiment, pool: EndpointPool, samples: list[dict[str, Any]] | None = None, *,
             built: dict[int, Any] | None = None, functions: dict[str, Any] | None = None) -> list[Problem]:
    """Every problem of ``exp``; an empty list means it is safe to run.

    Each scorer is built to check its arguments, and each function stage resolved; ``built``
    (scorer index -> function) and ``functions`` (stage name -> callable) keep them, so that whoever
    runs the experiment does not build or resolve them again (see promptlooper.compiled)."""
    problems: list[Problem] = []
    if samples is None:
        samples, sample_problems = load_samples(exp)
        problems += sample_problems
    samples_file = exp.samples_path()
    if not samples and not problems and (samples_file is None or samples_file.exists()):
        problems.append(Problem("samples", "there are no samples", "add at least one sample (an object per input)"))
    common_fields = set.intersection(*(set(s) for s in samples)) if samples else set()
    problems += duplicate_samples(samples)

    # -- space keys
    space_vars: set[str] = set()
    varied_fields: dict[tuple[str, str], list[Any]] = {}
    varied_paths: dict[tuple[str, str], str] = {}  # where the space sets a stage field (a linked bundle's key too)
    stage_names = [s.name for s in exp.stages]
    set_by: dict[str, str] = {}  # space key -> the path of the axis that sets it
    for path, key, value in flat_axes(exp):
        values = values_of(value)
        if key in set_by:
            problems.append(Problem(path, f"{key!r} is also set by {set_by[key]}; one axis per key",
                                    "remove it from one of them (a linked bundle sets its keys together)"))
            continue
        set_by[key] = path
        if isinstance(value, list) and not value:
            problems.append(Problem(path, "empty list of values", "list at least one value, or remove the key"))
            continue
        if isinstance(value, Range) and value.step is None and exp.strategy == "grid":
            problems.append(Problem(path, "a grid sweep needs a step for this range", "add step: (e.g. 0.1) or use strategy: random"))
        target = resolve_key(exp, key)
        if target.kind == "var":
            space_vars.add(target.field)
            continue
        for stage_name in target.stages:
            if stage_name not in stage_names:
                problems.append(Problem(path, f"no stage named {stage_name!r}", _unknown(stage_name, set(stage_names))))
                continue
            stage = exp.stages[stage_names.index(stage_name)]
            if not target.field:
                problems.append(Problem(path, f"{key!r} is a stage name, not a field", f"write {key}.temperature, {key}.model, {key}.system …"))
                continue
            if isinstance(stage, PromptStage):
                if target.field not in STAGE_TEXT_FIELDS and target.field not in PARAM_FIELDS and target.field not in stage.params.as_dict():
                    known = sorted(set(STAGE_TEXT_FIELDS) | PARAM_FIELDS)
                    problems.append(Problem(path, f"unknown stage field {target.field!r}",
                                            _unknown(target.field, set(known)) + "; to pass a server-specific parameter, set it in the stage's params too"))
                    continue
                if target.field in PARAM_FIELDS:
                    for v in values:
                        try:
                            ModelParams.model_validate({target.field: v})
                        except ValidationError as exc:
                            problems.append(Problem(path, f"value {v!r}: {exc.errors()[0]['msg']}", "use values inside the parameter's range"))
                varied_fields[(stage_name, target.field)] = values
                varied_paths[(stage_name, target.field)] = path

    # -- stages
    seen: set[str] = set()
    for i, stage in enumerate(exp.stages):
        where = f"stages[{i}]"
        if stage.name in seen:
            problems.append(Problem(f"{where}.name", f"duplicate stage name {stage.name!r}", "give every stage its own name"))
        available = common_fields | {"sample"} | space_vars | seen | ({"previous"} if i else set())
        seen.add(stage.name)
        if isinstance(stage, FunctionStage):
            try:
                fn = resolve_function(stage.function)
                if functions is not None:
                    functions[stage.name] = fn
            except KeyError as exc:
                problems.append(Problem(f"{where}.function", str(exc.args[0])))
            continue
        models = varied_fields.get((stage.name, "model"), [stage.model])
        for model in models:
            problems += _check_model(model, pool, varied_paths.get((stage.name, "model"), f"{where}.model"))
        if stage.tools and any(str(m).partition("/")[0] == LOCAL and LOCAL not in pool.configs for m in models):
            problems.append(Problem(f"{where}.tools", "the embedded local model cannot call tools (they would not be sent)",
                                    "use an OpenAI-compatible endpoint that offers tools, e.g. llama.cpp's server "
                                    "with --chat_format chatml-function-calling"))
        for field in ("system", "user"):
            sources = varied_fields.get((stage.name, field), [getattr(stage, field)])
            for j, src in enumerate(sources):
                if src is None:
                    continue
                path = f"{where}.{field}" if (stage.name, field) not in varied_fields else f"{varied_paths[(stage.name, field)]}[{j}]"
                error = templates.check_syntax(str(src))
                if error:
                    problems.append(Problem(path, error, "fix the Jinja2 syntax"))
                    continue
                for var in sorted(templates.variables(str(src)) - available - ALWAYS_AVAILABLE):
                    missing_in = [k for k, s in enumerate(samples) if var not in s]
                    if samples and missing_in and len(missing_in) < len(samples):
                        problems.append(Problem(path, f"template variable {var!r} is missing from sample(s) {missing_in[:5]}",
                                                "give every sample this field, or use {{ sample.get('" + var + "', '') }}"))
                    else:
                        problems.append(Problem(path, f"unknown template variable {var!r}", _unknown(var, available)))

        problems += _check_turns(stage, where, samples, available)

    problems += trial_render(exp, samples, varied_fields, ALWAYS_AVAILABLE)

    used_vars: set[str] = set()
    for stage in exp.stages:
        if isinstance(stage, PromptStage):
            turns = [m.content for m in stage.messages or [] if isinstance(m, MessageTemplate)]
            for src in (stage.system, stage.user, *turns):
                if src and not templates.check_syntax(src):
                    used_vars |= templates.variables(src)
    for (_, field), values in varied_fields.items():
        if field in ("system", "user"):
            for v in values:
                if v and not templates.check_syntax(str(v)):
                    used_vars |= templates.variables(str(v))
    for var in sorted(space_vars - used_vars):
        problems.append(Problem(f"space.{var}", f"space variable {var!r} is not used by any template",
                                "use it as {{ " + var + " }} in a template, or write stage.field to vary a stage setting"))

    problems += _check_groups(exp, pool)

    # -- scorers
    if not exp.scorers:
        problems.append(Problem("scorers", "no scorers", "add at least one scorer (e.g. {name: contains, field: reference}) so configurations can be ranked"))
    labels: set[str] = set()
    for i, sc in enumerate(exp.scorers):
        where = f"scorers[{i}]"
        try:
            info = scorer_registry.get(sc.name)
        except scorer_registry.ScorerError as exc:
            known = set(scorer_registry.registered())
            close = difflib.get_close_matches(sc.name, sorted(known), n=1)
            problems.append(Problem(f"{where}.name", f"unknown scorer {sc.name!r}",
                                    (f"did you mean {close[0]!r}? " if close else "") + f"known: {', '.join(sorted(known))}"))
            del exc
            continue
        for arg_path, msg in scorer_registry.check_args(sc.name, sc.args):
            problems.append(Problem(f"{where}.{arg_path}", msg, f"see the {sc.name!r} scorer's arguments in the README"))
        if not problems or not any(p.path.startswith(where) for p in problems):
            try:
                fn = scorer_registry.build(sc.name, sc.args)
                if built is not None:
                    built[i] = fn
            except scorer_registry.ScorerError as exc:
                problems.append(Problem(where, str(exc)))
        if info.needs_fields and not any(p.path.startswith(where) for p in problems):  # args of the right types
            for fld in info.needs_fields(sc.args):
                if samples and fld not in common_fields:
                    problems.append(Problem(f"{where}.field", f"sample field {fld!r} is missing from some or all samples",
                                            _unknown(fld, common_fields) if common_fields else "add the field to every sample"))
        if info.model_calls and not sc.args.get("base_url"):
            # A judge's endpoint is checked like a stage's, before any call.
            import inspect

            default = inspect.signature(info.factory).parameters.get("model")
            model = sc.args.get("model") or (default.default if default is not None else None)
            if isinstance(model, str):
                problems += _check_model(model, pool, f"{where}.model")
        if sc.stage and sc.stage not in stage_names:
            problems.append(Problem(f"{where}.stage", f"no stage named {sc.stage!r}", _unknown(sc.stage, set(stage_names))))
        if sc.column in labels:
            problems.append(Problem(f"{where}.label", f"two scorers are both called {sc.column!r}", "give one of them a label"))
        if sc.column in RATING_LABELS:
            # the column of people's ratings: a score written under it would replace a rating
            problems.append(Problem(f"{where}.label", f"{sc.column!r} is the column of people's ratings",
                                    "choose another label (weigh ratings in with {name: human, rating: stars})"))
        labels.add(sc.column)
    if exp.scorers and sum(sc.weight for sc in exp.scorers) <= 0:
        problems.append(Problem("scorers", "all weights are zero", "give at least one scorer a positive weight"))
    if exp.budget.max_cost is not None:
        problems += _check_cost_budget(exp, pool, varied_fields)
    if exp.strategy == "random" and any(isinstance(v, Range) and v.step is None for v in exp.space.values()) and not exp.max_configs:
        problems.append(Problem("max_configs", "a random sweep over a continuous range needs max_configs", "set max_configs (or --max-configs)"))
    return problems


def _called_models(exp: Experiment, varied_fields: dict[tuple[str, str], list[Any]]) -> list[tuple[str, str]]:
    """(endpoint, model) of every call a sweep of ``exp`` can make: stages (each model a space
    gives them) and scorers that call models (a judge; the embedding scorer on an endpoint)."""
    import inspect

    refs: list[str] = []
    for stage in exp.stages:
        if isinstance(stage, PromptStage):
            refs += [str(m) for m in varied_fields.get((stage.name, "model"), [stage.model])]
    called: list[tuple[str, str]] = []
    for sc in exp.scorers:
        try:
            info = scorer_registry.get(sc.name)
        except scorer_registry.ScorerError:
            continue
        if info.model_calls:
            default = inspect.signature(info.factory).parameters.get("model")
            model = sc.args.get("model") or (default.default if default is not None else None)
            if isinstance(model, str):
                refs.append(model)
        elif sc.name == "embedding" and sc.args.get("model") and (sc.args.get("endpoint") or sc.args.get("base_url")):
            called.append((str(sc.args.get("endpoint") or sc.args["base_url"]), str(sc.args["model"])))
    for ref in refs:
        try:
            called.append(split_model(ref))
        except Exception:  # noqa: BLE001, S112 - reported by _check_model
            continue
    return list(dict.fromkeys(called))


def cost_budget_problems(exp: Experiment, pool: EndpointPool) -> list[Problem]:
    """What :func:`validate` says of a ``max_cost`` budget on ``exp``: for one set on a live sweep."""
    varied: dict[tuple[str, str], list[Any]] = {}
    for _, key, value in flat_axes(exp):
        target = resolve_key(exp, key)
        if target.kind != "var" and target.field == "model":
            for stage_name in target.stages:
                varied[(stage_name, "model")] = values_of(value)
    return _check_cost_budget(exp, pool, varied)


def _check_cost_budget(exp: Experiment, pool: EndpointPool, varied_fields: dict[tuple[str, str], list[Any]]) -> list[Problem]:
    """A cost budget cannot hold over a model no price table knows: its calls would count as $0."""
    unpriced = [(e, m) for e, m in _called_models(exp, varied_fields) if not pool.has_price(e, m)]
    if not unpriced:
        return []
    names = ", ".join(f"{e}/{m}" for e, m in unpriced)
    return [Problem("budget.max_cost", f"max_cost cannot hold over a model with no price (its calls count as $0): {names}",
                    f"set one with `promptlooper prices set {unpriced[0][1]} INPUT OUTPUT` (USD per million tokens; "
                    f"Workbench.set_price in Python), or budget max_tokens instead")]


def _check_groups(exp: Experiment, pool: EndpointPool) -> list[Problem]:
    """Each endpoint group's members and fallback: configured endpoints (not groups), keys set."""
    problems: list[Problem] = []
    for name, spec in exp.endpoints.items():
        if not isinstance(spec, EndpointGroupSpec):
            continue
        refs = [(f"endpoints.{name}.group[{i}]", m) for i, m in enumerate(spec.group)]
        if spec.fallback:
            refs.append((f"endpoints.{name}.fallback", split_fallback(spec.fallback)[0]))
        for path, member in refs:
            if member in pool.groups:
                problems.append(Problem(path, f"{member!r} is an endpoint group; a group lists endpoints only",
                                        "list that group's endpoints here instead"))
            elif not pool.has(member):
                problems.append(Problem(path, f"endpoint {member!r} is not configured", _unknown(member, set(pool.names()))))
            else:
                env = pool.describe(member).get("api_key_env")
                if env and not os.environ.get(env):
                    problems.append(Problem(path, f"endpoint {member!r} reads its API key from ${env}, which is not set",
                                            f"export {env}=... first"))
    return problems


def _check_turns(stage: PromptStage, where: str, samples: list[dict[str, Any]], available: set[str]) -> list[Problem]:
    """A stage's ``messages``: each template's syntax and variables, each conversation field in every sample."""
    problems: list[Problem] = []
    for j, turn in enumerate(stage.messages or []):
        path = f"{where}.messages[{j}]"
        if isinstance(turn, MessageTemplate):
            error = templates.check_syntax(turn.content)
            if error:
                problems.append(Problem(f"{path}.content", error, "fix the Jinja2 syntax"))
                continue
            for var in sorted(templates.variables(turn.content) - available - ALWAYS_AVAILABLE):
                problems.append(Problem(f"{path}.content", f"unknown template variable {var!r}", _unknown(var, available)))
            continue
        field = turn.from_field
        missing = [k for k, s in enumerate(samples) if field not in s]
        if missing:
            problems.append(Problem(f"{path}.from_field", f"sample field {field!r} is missing from sample(s) {missing[:5]}",
                                    "give every sample this field: a list of {role, content} messages"))
            continue
        for k, sample in enumerate(samples):
            problem = chat.conversation_problem(sample[field])
            if problem:
                problems.append(Problem(f"{path}.from_field", f"samples[{k}].{field}: {problem}",
                                        "a conversation is a list of {role: user|assistant|system, content: text}"))
                break
    return problems


def _check_model(model: str, pool: EndpointPool, path: str) -> list[Problem]:
    if "{{" in model:
        return [Problem(path, f"model {model!r} is a template; a model is chosen by the space, not rendered",
                        "vary it with the space (answer.model: [...]), or with the values that go with it as a linked "
                        "axis: space: {combo: {linked: [{answer.model: e/a, answer.system: ...}, ...]}}")]
    try:
        endpoint, name = split_model(model)
    except Exception as exc:  # EndpointError
        return [Problem(path, str(exc))]
    if not pool.has(endpoint):
        return [Problem(path, f"endpoint {endpoint!r} is not configured",
                        f"add it with `promptlooper endpoints add {endpoint} --base-url URL` or under endpoints: in the file "
                        f"(configured: {', '.join(pool.names())})")]
    info = pool.describe(endpoint)
    if endpoint == LOCAL and info.get("kind") == "embedded":
        if name != info["models"][0]:
            return [Problem(path, f"the local endpoint serves {info['models'][0]!r}, not {name!r}", f"use local/{info['models'][0]}")]
        if not info["available"]:
            return [Problem(path, "the embedded model is not installed", str(info["problem"]))]
    env = info.get("api_key_env")
    if env and not os.environ.get(env):
        return [Problem(path, f"endpoint {endpoint!r} reads its API key from ${env}, which is not set", f"export {env}=... first")]
    return []


def ensure_valid(exp: Experiment, pool: EndpointPool) -> list[dict[str, Any]]:
    """Validate and return the samples, or raise SpecError listing every problem."""
    samples, problems = load_samples(exp)
    problems += validate(exp, pool, samples)
    if problems:
        raise SpecError(problems)
    return samples
