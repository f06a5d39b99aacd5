"""Jinja2 templates in a sandbox, with undefined variables as errors.

Templates are compiled once per distinct source text (the hot path renders the same few prompt
variants thousands of times), and the variables a template reads are found statically so that
validation can name a missing one before any model is called.

Nearly every prompt is text with ``{{ name }}`` tags. Such a template is checked, read and rendered
without Jinja (:func:`_substitution_plan`), with the same result (``tests/test_templates.py`` holds
the two side by side), and Jinja is imported only when a template needs it: importing it took
~15-20 ms of each ``promptlooper run`` / ``validate``, before the first call.
"""

from __future__ import annotations

import keyword
import re
from functools import lru_cache
from typing import Any

from .errors import PromptLooperError


class TemplateError(PromptLooperError):
    """A template failed to compile or render."""


@lru_cache(maxsize=1)
def _env() -> Any:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


@lru_cache(maxsize=4096)
def _compile(source: str) -> Any:
    from jinja2 import TemplateSyntaxError

    try:
        return _env().from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error at line {exc.lineno}: {exc.message}") from exc


@lru_cache(maxsize=4096)
def variables(source: str) -> frozenset[str]:
    """Top-level names a template reads (``{{ sample.question }}`` reads ``sample``)."""
    plan = _substitution_plan(source)
    if plan is not None:
        return frozenset(plan[1::2])
    from jinja2 import TemplateSyntaxError, meta

    try:
        return frozenset(meta.find_undeclared_variables(_env().parse(source)))
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error at line {exc.lineno}: {exc.message}") from exc


def check_syntax(source: str) -> str | None:
    """None if ``source`` compiles, else the error text."""
    if _substitution_plan(source) is not None:
        return None  # text and {{ name }} tags: Jinja compiles every such template
    try:
        _compile(source)
    except TemplateError as exc:
        return str(exc)
    return None


# ``{{ name }}`` with nothing else inside: the shape of nearly every prompt template.
_SIMPLE_VAR = re.compile(r"\{\{[ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*\}\}")
# Names Jinja does not take as a plain variable: its constants, ``self`` (the template itself) and
# its default globals (``jinja2.defaults.DEFAULT_NAMESPACE``, which it never counts as read).
_NOT_VARIABLES = frozenset({"true", "false", "none", "True", "False", "None", "self",
                            "range", "dict", "lipsum", "cycler", "joiner", "namespace"})


@lru_cache(maxsize=4096)
def _substitution_plan(source: str) -> tuple[str, ...] | None:
    """``(text, name, text, name, ..., text)`` if ``source`` is only text and ``{{ name }}`` tags.

    Jinja costs ~20 µs a render (a fresh context per call); such templates render identically by
    plain substitution, since Jinja writes ``{{ name }}`` as ``str(value)``, and read exactly their
    tags' names. Anything else (filters, attributes, tags, comments, whitespace control, ``\\r``
    which Jinja's lexer rewrites) gets None and goes through Jinja.
    """
    if "\r" in source or "{%" in source or "{#" in source:
        return None
    parts: list[str] = []
    pos = 0
    for m in _SIMPLE_VAR.finditer(source):
        if m.group(1) in _NOT_VARIABLES or keyword.iskeyword(m.group(1)):
            return None  # not a plain variable, or an operator word
        text = source[pos : m.start()]
        if text.endswith("{"):
            return None  # "{{{ a }}}": Jinja's tag starts one brace earlier
        parts += [text, m.group(1)]
        pos = m.end()
    parts.append(source[pos:])
    if any("{{" in text for text in parts[::2]):
        return None  # a tag the pattern did not take: leave it to Jinja
    return tuple(parts)


def _substitute(plan: tuple[str, ...], context: dict[str, Any]) -> str:
    out = [plan[0]]
    for i in range(1, len(plan), 2):
        out += [str(context[plan[i]]), plan[i + 1]]
    return "".join(out)


def render(source: str, context: dict[str, Any]) -> str:
    # Plain text without markup is by far the most common system prompt: skip Jinja for it.
    if "{" not in source:
        return source
    plan = _substitution_plan(source)
    if plan is not None:
        try:
            return _substitute(plan, context)
        except Exception:  # noqa: BLE001 - missing name (a global, or undefined): Jinja decides, and words the error
            pass
    from jinja2.exceptions import SecurityError, UndefinedError

    try:
        return str(_compile(source).render(context))
    except (UndefinedError, SecurityError, TypeError, ValueError) as exc:
        raise TemplateError(f"cannot render template: {exc}") from exc


# One ``{{ ... }}`` tag (expressions do not contain "}}" in practice; Jinja's own lexer agrees).
_TAG = re.compile(r"\{\{.*?\}\}", re.S)


def substitute(source: str, values: dict[str, Any]) -> str:
    """``source`` with every tag that reads only ``values`` rendered, all other markup kept.

    For exports: a configuration's space variables are known, a sample's fields and earlier stages'
    outputs are not, so ``"{{ persona }}: {{ question }}"`` becomes ``"terse: {{ question }}"``,
    still a template for whoever uses the exported configuration.
    """
    if "{{" not in source or not values:
        return source

    def one(match: re.Match[str]) -> str:
        tag = match.group(0)
        try:
            names = variables(tag)
            if names and names <= values.keys():
                return render(tag, values)
        except TemplateError:
            pass  # not a tag on its own (inside a block, say): leave it as written
        return tag

    return _TAG.sub(one, source)
