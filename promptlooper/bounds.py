"""Limits on what an experiment file may ask of the machine, checked before anything else runs.

An experiment file is input from anywhere (a download, a teammate, an agent), so reading one is
bounded work whatever it holds: 802 bytes of YAML aliases once expanded to gigabytes, a
10⁶-configuration space took a minute and 2 GB to validate, 1,000 nested brackets ended in a
traceback. Each limit fails as a :class:`Problem` that names the place and the fix.

YAML is read in three bounded passes: the event stream (iterative, so any nesting depth is safe
to scan) checks depth and size; composing the node graph is then recursion-safe; a walk of the
graph counts what aliases would expand to (each anchored node once, cycles refused) before any
Python object is built.

A sweep that is valid but large is a question for the operator, not an error: :func:`sweep_size`
counts its calls and estimated cost without enumerating configurations, and the CLI asks for
``--yes`` (MCP for an explicit ``max_calls``) past ``PROMPTLOOPER_CONFIRM_CALLS`` calls or
``PROMPTLOOPER_CONFIRM_COST`` dollars.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import Problem, SpecError

# libyaml's parser (PyYAML's C binding, in every PyYAML wheel) reads a file ~15× faster than the
# pure-Python one: 1.6 ms instead of 22 ms for a 7 kB experiment, a tenth of a short CLI run's
# start-up. Both give the same events, nodes and marks; the pure one stays for a PyYAML built
# without libyaml.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# libyaml refuses nesting past its own limit (1,000) while scanning ahead, before our depth check
# sees the 65th level: its refusal is the same problem, said our way.
_LIBYAML_TOO_DEEP = "exceeded maximum nesting depth"

MAX_FILE_BYTES = 1_000_000
MAX_DEPTH = 64
MAX_VALUES = 200_000        # scalars and collections, after alias expansion
MAX_STRING = 200_000        # characters in one string
MAX_AXIS_VALUES = 100_000   # values of one space axis
MAX_PROBLEMS_SHOWN = 20     # a screenful; the rest are counted

CONFIRM_CALLS_ENV = "PROMPTLOOPER_CONFIRM_CALLS"
CONFIRM_COST_ENV = "PROMPTLOOPER_CONFIRM_COST"
DEFAULT_CONFIRM_CALLS = 10_000
DEFAULT_CONFIRM_COST = 10.0


def read_text(path: Path) -> str:
    """An experiment file's text: at most 1 MB of UTF-8, else a SpecError saying so."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise SpecError([Problem(path.name, f"the file is {size:,} bytes; an experiment file is at most "
                                                f"{MAX_FILE_BYTES:,}", "put samples in a .jsonl or .csv file next to it")])
        raw = path.read_bytes()
    except IsADirectoryError as exc:
        raise SpecError([Problem(str(path), "is a folder, not an experiment file", "name a .yaml file")]) from exc
    except OSError as exc:
        raise SpecError([Problem(str(path), f"cannot read the experiment file: {exc.strerror}", "check the path")]) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise SpecError([Problem(f"{path.name} line {line}", f"not UTF-8 text (byte {exc.start}: "
                                 f"0x{raw[exc.start]:02x})", "save the file as UTF-8 YAML or JSON")]) from exc
    if "\x00" in text:
        raise SpecError([Problem(path.name, "a binary file, not YAML or JSON text", "name the experiment's .yaml file")])
    return text


def load_yaml(text: str, name: str) -> Any:
    """Parse YAML (or JSON) with bounded depth, size, string length and alias expansion."""
    def problem(where: Any, message: str, hint: str) -> SpecError:
        line = f" line {where.line + 1}" if where is not None else ""
        return SpecError([Problem(f"{name}{line}", message, hint)])

    def too_deep(where: Any) -> SpecError:
        return problem(where, f"nested more than {MAX_DEPTH} levels deep",
                       "an experiment needs a few levels; check for runaway brackets")

    try:
        depth = count = 0
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise too_deep(event.start_mark)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            elif isinstance(event, yaml.ScalarEvent) and len(event.value) > MAX_STRING:
                raise problem(event.start_mark, f"a string of {len(event.value):,} characters (at most "
                              f"{MAX_STRING:,})", "put long texts in a samples file or a prompt file")
            count += 1
            if count > MAX_VALUES:
                raise problem(event.start_mark, f"more than {MAX_VALUES:,} values", "put samples in a .jsonl file")
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _check_expansion(node, name)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except SpecError:
        raise
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if getattr(exc, "problem", None) == _LIBYAML_TOO_DEEP:
            raise too_deep(mark) from exc
        raise problem(mark, f"invalid YAML: {getattr(exc, 'problem', None) or exc}", "fix the YAML syntax") from exc
    except RecursionError as exc:
        raise problem(None, "nested too deeply to read", "check for runaway brackets") from exc
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. a date like 2024-13-45
        raise problem(None, f"invalid YAML value: {exc}", "quote the value to keep it as text") from exc


def _check_expansion(root: yaml.Node, name: str) -> None:
    """Size and depth of the document once its aliases are expanded, each node measured once."""
    measured: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth)
    open_: set[int] = set()

    def refuse(node: yaml.Node, message: str, hint: str) -> SpecError:
        return SpecError([Problem(f"{name} line {node.start_mark.line + 1}", message, hint)])

    def measure(node: yaml.Node) -> tuple[int, int]:
        key = id(node)
        if key in measured:
            return measured[key]
        if key in open_:
            raise refuse(node, "a YAML alias refers to itself", "remove the recursive *alias")
        open_.add(key)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        parts = [measure(child) for child in children]
        open_.discard(key)
        total = 1 + sum(p[0] for p in parts)
        depth = 1 + max((p[1] for p in parts), default=0)
        if total > MAX_VALUES:
            raise refuse(node, f"YAML aliases (*name) expand this to more than {MAX_VALUES:,} values",
                         "write the values out, or use fewer aliases")
        if depth > MAX_DEPTH:
            raise refuse(node, f"YAML aliases (*name) nest this more than {MAX_DEPTH} levels deep",
                         "write the values out, or use fewer aliases")
        measured[key] = (total, depth)
        return measured[key]

    measure(root)


def shown(problems: list[Problem]) -> tuple[list[Problem], int]:
    """The problems to print (a screenful) and how many more there are."""
    return problems[:MAX_PROBLEMS_SHOWN], max(0, len(problems) - MAX_PROBLEMS_SHOWN)


@dataclass(frozen=True)
class SweepSize:
    """What a sweep would ask of its endpoints, counted without enumerating it."""

    configurations: int
    runs: int
    calls: int
    estimated_cost: float
    confirm_calls: int
    confirm_cost: float

    @property
    def needs_confirmation(self) -> bool:
        return self.calls > self.confirm_calls or self.estimated_cost > self.confirm_cost

    def refusal(self, max_calls: int | None) -> str | None:
        """Why a sweep may not start when its caller accepts at most ``max_calls`` calls (None:
        it may): over that number, or over the confirmation limits with no number given."""
        if max_calls is not None and self.calls > max_calls:
            return (f"the sweep would make up to {self.calls:,} calls, over your max_calls ({max_calls:,}); "
                    "narrow it with max_configs or strategy 'random'")
        if max_calls is None and self.needs_confirmation:
            return (f"{self.describe()}; pass max_calls (at least {self.calls}) to confirm, "
                    "or narrow it with max_configs or strategy 'random'")
        return None

    def describe(self) -> str:
        cost = f", about ${self.estimated_cost:,.2f}" if self.estimated_cost else ""
        return (f"{self.configurations:,} configuration(s), {self.runs:,} runs, up to {self.calls:,} model calls{cost} "
                f"(asks above {self.confirm_calls:,} calls or ${self.confirm_cost:,.2f}: "
                f"${CONFIRM_CALLS_ENV} / ${CONFIRM_COST_ENV})")


def confirm_limits(environ: dict[str, str] | None = None) -> tuple[int, float]:
    env = os.environ if environ is None else environ
    try:
        calls = int(env.get(CONFIRM_CALLS_ENV) or DEFAULT_CONFIRM_CALLS)
        cost = float(env.get(CONFIRM_COST_ENV) or DEFAULT_CONFIRM_COST)
    except ValueError as exc:
        raise SpecError([Problem(CONFIRM_CALLS_ENV, f"not a number: {exc}", "set a whole number of calls and dollars")]) from exc
    return calls, cost
