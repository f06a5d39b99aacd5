"""A generated corpus of malformed experiment files (deterministic: the same files every run).

Every field of a valid experiment is replaced, in turn, by each hostile value (wrong types, NaN and
infinity, negatives, huge strings, runaway nesting, broken templates) or deleted; then come whole
files no parser should trust: binary and non-UTF-8 bytes, an alias bomb, a recursive alias,
10,000 nested brackets, a 10⁶-configuration space, Python tags, a list at the top.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

DEEP = 200  # deep enough to be absurd, shallow enough for yaml.safe_dump to write


def base(url: str) -> dict[str, Any]:
    return {
        "project": "fuzz", "name": "base",
        "samples": [{"question": "q1", "reference": "r1", "n": 1}, {"question": "q2", "reference": "r2", "n": 2}],
        "stages": [
            {"name": "answer", "model": "fake/m", "system": "{{ persona }}", "user": "{{ question }}",
             "params": {"max_tokens": 8, "temperature": 0.1}},
            {"name": "check", "model": "fake/m", "user": "Is {{ answer }} right?"},
        ],
        "space": {"persona": ["a", "b"], "answer.temperature": {"min": 0, "max": 1, "step": 0.5}},
        "scorers": [{"name": "contains", "field": "reference", "weight": 2}, {"name": "length", "max_words": 10}],
        "strategy": "grid", "concurrency": 2, "repeat": 1, "budget": {"max_tokens": 1000},
        "endpoints": {"fake": {"base_url": url, "max_retries": 0}},
    }


def _deep() -> Any:
    v: Any = "x"
    for _ in range(DEEP):
        v = [v]
    return v


HOSTILE: list[Any] = [None, 42, -1, 1e308, math.nan, math.inf, "", "y" * 250_000, [], {}, True,
                      "{{ broken", "{% for %}", _deep()]


PER_PATH = 6


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield (*prefix, i)
            yield from _paths(v, (*prefix, i))


def _set(doc: Any, path: tuple[Any, ...], value: Any, delete: bool = False) -> Any:
    out = copy.deepcopy(doc)
    node = out
    for part in path[:-1]:
        node = node[part]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


def _specials(url: str) -> Iterator[tuple[str, bytes]]:
    ok = yaml.safe_dump(base(url)).encode()
    yield "binary", bytes(range(256)) * 8
    yield "nul", ok.replace(b"fuzz", b"fu\x00zz")
    yield "latin1", "project: café\nname: x\n".encode("latin-1")
    yield "utf16", yaml.safe_dump(base(url)).encode("utf-16")
    yield "empty", b""
    yield "only-comment", b"# nothing\n"
    yield "top-list", b"- a\n- b\n"
    yield "top-scalar", b"42\n"
    yield "python-tag", b"!!python/object/apply:os.system ['echo pwned']\n"
    yield "bad-date", ok + b"created: 2024-13-45\n"
    yield "deep-brackets", b"name: " + b"[" * 10_000 + b"]" * 10_000 + b"\n"
    yield "deep-maps", b"name: " + b"{a: " * 5_000 + b"1" + b"}" * 5_000 + b"\n"
    yield "unclosed", b"name: [1, 2\nproject: {\n"
    yield "tabs", b"name:\tx\n\tproject: y\n"
    bomb = ["project: fuzz", "name: bomb", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        bomb.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    yield "alias-bomb", ("\n".join(bomb) + "\nspace: {answer.temperature: *i}\n").encode()
    yield "alias-recursive", b"project: fuzz\nname: &n [*n]\n"
    yield "alias-chain-depth", ("project: fuzz\n" + "a0: &a0 [x]\n" + "".join(
        f"a{i}: &a{i} [[[[[[[[[[*a{i - 1}]]]]]]]]]]\n" for i in range(1, 40))).encode()
    big = base(url)
    big["space"] = {"persona": ["a"], "answer.temperature": {"min": 0, "max": 1, "step": 0.001},
                    "answer.top_p": {"min": 0, "max": 1, "step": 0.001}}
    yield "space-1e6", yaml.safe_dump(big).encode()
    huge_range = base(url)
    huge_range["space"] = {"persona": ["a"], "answer.seed": {"min": 0, "max": 1e12, "step": 1}}
    yield "range-1e12", yaml.safe_dump(huge_range).encode()
    many = base(url)
    many["space"] = {"persona": ["a"], "answer.temperature": [float(i) for i in range(150_000)]}
    yield "list-150k", yaml.safe_dump(many, width=10**9).encode()
    bad_values = base(url)
    bad_values["space"] = {"persona": ["a"], "answer.temperature": [5.0 + i for i in range(5000)]}
    yield "5000-bad-values", yaml.safe_dump(bad_values).encode()
    yield "oversized", b"name: x\nproject: y\n" + b"# pad\n" * 250_000
    yield "long-line", b"name: " + b"z" * 900_000 + b"\n"
    for field, value in (("project", "a/b"), ("project", "a b"), ("name", "x/y"), ("stages", "not a list")):
        yield f"named-{field}-{value}", yaml.safe_dump(_set(base(url), (field,), value)).encode()
    yield "base-url-empty-host", yaml.safe_dump(_set(base(url), ("endpoints", "fake", "base_url"), "http://")).encode()
    yield "base-url-bad-port", yaml.safe_dump(_set(base(url), ("endpoints", "fake", "base_url"), "http://h:port/")).encode()
    yield "length-negative", yaml.safe_dump(_set(base(url), ("scorers", 1, "max_words"), -5)).encode()
    yield "length-swapped", yaml.safe_dump(_set(base(url), ("scorers", 1),
                                                {"name": "length", "min_words": 9, "max_words": 2})).encode()
    yield "range-nan", yaml.safe_dump(_set(base(url), ("space", "answer.temperature"),
                                           {"min": math.nan, "max": 1, "step": 0.1})).encode()
    yield "range-inf", yaml.safe_dump(_set(base(url), ("space", "answer.temperature"),
                                           {"min": 0, "max": math.inf, "step": 0.1})).encode()
    yield "range-step-inf", yaml.safe_dump(_set(base(url), ("space", "answer.temperature"),
                                                {"min": 0, "max": 1, "step": math.inf})).encode()
    yield "samples-missing-file", yaml.safe_dump(_set(base(url), ("samples",), "nowhere/samples.jsonl")).encode()
    yield "samples-is-folder", yaml.safe_dump(_set(base(url), ("samples",), ".")).encode()


def corpus(url: str) -> Iterator[tuple[str, bytes]]:
    """(name, file bytes) for every malformed file."""
    doc = base(url)
    yield from _specials(url)
    for k, path in enumerate(_paths(doc)):
        label = ".".join(map(str, path))
        yield f"del-{label}", yaml.safe_dump(_set(doc, path, None, delete=True)).encode()
        # PER_PATH of the hostile values, rotating, so that every value meets every kind of field.
        for j in range(PER_PATH):
            i = (k * PER_PATH + j) % len(HOSTILE)
            yield f"set-{label}-{i}", yaml.safe_dump(_set(doc, path, HOSTILE[i]), width=10**9).encode()


def write(folder: Path, url: str, only: set[str] | None = None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i, (name, data) in enumerate(corpus(url) if only is None else _specials(url)):
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80]
        if only is not None and safe not in only:
            continue
        path = folder / f"{i:04d}-{safe}.yaml"
        path.write_bytes(data)
        files.append(path)
    return files
