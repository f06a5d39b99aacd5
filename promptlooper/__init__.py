"""PromptLooper: find the best prompt × model × parameters for an LLM pipeline by measuring.

The facade a notebook needs::

    import promptlooper as pl
    exp = pl.Experiment.from_yaml("quickstart.yaml")
    wb = pl.Workbench()                  # ./promptlooper.db, or $PROMPTLOOPER_DB
    handle = wb.start(exp)               # background sweep; `await handle` in a notebook
    wb.leaderboard(exp.key)

The names in ``__all__`` are resolved on first use (PEP 562 ``__getattr__``), so that
``import promptlooper`` (and ``promptlooper --help``) costs only what is used: the engine,
the store and aiohttp load when a name that needs them is first touched. Type checkers see the
real imports below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine.handle import SweepHandle
    from .engine.progress import Progress
    from .errors import (
        BudgetExhausted,
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

__version__ = "0.1.0"

# Public name -> the module that defines it.
_HOMES = {
    "SweepHandle": ".engine.handle",
    "Progress": ".engine.progress",
    **dict.fromkeys(("BudgetExhausted", "EndpointError", "NotFoundError", "Problem", "PromptLooperError",
                     "ProviderError", "SpecError", "SweepConflictError"), ".errors"),
    "register_function": ".functions",
    **dict.fromkeys(("ScoreContext", "ScoreResult", "scorer"), ".scorers"),
    **dict.fromkeys(("Budget", "EndpointSpec", "Experiment", "FunctionStage", "ModelParams", "PromptStage", "Range",
                     "ScorerSpec"), ".spec"),
    "Workbench": ".workbench",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value  # resolved once; later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "Budget",
    "BudgetExhausted",
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
    "register_function",
    "scorer",
]
