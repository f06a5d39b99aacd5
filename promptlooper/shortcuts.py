"""Module-level shortcuts over the default workbench: ``pl.run(exp)``, ``pl.start(exp)``, ...

    >>> import promptlooper as pl
    >>> exp = pl.load_experiment("examples/quickstart.yaml")
    >>> pl.run(exp)                      # the default workbench: ./promptlooper.db or $PROMPTLOOPER_DB
    >>> handle = pl.start(exp)
    >>> from promptlooper.shortcuts import dashboard, leaderboard
    >>> dashboard(exp, handle)

``run``, ``start`` and ``load_experiment`` are also ``pl.run`` etc.; ``leaderboard`` and
``dashboard`` are not package attributes, because ``promptlooper.leaderboard`` and
``promptlooper.dashboard`` are modules (importing either would replace the function).

Convenience belongs on the facade, not on the data: the schema (:mod:`promptlooper.spec`) knows
nothing of workbenches, loaders or widgets. The facade module is imported on first use, not here,
because it brings pandas: ``import promptlooper`` stays light.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .validation import load_file

if TYPE_CHECKING:
    from .engine.handle import SweepHandle
    from .engine.progress import Progress
    from .spec import Experiment


def load_experiment(path: str | os.PathLike[str]) -> Experiment:
    """An experiment file (YAML or JSON) as an Experiment; SpecError lists every problem with its
    field path. Semantics (models, templates, samples) are checked by ``Workbench.validate``."""
    return load_file(path)


def _workbench(handle: SweepHandle | None = None) -> Any:
    from .workbench import Workbench, default_workbench  # pandas: on first use (start-up time)

    return Workbench(handle.sweep.store_path) if handle is not None else default_workbench()


def run(exp: Experiment, **options: Any) -> Progress:
    """Run the sweep on the default workbench and block until it ends; see ``Workbench.run``."""
    return _workbench().run(exp, **options)  # type: ignore[no-any-return]


def start(exp: Experiment, **options: Any) -> SweepHandle:
    """Start the sweep in the background on the default workbench; see ``Workbench.start``."""
    return _workbench().start(exp, **options)  # type: ignore[no-any-return]


def leaderboard(exp: Experiment | str, **options: Any) -> Any:
    """The experiment's leaderboard on the default workbench; see ``Workbench.leaderboard``."""
    return _workbench().leaderboard(exp, **options)


def dashboard(exp: Experiment | str, handle: SweepHandle | None = None, *, wb: Any = None, **options: Any) -> Any:
    """Every live view of the experiment in one widget, on ``wb`` (default: the handle's database,
    else the default workbench); see ``Workbench.dashboard``."""
    return (wb if wb is not None else _workbench(handle)).dashboard(exp, handle, **options)


__all__ = ["dashboard", "leaderboard", "load_experiment", "run", "start"]
