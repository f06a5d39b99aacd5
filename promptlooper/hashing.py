"""Canonical JSON and versioned content hashes.

Every identity in PromptLooper (a configuration, a run, a cached model call) is the SHA-256 of
the canonical JSON of what defines it, prefixed by a kind and a schema version. Canonical means
sorted keys, no whitespace, UTF-8, and floats written so that ``0.7`` and ``0.70`` agree. Bumping
``HASH_VERSION`` invalidates every key at once, which is the point: a change in what goes into a
key must never silently reuse old entries.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

HASH_VERSION = 1


def _normalise(value: Any) -> Any:
    # 1.0 and 1 must hash alike (YAML and JSON disagree on which one a user wrote).
    # Exact types first, and str leaves inline: a call's key holds mostly strings, and a recursive
    # call per leaf was most of its cost. Subclasses take the general path below.
    t = type(value)
    if t is dict:
        return {(k if type(k) is str else str(k)): (v if type(v) is str else _normalise(v)) for k, v in value.items()}
    if t is list or t is tuple:
        return [v if type(v) is str else _normalise(v) for v in value]
    if t is str or t is int or t is bool or value is None:
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return value


def json_encoder(**options: Any) -> Callable[[Any], str]:
    """``json.JSONEncoder(**options).encode``, without its set-up on every call.

    ``json.dumps`` builds an encoder per call and ``JSONEncoder.encode`` builds a C encoder per
    call: for the small values a sweep hashes and stores (~10 a run) that set-up costs about as
    much as the encoding. This builds the C encoder once. It skips the circular-reference check,
    so a value that recurses too deep goes to the checking encoder, which raises what json.dumps
    would (or encodes it, if it was only deep): the text is the same in every case.
    """
    encoder = json.JSONEncoder(**options)
    if c_make_encoder is None or encoder.indent is not None:
        return encoder.encode
    iterencode = c_make_encoder(
        None, encoder.default, encode_basestring_ascii if encoder.ensure_ascii else encode_basestring, None,
        encoder.key_separator, encoder.item_separator, encoder.sort_keys, encoder.skipkeys, encoder.allow_nan,
    )

    def encode(value: Any) -> str:
        try:
            return "".join(iterencode(value, 0))
        except RecursionError:
            return encoder.encode(value)

    return encode


_canonical = json_encoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def canonical_json(value: Any) -> str:
    """Deterministic JSON text for ``value`` (sorted keys, compact, integral floats as ints)."""
    return _canonical(_normalise(value))


def content_hash(kind: str, value: Any) -> str:
    """SHA-256 hex digest of ``value`` under ``kind`` and the current hash version."""
    return digest(kind, canonical_json(value))


def digest(kind: str, canonical: str) -> str:
    """:func:`content_hash` of a value whose canonical JSON text the caller already has.

    Hot paths build that text from parts they encoded once (a call's key is mostly the same
    endpoint, model and parameters for thousands of calls); :func:`canonical_text` encodes a part
    that needs no normalising.
    """
    return hashlib.sha256(f"promptlooper:{kind}:v{HASH_VERSION}\n{canonical}".encode()).hexdigest()


def canonical_text(value: Any) -> str:
    """:func:`canonical_json` of a value made only of str and int (and lists / str-keyed dicts of
    them), which normalising leaves as it is: the same text, without the copy."""
    return _canonical(value)


def short(digest: str) -> str:
    """The 12-character prefix used in tables and messages."""
    return digest[:12]
