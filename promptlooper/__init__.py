"""PromptLooper: find the best prompt × model × parameters for an LLM pipeline by measuring.

The facade a notebook needs::

    import promptlooper as pl
    exp = pl.load_experiment("quickstart.yaml")
    wb = pl.Workbench()                  # ./promptlooper.db, or $PROMPTLOOPER_DB
    handle = wb.start(exp)               # background sweep; `await handle` in a notebook
    wb.leaderboard(exp.key)
"""

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
