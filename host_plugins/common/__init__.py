"""Host-agnostic pieces shared by the Nuke and Resolve adapters.

Everything here runs inside a host's own interpreter (Nuke 13 ships Python 3.7), so it uses the
standard library only and Python 3.7 syntax: no numpy, no grpc, no protobuf, no Qt. Modules:

- ``knobs``: the artist-facing knob set and its mapping to/from the ``RenderParams`` fields.
- ``presets``: reading and writing the preset JSON the panel saves (``{"facebridge_preset": 1, ...}``).
- ``command``: which ``facebridge`` to run (``FACEBRIDGE_CLI``) and the argv of ``process``/``analyse``.
- ``progress``: the ``--progress json`` events, a progress model, and the sidecar process runner.
- ``sequence``: frame patterns, work/output folder naming, finding a rendered sequence on disk.
- ``frames``: frame ranges and Resolve timeline / record-frame arithmetic.
"""
