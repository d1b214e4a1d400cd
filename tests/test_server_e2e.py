"""End to end through a real gRPC server on a loopback port, with real faces and real EXR files."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
from support import face_zone, load_rgb8, make_plate, read_exr, same_bits, write_exr

from facebridge.client.errors import ClientError
from facebridge.client.grpc_client import FaceBridgeClient, FrameJob

PAIRS = [("fr_biden2.jpg", "fr_obama.jpg"), ("lp_d12.jpg", "st_people_0.png")]


@pytest.fixture(scope="module")
def plates(faces_dir: Path, dlib_models, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("plates")
    return {target: make_plate(faces_dir / target, folder / f"{Path(target).stem}.exr", dlib_models)[0]
            for _, target in PAIRS}


def _run(client: FaceBridgeClient, sources: list[Path], jobs: list[FrameJob], use_paths: bool = False, **params):
    session = client.open_session(sources, shot="test", **params)
    outcomes = list(client.process(session.session_id, jobs, use_paths=use_paths))
    client.close_session(session.session_id)
    return session, outcomes


def test_server_info_and_health(client: FaceBridgeClient) -> None:
    client.wait_ready(timeout=10)
    info = client.server_info()
    assert info.api_version == "facebridge.v1"
    assert info.device == "cpu"
    assert 0 < info.limits.max_chunk_bytes <= 4 * 1024 * 1024
    assert {m.kind for m in info.models} >= {"swapper"}
    assert len(info.transports) >= 1


@pytest.mark.parametrize(("source", "target"), PAIRS)
def test_swap_keeps_everything_outside_the_face_and_moves_identity(
    client: FaceBridgeClient, faces_dir: Path, plates: dict[str, Path], dlib_models, tmp_path: Path,
    source: str, target: str,
) -> None:
    plate_path = plates[target]
    out_path = tmp_path / "out.exr"
    session, (outcome,) = _run(client, [faces_dir / source], [FrameJob(1, str(plate_path), str(out_path))])
    assert outcome.status == "ok", outcome.message
    plate, plate_spec = read_exr(plate_path)
    out, out_spec = read_exr(out_path)
    assert out_spec.channelnames == plate_spec.channelnames
    assert [str(f) for f in out_spec.channelformats] == [str(f) for f in plate_spec.channelformats]
    # every channel outside the face zone is a bit-exact copy; Z and the AOV are untouched everywhere
    rgb8 = load_rgb8(faces_dir / target)
    zone = np.zeros(plate.shape[:2], bool)
    for det in dlib_models.detect(rgb8):
        zone |= face_zone(plate.shape[:2], det.landmarks)
    equal = same_bits(plate, out)
    assert equal[~zone].all(), f"{int((~equal.all(axis=2) & ~zone).sum())} pixels changed outside the face"
    assert equal[..., 3:].all()
    assert np.isnan(out).sum() == np.isnan(plate).sum() == 1
    assert np.isinf(out).sum() == np.isinf(plate).sum() == 1
    def hdr_max(px: np.ndarray) -> float:
        rgb = px[..., :3]
        return float(np.nanmax(np.where(np.isinf(rgb), 0, rgb)))

    assert hdr_max(out) == hdr_max(plate) > 3.0
    assert (~equal.all(axis=2) & zone).sum() > 0.1 * zone.sum(), "the face was hardly changed"
    # provenance
    assert out_spec.get_int_attribute("facebridge:ai_processed") == 1
    assert out_spec.get_string_attribute("facebridge:params_hash") == session.params_hash
    assert "dlib" in out_spec.get_string_attribute("facebridge:models")
    # the output face is closer to the source than the plate's face was, by the server's own QC
    (face,) = [f for f in outcome.faces if f["swapped"]]
    assert face["identity_distance"] < face["identity_distance_plate"]
    assert face["identity_distance"] < 0.6


@pytest.mark.parametrize(("compression", "lines"), [("dwaa", 32), ("b44", 32), ("zip", 16)])
def test_a_lossy_plate_keeps_its_stored_values_outside_the_faces_rows(
    client: FaceBridgeClient, faces_dir: Path, dlib_models, tmp_path: Path, compression: str, lines: int,
) -> None:
    """A DWAA plate encoded again whole changed about a sixth of its values anywhere in the frame. Only the
    chunks of rows the face changed are encoded now (scan-line chunks span the whole width, so a lossy format
    still re-encodes the rows beside the face); every other row is the plate file's own, to the bit."""
    plate_path, _ = make_plate(faces_dir / "fr_obama.jpg", tmp_path / "plate.exr", dlib_models, compression=compression)
    plate = read_exr(plate_path)[0]
    zone = np.zeros(plate.shape[:2], bool)
    for det in dlib_models.detect(load_rgb8(faces_dir / "fr_obama.jpg")):
        zone |= face_zone(plate.shape[:2], det.landmarks)
    rows = np.nonzero(zone.any(axis=1))[0]
    top, bottom = rows[0] // lines * lines, (rows[-1] // lines + 1) * lines
    for use_paths in (False, True):
        out_path = tmp_path / f"out_{use_paths}.exr"
        _, (outcome,) = _run(client, [faces_dir / "fr_biden2.jpg"], [FrameJob(1, str(plate_path), str(out_path))],
                             use_paths=use_paths)
        assert outcome.status == "ok", outcome.message
        out, spec = read_exr(out_path)
        equal = np.asarray(same_bits(plate, out).all(axis=2))
        assert equal[:top].all() and equal[bottom:].all(), \
            f"{int((~equal[:top]).sum() + (~equal[bottom:]).sum())} pixels changed in rows without a face"
        assert (~equal & zone).sum() > 0.1 * zone.sum(), "the face was hardly changed"
        assert spec.get_string_attribute("compression") == compression
        if compression != "dwaa":  # lossless for these values (B44 of decoded B44 data is exact): nothing beside it
            assert equal[~zone].all()


def test_blend_zero_returns_the_plate(client: FaceBridgeClient, faces_dir: Path, plates: dict[str, Path], tmp_path: Path) -> None:
    plate_path = plates["fr_obama.jpg"]
    _, (outcome,) = _run(client, [faces_dir / "fr_biden2.jpg"], [FrameJob(1, str(plate_path), str(tmp_path / "o.exr"))],
                         blend=0.0)
    assert outcome.status == "warning" and outcome.kind == "not_swapped"
    assert same_bits(read_exr(plate_path)[0], read_exr(tmp_path / "o.exr")[0]).all()


def test_path_transport_matches_stream_transport(client: FaceBridgeClient, faces_dir: Path, plates: dict[str, Path],
                                                 tmp_path: Path) -> None:
    plate_path = str(plates["st_people_0.png"])
    jobs = [FrameJob(1, plate_path, str(tmp_path / "stream.exr"))]
    _run(client, [faces_dir / "lp_d12.jpg"], jobs)
    _run(client, [faces_dir / "lp_d12.jpg"], [FrameJob(1, plate_path, str(tmp_path / "path.exr"))], use_paths=True)
    assert same_bits(read_exr(tmp_path / "stream.exr")[0], read_exr(tmp_path / "path.exr")[0]).all()


def test_bad_frames_fail_alone_and_the_stream_goes_on(client: FaceBridgeClient, faces_dir: Path,
                                                      plates: dict[str, Path], tmp_path: Path) -> None:
    good = plates["st_people_0.png"]
    data = good.read_bytes()
    (tmp_path / "cut.exr").write_bytes(data[: len(data) // 3])
    (tmp_path / "junk.exr").write_bytes(b"\x00" * 100)
    (tmp_path / "empty.exr").write_bytes(b"")
    write_exr(tmp_path / "zonly.exr", np.ones((32, 32, 1), np.float32), ("Z",))
    write_exr(tmp_path / "wide.exr", np.zeros((1, 20000, 3), np.float32), ("R", "G", "B"))
    names = ["cut", "junk", "empty", "zonly", "wide"]
    jobs = [FrameJob(10 + i, str(tmp_path / f"{n}.exr"), str(tmp_path / "out" / f"{n}.exr")) for i, n in enumerate(names)]
    jobs.append(FrameJob(99, str(good), str(tmp_path / "out" / "good.exr")))
    (tmp_path / "out").mkdir()
    _, outcomes = _run(client, [faces_dir / "lp_d12.jpg"], jobs)
    by_frame = {o.frame_number: o for o in outcomes}
    expected_kinds = {10: "decode", 11: "decode", 12: "decode", 13: "channels", 14: "dimensions"}
    for frame, kind in expected_kinds.items():
        outcome = by_frame[frame]
        assert outcome.status == "failed" and outcome.kind == kind, outcome
        assert f"(frame {frame})" in outcome.message and Path(outcome.input_path).name in outcome.message
        assert "\n" not in outcome.message
    assert by_frame[99].status == "ok"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.exr"]


def test_frame_without_a_face_passes_through_with_a_warning(client: FaceBridgeClient, faces_dir: Path,
                                                            tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    pixels = np.concatenate([rng.random((90, 120, 3), dtype=np.float32) * 0.3, np.ones((90, 120, 1), np.float32)], 2)
    write_exr(tmp_path / "empty_room.exr", pixels, ("R", "G", "B", "A"))
    _, (outcome,) = _run(client, [faces_dir / "lp_d12.jpg"],
                         [FrameJob(5, str(tmp_path / "empty_room.exr"), str(tmp_path / "o.exr"))])
    assert outcome.status == "warning" and outcome.kind == "no_face"
    assert "empty_room.exr (frame 5)" in outcome.message
    out, spec = read_exr(tmp_path / "o.exr")
    assert same_bits(out, read_exr(tmp_path / "empty_room.exr")[0]).all()
    assert spec.get_int_attribute("facebridge:ai_processed") == 1


def test_8k_float_frame_travels_in_chunks(client: FaceBridgeClient, faces_dir: Path, tmp_path: Path) -> None:
    h, w = 4320, 8192
    rng = np.random.default_rng(2)
    pixels = rng.random((h, w, 4), dtype=np.float32)
    pixels[100, 200, 0] = np.nan
    path = write_exr(tmp_path / "big.exr", pixels, ("R", "G", "B", "A"), (oiio.FLOAT,) * 4, compression="none")
    del pixels
    assert path.stat().st_size > 100 * 4 * 1024 * 1024
    _, (outcome,) = _run(client, [faces_dir / "lp_d12.jpg"], [FrameJob(1, str(path), str(tmp_path / "o.exr"))])
    assert outcome.status == "warning" and outcome.kind == "no_face"
    assert same_bits(read_exr(path)[0], read_exr(tmp_path / "o.exr")[0]).all()


def test_source_without_a_face_is_refused(client: FaceBridgeClient, tmp_path: Path) -> None:
    write_exr(tmp_path / "grey.exr", np.full((64, 64, 3), 0.2, np.float32), ("R", "G", "B"))
    with pytest.raises(ClientError, match="grey.exr.*no face"):
        client.open_session([tmp_path / "grey.exr"])


def test_unknown_session_is_a_clear_error(client: FaceBridgeClient, tmp_path: Path) -> None:
    write_exr(tmp_path / "x.exr", np.zeros((8, 8, 3), np.float32), ("R", "G", "B"))
    with pytest.raises(ClientError, match="no open session"):
        list(client.process("nope", [FrameJob(1, str(tmp_path / "x.exr"), str(tmp_path / "y.exr"))]))


def test_concurrent_clients_get_the_same_pixels_as_one(server_address: str, faces_dir: Path,
                                                       plates: dict[str, Path], tmp_path: Path) -> None:
    plate = str(plates["st_people_0.png"])
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            with FaceBridgeClient(server_address) as c:
                out = tmp_path / f"c{k}.exr"
                _, (outcome,) = _run(c, [faces_dir / "lp_d12.jpg"], [FrameJob(k, plate, str(out))])
                results[k] = outcome.status
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors and results == {0: "ok", 1: "ok", 2: "ok"}
    first = read_exr(tmp_path / "c0.exr")[0]
    for k in (1, 2):
        assert same_bits(first, read_exr(tmp_path / f"c{k}.exr")[0]).all()


def test_audit_log_records_who_processed_what(client: FaceBridgeClient, faces_dir: Path, plates: dict[str, Path],
                                              audit_log_path: Path, tmp_path: Path) -> None:
    session = client.open_session([faces_dir / "lp_d12.jpg"], shot="sh_audit", client="artist@ws1")
    list(client.process(session.session_id, [FrameJob(1001, str(plates["st_people_0.png"]), str(tmp_path / "o.exr"))]))
    client.close_session(session.session_id)
    records = [json.loads(line) for line in audit_log_path.read_text().splitlines()]
    mine = [r for r in records if r.get("session") == session.session_id]  # (refusals and listings have none)
    assert [r["event"] for r in mine] == ["open", "frames", "close"]
    frames = mine[1]
    assert frames["client"] == "artist@ws1" and frames["shot"] == "sh_audit"
    assert frames["frames"] == [1001]
    assert frames["params_hash"] == session.params_hash
    assert frames["sources_sha256"] == [s["sha256"] for s in session.sources]
    assert frames["model_ids"] == session.model_ids and frames["time"]
