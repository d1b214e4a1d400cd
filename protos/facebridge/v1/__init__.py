"""Generated modules of facebridge/v1/facebridge.proto (do not edit; run ``python protos/generate.py``)."""
