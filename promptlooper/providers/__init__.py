"""Model providers: OpenAI-compatible endpoints and the embedded offline default."""

from .base import ChatRequest, ChatResponse, Provider
from .registry import LOCAL, EndpointPool, split_model

__all__ = ["LOCAL", "ChatRequest", "ChatResponse", "EndpointPool", "Provider", "split_model"]
