"""Model providers: OpenAI-compatible endpoints, the embedded offline default, endpoint groups and
the test fake, each made by a factory registered with :func:`register_provider`."""

from .base import ChatRequest, ChatResponse, Provider
from .registry import LOCAL, EndpointPool, register_provider, split_model

__all__ = ["LOCAL", "ChatRequest", "ChatResponse", "EndpointPool", "Provider", "register_provider", "split_model"]
