"""Model families: one module per family, each exposing one loader.

A registry record (``registry.json``) names its ``family``; :func:`family_loader` imports
``inference_server.models.families.<family>`` and returns its ``load`` function, whose signature is
:class:`~inference_server.models.loading.FamilyLoader`::

    def load(ctx: LoadContext, choice: Choice, precision: str) -> Loaded

``choice.record`` is the registry record (size, template, normalisation, inputs, requires), ``choice.path``
the verified (or consented) file, ``precision`` the session's wish (``fp32``/``fp16``/``bf16``; ONNX files
run as saved). ``ctx.load_model(kind, name, allow_unverified)`` loads a model this one needs (a swapper's
embedder, named in ``requires``); ``ctx.device`` is the server's device.

Adding a family is one record plus one module, no list to edit:

1. ``registry.json``: a record with ``"family": "myfamily"`` (and its kind, file, size, template, ...);
2. ``families/myfamily.py`` with a ``load`` as above returning a :class:`~inference_server.models.loading.Loaded`
   whose adapter has the kind's interface (a swapper: :class:`~inference_server.models.swappers.Swapper`;
   a restorer: ``restore(crop, landmarks) -> Restored``; a parser: ``labels(crop, landmarks)``; ...).

A file the registry does not know (used with ``--allow-unverified``) gets the family of its kind in
:data:`inference_server.models.registry.STAND_IN_FAMILIES`.
"""

from __future__ import annotations

import importlib
import pkgutil
import re

from ..errors import ModelInvalid
from ..loading import FamilyLoader

FAMILY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def family_loader(family: str) -> FamilyLoader:
    """The ``load`` function of family module ``family``.

    Raises:
        ModelInvalid: not a family name, no such module, or a module without a ``load``.
    """
    if not FAMILY_NAME.match(family):
        raise ModelInvalid(f"model family {family!r} is not a module name (lowercase letters, digits, _)")
    try:
        module = importlib.import_module(f"{__name__}.{family}")
    except ModuleNotFoundError as error:
        if error.name != f"{__name__}.{family}":
            raise
        raise ModelInvalid(f"no loader for model family {family!r} (expected a module "
                           f"{__name__}.{family}; known: {', '.join(family_names())})") from None
    load = getattr(module, "load", None)
    if not callable(load):
        raise ModelInvalid(f"model family module {module.__name__} has no load() function")
    loader: FamilyLoader = load
    return loader


def family_names() -> list[str]:
    """The family modules installed (sorted)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
