"""facebridge's wire contract: the generated protobuf/gRPC modules of ``facebridge_wire/v1/facebridge.proto``
(proto package ``facebridge.v1``) and the chunking helpers both sides use."""
