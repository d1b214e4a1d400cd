"""The model registry: which face models facebridge knows, where their files are, and whether to trust them.

The registry is data (``registry.json`` beside this module, shipped as package data): one record per
model with its kind, family (the :mod:`.families` module that loads it), file name, published sha256,
native size, alignment template, input normalisation, input shapes and licence note. This module loads and checks that data, finds the models
directory, hashes the files it finds there (remembering digests across runs), and picks the model to
use for each kind.

Trust rules:
    - A file is *verified* when its sha256 equals the registry's. Only verified files are picked by
      default (highest ``preference`` first); otherwise the kind's embedded model is used.
    - A file with no published hash, a different hash, or no registry record at all is *unverified*:
      naming it raises :class:`ModelRefused` unless unverified use is allowed (``--allow-unverified``).
    - Embedded models (``format`` ``dlib`` or ``embedded``) are part of the install and are not hashed.

Models directory, first found wins (see :func:`resolve_models_dir`):
    1. ``--models-dir`` on the command line;
    2. the ``FACEBRIDGE_MODELS_DIR`` environment variable;
    3. ``models_dir`` in ``$XDG_CONFIG_HOME/facebridge/config.json`` (else ``~/.config/facebridge/config.json``);
    4. ``$XDG_DATA_HOME/facebridge/models`` (else ``~/.local/share/facebridge/models``).

Nothing here downloads anything.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from ..store.private import private_dir
from .errors import ModelError, ModelInvalid, ModelNotFound, ModelRefused

_LOG = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("detector", "landmarker", "embedder", "converter", "swapper", "restorer", "parser",
                          "occluder")
FORMATS: tuple[str, ...] = ("onnx", "pth", "dlib", "embedded")
TEMPLATES: tuple[str, ...] = ("arcface_112_v1", "arcface_112_v2", "arcface_128", "ffhq_512", "mtcnn_512")
NORMALISATIONS: tuple[str, ...] = ("[0,1]", "[-1,1]", "imagenet", "uint8")
EMBEDDED_FORMATS: frozenset[str] = frozenset({"dlib", "embedded"})
FILE_SUFFIXES: Mapping[str, tuple[str, ...]] = MappingProxyType({"onnx": (".onnx",), "pth": (".pth", ".pt")})

MODELS_DIR_ENV = "FACEBRIDGE_MODELS_DIR"
CONFIG_KEY = "models_dir"
ALLOW_UNVERIFIED_FLAG = "--allow-unverified"
DIGEST_MEMO_FILE = "model-digests.json"
REGISTRY_SCHEMA = 1

State = Literal["verified", "hash-mismatch", "no-hash", "missing", "embedded"]
UNVERIFIED_STATES: frozenset[str] = frozenset({"hash-mismatch", "no-hash"})

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_REQUIRED_KEYS = frozenset({"name", "kind", "format", "file", "sha256", "size", "template", "normalisation",
                            "inputs", "licence", "preference"})
_OPTIONAL_KEYS = frozenset({"family", "source", "requires", "notes"})
_HASH_CHUNK = 1 << 20
_FAMILY_RE = re.compile(r"^[a-z][a-z0-9_]*$")

NAMED_ONLY_KINDS: frozenset[str] = frozenset({"converter"})
"""Kinds without a default: loaded only by name (a swapper's embedding converter, named in its ``requires``)."""

STAND_IN_FAMILIES: Mapping[str, str] = MappingProxyType({
    "swapper": "inswapper", "embedder": "arcface", "converter": "crossface", "restorer": "gpen", "parser": "bisenet",
    "detector": "retinaface", "landmarker": "fan68", "occluder": "xseg"})
"""The family of a model file without one (a file the registry does not know, a record without ``family``), by
kind (the detector and landmarker modules read their layout from the file's outputs, so retinaface / fan68 load
yoloface / peppa_wutz files too)."""


def default_family(kind: str, fmt: str) -> str:
    """The family of a record that names none: ``dlib`` for dlib files, ``enhancer`` for the embedded restorer,
    ``builtin`` for the other embedded models, else :data:`STAND_IN_FAMILIES` by kind. The shipped registry
    names every record's family."""
    if fmt == "dlib":
        return "dlib"
    if fmt == "embedded":
        return "enhancer" if kind == "restorer" else "builtin"
    return STAND_IN_FAMILIES[kind]


# -- records ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelRecord:
    """One model the registry knows.

    Attributes:
        name: unique registry name (``inswapper_128``, ``dlib-68``, ...).
        kind: one of :data:`KINDS`.
        family: the module in :mod:`inference_server.models.families` that loads it (``inswapper``, ``gpen``, ...).
        format: one of :data:`FORMATS`; ``dlib`` and ``embedded`` models are part of the install.
        file: file name (in the models directory, or in face-recognition-models for ``dlib``); None
            for a model without a file.
        sha256: published lowercase hex digest of the file, or None when none is known.
        size: native square input side in px, or None.
        template: alignment template name (one of :data:`TEMPLATES`), or None.
        normalisation: input value convention (one of :data:`NORMALISATIONS`), or None.
        inputs: input name -> shape.
        licence: licence note (not legal advice).
        preference: higher is preferred when picking a default among verified models of one kind.
        source: where the recorded sha256 was published.
        requires: names of other records this model needs (a swapper's embedder, then its embedding converter).
        notes: free text for people.
    """

    name: str
    kind: str
    family: str
    format: str
    file: str | None
    sha256: str | None
    size: int | None
    template: str | None
    normalisation: str | None
    inputs: Mapping[str, tuple[int, ...]] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    licence: str = ""
    preference: int = 0
    source: str | None = None
    requires: tuple[str, ...] = ()
    notes: str | None = None

    @property
    def embedded(self) -> bool:
        """True for models that ship with the install (dlib files from a pip package, or code)."""
        return self.format in EMBEDDED_FORMATS


def default_registry_path() -> Path:
    """The ``registry.json`` shipped beside this module."""
    return Path(str(resources.files(__package__ or "inference_server.models").joinpath("registry.json")))


def load_records(path: Path | str | None = None) -> tuple[ModelRecord, ...]:
    """Read and check a registry JSON file (the shipped one by default).

    Raises:
        ModelInvalid: unreadable JSON or a bad record; the message names the file and the record.
    """
    file = Path(path) if path is not None else default_registry_path()
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelInvalid(f"{file}: cannot read the model registry ({error})") from error
    if not isinstance(data, dict) or data.get("schema") != REGISTRY_SCHEMA or not isinstance(data.get("models"), list):
        raise ModelInvalid(f"{file}: expected an object with \"schema\": {REGISTRY_SCHEMA} and a \"models\" list")
    records = tuple(_parse_entry(entry, file, index) for index, entry in enumerate(data["models"]))
    _check_registry(records, file)
    return records


def _parse_entry(entry: Any, file: Path, index: int) -> ModelRecord:
    label = f"record #{index}"
    if isinstance(entry, dict) and isinstance(entry.get("name"), str):
        label += f" ({entry['name']!r})"
    try:
        return _parse_record(entry)
    except (TypeError, ValueError) as error:
        raise ModelInvalid(f"{file}: {label}: {error}") from None


def _parse_record(entry: Any) -> ModelRecord:
    if not isinstance(entry, dict):
        raise TypeError("is not a JSON object")
    missing = sorted(_REQUIRED_KEYS - entry.keys())
    unknown = sorted(entry.keys() - _REQUIRED_KEYS - _OPTIONAL_KEYS)
    if missing or unknown:
        raise ValueError(f"missing keys {missing}" if missing else f"unknown keys {unknown}")
    fmt = _one_of(entry["format"], FORMATS, "format")
    kind = _one_of(entry["kind"], KINDS, "kind")
    record = ModelRecord(
        name=_text(entry["name"], "name"),
        kind=kind,
        family=_family(entry["family"]) if "family" in entry else default_family(kind, fmt),
        format=fmt,
        file=_file_name(entry["file"], fmt),
        sha256=_digest_or_none(entry["sha256"]),
        size=_positive_or_none(entry["size"], "size"),
        template=_one_of_or_none(entry["template"], TEMPLATES, "template"),
        normalisation=_one_of_or_none(entry["normalisation"], NORMALISATIONS, "normalisation"),
        inputs=_inputs(entry["inputs"]),
        licence=_text(entry["licence"], "licence"),
        preference=_integer(entry["preference"], "preference"),
        source=_text_or_none(entry.get("source"), "source"),
        requires=_names(entry.get("requires", [])),
        notes=_text_or_none(entry.get("notes"), "notes"),
    )
    if record.sha256 is not None and record.source is None:
        raise ValueError("a sha256 needs a \"source\" saying where it was published")
    return record


def _check_registry(records: Sequence[ModelRecord], file: Path) -> None:
    names = [r.name for r in records]
    files = [r.file for r in records if r.file is not None]
    for label, values in (("name", names), ("file", files)):
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            raise ModelInvalid(f"{file}: duplicate {label}s {dupes}")
    for record in records:
        unknown = [n for n in record.requires if n not in names]
        if unknown:
            raise ModelInvalid(f"{file}: record {record.name!r}: requires unknown models {unknown}")


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key} must be a non-empty string, got {value!r}")
    return value


def _family(value: Any) -> str:
    if not isinstance(value, str) or not _FAMILY_RE.match(value):
        raise ValueError(f"family must name a module of inference_server.models.families (lowercase letters, "
                         f"digits, _), got {value!r}")
    return value


def _text_or_none(value: Any, key: str) -> str | None:
    return None if value is None else _text(value, key)


def _one_of(value: Any, allowed: Sequence[str], key: str) -> str:
    if value not in allowed:
        raise ValueError(f"{key} must be one of {list(allowed)}, got {value!r}")
    return str(value)


def _one_of_or_none(value: Any, allowed: Sequence[str], key: str) -> str | None:
    return None if value is None else _one_of(value, allowed, key)


def _integer(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{key} must be an integer, got {value!r}")
    return value


def _positive_or_none(value: Any, key: str) -> int | None:
    if value is None:
        return None
    if _integer(value, key) <= 0:
        raise ValueError(f"{key} must be positive, got {value!r}")
    return int(value)


def _digest_or_none(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _SHA256_RE.match(value):
        raise ValueError(f"sha256 must be 64 lowercase hex digits or null, got {value!r}")
    return value


def _file_name(value: Any, fmt: str) -> str | None:
    if value is None:
        if fmt in EMBEDDED_FORMATS:
            return None
        raise ValueError(f"a {fmt} model needs a file name")
    name = _text(value, "file")
    if Path(name).name != name:
        raise ValueError(f"file must be a bare file name, got {name!r}")
    if fmt == "embedded":
        raise ValueError("an embedded model has no file")
    suffixes = FILE_SUFFIXES.get(fmt)
    if suffixes and Path(name).suffix.lower() not in suffixes:
        raise ValueError(f"a {fmt} file must end in {' or '.join(suffixes)}, got {name!r}")
    return name


def _inputs(value: Any) -> Mapping[str, tuple[int, ...]]:
    if not isinstance(value, dict):
        raise TypeError(f"inputs must be an object of name -> shape, got {value!r}")
    shapes: dict[str, tuple[int, ...]] = {}
    for name, shape in value.items():
        if not isinstance(shape, list) or not shape or any(
                isinstance(d, bool) or not isinstance(d, int) or d <= 0 for d in shape):
            raise ValueError(f"input {name!r} needs a shape of positive integers, got {shape!r}")
        shapes[_text(name, "input name")] = tuple(shape)
    return MappingProxyType(shapes)


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise TypeError(f"requires must be a list of model names, got {value!r}")
    return tuple(_text(v, "requires entry") for v in value)


def names_of_kind(records: Iterable[ModelRecord], kind: str) -> list[str]:
    """Registry names of one kind, preferred first."""
    return [r.name for r in sorted((r for r in records if r.kind == kind), key=_preference_key)]


def _preference_key(record: ModelRecord) -> tuple[int, str]:
    return (-record.preference, record.name)


# -- models directory ------------------------------------------------------------------------------

def _home(environ: Mapping[str, str]) -> Path:
    return Path(environ["HOME"]) if environ.get("HOME") else Path.home()


def _expand(value: str, environ: Mapping[str, str], relative_to: Path | None = None) -> Path:
    if value == "~" or value.startswith("~/"):
        path = _home(environ) / value[2:]
    else:
        path = Path(value)
    if not path.is_absolute() and relative_to is not None:
        path = relative_to / path
    return Path(os.path.abspath(path))


def default_config_file(environ: Mapping[str, str]) -> Path:
    """``$XDG_CONFIG_HOME/facebridge/config.json``, else ``~/.config/facebridge/config.json``."""
    base = environ.get("XDG_CONFIG_HOME") or str(_home(environ) / ".config")
    return Path(base) / "facebridge" / "config.json"


def default_models_dir(environ: Mapping[str, str]) -> Path:
    """``$XDG_DATA_HOME/facebridge/models``, else ``~/.local/share/facebridge/models``."""
    base = environ.get("XDG_DATA_HOME") or str(_home(environ) / ".local" / "share")
    return Path(base) / "facebridge" / "models"


def _config_models_dir(config_file: Path, environ: Mapping[str, str]) -> Path | None:
    if not config_file.is_file():
        return None
    try:
        data = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelError(f"{config_file}: cannot read the config file ({error})") from error
    if not isinstance(data, dict):
        raise ModelError(f"{config_file}: the config file must hold a JSON object")
    value = data.get(CONFIG_KEY)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ModelError(f"{config_file}: {CONFIG_KEY!r} must be a non-empty string, got {value!r}")
    return _expand(value, environ, relative_to=config_file.parent)


def resolve_models_dir(explicit: str | None, environ: Mapping[str, str], config_file: Path | None = None) -> Path:
    """The models directory, by precedence: ``explicit`` (``--models-dir``), ``FACEBRIDGE_MODELS_DIR``,
    ``models_dir`` in the config file, then the XDG data default.

    Args:
        explicit: the command-line value, or None.
        environ: the environment to read (passed in; nothing is read from ``os.environ``).
        config_file: the config file to read; None uses :func:`default_config_file`.

    Relative paths are made absolute (against the working directory, or for the config file's value,
    against the config file's directory); ``~`` is expanded with ``environ["HOME"]``. The directory is
    not required to exist.

    Raises:
        ModelError: the config file exists but is not a JSON object with a string ``models_dir``.
    """
    if explicit and explicit.strip():
        return _expand(explicit, environ)
    from_env = environ.get(MODELS_DIR_ENV)
    if from_env and from_env.strip():
        return _expand(from_env, environ)
    from_config = _config_models_dir(config_file or default_config_file(environ), environ)
    return from_config if from_config is not None else default_models_dir(environ)


def embedded_models_dir() -> Path | None:
    """Directory of the dlib ``.dat`` files of the ``face-recognition-models`` package, or None when it is
    not installed. The package is located with ``importlib.util.find_spec`` and never imported (its
    ``__init__`` needs ``pkg_resources``)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models"


# -- digests ---------------------------------------------------------------------------------------

def sha256_file(path: Path | str) -> str:
    """Lowercase hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_key(stat: os.stat_result) -> dict[str, int]:
    # ctime cannot be set by anyone (mtime can): a file rewritten and re-dated still shows as changed
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns, "inode": stat.st_ino,
            "device": stat.st_dev}


class DigestMemo:
    """sha256 digests of files remembered across runs, so multi-GB models are not re-hashed at every start.

    The memo is a JSON file (:data:`DIGEST_MEMO_FILE`) in the given cache directory, keyed by absolute
    path. An entry is used only while the file's size, ``mtime_ns`` and inode are unchanged; otherwise
    the file is hashed again. A file that changes while it is being hashed is not remembered. The memo
    is an optimisation: an unreadable memo is treated as empty and a failed write is ignored. The memo is
    trusted only when it is a regular file of this user with no group or other access (0600, as it is
    written): any other memo (forged by someone who can write the cache dir) is ignored, every digest is
    computed afresh and the memo is written again.

    Attributes:
        file: the memo file.
        hashed: how many files this instance actually hashed (the rest came from the memo).
    """

    def __init__(self, cache_dir: Path | str) -> None:
        self.file = Path(cache_dir) / DIGEST_MEMO_FILE
        self.hashed = 0
        self._entries = self._read()

    def digest(self, path: Path | str) -> str:
        """sha256 of ``path``, from the memo when the file is unchanged since it was hashed."""
        key = os.path.abspath(path)
        before = _file_key(os.stat(key))
        entry = self._entries.get(key)
        if isinstance(entry, dict) and {k: entry.get(k) for k in before} == before \
                and isinstance(entry.get("sha256"), str):
            return str(entry["sha256"])
        value = sha256_file(key)
        self.hashed += 1
        if _file_key(os.stat(key)) == before:
            self._remember(key, {**before, "sha256": value})
        return value

    def _read(self) -> dict[str, Any]:
        try:
            fd = os.open(self.file, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            return {}
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
                _LOG.info("%s is not this user's private file (mode %o, owner %d): not trusted, digests are "
                             "computed afresh", self.file, stat.S_IMODE(info.st_mode), info.st_uid)
                return {}
            with os.fdopen(os.dup(fd), "r", encoding="utf-8") as handle:
                data = json.loads(handle.read())
        except (OSError, ValueError):
            return {}
        finally:
            os.close(fd)
        return data if isinstance(data, dict) else {}

    def _remember(self, key: str, entry: dict[str, Any]) -> None:
        entries = {**self._read(), key: entry}  # merge with what other processes wrote meanwhile
        self._entries = entries
        try:
            private_dir(self.file.parent, own=False)
            fd, tmp = tempfile.mkstemp(prefix=".digests-", dir=self.file.parent)  # (0600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(entries, handle, indent=1, sort_keys=True)
            os.replace(tmp, self.file)
        except OSError:
            pass


def _digest(path: Path, memo: DigestMemo | None) -> str:
    return memo.digest(path) if memo is not None else sha256_file(path)


# -- scanning --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelStatus:
    """What was found on disk for one record.

    Attributes:
        record: the registry record.
        path: where the file is, or where it was looked for when ``missing``; None for a model without
            a file (or a dlib file when face-recognition-models is not installed).
        state: ``verified`` (sha256 matches), ``hash-mismatch`` (sha256 differs), ``no-hash`` (the
            registry has no sha256), ``missing`` (no file), or ``embedded`` (part of the install).
        digest: the file's sha256 when it was hashed, else None.
    """

    record: ModelRecord
    path: Path | None
    state: State
    digest: str | None = None

    @property
    def verified(self) -> bool:
        return self.state == "verified"

    @property
    def unverified(self) -> bool:
        """A file is present but does not verify (``hash-mismatch`` or ``no-hash``)."""
        return self.state in UNVERIFIED_STATES


def scan(models_dir: Path | str, records: Iterable[ModelRecord], digest_memo: DigestMemo | None = None,
         embedded_dir: Path | None = None) -> list[ModelStatus]:
    """Look for every record's file and check its sha256; one status per record, in record order.

    Args:
        models_dir: where ``onnx``/``pth`` files are looked for (by the record's file name).
        records: the registry.
        digest_memo: remembers digests across runs; None hashes every present file.
        embedded_dir: where ``dlib`` files are; None uses :func:`embedded_models_dir`.
    """
    directory = Path(models_dir)
    dlib_dir = embedded_dir if embedded_dir is not None else embedded_models_dir()
    return [_status(record, directory, dlib_dir, digest_memo) for record in records]


def _status(record: ModelRecord, models_dir: Path, dlib_dir: Path | None, memo: DigestMemo | None) -> ModelStatus:
    if record.file is None:
        return ModelStatus(record, None, "embedded")
    if record.format == "dlib":
        path = dlib_dir / record.file if dlib_dir is not None else None
        return ModelStatus(record, path, "embedded" if path is not None and path.is_file() else "missing")
    path = models_dir / record.file
    if not path.is_file():
        return ModelStatus(record, path, "missing")
    digest = _digest(path, memo)
    return ModelStatus(record, path, _hash_state(record, digest), digest)


def _hash_state(record: ModelRecord, digest: str) -> State:
    if record.sha256 is None:
        return "no-hash"
    return "verified" if digest == record.sha256 else "hash-mismatch"


# -- choosing --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Choice:
    """The model picked for one kind.

    Attributes:
        record: the registry record (a stand-in record for a file the registry does not know).
        path: the file to load; None for embedded models (their code finds its own files).
        verified: the file's sha256 matched the registry. False for embedded models, which are part
            of the install and not checked here, and for files used under ``--allow-unverified``.
        embedded: the model is part of the install.
        note: one line for the report saying what was picked and why.
        digest: the file's sha256 when it was hashed.
    """

    record: ModelRecord
    path: Path | None
    verified: bool
    embedded: bool
    note: str
    digest: str | None = None


_REASONS: Mapping[str, str] = MappingProxyType({
    "hash-mismatch": "sha256 differs from the registry",
    "no-hash": "the registry has no sha256 for it",
    "unknown": "not a registry model, so its sha256 cannot be checked",
})


def choose(kind: str, choice: str | None, statuses: Sequence[ModelStatus], allow_unverified: bool = False,
           digest_memo: DigestMemo | None = None) -> Choice:
    """Pick the model of ``kind`` to use.

    Args:
        kind: one of :data:`KINDS`.
        choice: None (or empty) for the default: the verified model of that kind with the highest
            preference, else the kind's embedded model. Otherwise a registry name (matched exactly,
            then ignoring case) or a path to a model file; a file is matched to a record by its sha256,
            else by its file name or stem.
        statuses: :func:`scan` of the registry (every record appears once).
        allow_unverified: use a named file even when it does not verify (``--allow-unverified``); the
            note then says so. Defaults never pick an unverified file.
        digest_memo: used to hash a file given by path.

    Raises:
        ModelNotFound: unknown name (the message lists the known names of that kind), a named model
            whose file is missing (the message says where it looked), or no model of the kind at all.
        ModelRefused: the file does not verify and ``allow_unverified`` is False; one line that names
            ``--allow-unverified``.
        ModelInvalid: the file's sha256 is that of a registry model of another kind, or its type is
            not a model file.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {list(KINDS)}")
    if choice is None or not choice.strip():
        return _default_choice(kind, statuses)
    named = _find_name(choice.strip(), [s for s in statuses if s.record.kind == kind])
    if named is not None:
        return _named_choice(named, allow_unverified)
    if _looks_like_path(choice):
        return _file_choice(kind, _expand(choice, os.environ), statuses, allow_unverified, digest_memo)
    raise ModelNotFound(_unknown_name_message(kind, choice.strip(), statuses))


def _of_kind(kind: str, statuses: Sequence[ModelStatus]) -> list[ModelStatus]:
    return sorted((s for s in statuses if s.record.kind == kind), key=lambda s: _preference_key(s.record))


def _default_choice(kind: str, statuses: Sequence[ModelStatus]) -> Choice:
    candidates = _of_kind(kind, statuses)
    for status in candidates:
        if status.verified:
            return Choice(status.record, status.path, True, False,
                          f"{kind}: {status.record.name} (sha256 verified) from {status.path}", status.digest)
    skipped = _skipped_note(kind, [s for s in candidates if s.unverified])
    for status in candidates:
        if status.state == "embedded":
            note = f"{kind}: {status.record.name} (embedded; no verified {kind} model file found){skipped}"
            return Choice(status.record, None, False, True, note)
    raise ModelNotFound(f"no {kind} model available: none verified and no embedded one installed{skipped}")


def _skipped_note(kind: str, unverified: Sequence[ModelStatus]) -> str:
    if not unverified:
        return ""
    names = ", ".join(f"{s.record.name} ({_REASONS[s.state]})" for s in unverified)
    return (f"; not used by default: {names} - name it as the {kind} with {ALLOW_UNVERIFIED_FLAG} "
            "to use it anyway")


def _find_name(choice: str, statuses: Sequence[ModelStatus]) -> ModelStatus | None:
    for status in statuses:
        if status.record.name == choice:
            return status
    folded = [s for s in statuses if s.record.name.casefold() == choice.casefold()]
    return folded[0] if len(folded) == 1 else None


def _named_choice(status: ModelStatus, allow_unverified: bool) -> Choice:
    record = status.record
    if status.state == "embedded":
        return Choice(record, None, False, True, f"{record.kind}: {record.name} (embedded)")
    if status.state == "missing":
        raise ModelNotFound(_missing_message(status))
    assert status.path is not None
    if status.verified:
        return Choice(record, status.path, True, False,
                      f"{record.kind}: {record.name} (sha256 verified) from {status.path}", status.digest)
    return _unverified_choice(record, status.path, status.digest, status.state, allow_unverified)


def _missing_message(status: ModelStatus) -> str:
    record = status.record
    if status.path is None:
        return (f"{record.name}: {record.file} needs the face-recognition-models package, which is not "
                "installed (pip install face-recognition-models)")
    where = "the face-recognition-models package" if record.format == "dlib" else "the models directory"
    return f"{record.name}: {record.file} not found in {where}; looked for {status.path}"


def _unverified_choice(record: ModelRecord, path: Path, digest: str | None, reason_key: str,
                       allow_unverified: bool) -> Choice:
    reason = _REASONS[reason_key]
    if not allow_unverified:
        raise ModelRefused(f"{record.name} ({path}): {reason}; pass {ALLOW_UNVERIFIED_FLAG} to use it anyway")
    note = f"{record.name}: {reason} (used because {ALLOW_UNVERIFIED_FLAG}) from {path}"
    return Choice(record, path, False, False, note, digest)


def _looks_like_path(choice: str) -> bool:
    separators = [s for s in (os.sep, os.altsep, "/") if s]
    return any(s in choice for s in separators) or bool(Path(choice).suffix) or Path(choice).exists()


def _file_choice(kind: str, path: Path, statuses: Sequence[ModelStatus], allow_unverified: bool,
                 memo: DigestMemo | None) -> Choice:
    if not path.is_file():
        raise ModelNotFound(f"{path}: no such model file")
    digest = _digest(path, memo)
    records = [s.record for s in statuses]
    by_hash = [r for r in records if r.sha256 == digest]
    for record in by_hash:
        if record.kind == kind:
            return Choice(record, path, True, False, f"{kind}: {record.name} (sha256 verified) from {path}", digest)
    if by_hash:
        other = by_hash[0]
        raise ModelInvalid(f"{path} is the registry's {other.name}, a {other.kind}, not a {kind}")
    named = _match_by_name(path, [r for r in records if r.kind == kind and not r.embedded])
    if named is not None:
        return _unverified_choice(named, path, digest, "no-hash" if named.sha256 is None else "hash-mismatch",
                                  allow_unverified)
    return _unverified_choice(_stand_in_record(kind, path), path, digest, "unknown", allow_unverified)


def _match_by_name(path: Path, records: Sequence[ModelRecord]) -> ModelRecord | None:
    name, stem = path.name.casefold(), path.stem.casefold()
    for record in records:
        if record.file is not None and record.file.casefold() == name:
            return record
    for record in records:
        stems = {record.name.casefold()} | ({Path(record.file).stem.casefold()} if record.file else set())
        if stem in stems:
            return record
    return None


def _stand_in_record(kind: str, path: Path) -> ModelRecord:
    fmt = next((f for f, suffixes in FILE_SUFFIXES.items() if path.suffix.lower() in suffixes), None)
    if fmt is None:
        raise ModelInvalid(f"{path}: not a model file type facebridge loads (expected .onnx, .pth or .pt)")
    return ModelRecord(name=path.stem, kind=kind, family=default_family(kind, fmt), format=fmt, file=path.name,
                       sha256=None, size=None, template=None, normalisation=None,
                       licence="unknown (not in the registry)",
                       notes="stand-in record for a file the registry does not know")


def _unknown_name_message(kind: str, choice: str, statuses: Sequence[ModelStatus]) -> str:
    known = ", ".join(names_of_kind((s.record for s in statuses), kind)) or "none"
    other = next((s.record for s in statuses if s.record.name.casefold() == choice.casefold()), None)
    hint = f" ({choice!r} is a {other.kind})" if other is not None else ""
    return f"unknown {kind} {choice!r}{hint}; known {kind} models: {known} (or give the path of a model file)"


# -- listing ---------------------------------------------------------------------------------------

_COLUMNS: tuple[str, ...] = ("NAME", "KIND", "FORMAT", "STATE", "PATH", "LICENCE")


def _row(status: ModelStatus) -> tuple[str, ...]:
    record = status.record
    path = str(status.path) if status.path is not None else ("(built-in)" if record.file is None else "-")
    return (record.name, record.kind, record.format, status.state, path, record.licence)


def format_listing(statuses: Iterable[ModelStatus]) -> str:
    """A plain-text table for ``facebridge models``: name, kind, format, state, path, licence; grouped by
    kind, preferred first."""
    ordered = sorted(statuses, key=lambda s: (KINDS.index(s.record.kind), *_preference_key(s.record)))
    rows = [_COLUMNS, *(_row(s) for s in ordered)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS) - 1)]
    lines = ["  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[-1]]).rstrip() for row in rows]
    return "\n".join(lines)
