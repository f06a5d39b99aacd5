"""Templates: the plain-substitution path (text and ``{{ name }}`` tags, no Jinja import) checks,
reads and renders exactly as Jinja does, which the reference below is, configured as
promptlooper/templates.py configures it. Each template of a generated corpus goes through both."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from jinja2 import StrictUndefined, TemplateSyntaxError, meta
from jinja2.defaults import DEFAULT_NAMESPACE
from jinja2.sandbox import ImmutableSandboxedEnvironment

from promptlooper import templates

JINJA = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)

TEXTS = ["", "Q: ", "a } b", "}} x", "{ x }", "line\n", "\n\n", "\ttab ", "ünï ", "%} ", "#} ", "{", " {", "-", "}"]
TAGS = ["{{ name }}", "{{name}}", "{{\tq\t}}", "{{ question }}", "{{ a1_b }}", "{{ self }}", "{{ range }}",
        "{{ namespace }}", "{{ true }}", "{{ None }}", "{{ not }}", "{{ and }}", "{{ loop }}", "{{ name|upper }}",
        "{{ sample.q }}", "{{- name }}", "{{ name -}}", "{% if name %}x{% endif %}", "{# c #}", "{{{ name }}}",
        "{{ name }", "{{ 'x' }}", "{{ name ~ q }}", "\r", "{{ name }}\r\n", "{{ 1 }}", "{% raw %}{{ x }}{% endraw %}"]
VALUES = ["terse", 3, 2.5, None, True, ["a", 1], {"k": "v"}, "", "line\nbreak", "{{ not a tag }}"]


def corpus() -> list[str]:
    """Every text-tag-text and, from a seeded draw, text-tag-text-tag-text."""
    out = [t1 + tag + t2 for t1, tag, t2 in itertools.product(TEXTS, TAGS, TEXTS)]
    rng = random.Random(15)
    out += ["".join(rng.choice(TEXTS) if i % 2 == 0 else rng.choice(TAGS) for i in range(5)) for _ in range(2000)]
    return out + TEXTS


def jinja_variables(source: str) -> frozenset[str] | None:
    try:
        return frozenset(meta.find_undeclared_variables(JINJA.parse(source)))
    except TemplateSyntaxError:
        return None


def jinja_render(template: Any, context: dict) -> str | type[Exception]:
    try:
        return template.render(context)
    except Exception as exc:  # noqa: BLE001 - compared by type below
        return type(exc)


def ours_render(source: str, context: dict) -> str | type[Exception]:
    try:
        return templates.render(source, context)
    except templates.TemplateError:
        return templates.TemplateError


def test_the_names_jinja_does_not_read_as_variables_are_its_own():
    # If a Jinja upgrade adds a global, the plain path must hand templates naming it to Jinja.
    assert set(DEFAULT_NAMESPACE) | {"self"} <= templates._NOT_VARIABLES


@pytest.mark.parametrize("chunk", range(4))
def test_plain_substitution_checks_reads_and_renders_as_jinja(chunk):
    sources = corpus()[chunk::4]
    planned = 0
    for source in sources:
        expected_vars = jinja_variables(source)
        assert (templates.check_syntax(source) is None) == (expected_vars is not None), source
        if expected_vars is None:
            continue
        assert templates.variables(source) == expected_vars, source
        planned += templates._substitution_plan(source) is not None
        compiled = JINJA.from_string(source)
        for value in VALUES:
            context = dict.fromkeys(expected_vars | {"name", "q", "question", "a1_b", "self", "range"}, value)
            # Text without a brace is sent exactly as written (Jinja's lexer would turn "\r" into "\n").
            expected = source if "{" not in source else jinja_render(compiled, context)
            got = ours_render(source, context)
            if isinstance(expected, str):
                assert got == expected, (source, value)
            else:
                assert got is templates.TemplateError, (source, value, expected)
        if expected_vars:  # a name missing: an error on both paths, worded by Jinja
            assert ours_render(source, {}) is templates.TemplateError, source
    assert planned > len(sources) // 10  # the corpus exercises the plain path, not only Jinja
