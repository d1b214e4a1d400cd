from pathlib import Path

import pytest

from facebridge.client.process_cmd import plan_jobs
from facebridge.client.sequence import PatternError, gaps, parse_frame_range, parse_pattern


@pytest.mark.parametrize(
    ("text", "frame", "expected"),
    [
        ("plate.####.exr", 7, "plate.0007.exr"),
        ("plate.%04d.exr", 1001, "plate.1001.exr"),
        ("plate.%d.exr", 12, "plate.12.exr"),
        ("/a/b/sh010_v2.##.exr", 123, "/a/b/sh010_v2.123.exr"),
        ("plate.####.exr", -3, "plate.-003.exr"),
    ],
)
def test_pattern_paths(text: str, frame: int, expected: str) -> None:
    assert parse_pattern(text).path(frame) == expected


def test_single_file_pattern_is_not_a_sequence() -> None:
    pattern = parse_pattern("/shots/still.exr")
    assert not pattern.is_sequence
    assert pattern.path(42) == "/shots/still.exr"


def test_two_tokens_are_rejected() -> None:
    with pytest.raises(PatternError, match="more than one"):
        parse_pattern("v##/plate.####.exr")


@pytest.mark.parametrize(
    ("text", "frames"),
    [("1001-1004", [1001, 1002, 1003, 1004]), ("5", [5]), ("1-3,10", [1, 2, 3, 10]), ("1-9x4", [1, 5, 9]),
     ("-2-1", [-2, -1, 0, 1])],
)
def test_frame_ranges(text: str, frames: list[int]) -> None:
    assert parse_frame_range(text) == frames


@pytest.mark.parametrize("text", ["", "a-b", "10-1", "1-5x0"])
def test_bad_frame_ranges(text: str) -> None:
    with pytest.raises(PatternError):
        parse_frame_range(text)


def test_existing_frames_and_gaps(tmp_path: Path) -> None:
    for frame in (1001, 1002, 1004, 1005):
        (tmp_path / f"plate.{frame:04d}.exr").write_bytes(b"x")
    (tmp_path / "plate.0003.exr.tmp").write_bytes(b"x")
    (tmp_path / "other.1003.exr").write_bytes(b"x")
    pattern = parse_pattern(str(tmp_path / "plate.####.exr"))
    assert pattern.existing_frames() == [1001, 1002, 1004, 1005]
    assert gaps(pattern.existing_frames()) == [1003]


def test_plan_jobs_reports_missing_frames_in_range(tmp_path: Path) -> None:
    for frame in (1, 2, 4):
        (tmp_path / f"in.{frame:04d}.exr").write_bytes(b"x")
    jobs, missing = plan_jobs(parse_pattern(str(tmp_path / "in.####.exr")),
                              parse_pattern(str(tmp_path / "out" / "o.%04d.exr")), "1-5")
    assert [j.frame_number for j in jobs] == [1, 2, 4]
    assert missing == [3, 5]
    assert jobs[2].output_path == str(tmp_path / "out" / "o.0004.exr")


def test_plan_jobs_rejects_mixed_patterns(tmp_path: Path) -> None:
    with pytest.raises(PatternError, match="both"):
        plan_jobs(parse_pattern(str(tmp_path / "in.####.exr")), parse_pattern(str(tmp_path / "o.exr")), None)
