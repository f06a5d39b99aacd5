"""Tools for endpoints: configure one (a key by variable NAME, granted by the operator), list models."""

from __future__ import annotations

import os
from typing import Annotated, Any

from pydantic import Field, ValidationError

from ..spec import EndpointSpec
from ..validation import problems_from_validation_error
from . import grants
from .boundary import ArgumentError, argument, message
from .context import ToolContext
from .schemas import described


def register(server: Any, context: ToolContext) -> None:
    wb, tool = context.wb, context.tool(server)

    @tool
    def configure_endpoint(
        name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]+$", description="Endpoint name; stages use models as 'name/model'.")],
        base_url: Annotated[str, Field(description=described(EndpointSpec, "base_url"))],
        api_key_env: Annotated[str | None, Field(description=described(EndpointSpec, "api_key_env", "Never the key itself."))] = None,
        max_concurrency: Annotated[int, Field(ge=1, le=4096, description="Calls in flight to this endpoint at most.")] = 32,
        timeout: Annotated[float, Field(gt=0, description="Seconds per call.")] = 60.0,
        max_retries: Annotated[int, Field(ge=0, le=50, description="Retries of a retryable failure (429, 5xx, timeouts).")] = 6,
    ) -> dict[str, Any]:
        """Add or update an OpenAI-compatible endpoint (vLLM, Ollama, OpenAI...). The API key is referenced
        by environment variable NAME only; its value is never stored or returned. A key variable must be
        allowed for MCP clients by the operator and granted by them to this base URL."""
        problem = grants.key_problem(wb, api_key_env, base_url)
        if problem:
            raise ArgumentError("api_key_env", problem)
        with argument("api_key_env" if api_key_env else "base_url"):
            try:
                info = wb.add_endpoint(name, base_url, api_key_env=api_key_env, max_concurrency=max_concurrency,
                                       timeout=timeout, max_retries=max_retries)
            except ValidationError as exc:  # one line: the endpoint's fields, not an experiment's problem list
                raise ValueError("; ".join(str(p) for p in problems_from_validation_error(exc))) from None
        out = {k: info.get(k) for k in ("name", "base_url", "api_key_env", "max_concurrency") if k in info}
        if api_key_env:
            out["key_set"] = bool(os.environ.get(api_key_env))
        return out

    @tool
    def list_models() -> dict[str, Any]:
        """Models across all configured endpoints (each endpoint is asked; failures reported per endpoint)."""
        out = []
        for ep in wb.endpoints():
            entry: dict[str, Any] = {"endpoint": ep["name"], "kind": ep.get("kind"), "base_url": ep.get("base_url")}
            if ep.get("problem"):
                entry["error"] = ep["problem"]
                entry["models"] = []
            else:
                try:
                    entry["models"] = [f"{ep['name']}/{m}" for m in wb.test_endpoint(ep["name"])]
                except Exception as exc:  # noqa: BLE001 - reported per endpoint, not raised
                    entry["models"] = []
                    entry["error"] = message(exc)
            out.append(entry)
        return {"endpoints": out}


__all__ = ["register"]
