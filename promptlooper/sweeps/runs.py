"""What a sweep plans: run items (a configuration, a sample, a repeat) and their ids.

A run's id is a content hash of (experiment, configuration, sample id, repeat), so every process
that plans the same run names it alike: a resumed sweep skips what is finished, a guided search
and the engine agree on which run is which. Strategies produce run items; the engine executes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..hashing import canonical_text, digest
from .space import Configuration


@dataclass(slots=True)  # not frozen: a frozen dataclass sets each field through object.__setattr__
class RunItem:
    config: Configuration
    sample: dict[str, Any]
    sample_id: str
    sample_index: int
    repeat: int
    # Hashed once (the plan already computes it to skip finished runs), not on every use.
    run_id: str = ""
    # The first stage's call, rendered ahead by Runner.prepare (when the first stage is a prompt).
    prepared: Any = None

    def __post_init__(self) -> None:
        if not self.run_id:
            raise ValueError("RunItem needs its run_id (see run_id(experiment_id, ...))")


def run_id(experiment_id: str, config_id: str, sample_id: str, repeat: int) -> str:
    # A run belongs to its experiment (a fork runs the same configuration as new runs of its own);
    # calls are what is shared between experiments, through the cache.
    return run_id_from(run_id_head(experiment_id, config_id), canonical_text(sample_id), repeat)


# run_id() in two parts, for a plan that names thousands of runs of one configuration: its text is
# the canonical JSON of [experiment, config, sample id, repeat] (ids are str and repeat an int,
# which canonical JSON leaves as they are), i.e. content_hash("run", [...]) without the copy.
def run_id_head(experiment_id: str, config_id: str) -> str:
    return canonical_text([experiment_id, config_id])[:-1] + ","


def run_id_from(head: str, sample_json: str, repeat: int) -> str:
    return digest("run", f"{head}{sample_json},{repeat}]")[:32]


__all__ = ["RunItem", "run_id", "run_id_from", "run_id_head"]
