"""The model layer: the offline model, the litellm adapter and the prompt."""

from flock_es.models.base import ModelClient, ModelRequest, ModelResponse, resolve_client

__all__ = ["ModelClient", "ModelRequest", "ModelResponse", "resolve_client"]
