"""facebridge: the command line, the host-agnostic client and the settings schema.

``facebridge.schema`` is standard-library only (Python 3.6 syntax) so that the Nuke and Resolve
plugins load it inside the hosts' own interpreters; this file must stay that way too.
``facebridge.client`` talks to a server over gRPC; ``facebridge.cli`` is the ``facebridge`` command.
"""

__version__ = "0.1.0"
