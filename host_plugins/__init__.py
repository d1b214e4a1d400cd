"""Host side of facebridge: the host-agnostic client (``client``) and one thin adapter per host."""
