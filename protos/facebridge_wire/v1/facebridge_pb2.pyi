from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Transport(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSPORT_UNSPECIFIED: _ClassVar[Transport]
    TRANSPORT_STREAM: _ClassVar[Transport]
    TRANSPORT_PATH: _ClassVar[Transport]

class PreviewRegion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PREVIEW_REGION_FACES: _ClassVar[PreviewRegion]
    PREVIEW_REGION_FRAME: _ClassVar[PreviewRegion]
TRANSPORT_UNSPECIFIED: Transport
TRANSPORT_STREAM: Transport
TRANSPORT_PATH: Transport
PREVIEW_REGION_FACES: PreviewRegion
PREVIEW_REGION_FRAME: PreviewRegion

class GetServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_chunk_bytes", "max_frame_bytes", "max_width", "max_height", "max_message_bytes")
    MAX_CHUNK_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_FRAME_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_WIDTH_FIELD_NUMBER: _ClassVar[int]
    MAX_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    max_chunk_bytes: int
    max_frame_bytes: int
    max_width: int
    max_height: int
    max_message_bytes: int
    def __init__(self, max_chunk_bytes: _Optional[int] = ..., max_frame_bytes: _Optional[int] = ..., max_width: _Optional[int] = ..., max_height: _Optional[int] = ..., max_message_bytes: _Optional[int] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("id", "kind", "format", "status", "detail")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: str
    format: str
    status: str
    detail: str
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[str] = ..., format: _Optional[str] = ..., status: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class GetServerInfoResponse(_message.Message):
    __slots__ = ("server_version", "api_version", "device", "models", "limits", "transports", "hostname")
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    TRANSPORTS_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    server_version: str
    api_version: str
    device: str
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    limits: Limits
    transports: _containers.RepeatedScalarFieldContainer[Transport]
    hostname: str
    def __init__(self, server_version: _Optional[str] = ..., api_version: _Optional[str] = ..., device: _Optional[str] = ..., models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., transports: _Optional[_Iterable[_Union[Transport, str]]] = ..., hostname: _Optional[str] = ...) -> None: ...

class SourceImage(_message.Message):
    __slots__ = ("label", "data")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    label: str
    data: bytes
    def __init__(self, label: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class ProcessParams(_message.Message):
    __slots__ = ("mode", "blend", "colorspace", "output_format", "regions", "feather", "erode", "grain", "colour_match", "smoothing", "keyframe_interval", "face", "face_reference", "skip_quality_checks", "stabilise", "flow_threshold", "swapper", "restorer", "parser", "allow_unverified", "precision", "detector", "landmarker", "min_face", "occluder", "paste", "pixel_boost", "restore_weight")
    class RegionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODE_FIELD_NUMBER: _ClassVar[int]
    BLEND_FIELD_NUMBER: _ClassVar[int]
    COLORSPACE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    FEATHER_FIELD_NUMBER: _ClassVar[int]
    ERODE_FIELD_NUMBER: _ClassVar[int]
    GRAIN_FIELD_NUMBER: _ClassVar[int]
    COLOUR_MATCH_FIELD_NUMBER: _ClassVar[int]
    SMOOTHING_FIELD_NUMBER: _ClassVar[int]
    KEYFRAME_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    FACE_FIELD_NUMBER: _ClassVar[int]
    FACE_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    SKIP_QUALITY_CHECKS_FIELD_NUMBER: _ClassVar[int]
    STABILISE_FIELD_NUMBER: _ClassVar[int]
    FLOW_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SWAPPER_FIELD_NUMBER: _ClassVar[int]
    RESTORER_FIELD_NUMBER: _ClassVar[int]
    PARSER_FIELD_NUMBER: _ClassVar[int]
    ALLOW_UNVERIFIED_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_FIELD_NUMBER: _ClassVar[int]
    LANDMARKER_FIELD_NUMBER: _ClassVar[int]
    MIN_FACE_FIELD_NUMBER: _ClassVar[int]
    OCCLUDER_FIELD_NUMBER: _ClassVar[int]
    PASTE_FIELD_NUMBER: _ClassVar[int]
    PIXEL_BOOST_FIELD_NUMBER: _ClassVar[int]
    RESTORE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    mode: str
    blend: float
    colorspace: str
    output_format: str
    regions: _containers.ScalarMap[str, float]
    feather: float
    erode: float
    grain: float
    colour_match: str
    smoothing: float
    keyframe_interval: int
    face: str
    face_reference: SourceImage
    skip_quality_checks: bool
    stabilise: float
    flow_threshold: float
    swapper: str
    restorer: str
    parser: str
    allow_unverified: bool
    precision: str
    detector: str
    landmarker: str
    min_face: float
    occluder: str
    paste: str
    pixel_boost: int
    restore_weight: float
    def __init__(self, mode: _Optional[str] = ..., blend: _Optional[float] = ..., colorspace: _Optional[str] = ..., output_format: _Optional[str] = ..., regions: _Optional[_Mapping[str, float]] = ..., feather: _Optional[float] = ..., erode: _Optional[float] = ..., grain: _Optional[float] = ..., colour_match: _Optional[str] = ..., smoothing: _Optional[float] = ..., keyframe_interval: _Optional[int] = ..., face: _Optional[str] = ..., face_reference: _Optional[_Union[SourceImage, _Mapping]] = ..., skip_quality_checks: _Optional[bool] = ..., stabilise: _Optional[float] = ..., flow_threshold: _Optional[float] = ..., swapper: _Optional[str] = ..., restorer: _Optional[str] = ..., parser: _Optional[str] = ..., allow_unverified: _Optional[bool] = ..., precision: _Optional[str] = ..., detector: _Optional[str] = ..., landmarker: _Optional[str] = ..., min_face: _Optional[float] = ..., occluder: _Optional[str] = ..., paste: _Optional[str] = ..., pixel_boost: _Optional[int] = ..., restore_weight: _Optional[float] = ...) -> None: ...

class OpenSessionRequest(_message.Message):
    __slots__ = ("client", "shot", "sources", "params")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    SHOT_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    client: str
    shot: str
    sources: _containers.RepeatedCompositeFieldContainer[SourceImage]
    params: ProcessParams
    def __init__(self, client: _Optional[str] = ..., shot: _Optional[str] = ..., sources: _Optional[_Iterable[_Union[SourceImage, _Mapping]]] = ..., params: _Optional[_Union[ProcessParams, _Mapping]] = ...) -> None: ...

class SourceFaceInfo(_message.Message):
    __slots__ = ("label", "yaw", "pitch", "roll", "sha256")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    YAW_FIELD_NUMBER: _ClassVar[int]
    PITCH_FIELD_NUMBER: _ClassVar[int]
    ROLL_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    label: str
    yaw: float
    pitch: float
    roll: float
    sha256: str
    def __init__(self, label: _Optional[str] = ..., yaw: _Optional[float] = ..., pitch: _Optional[float] = ..., roll: _Optional[float] = ..., sha256: _Optional[str] = ...) -> None: ...

class OpenSessionResponse(_message.Message):
    __slots__ = ("session_id", "sources", "params_hash", "model_ids", "notes")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    PARAMS_HASH_FIELD_NUMBER: _ClassVar[int]
    MODEL_IDS_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    sources: _containers.RepeatedCompositeFieldContainer[SourceFaceInfo]
    params_hash: str
    model_ids: _containers.RepeatedScalarFieldContainer[str]
    notes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, session_id: _Optional[str] = ..., sources: _Optional[_Iterable[_Union[SourceFaceInfo, _Mapping]]] = ..., params_hash: _Optional[str] = ..., model_ids: _Optional[_Iterable[str]] = ..., notes: _Optional[_Iterable[str]] = ...) -> None: ...

class CloseSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class CloseSessionResponse(_message.Message):
    __slots__ = ("frames_processed", "frames_failed")
    FRAMES_PROCESSED_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FAILED_FIELD_NUMBER: _ClassVar[int]
    frames_processed: int
    frames_failed: int
    def __init__(self, frames_processed: _Optional[int] = ..., frames_failed: _Optional[int] = ...) -> None: ...

class StreamStart(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class FrameHeader(_message.Message):
    __slots__ = ("frame_id", "frame_number", "name", "transport", "total_bytes", "input_path", "output_path", "input_copies")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_NUMBER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    INPUT_PATH_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PATH_FIELD_NUMBER: _ClassVar[int]
    INPUT_COPIES_FIELD_NUMBER: _ClassVar[int]
    frame_id: int
    frame_number: int
    name: str
    transport: Transport
    total_bytes: int
    input_path: str
    output_path: str
    input_copies: bool
    def __init__(self, frame_id: _Optional[int] = ..., frame_number: _Optional[int] = ..., name: _Optional[str] = ..., transport: _Optional[_Union[Transport, str]] = ..., total_bytes: _Optional[int] = ..., input_path: _Optional[str] = ..., output_path: _Optional[str] = ..., input_copies: _Optional[bool] = ...) -> None: ...

class FrameChunk(_message.Message):
    __slots__ = ("frame_id", "offset", "data")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    frame_id: int
    offset: int
    data: bytes
    def __init__(self, frame_id: _Optional[int] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class ProcessFramesRequest(_message.Message):
    __slots__ = ("start", "header", "chunk")
    START_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    start: StreamStart
    header: FrameHeader
    chunk: FrameChunk
    def __init__(self, start: _Optional[_Union[StreamStart, _Mapping]] = ..., header: _Optional[_Union[FrameHeader, _Mapping]] = ..., chunk: _Optional[_Union[FrameChunk, _Mapping]] = ...) -> None: ...

class FrameStatus(_message.Message):
    __slots__ = ("code", "kind", "message")
    class Code(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OK: _ClassVar[FrameStatus.Code]
        WARNING: _ClassVar[FrameStatus.Code]
        FAILED: _ClassVar[FrameStatus.Code]
    OK: FrameStatus.Code
    WARNING: FrameStatus.Code
    FAILED: FrameStatus.Code
    CODE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: FrameStatus.Code
    kind: str
    message: str
    def __init__(self, code: _Optional[_Union[FrameStatus.Code, str]] = ..., kind: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class FaceQC(_message.Message):
    __slots__ = ("index", "swapped", "identity_distance", "identity_distance_plate", "source_label", "box", "yaw", "pitch", "roll", "track_id", "cache_hit", "jitter_raw", "jitter_smoothed", "fp32_fallback", "detector", "size", "skipped", "profile_fade", "source_weights")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SWAPPED_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_DISTANCE_PLATE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_LABEL_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    YAW_FIELD_NUMBER: _ClassVar[int]
    PITCH_FIELD_NUMBER: _ClassVar[int]
    ROLL_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    JITTER_RAW_FIELD_NUMBER: _ClassVar[int]
    JITTER_SMOOTHED_FIELD_NUMBER: _ClassVar[int]
    FP32_FALLBACK_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FADE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    index: int
    swapped: bool
    identity_distance: float
    identity_distance_plate: float
    source_label: str
    box: _containers.RepeatedScalarFieldContainer[float]
    yaw: float
    pitch: float
    roll: float
    track_id: int
    cache_hit: bool
    jitter_raw: float
    jitter_smoothed: float
    fp32_fallback: bool
    detector: str
    size: float
    skipped: str
    profile_fade: float
    source_weights: _containers.RepeatedCompositeFieldContainer[SourceWeight]
    def __init__(self, index: _Optional[int] = ..., swapped: _Optional[bool] = ..., identity_distance: _Optional[float] = ..., identity_distance_plate: _Optional[float] = ..., source_label: _Optional[str] = ..., box: _Optional[_Iterable[float]] = ..., yaw: _Optional[float] = ..., pitch: _Optional[float] = ..., roll: _Optional[float] = ..., track_id: _Optional[int] = ..., cache_hit: _Optional[bool] = ..., jitter_raw: _Optional[float] = ..., jitter_smoothed: _Optional[float] = ..., fp32_fallback: _Optional[bool] = ..., detector: _Optional[str] = ..., size: _Optional[float] = ..., skipped: _Optional[str] = ..., profile_fade: _Optional[float] = ..., source_weights: _Optional[_Iterable[_Union[SourceWeight, _Mapping]]] = ...) -> None: ...

class SourceWeight(_message.Message):
    __slots__ = ("label", "weight")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    label: str
    weight: float
    def __init__(self, label: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...

class FrameQC(_message.Message):
    __slots__ = ("faces_found", "faces_swapped", "faces", "timings_ms", "analysed")
    class TimingsMsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    FACES_FOUND_FIELD_NUMBER: _ClassVar[int]
    FACES_SWAPPED_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_MS_FIELD_NUMBER: _ClassVar[int]
    ANALYSED_FIELD_NUMBER: _ClassVar[int]
    faces_found: int
    faces_swapped: int
    faces: _containers.RepeatedCompositeFieldContainer[FaceQC]
    timings_ms: _containers.ScalarMap[str, float]
    analysed: bool
    def __init__(self, faces_found: _Optional[int] = ..., faces_swapped: _Optional[int] = ..., faces: _Optional[_Iterable[_Union[FaceQC, _Mapping]]] = ..., timings_ms: _Optional[_Mapping[str, float]] = ..., analysed: _Optional[bool] = ...) -> None: ...

class FrameResult(_message.Message):
    __slots__ = ("frame_id", "frame_number", "status", "qc", "total_bytes", "output_path")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_NUMBER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    QC_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PATH_FIELD_NUMBER: _ClassVar[int]
    frame_id: int
    frame_number: int
    status: FrameStatus
    qc: FrameQC
    total_bytes: int
    output_path: str
    def __init__(self, frame_id: _Optional[int] = ..., frame_number: _Optional[int] = ..., status: _Optional[_Union[FrameStatus, _Mapping]] = ..., qc: _Optional[_Union[FrameQC, _Mapping]] = ..., total_bytes: _Optional[int] = ..., output_path: _Optional[str] = ...) -> None: ...

class AnalyseProgress(_message.Message):
    __slots__ = ("frame_number", "status", "cut", "keyframe", "replayed", "tracks", "timings_ms")
    class TimingsMsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    FRAME_NUMBER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CUT_FIELD_NUMBER: _ClassVar[int]
    KEYFRAME_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    TRACKS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_MS_FIELD_NUMBER: _ClassVar[int]
    frame_number: int
    status: FrameStatus
    cut: int
    keyframe: bool
    replayed: bool
    tracks: _containers.RepeatedScalarFieldContainer[int]
    timings_ms: _containers.ScalarMap[str, float]
    def __init__(self, frame_number: _Optional[int] = ..., status: _Optional[_Union[FrameStatus, _Mapping]] = ..., cut: _Optional[int] = ..., keyframe: _Optional[bool] = ..., replayed: _Optional[bool] = ..., tracks: _Optional[_Iterable[int]] = ..., timings_ms: _Optional[_Mapping[str, float]] = ...) -> None: ...

class FrameCopy(_message.Message):
    __slots__ = ("frame_id", "offset", "input_offset", "length")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    INPUT_OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    frame_id: int
    offset: int
    input_offset: int
    length: int
    def __init__(self, frame_id: _Optional[int] = ..., offset: _Optional[int] = ..., input_offset: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...

class ProcessFramesResponse(_message.Message):
    __slots__ = ("result", "chunk", "copy")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    COPY_FIELD_NUMBER: _ClassVar[int]
    result: FrameResult
    chunk: FrameChunk
    copy: FrameCopy
    def __init__(self, result: _Optional[_Union[FrameResult, _Mapping]] = ..., chunk: _Optional[_Union[FrameChunk, _Mapping]] = ..., copy: _Optional[_Union[FrameCopy, _Mapping]] = ...) -> None: ...

class ListShotsRequest(_message.Message):
    __slots__ = ("shot", "with_frames", "smoothing")
    SHOT_FIELD_NUMBER: _ClassVar[int]
    WITH_FRAMES_FIELD_NUMBER: _ClassVar[int]
    SMOOTHING_FIELD_NUMBER: _ClassVar[int]
    shot: str
    with_frames: bool
    smoothing: float
    def __init__(self, shot: _Optional[str] = ..., with_frames: _Optional[bool] = ..., smoothing: _Optional[float] = ...) -> None: ...

class FrameSummary(_message.Message):
    __slots__ = ("frame_number", "cut", "keyframe", "tracks", "jitter_raw", "jitter_smoothed")
    FRAME_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CUT_FIELD_NUMBER: _ClassVar[int]
    KEYFRAME_FIELD_NUMBER: _ClassVar[int]
    TRACKS_FIELD_NUMBER: _ClassVar[int]
    JITTER_RAW_FIELD_NUMBER: _ClassVar[int]
    JITTER_SMOOTHED_FIELD_NUMBER: _ClassVar[int]
    frame_number: int
    cut: int
    keyframe: bool
    tracks: _containers.RepeatedScalarFieldContainer[int]
    jitter_raw: float
    jitter_smoothed: float
    def __init__(self, frame_number: _Optional[int] = ..., cut: _Optional[int] = ..., keyframe: _Optional[bool] = ..., tracks: _Optional[_Iterable[int]] = ..., jitter_raw: _Optional[float] = ..., jitter_smoothed: _Optional[float] = ...) -> None: ...

class ShotInfo(_message.Message):
    __slots__ = ("shot", "first_frame", "last_frame", "frames", "tracks", "cuts", "keyframes", "created", "frame_summaries")
    SHOT_FIELD_NUMBER: _ClassVar[int]
    FIRST_FRAME_FIELD_NUMBER: _ClassVar[int]
    LAST_FRAME_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    TRACKS_FIELD_NUMBER: _ClassVar[int]
    CUTS_FIELD_NUMBER: _ClassVar[int]
    KEYFRAMES_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    FRAME_SUMMARIES_FIELD_NUMBER: _ClassVar[int]
    shot: str
    first_frame: int
    last_frame: int
    frames: int
    tracks: _containers.RepeatedScalarFieldContainer[int]
    cuts: int
    keyframes: int
    created: float
    frame_summaries: _containers.RepeatedCompositeFieldContainer[FrameSummary]
    def __init__(self, shot: _Optional[str] = ..., first_frame: _Optional[int] = ..., last_frame: _Optional[int] = ..., frames: _Optional[int] = ..., tracks: _Optional[_Iterable[int]] = ..., cuts: _Optional[int] = ..., keyframes: _Optional[int] = ..., created: _Optional[float] = ..., frame_summaries: _Optional[_Iterable[_Union[FrameSummary, _Mapping]]] = ...) -> None: ...

class ListShotsResponse(_message.Message):
    __slots__ = ("shots",)
    SHOTS_FIELD_NUMBER: _ClassVar[int]
    shots: _containers.RepeatedCompositeFieldContainer[ShotInfo]
    def __init__(self, shots: _Optional[_Iterable[_Union[ShotInfo, _Mapping]]] = ...) -> None: ...

class PreviewImage(_message.Message):
    __slots__ = ("width", "height", "channels", "data")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    channels: int
    data: bytes
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., channels: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class RegionOverlay(_message.Message):
    __slots__ = ("width", "height", "labels", "region_names")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    REGION_NAMES_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    labels: bytes
    region_names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., labels: _Optional[bytes] = ..., region_names: _Optional[_Iterable[str]] = ...) -> None: ...

class PreviewFace(_message.Message):
    __slots__ = ("qc", "landmarks")
    QC_FIELD_NUMBER: _ClassVar[int]
    LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    qc: FaceQC
    landmarks: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, qc: _Optional[_Union[FaceQC, _Mapping]] = ..., landmarks: _Optional[_Iterable[float]] = ...) -> None: ...

class PreviewRequest(_message.Message):
    __slots__ = ("session_id", "frame_number", "name", "input_path", "data", "max_side", "region", "include_plate", "omit_rendered", "params", "include_regions")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_NUMBER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    INPUT_PATH_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    MAX_SIDE_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_PLATE_FIELD_NUMBER: _ClassVar[int]
    OMIT_RENDERED_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_REGIONS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    frame_number: int
    name: str
    input_path: str
    data: bytes
    max_side: int
    region: PreviewRegion
    include_plate: bool
    omit_rendered: bool
    params: ProcessParams
    include_regions: bool
    def __init__(self, session_id: _Optional[str] = ..., frame_number: _Optional[int] = ..., name: _Optional[str] = ..., input_path: _Optional[str] = ..., data: _Optional[bytes] = ..., max_side: _Optional[int] = ..., region: _Optional[_Union[PreviewRegion, str]] = ..., include_plate: _Optional[bool] = ..., omit_rendered: _Optional[bool] = ..., params: _Optional[_Union[ProcessParams, _Mapping]] = ..., include_regions: _Optional[bool] = ...) -> None: ...

class PreviewResponse(_message.Message):
    __slots__ = ("frame_number", "status", "rendered", "plate", "x0", "y0", "x1", "y1", "frame_width", "frame_height", "faces", "regions", "timings_ms", "analysed", "colourspace")
    class TimingsMsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    FRAME_NUMBER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RENDERED_FIELD_NUMBER: _ClassVar[int]
    PLATE_FIELD_NUMBER: _ClassVar[int]
    X0_FIELD_NUMBER: _ClassVar[int]
    Y0_FIELD_NUMBER: _ClassVar[int]
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    FRAME_WIDTH_FIELD_NUMBER: _ClassVar[int]
    FRAME_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_MS_FIELD_NUMBER: _ClassVar[int]
    ANALYSED_FIELD_NUMBER: _ClassVar[int]
    COLOURSPACE_FIELD_NUMBER: _ClassVar[int]
    frame_number: int
    status: FrameStatus
    rendered: PreviewImage
    plate: PreviewImage
    x0: int
    y0: int
    x1: int
    y1: int
    frame_width: int
    frame_height: int
    faces: _containers.RepeatedCompositeFieldContainer[PreviewFace]
    regions: RegionOverlay
    timings_ms: _containers.ScalarMap[str, float]
    analysed: bool
    colourspace: str
    def __init__(self, frame_number: _Optional[int] = ..., status: _Optional[_Union[FrameStatus, _Mapping]] = ..., rendered: _Optional[_Union[PreviewImage, _Mapping]] = ..., plate: _Optional[_Union[PreviewImage, _Mapping]] = ..., x0: _Optional[int] = ..., y0: _Optional[int] = ..., x1: _Optional[int] = ..., y1: _Optional[int] = ..., frame_width: _Optional[int] = ..., frame_height: _Optional[int] = ..., faces: _Optional[_Iterable[_Union[PreviewFace, _Mapping]]] = ..., regions: _Optional[_Union[RegionOverlay, _Mapping]] = ..., timings_ms: _Optional[_Mapping[str, float]] = ..., analysed: _Optional[bool] = ..., colourspace: _Optional[str] = ...) -> None: ...

class ExportAnalysisRequest(_message.Message):
    __slots__ = ("shot",)
    SHOT_FIELD_NUMBER: _ClassVar[int]
    shot: str
    def __init__(self, shot: _Optional[str] = ...) -> None: ...

class AnalysisChunk(_message.Message):
    __slots__ = ("offset", "data", "total_bytes")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    offset: int
    data: bytes
    total_bytes: int
    def __init__(self, offset: _Optional[int] = ..., data: _Optional[bytes] = ..., total_bytes: _Optional[int] = ...) -> None: ...

class ImportAnalysisStart(_message.Message):
    __slots__ = ("session_id", "total_bytes")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    total_bytes: int
    def __init__(self, session_id: _Optional[str] = ..., total_bytes: _Optional[int] = ...) -> None: ...

class ImportAnalysisRequest(_message.Message):
    __slots__ = ("start", "chunk")
    START_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    start: ImportAnalysisStart
    chunk: AnalysisChunk
    def __init__(self, start: _Optional[_Union[ImportAnalysisStart, _Mapping]] = ..., chunk: _Optional[_Union[AnalysisChunk, _Mapping]] = ...) -> None: ...

class ImportAnalysisResponse(_message.Message):
    __slots__ = ("shot", "frames", "tracks", "first_frame", "last_frame", "sha256")
    SHOT_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    TRACKS_FIELD_NUMBER: _ClassVar[int]
    FIRST_FRAME_FIELD_NUMBER: _ClassVar[int]
    LAST_FRAME_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    shot: str
    frames: int
    tracks: int
    first_frame: int
    last_frame: int
    sha256: str
    def __init__(self, shot: _Optional[str] = ..., frames: _Optional[int] = ..., tracks: _Optional[int] = ..., first_frame: _Optional[int] = ..., last_frame: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...
