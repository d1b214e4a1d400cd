"""Shared means hostile, files: the path transport touches regular files under ``serve --allow-root`` only,
models come from the server's models folder by name, and unverified models are the server's decision.

Every probe runs against a real server on a loopback port, with a timeout; where the test runs as root and
uid 65534 (``nobody``) can run Python, the hostile client is a process of that second user.
"""

from __future__ import annotations

import json
import os
import signal
import site
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from facebridge_wire.v1 import facebridge_pb2 as pb
from onnx_fixtures import make_inswapper
from support import write_exr

from facebridge.client.errors import ClientError
from facebridge.client.grpc_client import FaceBridgeClient, FrameJob
from facebridge.client.local_server import LocalServer
from facebridge.settings import RenderParams
from inference_server.server.app import RunningServer, ServerConfig, start_server
from inference_server.server.file_roots import FileRoots, RootsError

REPO = Path(__file__).resolve().parents[1]
CALL_TIMEOUT = 30.0
OUTSIDE = "outside the server's allowed roots"
NOBODY = 65534
RESTORE = RenderParams(mode="restore", stabilise=0.0)  # no source needed; a faceless plate passes through


def _plate(path: Path, value: float = 0.25) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_exr(path, np.full((16, 16, 3), value, np.float32), ("R", "G", "B"))


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``root`` (the allowed root, with a plate and an output folder) and ``outside`` (0700, a 0600 plate)."""
    base = tmp_path_factory.mktemp("files")
    root, outside = base / "root", base / "outside"
    _plate(root / "in" / "plate.exr")
    (root / "out").mkdir()
    secret = _plate(outside / "secret.exr", 0.75)
    os.chmod(secret, 0o600)
    os.chmod(outside, 0o700)
    return {"base": base, "root": root, "outside": outside, "plate": root / "in" / "plate.exr", "secret": secret}


def _start(tmp_path_factory: pytest.TempPathFactory, dlib_models, roots: tuple[Path, ...] = ()) -> RunningServer:
    return start_server(ServerConfig(host="127.0.0.1", port=0, device="cpu",
                                     cache_dir=tmp_path_factory.mktemp("cache"),
                                     models_dir=tmp_path_factory.mktemp("models"), allow_roots=roots),
                        models=dlib_models)


@pytest.fixture(scope="module")
def rooted(tree: dict[str, Path], dlib_models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = _start(tmp_path_factory, dlib_models, (tree["root"],))
    yield running
    running.stop(grace=1.0)


@pytest.fixture()
def client(rooted: RunningServer) -> Iterator[FaceBridgeClient]:
    with FaceBridgeClient(f"127.0.0.1:{rooted.port}", timeout=CALL_TIMEOUT) as c:
        yield c


def _raw_frames(client: FaceBridgeClient, pairs: list[tuple[str, str]], params: RenderParams = RESTORE,
                timeout: float = CALL_TIMEOUT) -> list[pb.FrameResult]:
    """Frames by path exactly as given (no abspath: ``..`` travels as is); the results."""
    session = client.open_session([], shot=f"probe-{time.monotonic_ns()}", params=params)
    messages = [pb.ProcessFramesRequest(start=pb.StreamStart(session_id=session.session_id))]
    messages += [pb.ProcessFramesRequest(header=pb.FrameHeader(
        frame_id=i, frame_number=i + 1, name=os.path.basename(src), transport=pb.TRANSPORT_PATH,
        input_path=src, output_path=dst)) for i, (src, dst) in enumerate(pairs)]
    replies = client._stub.ProcessFrames(iter(messages), timeout=timeout)
    return [r.result for r in replies if r.WhichOneof("payload") == "result"]


def _failed(result: pb.FrameResult) -> str:
    assert result.status.code == pb.FrameStatus.FAILED, result
    assert "\n" not in result.status.message
    return result.status.message


# -- roots ------------------------------------------------------------------------------------------------------

def test_no_root_no_path_transport(dlib_models, tree: dict[str, Path], tmp_path_factory) -> None:
    running = _start(tmp_path_factory, dlib_models)
    try:
        with FaceBridgeClient(f"127.0.0.1:{running.port}", timeout=CALL_TIMEOUT) as c:
            assert pb.TRANSPORT_PATH not in c.server_info().transports
            with pytest.raises(grpc.RpcError) as caught:
                _raw_frames(c, [(str(tree["plate"]), str(tree["root"] / "out" / "x.exr"))])
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            session = c.open_session([], shot="p", params=RESTORE)
            with pytest.raises(ClientError, match="TRANSPORT_PATH"):
                c.preview(session.session_id, 1, input_path=tree["plate"])
    finally:
        running.stop(grace=1.0)
    assert not (tree["root"] / "out" / "x.exr").exists()


def test_roots_must_be_folders(tmp_path: Path) -> None:
    with pytest.raises(RootsError, match="not an existing folder"):
        FileRoots([tmp_path / "absent"])
    result = subprocess.run([sys.executable, "-m", "facebridge", "serve", "--port", "0", "--allow-root",
                             str(tmp_path / "absent"), "--cache-dir", str(tmp_path / "c")],
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "--allow-root" in result.stderr


def test_inside_a_root_reads_and_writes(client: FaceBridgeClient, tree: dict[str, Path]) -> None:
    assert pb.TRANSPORT_PATH in client.server_info().transports
    out = tree["root"] / "out" / "ok.exr"
    (result,) = _raw_frames(client, [(str(tree["plate"]), str(out))])
    assert result.status.code != pb.FrameStatus.FAILED, result.status.message
    assert out.is_file() and not [p for p in out.parent.iterdir() if ".tmp" in p.name]


def test_reads_outside_the_roots_are_refused_alike_whether_or_not_the_file_exists(
        client: FaceBridgeClient, tree: dict[str, Path]) -> None:
    root, out = tree["root"], tree["root"] / "out"
    (root / "to-secret.exr").symlink_to(tree["secret"])
    (root / "to-nothing.exr").symlink_to(tree["outside"] / "nothing.exr")
    probes = [str(tree["secret"]), str(tree["outside"] / "nothing.exr"),
              f"{root}/../outside/secret.exr", f"{root}/../outside/nothing.exr",
              str(root / "to-secret.exr"), str(root / "to-nothing.exr"), "/etc/shadow", "/etc/no-such-file"]
    results = _raw_frames(client, [(p, str(out / f"o{i}.exr")) for i, p in enumerate(probes)])
    causes = {_failed(r).split(": ", 1)[1] for r in results}
    assert len(causes) == 1 and OUTSIDE in causes.pop()  # one message: nothing about existence
    assert not [p.name for p in out.iterdir() if p.name[0] == "o" and p.name[1].isdigit()]


def test_writes_outside_the_roots_or_through_links_are_refused(client: FaceBridgeClient,
                                                               tree: dict[str, Path]) -> None:
    root, outside, plate = tree["root"], tree["outside"], str(tree["plate"])
    victim = outside / "victim.exr"
    victim.write_bytes(b"precious")
    (root / "out" / "link.exr").symlink_to(victim)
    (root / "out" / "folder.exr").mkdir()
    (root / "out-link").symlink_to(outside, target_is_directory=True)
    probes = {
        str(victim): OUTSIDE,
        f"{root}/out/../../outside/victim.exr": OUTSIDE,
        str(root / "out-link" / "victim.exr"): OUTSIDE,
        str(outside / "new.exr"): OUTSIDE,
        str(root / "out" / "link.exr"): "symbolic link",
        str(root / "out" / "folder.exr"): "not a regular file",
        plate: "is the input file",
        str(root / "out") + "/": "names a folder",
    }
    results = _raw_frames(client, [(plate, dst) for dst in probes])
    for (dst, expected), result in zip(probes.items(), results):
        assert expected in _failed(result), (dst, result.status.message)
    assert victim.read_bytes() == b"precious" and sorted(p.name for p in outside.iterdir()) == [
        "secret.exr", "victim.exr"]
    assert (root / "out" / "link.exr").is_symlink() and tree["plate"].stat().st_size > 100


def test_an_existing_output_the_request_names_is_replaced_not_written_through(
        client: FaceBridgeClient, tree: dict[str, Path]) -> None:
    out = tree["root"] / "out" / "again.exr"
    out.write_bytes(b"old render")
    elsewhere = tree["root"] / "hardlinked.bin"
    os.link(out, elsewhere)  # a hard link: the rename replaces the name, the other link keeps its bytes
    (result,) = _raw_frames(client, [(str(tree["plate"]), str(out))])
    assert result.status.code != pb.FrameStatus.FAILED, result.status.message
    assert out.stat().st_size > 100 and elsewhere.read_bytes() == b"old render"


def test_fifos_devices_and_huge_files_fail_at_once_and_cost_nothing(client: FaceBridgeClient, rooted: RunningServer,
                                                                    tree: dict[str, Path]) -> None:
    root = tree["root"]
    fifo = root / "pipe.exr"
    os.mkfifo(fifo)
    (root / "zero-link.exr").symlink_to("/dev/zero")
    (root / "sub").mkdir()
    inside = [str(fifo)] * 6 + [str(root / "sub")]
    if os.geteuid() == 0:  # a /dev/zero inside the root itself
        os.mknod(root / "zero.exr", stat.S_IFCHR | 0o666, os.makedev(1, 5))
        inside.append(str(root / "zero.exr"))
    before = _rss(os.getpid())
    started = time.monotonic()
    probes = inside + ["/dev/zero", str(root / "zero-link.exr")]
    results = _raw_frames(client, [(p, str(root / "out" / f"dev{i}.exr")) for i, p in enumerate(probes)], timeout=20)
    assert time.monotonic() - started < 15
    messages = [_failed(r) for r in results]
    assert all("not a regular file" in m for m in messages[:len(inside)]), messages
    assert all(OUTSIDE in m for m in messages[len(inside):]), messages  # /dev/zero is outside every root
    assert _rss(os.getpid()) - before < 200 * 1024**2
    big = root / "big.exr"
    with open(big, "wb") as handle:  # sparse: announces more than the frame limit, costs no disk
        handle.truncate(rooted.service.engine.max_frame_bytes + 1)
    (result,) = _raw_frames(client, [(str(big), str(root / "out" / "big.exr"))], timeout=20)
    assert "over the server's frame limit" in _failed(result)
    assert _rss(os.getpid()) - before < 200 * 1024**2
    (result,) = _raw_frames(client, [(str(tree["plate"]), str(root / "out" / "after.exr"))])  # still serving
    assert result.status.code != pb.FrameStatus.FAILED


def test_fifos_never_wedge_a_served_process_and_sigterm_ends_it(tree: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    for i in range(8):
        os.mkfifo(root / f"p{i}.exr")
    process = subprocess.Popen([sys.executable, "-m", "facebridge", "serve", "--port", "0", "--device", "cpu",
                                "--allow-root", str(root), "--cache-dir", str(tmp_path / "cache"),
                                "--models-dir", str(tmp_path / "models")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        port = line.split(":")[1].split()[0]
        with FaceBridgeClient(f"127.0.0.1:{port}", timeout=CALL_TIMEOUT) as c:
            c.wait_ready(60)
            results = _raw_frames(c, [(str(root / f"p{i}.exr"), str(root / f"o{i}.exr")) for i in range(8)],
                                  timeout=20)
            assert all("not a regular file" in _failed(r) for r in results)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0 and time.monotonic() - started < 15
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_preview_of_a_plate_outside_the_roots_returns_no_pixels(client: FaceBridgeClient,
                                                                 tree: dict[str, Path]) -> None:
    session = client.open_session([], shot="preview-probe", params=RESTORE)
    for path in (tree["secret"], tree["outside"] / "nothing.exr", tree["root"] / "to-secret-preview.exr"):
        if path.name.startswith("to-"):
            path.symlink_to(tree["secret"])
        result = client.preview(session.session_id, 1, input_path=path, region="frame", include_plate=True)
        assert result.status == "failed" and OUTSIDE in result.message, result.message
        assert result.rendered is None and result.plate is None
    ok = client.preview(session.session_id, 1, input_path=tree["plate"], region="frame", include_plate=True)
    assert ok.status != "failed" and ok.plate is not None


# -- models -----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_servers(dlib_models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """Two servers over one models folder (a pass-through inswapper_128.onnx, which does not verify): one
    started with --allow-unverified, one without."""
    folder = tmp_path_factory.mktemp("named-models")
    make_inswapper(folder)
    cache = tmp_path_factory.mktemp("model-cache")
    strict = start_server(ServerConfig(port=0, device="cpu", cache_dir=cache, models_dir=folder), models=dlib_models)
    lenient = start_server(ServerConfig(port=0, device="cpu", cache_dir=tmp_path_factory.mktemp("model-cache2"),
                                        models_dir=folder, allow_unverified=True), models=dlib_models)
    yield {"strict": f"127.0.0.1:{strict.port}", "lenient": f"127.0.0.1:{lenient.port}", "folder": folder,
           "cache": cache}
    strict.stop(grace=1.0)
    lenient.stop(grace=1.0)


def _open_code(address: str, params: RenderParams, sources: list[str]) -> tuple[grpc.StatusCode | None, str]:
    with FaceBridgeClient(address, timeout=CALL_TIMEOUT) as c:
        try:
            c.open_session(sources, shot="models", params=params)
        except ClientError as exc:
            cause = exc.__cause__
            return (cause.code() if isinstance(cause, grpc.RpcError) else None), str(exc)
    return None, ""


def test_models_by_server_path_are_refused_alike(model_servers: dict[str, object], faces_dir: Path,
                                                 tmp_path: Path) -> None:
    source = [str(faces_dir / "fr_alex_lacamoire.png")]
    folder = model_servers["folder"]
    assert isinstance(folder, Path)
    messages = {}
    for name in ("/etc/shadow", "/etc/no-such-model.onnx", f"{folder}/inswapper_128.onnx", "../inswapper_128.onnx",
                 "..", "sub/inswapper_128.onnx", str(tmp_path / "x.onnx")):
        code, message = _open_code(str(model_servers["lenient"]), RenderParams(swapper=name, allow_unverified=True,
                                                                               stabilise=0.0), source)
        assert code == grpc.StatusCode.FAILED_PRECONDITION, (name, message)
        messages[name] = message.replace(name, "NAME")
    assert len(set(messages.values())) == 1, messages  # no existence oracle
    assert "models directory" in next(iter(messages.values()))
    memo = Path(str(model_servers["cache"])) / "model-digests.json"
    assert "shadow" not in (memo.read_text() if memo.exists() else "")
    # a file name inside the models folder is how a client names a model file
    with FaceBridgeClient(str(model_servers["lenient"]), timeout=CALL_TIMEOUT) as c:
        session = c.open_session(source, shot="models", params=RenderParams(swapper="inswapper_128.onnx",
                                                                           allow_unverified=True, stabilise=0.0))
        assert any("inswapper_128" in m for m in session.model_ids)


def test_allow_unverified_is_the_servers_decision(model_servers: dict[str, object], faces_dir: Path) -> None:
    source = [str(faces_dir / "fr_alex_lacamoire.png")]
    for params in (RenderParams(swapper="inswapper_128", allow_unverified=True, stabilise=0.0),
                   RenderParams(mode="restore", allow_unverified=True, stabilise=0.0)):
        code, message = _open_code(str(model_servers["strict"]), params, source)
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "started with --allow-unverified" in message
    code, message = _open_code(str(model_servers["strict"]), RenderParams(swapper="inswapper_128", stabilise=0.0),
                               source)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "--allow-unverified" in message  # not verified
    code, message = _open_code(str(model_servers["lenient"]), RenderParams(swapper="inswapper_128", stabilise=0.0),
                               source)
    assert code == grpc.StatusCode.FAILED_PRECONDITION  # the server allows; this client did not ask
    assert _open_code(str(model_servers["lenient"]), RenderParams(swapper="inswapper_128", allow_unverified=True,
                                                                  stabilise=0.0), source) == (None, "")


# -- the private server -------------------------------------------------------------------------------------------

def test_private_server_gets_the_runs_folders_as_roots(tree: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "renders"
    out.mkdir()
    with LocalServer(device="cpu", cache_dir=tmp_path / "cache", models_dir=tmp_path / "models",
                     allow_roots=[tree["plate"].parent, out]) as server, \
            FaceBridgeClient(server.address, token=server.token, timeout=CALL_TIMEOUT) as c:
        c.wait_ready(60)
        info = c.server_info()
        assert pb.TRANSPORT_PATH in info.transports and info.hostname == socket.gethostname()
        session = c.open_session([], shot="private", params=RESTORE)
        good, bad = c.process(session.session_id, [FrameJob(1, str(tree["plate"]), str(out / "a.exr")),
                                                   FrameJob(2, str(tree["secret"]), str(out / "b.exr"))], True)
        assert good.status != "failed" and (out / "a.exr").is_file()
        assert bad.status == "failed" and OUTSIDE in bad.message


def test_cli_process_over_paths_with_a_private_server(tree: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cli-out" / "r.exr"
    result = subprocess.run([sys.executable, "-m", "facebridge", "process", "--mode", "restore", "--stabilise", "0",
                             "--transport", "path", "--input", str(tree["plate"]), "--output", str(out),
                             "--progress", "none", "--cache-dir", str(tmp_path / "cache"), "--device", "cpu",
                             "--no-analyse"],
                            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert out.is_file()


# -- a second user ------------------------------------------------------------------------------------------------

def _nobody_python() -> list[str] | None:
    """An interpreter uid 65534 can run with this environment's packages, or None."""
    if os.geteuid() != 0:
        return None
    paths = os.pathsep.join([str(REPO), str(REPO / "protos"), *site.getsitepackages()])
    candidates = [sys.executable, f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"]
    for exe in candidates:
        try:
            probe = subprocess.run([exe, "-c", "import grpc, numpy, facebridge.client.grpc_client"], user=NOBODY,
                                   group=NOBODY, env={"PYTHONPATH": paths, "PATH": "/usr/bin:/bin"}, cwd="/",
                                   capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return [exe]
    return None


NOBODY_CLIENT = r"""
import json, sys
from facebridge_wire.v1 import facebridge_pb2 as pb
from facebridge.client.grpc_client import FaceBridgeClient
from facebridge.settings import RenderParams
address, pairs = sys.argv[1], json.loads(sys.argv[2])
out = []
with FaceBridgeClient(address, timeout=30) as c:
    s = c.open_session([], shot="nobody", params=RenderParams(mode="restore", stabilise=0.0))
    msgs = [pb.ProcessFramesRequest(start=pb.StreamStart(session_id=s.session_id))]
    msgs += [pb.ProcessFramesRequest(header=pb.FrameHeader(frame_id=i, frame_number=i + 1, name="p.exr",
             transport=pb.TRANSPORT_PATH, input_path=a, output_path=b)) for i, (a, b) in enumerate(pairs)]
    for r in c._stub.ProcessFrames(iter(msgs), timeout=30):
        if r.WhichOneof("payload") == "result":
            out.append([r.result.status.code, r.result.status.message])
print(json.dumps(out))
"""


def test_a_second_user_cannot_reach_the_servers_files(rooted: RunningServer, tree: dict[str, Path]) -> None:
    python = _nobody_python()
    if python is None:
        pytest.skip("no second uid usable here (not root, or uid 65534 cannot run this Python)")
    root, outside = tree["root"], tree["outside"]
    victim = outside / "victim2.exr"
    victim.write_bytes(b"root's render")
    os.chmod(victim, 0o600)
    pairs = [[str(tree["secret"]), str(root / "out" / "n1.exr")],            # read a 0600 file in a 0700 folder
             [str(tree["plate"]), str(outside / "dropped.exr")],             # write into it
             [str(tree["plate"]), str(victim)],                              # overwrite root's file
             [f"{root}/../outside/secret.exr", str(root / "out" / "n2.exr")]]  # follow ../
    paths = os.pathsep.join([str(REPO), str(REPO / "protos"), *site.getsitepackages()])
    result = subprocess.run([*python, "-c", NOBODY_CLIENT, f"127.0.0.1:{rooted.port}", json.dumps(pairs)],
                            user=NOBODY, group=NOBODY, cwd="/", capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": paths, "PATH": "/usr/bin:/bin",
                                 "FACEBRIDGE_TOKEN": os.environ.get("FACEBRIDGE_TOKEN", ""), "HOME": "/"})
    assert result.returncode == 0, result.stderr[-2000:]
    replies = json.loads(result.stdout)
    assert [code for code, _ in replies] == [pb.FrameStatus.FAILED] * 4
    assert all(OUTSIDE in message for _, message in replies), replies
    assert victim.read_bytes() == b"root's render" and not (outside / "dropped.exr").exists()
    assert stat.S_IMODE(tree["secret"].stat().st_mode) == 0o600
