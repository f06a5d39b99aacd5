"""Checks of an experiment against its actual samples, before any call.

* :func:`duplicate_samples`: two samples with one identity (the same ``id``, or identical
  content) would be one run each per configuration under one run id, the second silently
  overwriting the first.
* :func:`trial_render`: every template (stages', and scorers' ``prompt`` / ``system`` /
  ``template``) rendered against the first samples, with the first value of each space variable
  and a stand-in text for prompt stages' outputs, so that an error that only shows with real
  values (``{{ n + 1 }}`` on a text field) is caught by ``validate`` instead of failing every run.
"""

from __future__ import annotations

from typing import Any

from . import templates
from .errors import Problem
from .samples import sample_id
from .spec import Experiment, FunctionStage, PromptStage
from .sweeps.space import flat_axes, resolve_key, values_of

TRIAL_SAMPLES = 3  # the first samples every template is rendered with


def duplicate_samples(samples: list[dict[str, Any]]) -> list[Problem]:
    first_of: dict[str, int] = {}
    problems: list[Problem] = []
    for i, sample in enumerate(samples):
        sid = sample_id(sample)
        if sid not in first_of:
            first_of[sid] = i
            continue
        j = first_of[sid]
        if sid.startswith("id:"):
            problems.append(Problem(f"samples[{i}].id", f"sample id {sample['id']!r} is also the id of samples[{j}]",
                                    "give every sample its own id: runs are stored per sample id, so one would overwrite the other"))
        else:
            problems.append(Problem(f"samples[{i}]", f"identical to samples[{j}]",
                                    "remove the copy, or give the samples distinct ids if both are wanted"))
    return problems


def _space_values(exp: Experiment) -> dict[str, Any]:
    """The first value of every space variable (``{{ persona }}``), as the first configuration has it."""
    out: dict[str, Any] = {}
    for _, key, value in flat_axes(exp):
        target = resolve_key(exp, key)
        if target.kind == "var":
            values = values_of(value)
            if values:
                out[target.field] = values[0]
    return out


def trial_render(exp: Experiment, samples: list[dict[str, Any]], variants: dict[tuple[str, str], list[Any]],
                 always: set[str]) -> list[Problem]:
    """Problems of rendering each stage template with the first samples.

    ``variants`` maps (stage name, field) to the texts the space gives that field (as ``validate``
    collects them); ``always`` names what every template may read (Jinja's globals). A variable
    that a sample lacks is reported by ``validate`` already, so that sample is not rendered.
    Templates that read an earlier *function* stage's output are skipped: that output can be
    any object, and no stand-in for it would be faithful.
    """
    problems: list[Problem] = []
    space = _space_values(exp)
    seen_failures: set[tuple[str, str]] = set()
    outputs: dict[str, Any] = {}
    function_outputs: set[str] = set()
    for i, stage in enumerate(exp.stages):
        if isinstance(stage, FunctionStage):
            function_outputs |= {stage.name, "previous"}
            continue
        assert isinstance(stage, PromptStage)
        for field in ("system", "user"):
            texts = variants.get((stage.name, field), [getattr(stage, field)])
            for j, text in enumerate(texts):
                if not text or templates.check_syntax(str(text)):
                    continue  # no template, or a syntax error validate reports already
                if templates.variables(str(text)) & function_outputs:
                    continue
                path = f"stages[{i}].{field}" if (stage.name, field) not in variants else f"space.{stage.name}.{field}[{j}]"
                for k, sample in enumerate(samples[:TRIAL_SAMPLES]):
                    context = {**sample, "sample": sample, **outputs, **space}
                    if templates.variables(str(text)) - set(context) - always:
                        continue
                    try:
                        templates.render(str(text), context)
                    except templates.TemplateError as exc:
                        if (path, str(exc)) not in seen_failures:
                            seen_failures.add((path, str(exc)))
                            problems.append(Problem(path, f"rendering with samples[{k}] fails: {_reason(exc)}",
                                                    "fix the template or the sample values (a CSV column of numbers is read as numbers)"))
                        break
        if stage.tools:  # its output may be the reply's tool calls (an object): no faithful stand-in either
            function_outputs |= {stage.name, "previous"}
            continue
        stand_in = f"(output of stage {stage.name})"
        outputs[stage.name] = stand_in
        outputs["previous"] = stand_in
        function_outputs.discard("previous")
    problems += _scorer_templates(exp, samples, outputs, function_outputs - {"previous"}, always)
    return problems


_SCORER_TEMPLATES = ("prompt", "system", "template")  # the judge's prompt and system, the embedding's reference


def _scorer_templates(exp: Experiment, samples: list[dict[str, Any]], outputs: dict[str, Any], function_outputs: set[str],
                      always: set[str]) -> list[Problem]:
    """A scorer's templates see the sample, every stage output, ``input`` and ``output`` (and a
    judge's ``reference``, ``min`` and ``max``), as :mod:`promptlooper.scorers.judge` renders them."""
    problems: list[Problem] = []
    stage_outputs = {k: v for k, v in outputs.items() if k != "previous"}
    for i, sc in enumerate(exp.scorers):
        for arg in _SCORER_TEMPLATES:
            text = sc.args.get(arg)
            if not isinstance(text, str) or templates.check_syntax(text) or templates.variables(text) & function_outputs:
                continue
            scale = sc.args.get("scale", [1, 5])
            low, high = (1, scale) if isinstance(scale, int) else (tuple(scale) + (1, 5))[:2]
            for k, sample in enumerate(samples[:TRIAL_SAMPLES]):
                context = {**sample, **stage_outputs, "sample": sample, "outputs": stage_outputs, "input": "(the scored prompt)",
                           "output": "(the scored output)", "reference": sample.get(sc.args.get("reference_field", "reference")),
                           "min": low, "max": high}
                if templates.variables(text) - set(context) - always:
                    continue
                try:
                    templates.render(text, context)
                except templates.TemplateError as exc:
                    problems.append(Problem(f"scorers[{i}].{arg}", f"rendering with samples[{k}] fails: {_reason(exc)}",
                                            "fix the template or the sample values"))
                    break
    return problems


def _reason(exc: Exception) -> str:
    return str(exc).removeprefix("cannot render template: ")


__all__ = ["TRIAL_SAMPLES", "duplicate_samples", "trial_render"]
