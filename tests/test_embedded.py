"""A short sweep on the real embedded model (SmolLM2-135M on llama.cpp): offline, reproducible."""

from __future__ import annotations

import pytest

import promptlooper as pl

pytestmark = pytest.mark.embedded


def _exp(name: str, seeds: list[int]) -> pl.Experiment:
    return pl.Experiment(
        project="tests", name=name,
        samples=[{"question": "What is the capital of France? Answer in one sentence.", "reference": "Paris"}],
        stages=[pl.PromptStage(name="answer", user="{{ question }}", params=pl.ModelParams(max_tokens=12))],
        space={"answer.temperature": [0.0, 1.2], "answer.seed": seeds},
        scorers=[pl.ScorerSpec(name="contains", args={"field": "reference"})],
        concurrency=2,
    )


def test_small_sweep_on_the_embedded_model(wb):
    progress = wb.run(_exp("embedded", [1, 2]))
    assert progress.status == "completed" and progress.failed == 0 and progress.done == 4
    assert progress.tokens > 0 and progress.cost == 0.0
    runs = {(r["config_id"]): r["output"] for r in wb.runs("tests/embedded")}
    board = wb.leaderboard("tests/embedded")
    by_params = {(row["answer.temperature"], row["answer.seed"]): row["full_config_id"] for _, row in board.iterrows()}
    out = {k: runs[v] for k, v in by_params.items()}
    assert out[(0.0, 1)] == out[(0.0, 2)]  # greedy: the seed does not matter
    assert out[(0.0, 1)] != out[(1.2, 1)]  # temperature changes the text
    assert "Paris" in out[(0.0, 1)]


def test_same_seed_same_text_in_another_process(tmp_path):
    """Determinism across processes: a fresh interpreter gives the identical text."""
    import json
    import subprocess
    import sys

    code = (
        "import json, promptlooper as pl\n"
        "from promptlooper.providers.embedded import EmbeddedProvider\n"
        "from promptlooper.providers.base import ChatRequest\n"
        "import asyncio\n"
        "r = asyncio.run(EmbeddedProvider().chat(ChatRequest('smollm2-135m', [{'role': 'user', 'content': 'Name a fruit.'}],"
        " {'temperature': 0.9, 'seed': 7, 'max_tokens': 12})))\n"
        "print(json.dumps(r.text))\n"
    )
    texts = [json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout)
             for _ in range(2)]
    assert texts[0] == texts[1] and texts[0]
