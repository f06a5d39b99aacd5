"""PromptLooper: find the best prompt × model × parameters for an LLM pipeline by measuring.

The facade a notebook needs::

    import promptlooper as pl
    exp = pl.load_experiment("quickstart.yaml")
    wb = pl.Workbench()                  # ./promptlooper.db, or $PROMPTLOOPER_DB
    handle = wb.start(exp)               # background sweep; `await handle` in a notebook
    wb.leaderboard(exp.key)
"""

from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine.handle import SweepHandle
    from .engine.progress import Progress
    from .errors import (
        EndpointError,
        NotFoundError,
        Problem,
        PromptLooperError,
        ProviderError,
        SpecError,
        SweepConflictError,
    )
    from .functions import register_function
    from .scorers import ScoreContext, ScoreResult, scorer
    from .shortcuts import load_experiment, run, start
    from .spec import (
        Budget,
        EndpointSpec,
        Experiment,
        FunctionStage,
        ModelParams,
        PromptStage,
        Range,
        ScorerSpec,
    )
    from .workbench import Workbench

# Each name is imported on first use (PEP 562), so `import promptlooper.cli` for `promptlooper --help`
# does not pay for pandas, pydantic and aiohttp; `pl.Workbench` imports them when a notebook asks.
_WHERE = {
    "SweepHandle": ".engine.handle", "Progress": ".engine.progress", "register_function": ".functions",
    **dict.fromkeys(["EndpointError", "NotFoundError", "Problem", "PromptLooperError",
                     "ProviderError", "SpecError", "SweepConflictError"], ".errors"),
    **dict.fromkeys(["ScoreContext", "ScoreResult", "scorer"], ".scorers"),
    **dict.fromkeys(["Budget", "EndpointSpec", "Experiment", "FunctionStage", "ModelParams", "PromptStage", "Range",
                     "ScorerSpec"], ".spec"),
    "Workbench": ".workbench",
    **dict.fromkeys(["load_experiment", "run", "start"], ".shortcuts"),
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        # `pl.errors.NotFoundError` worked when this file imported everything: submodules still do.
        if not name.startswith("_") and find_spec(f"{__name__}.{name}") is not None:
            return import_module(f".{name}", __name__)
        raise AttributeError(f"module 'promptlooper' has no attribute {name!r}")
    value = getattr(import_module(_WHERE[name], __name__), name)
    globals()[name] = value  # once imported, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


__version__ = "0.1.0"

__all__ = [
    "Budget",
    "EndpointError",
    "EndpointSpec",
    "Experiment",
    "FunctionStage",
    "ModelParams",
    "NotFoundError",
    "Problem",
    "Progress",
    "PromptLooperError",
    "PromptStage",
    "ProviderError",
    "Range",
    "ScoreContext",
    "ScoreResult",
    "ScorerSpec",
    "SpecError",
    "SweepConflictError",
    "SweepHandle",
    "Workbench",
    "load_experiment",
    "register_function",
    "run",
    "scorer",
    "start",
]
