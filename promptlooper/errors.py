"""PromptLooper's exception tree.

    PromptLooperError
    ├── SpecError             an experiment description is invalid (carries every Problem)
    ├── NotFoundError         an experiment, run, configuration or endpoint does not exist (also a LookupError)
    ├── EndpointError         an endpoint is unknown, misconfigured or unreachable
    ├── ProviderError         one model call failed (retryable or not; status, retry_after)
    ├── SweepConflictError    another live process is already sweeping this experiment
    ├── StoreError            the database cannot be opened (a folder, a missing parent, no permission)
    ├── SweepInterruptedError the sweep to steer is gone (its process died); rerun resumes it
    ├── LeaseLostError        a worker's chunk was claimed by another worker (promptlooper.store.chunks)
    ├── ReadOnlyError         a write through a read-only store (promptlooper.store.db)
    ├── TemplateError         a prompt template failed to compile or render (promptlooper.templates)
    ├── ScorerError           a scorer could not be built or failed (promptlooper.scorers.base)
    ├── EmbedderError         the embedder cannot run, or an embeddings endpoint failed (promptlooper.embedder)
    └── RatingError           a rating is invalid (promptlooper.ratings; also a ValueError)

The classes drawn with a module live there, next to the code that raises them; the others here.
A budget running out is not an error: the sweep pauses and its progress says why.

Foreign exceptions (aiohttp, sqlite3, jinja2, pydantic) are mapped to these at the boundary
with ``raise ... from exc`` so callers only ever catch PromptLooper errors.
"""

from __future__ import annotations

from dataclasses import dataclass


class PromptLooperError(Exception):
    """Base class of every error PromptLooper raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an experiment: where (a field path), what, and how to fix it."""

    path: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}"
        return f"{text} — {self.hint}" if self.hint else text


class SpecError(PromptLooperError):
    """The experiment description has problems; nothing was called."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in the experiment:\n{lines}")


class NotFoundError(PromptLooperError, LookupError):
    """A named object does not exist in the store."""


class SweepInterruptedError(PromptLooperError):
    """The sweep asked to pause / resume / stop / redirect is no longer running anywhere."""


class EndpointError(PromptLooperError):
    """An endpoint is unknown, misconfigured or cannot be reached."""


class ProviderError(PromptLooperError):
    """A single model call failed.

    ``retryable`` tells the engine whether backing off and trying again can help
    (429, 5xx, timeouts, dropped connections, malformed replies) or not (400, 401, 404).
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
        rate_limited: bool = False,
        timed_out: bool = False,
    ):
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
        self.rate_limited = rate_limited
        self.timed_out = timed_out


class SweepConflictError(PromptLooperError):
    """Another live process holds the sweep lease of this experiment."""


class StoreError(PromptLooperError):
    """The database cannot be opened or used (a folder, a missing parent folder, no permission)."""
