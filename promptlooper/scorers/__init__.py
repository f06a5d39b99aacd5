"""Pluggable scorers. Register your own with :func:`scorer`."""

from .base import (
    ScoreContext,
    ScorerError,
    ScoreResult,
    ScorerInfo,
    build,
    check_args,
    get,
    missing,
    registered,
    scorer,
)

__all__ = ["ScoreContext", "ScoreResult", "ScorerError", "ScorerInfo", "build", "check_args", "get", "missing", "registered", "scorer"]
