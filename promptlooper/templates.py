"""Jinja2 templates in a sandbox, with undefined variables as errors.

Templates are compiled once per distinct source text (the hot path renders the same few prompt
variants thousands of times), and the variables a template reads are found statically so that
validation can name a missing one before any model is called.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import PromptLooperError

_ENV = ImmutableSandboxedEnvironment(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
)


class TemplateError(PromptLooperError):
    """A template failed to compile or render."""


@lru_cache(maxsize=4096)
def _compile(source: str) -> Any:
    try:
        return _ENV.from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error at line {exc.lineno}: {exc.message}") from exc


@lru_cache(maxsize=4096)
def variables(source: str) -> frozenset[str]:
    """Top-level names a template reads (``{{ sample.question }}`` reads ``sample``)."""
    try:
        return frozenset(meta.find_undeclared_variables(_ENV.parse(source)))
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error at line {exc.lineno}: {exc.message}") from exc


def check_syntax(source: str) -> str | None:
    """None if ``source`` compiles, else the error text."""
    try:
        _compile(source)
    except TemplateError as exc:
        return str(exc)
    return None


def render(source: str, context: dict[str, Any]) -> str:
    # Plain text without markup is by far the most common system prompt: skip Jinja for it.
    if "{" not in source:
        return source
    try:
        return str(_compile(source).render(context))
    except (UndefinedError, SecurityError, TypeError, ValueError) as exc:
        raise TemplateError(f"cannot render template: {exc}") from exc
