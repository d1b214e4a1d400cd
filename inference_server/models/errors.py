"""Errors about model files: finding them, trusting them and reading them.

Every message is one line that names the model or file concerned, so it can go straight to the
artist's report or the command line.
"""

from __future__ import annotations


class ModelError(Exception):
    """Base class of the model errors."""


class ModelNotFound(ModelError):
    """A requested model is not known, or its file is not where it was looked for."""


class ModelRefused(ModelError):
    """A model file exists but cannot be verified against the registry, and unverified use was not allowed.

    The message says how to override (``--allow-unverified``).
    """


class ModelInvalid(ModelError):
    """A file (a model, or the registry itself) is malformed or is not the kind of model asked for."""
