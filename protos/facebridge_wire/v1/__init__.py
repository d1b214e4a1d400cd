"""Generated modules of facebridge_wire/v1/facebridge.proto (do not edit; run ``python protos/generate.py``)."""
