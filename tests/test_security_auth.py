"""A shared server authenticates every call: the bearer token on every RPC but health, TLS and mutual TLS,
non-loopback binds refused without TLS, server reflection, and the audit log's authenticated peer.

Every probe runs against a real server on loopback, with a timeout on every call and subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import grpc
import pytest
from facebridge_wire.v1 import facebridge_pb2 as pb
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facebridge.auth import PLAIN, ClientTLS, TokenError, ensure_token, find_token
from facebridge.client.channel import open_channel
from facebridge.client.errors import ClientError
from facebridge.client.grpc_client import FaceBridgeClient
from inference_server.faces.dlib_models import DlibFaceModels
from inference_server.server.app import RunningServer, ServerConfig, start_server
from inference_server.server.auth import ConfigError, security_for

CLI = [sys.executable, "-m", "facebridge"]
SERVICE = pb.DESCRIPTOR.services_by_name["FaceBridge"]
CALL_TIMEOUT = 15.0


# --- helpers -------------------------------------------------------------------------------------------------

def _same(data: bytes) -> bytes:
    return data


def _call(channel: grpc.Channel, method_name: str, metadata: list[tuple[str, str]] | None) -> object:
    """Call ``method_name`` of FaceBridge with an empty request (a one-message stream for streaming methods);
    requests and replies as bytes."""
    method = SERVICE.methods_by_name[method_name]
    path = f"/{SERVICE.full_name}/{method.name}"
    meta = tuple(metadata) if metadata is not None else None
    if method.client_streaming and method.server_streaming:
        return list(channel.stream_stream(path, _same, _same)(iter([b""]), timeout=CALL_TIMEOUT, metadata=meta))
    if method.client_streaming:
        return channel.stream_unary(path, _same, _same)(iter([b""]), timeout=CALL_TIMEOUT, metadata=meta)
    if method.server_streaming:
        return list(channel.unary_stream(path, _same, _same)(b"", timeout=CALL_TIMEOUT, metadata=meta))
    return channel.unary_unary(path, _same, _same)(b"", timeout=CALL_TIMEOUT, metadata=meta)


def _refused(channel: grpc.Channel, method_name: str, metadata: list[tuple[str, str]] | None) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        _call(channel, method_name, metadata)
    return caught.value


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The first stdout line of ``proc`` ("" when none came within ``timeout`` s)."""
    assert proc.stdout is not None
    holder: list[str] = []
    reader = threading.Thread(target=lambda: holder.append(proc.stdout.readline() if proc.stdout else ""), daemon=True)
    reader.start()
    reader.join(timeout)
    return holder[0] if holder else ""


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A throwaway CA, a server certificate for 127.0.0.1/localhost and a client certificate (CN artist-1),
    plus an unrelated CA, made with the openssl command (EC P-256 keys: fast)."""
    if subprocess.run(["which", "openssl"], capture_output=True, timeout=10).returncode != 0:
        pytest.skip("the openssl command is needed to make test certificates")
    d = tmp_path_factory.mktemp("certs")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "other_ca"):
        _openssl("req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2",
                 "-subj", f"/CN=facebridge test {ca}", cwd=d)
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, subject in (("server", "/CN=localhost"), ("client", "/O=facebridge tests/CN=artist-1")):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)
    return {name: d / name for name in ("ca.pem", "other_ca.pem", "server.pem", "server.key", "client.pem",
                                        "client.key")}


def _start(dlib_models: DlibFaceModels, tmp: Path, token: str, *, host: str = "127.0.0.1",
           tls_cert: Path | None = None, tls_key: Path | None = None, tls_client_ca: Path | None = None,
           insecure: bool = False) -> RunningServer:
    return start_server(ServerConfig(host=host, port=0, device="cpu", cache_dir=tmp / "cache",
                                     models_dir=tmp / "no-models", audit_log=tmp / "audit.jsonl", token=token,
                                     tls_cert=tls_cert, tls_key=tls_key, tls_client_ca=tls_client_ca,
                                     insecure=insecure),
                        models=dlib_models)


def _audit_records(path: Path, shot: str) -> list[dict[str, object]]:
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r.get("shot") == shot]


# --- item 1: the token on every RPC but health ---------------------------------------------------------------

@pytest.mark.parametrize("method_name", [m.name for m in SERVICE.methods])
def test_every_rpc_without_the_token_is_unauthenticated(server_address: str, session_token: str,
                                                         method_name: str) -> None:
    """Unary and streaming RPCs alike: no token, a wrong one, another scheme -> UNAUTHENTICATED, and the
    message never repeats what the client sent."""
    wrong = "x" + session_token[1:]
    with grpc.insecure_channel(server_address) as channel:
        for metadata in (None, [("authorization", f"Bearer {wrong}")], [("authorization", "Bearer short")],
                         [("authorization", f"Basic {session_token}")], [("authorization", session_token)]):
            error = _refused(channel, method_name, metadata)
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED, (metadata, error.details())
            details = error.details() or ""
            assert "\n" not in details and method_name in details
            assert session_token not in details and wrong not in details


def test_the_right_token_passes_and_health_needs_none(server_address: str, session_token: str) -> None:
    with grpc.insecure_channel(server_address) as channel:
        reply = _call(channel, "GetServerInfo", [("authorization", f"Bearer {session_token}")])
        assert isinstance(reply, bytes) and pb.GetServerInfoResponse.FromString(reply).server_version
        for service in ("", "facebridge.v1.FaceBridge"):
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                                timeout=CALL_TIMEOUT)
            assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_client_finds_the_token_as_the_server_does(server_address: str, session_token: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """$FACEBRIDGE_TOKEN first, else $XDG_CONFIG_HOME/facebridge/token; a token file others can read is refused."""
    with FaceBridgeClient(server_address, timeout=CALL_TIMEOUT) as client:   # $FACEBRIDGE_TOKEN
        assert client.server_info().server_version
    monkeypatch.delenv("FACEBRIDGE_TOKEN")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    token_file = tmp_path / "config" / "facebridge" / "token"
    token_file.parent.mkdir(parents=True)
    token_file.write_text(session_token + "\n")
    token_file.chmod(0o600)
    assert find_token() == session_token
    with FaceBridgeClient(server_address, timeout=CALL_TIMEOUT) as client:   # the token file
        assert client.server_info().server_version
    token_file.chmod(0o644)
    with pytest.raises(ClientError, match=r"readable by other users .*chmod 600"):
        FaceBridgeClient(server_address, timeout=CALL_TIMEOUT)


def test_a_refused_client_gets_one_line_naming_where_the_token_was_looked_for(server_address: str) -> None:
    with FaceBridgeClient(server_address, timeout=CALL_TIMEOUT, token="not-the-token") as client:
        client.wait_ready(CALL_TIMEOUT)   # health: no token needed
        with pytest.raises(ClientError) as caught:
            client.server_info()
    message = str(caught.value)
    assert "not authenticated" in message and "$FACEBRIDGE_TOKEN" in message and "facebridge/token" in message
    assert "\n" not in message and "not-the-token" not in message and not caught.value.retryable


def test_the_cli_with_a_wrong_token_exits_2_with_one_line(server_address: str, tmp_path: Path) -> None:
    (tmp_path / "plate.0001.exr").write_bytes(b"never read")
    env = {**os.environ, "FACEBRIDGE_TOKEN": "wrong-token"}
    done = subprocess.run(CLI + ["analyse", "--input", str(tmp_path / "plate.####.exr"), "--server", server_address,
                                 "--progress", "none"],
                          capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "not authenticated" in lines[0] and "FACEBRIDGE_TOKEN" in lines[0], done.stderr
    assert "wrong-token" not in done.stderr


def test_token_helpers(tmp_path: Path) -> None:
    """ensure_token creates the file once (0600, folder 0700) and then reads it back; the environment wins."""
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    token, source = ensure_token(env)
    path = tmp_path / "cfg" / "facebridge" / "token"
    assert source == str(path) and len(token) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert ensure_token(env) == (token, str(path)) and find_token(env) == token
    assert ensure_token({**env, "FACEBRIDGE_TOKEN": "from-env"}) == ("from-env", "$FACEBRIDGE_TOKEN")
    assert find_token({"XDG_CONFIG_HOME": str(tmp_path / "none")}) is None
    path.chmod(0o640)
    with pytest.raises(TokenError, match="readable by other users"):
        find_token(env)


def test_first_serve_creates_the_token_file_and_clients_find_it(tmp_path: Path) -> None:
    """``facebridge serve`` with no token anywhere creates $XDG_CONFIG_HOME/facebridge/token (0600) and logs its
    path, never the token; a client with the same environment finds it."""
    env = {k: v for k, v in os.environ.items() if k != "FACEBRIDGE_TOKEN"}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    token_file = tmp_path / "config" / "facebridge" / "token"
    proc = subprocess.Popen(CLI + ["serve", "--port", "0", "--device", "cpu", "--cache-dir", str(tmp_path / "cache"),
                                   "--audit-log", str(tmp_path / "audit.jsonl")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env)
    try:
        line = _first_line(proc, 120)
        assert line.startswith("facebridge serving on 127.0.0.1:"), line
        port = int(line.split(":")[1].split()[0])
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
        token = token_file.read_text().strip()
        assert find_token(env) == token
        with FaceBridgeClient(f"127.0.0.1:{port}", timeout=CALL_TIMEOUT, token=token) as client:
            assert client.server_info().server_version
        with FaceBridgeClient(f"127.0.0.1:{port}", timeout=CALL_TIMEOUT, token="") as client:
            with pytest.raises(ClientError, match="not authenticated"):
                client.server_info()
    finally:
        _stop(proc)
    stderr = proc.stderr.read() if proc.stderr else ""
    assert f"token from {token_file}" in stderr and token not in stderr + line
    assert "refused /facebridge.v1.FaceBridge/GetServerInfo from ipv4:127.0.0.1:" in stderr   # logged, not audited


def test_a_private_server_has_a_fresh_token_of_its_own(server_address: str, session_token: str,
                                                       tmp_path: Path) -> None:
    from facebridge.client.local_server import LocalServer

    with LocalServer(device="cpu", cache_dir=tmp_path / "cache", startup_timeout=120) as private:
        assert private.token and private.token != session_token
        with FaceBridgeClient(private.address, timeout=CALL_TIMEOUT, token=private.token, tls=PLAIN) as client:
            assert client.server_info().server_version
        with FaceBridgeClient(private.address, timeout=CALL_TIMEOUT) as client:   # the session's token
            with pytest.raises(ClientError, match="not authenticated"):
                client.server_info()
        other = LocalServer(device="cpu")
        assert other.token != private.token


def test_the_panel_uses_its_private_servers_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``facebridge panel`` without a server connects to its private server with that server's token over plain
    loopback TCP; with ``--server`` it finds the token and TLS settings as the CLI does."""
    import argparse

    import facebridge.client.local_server as local_server
    import ui.panel.app as panel_app
    from ui.panel.cli import add_panel_arguments

    made: list[dict[str, object]] = []

    class FakeLocalServer:
        def __init__(self, **_kwargs: object) -> None:
            self.address, self.token = "127.0.0.1:1", "private-token"

        def __enter__(self) -> "FakeLocalServer":
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    class FakeClient:
        def __init__(self, address: str, timeout: float = 120.0, *, token: str | None = None,
                     tls: ClientTLS | None = None) -> None:
            made.append({"address": address, "token": token, "tls": tls})

        def __enter__(self) -> "FakeClient":
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def wait_ready(self, timeout: float) -> None:
            raise ClientError("stop here")

    monkeypatch.setattr(local_server, "LocalServer", FakeLocalServer)
    monkeypatch.setattr(panel_app, "FaceBridgeClient", FakeClient)
    parser = argparse.ArgumentParser()
    add_panel_arguments(parser)
    plate = str(tmp_path / "plate.####.exr")
    assert panel_app.run(parser.parse_args(["--shot", "s", "--input", plate, "--screenshot", str(tmp_path / "a.png")])) == 2
    assert made[-1] == {"address": "127.0.0.1:1", "token": "private-token", "tls": PLAIN}
    assert panel_app.run(parser.parse_args(["--shot", "s", "--input", plate, "--server", "127.0.0.1:2",
                                            "--screenshot", str(tmp_path / "b.png")])) == 2
    assert made[-1] == {"address": "127.0.0.1:2", "token": None, "tls": None}


def test_host_sidecars_keep_the_token_and_tls_settings() -> None:
    from host_plugins.common.command import sidecar_env

    env = sidecar_env({"FACEBRIDGE_TOKEN": "t", "FACEBRIDGE_TLS_CA": "/ca.pem", "FACEBRIDGE_TLS_CERT": "/c.pem",
                       "FACEBRIDGE_TLS_KEY": "/c.key", "PYTHONPATH": "/host"})
    assert env["FACEBRIDGE_TOKEN"] == "t" and env["FACEBRIDGE_TLS_CA"] == "/ca.pem"
    assert env["FACEBRIDGE_TLS_CERT"] == "/c.pem" and env["FACEBRIDGE_TLS_KEY"] == "/c.key"


# --- the audit log records the authenticated peer ------------------------------------------------------------

def test_audit_log_records_the_peer_beside_the_declared_name(client: FaceBridgeClient, audit_log_path: Path) -> None:
    session = client.open_session([], shot="audit-peer-shot", client="someone-else@elsewhere", mode="restore")
    client.close_session(session.session_id)
    records = _audit_records(audit_log_path, "audit-peer-shot")
    assert {r["event"] for r in records} >= {"open", "close"}
    for record in records:
        assert record["client"] == "someone-else@elsewhere"
        assert str(record["peer"]).startswith(("ipv4:127.0.0.1:", "ipv6:[::1]:"))
        assert "peer_cert_subject" not in record   # no client certificate on this server


# --- item 2: TLS, mutual TLS, and no clear text off loopback --------------------------------------------------

def test_tls_server(dlib_models: DlibFaceModels, certs: dict[str, Path], tmp_path: Path, session_token: str) -> None:
    running = _start(dlib_models, tmp_path, session_token, tls_cert=certs["server.pem"], tls_key=certs["server.key"])
    address = f"127.0.0.1:{running.port}"
    try:
        with FaceBridgeClient(address, timeout=CALL_TIMEOUT, tls=ClientTLS(certs["ca.pem"], None, None)) as client:
            client.wait_ready(CALL_TIMEOUT)
            assert client.server_info().server_version
        with FaceBridgeClient(address, timeout=CALL_TIMEOUT, token="wrong",
                              tls=ClientTLS(certs["ca.pem"], None, None)) as client:
            with pytest.raises(ClientError, match="not authenticated"):
                client.server_info()
        for tls in (PLAIN, ClientTLS(certs["other_ca.pem"], None, None)):   # clear text, or an unknown CA
            with FaceBridgeClient(address, timeout=3.0, tls=tls) as client:
                with pytest.raises(ClientError, match="unavailable"):
                    client.server_info()
    finally:
        running.stop(grace=1.0)


def test_tls_settings_from_the_environment(dlib_models: DlibFaceModels, certs: dict[str, Path], tmp_path: Path,
                                           session_token: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """What hosts' sidecars and the panel use: $FACEBRIDGE_TLS_CA / _CERT / _KEY."""
    running = _start(dlib_models, tmp_path, session_token, tls_cert=certs["server.pem"], tls_key=certs["server.key"],
                     tls_client_ca=certs["ca.pem"])
    try:
        monkeypatch.setenv("FACEBRIDGE_TLS_CA", str(certs["ca.pem"]))
        monkeypatch.setenv("FACEBRIDGE_TLS_CERT", str(certs["client.pem"]))
        monkeypatch.setenv("FACEBRIDGE_TLS_KEY", str(certs["client.key"]))
        with FaceBridgeClient(f"127.0.0.1:{running.port}", timeout=CALL_TIMEOUT) as client:
            assert client.server_info().server_version
        monkeypatch.delenv("FACEBRIDGE_TLS_KEY")
        with pytest.raises(ClientError, match="FACEBRIDGE_TLS_KEY"):
            FaceBridgeClient(f"127.0.0.1:{running.port}", timeout=CALL_TIMEOUT)
    finally:
        running.stop(grace=1.0)


def test_mutual_tls_refuses_a_client_without_a_certificate_and_audits_the_subject(
        dlib_models: DlibFaceModels, certs: dict[str, Path], tmp_path: Path, session_token: str) -> None:
    running = _start(dlib_models, tmp_path, session_token, tls_cert=certs["server.pem"], tls_key=certs["server.key"],
                     tls_client_ca=certs["ca.pem"])
    address = f"127.0.0.1:{running.port}"
    try:
        with FaceBridgeClient(address, timeout=3.0, tls=ClientTLS(certs["ca.pem"], None, None)) as client:
            with pytest.raises(ClientError, match="unavailable"):
                client.server_info()
        with_cert = ClientTLS(certs["ca.pem"], certs["client.pem"], certs["client.key"])
        with FaceBridgeClient(address, timeout=CALL_TIMEOUT, token="wrong", tls=with_cert) as client:
            with pytest.raises(ClientError, match="not authenticated"):   # a certificate does not replace the token
                client.server_info()
        with FaceBridgeClient(address, timeout=CALL_TIMEOUT, tls=with_cert) as client:
            session = client.open_session([], shot="mtls-shot", client="who-i-claim-to-be", mode="restore")
            client.list_shots("mtls-shot")
            client.close_session(session.session_id)
    finally:
        running.stop(grace=1.0)
    records = _audit_records(tmp_path / "audit.jsonl", "mtls-shot")
    assert {r["event"] for r in records} >= {"open", "list_shots", "close"}
    for record in records:
        assert record.get("client", "who-i-claim-to-be") == "who-i-claim-to-be"   # (a listing declares no name)
        assert str(record["peer"]).startswith("ipv4:127.0.0.1:")
        assert "CN=artist-1" in str(record["peer_cert_subject"]), record


def test_serve_refuses_a_non_loopback_address_without_tls(tmp_path: Path) -> None:
    """Exit 2 with one line saying why, before any model loads or any port is bound."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = subprocess.run(CLI + ["serve", "--host", "0.0.0.0", "--port", "0", "--device", "cpu"],
                          capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("facebridge: error: refusing to serve 0.0.0.0 without TLS"), lines
    assert "--insecure" in lines[0] and done.stdout == ""


def test_serve_accepts_a_non_loopback_address_with_insecure(tmp_path: Path) -> None:
    """--insecure is the explicit way to accept clear text; the probe itself only talks to loopback."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = subprocess.Popen(CLI + ["serve", "--host", "0.0.0.0", "--port", "0", "--device", "cpu", "--insecure"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env)
    try:
        line = _first_line(proc, 120)
        assert line.startswith("facebridge serving on 0.0.0.0:"), line
        port = int(line.split(":")[1].split()[0])
        with FaceBridgeClient(f"127.0.0.1:{port}", timeout=CALL_TIMEOUT) as client:
            assert client.server_info().server_version
    finally:
        _stop(proc)


def test_sharing_settings_are_checked_before_anything_starts(certs: dict[str, Path], tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    with pytest.raises(ConfigError, match="--tls-cert and --tls-key go together"):
        security_for("127.0.0.1", True, "t", certs["server.pem"], None, None, False, env)
    with pytest.raises(ConfigError, match="--tls-client-ca needs --tls-cert"):
        security_for("127.0.0.1", True, "t", None, None, certs["ca.pem"], False, env)
    with pytest.raises(ConfigError, match="cannot read"):
        security_for("10.1.2.3", False, "t", certs["server.pem"], tmp_path / "absent.key", None, False, env)
    (tmp_path / "garbage.key").write_text("not a key")
    with pytest.raises(ConfigError, match="not a PEM file"):
        security_for("10.1.2.3", False, "t", certs["server.pem"], tmp_path / "garbage.key", None, False, env)
    # off loopback: TLS or --insecure
    assert security_for("10.1.2.3", False, "t", certs["server.pem"], certs["server.key"], None, False, env).credentials
    assert security_for("10.1.2.3", False, "t", None, None, None, True, env).credentials is None
    assert not (tmp_path / "cfg").exists()   # a token given: no file created


def test_a_non_loopback_tls_server_serves(dlib_models: DlibFaceModels, certs: dict[str, Path], tmp_path: Path,
                                          session_token: str) -> None:
    running = _start(dlib_models, tmp_path, session_token, host="0.0.0.0", tls_cert=certs["server.pem"],
                     tls_key=certs["server.key"])
    try:
        with FaceBridgeClient(f"127.0.0.1:{running.port}", timeout=CALL_TIMEOUT,
                              tls=ClientTLS(certs["ca.pem"], None, None)) as client:
            assert client.server_info().server_version
    finally:
        running.stop(grace=1.0)


# --- item 6: server reflection ----------------------------------------------------------------------------------

def test_reflection_lists_and_describes_the_service(server_address: str, session_token: str) -> None:
    """What ``grpcurl -H 'authorization: Bearer ...' list / describe`` does; without the token it is refused."""
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    raw, channel = open_channel(server_address, [], session_token, PLAIN)
    try:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        assert {"facebridge.v1.FaceBridge", "grpc.health.v1.Health"} <= services
        from google.protobuf.descriptor_pool import DescriptorPool

        described = DescriptorPool(database).FindServiceByName("facebridge.v1.FaceBridge")
        assert {m.name for m in described.methods} == {m.name for m in SERVICE.methods}
        process = described.methods_by_name["ProcessFrames"]
        assert process.client_streaming and process.server_streaming
        assert process.input_type.full_name == "facebridge.v1.ProcessFramesRequest"
    finally:
        channel.close()
        raw.close()
    with grpc.insecure_channel(server_address) as plain:
        with pytest.raises(grpc.RpcError) as caught:
            list(ProtoReflectionDescriptorDatabase(plain).get_services())
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_the_token_channel_creates_its_callables_one_at_a_time(server_address: str, session_token: str) -> None:
    """grpcio documents registering a call with the channel as not thread-safe, and an intercepted channel does it
    for every call: the panel's two workers starting calls together crashed the process. The token channel's
    underlying channel creates callables under a lock and never registers them; the calls still run at once."""
    import threading
    import time

    from facebridge.auth import ClientTLS
    from facebridge.client import channel as channel_module

    inside, overlaps = [0], [0]
    registered: list[Any] = []  # what each callable's creation passed as _registered_method
    guard = threading.Lock()
    original = grpc.insecure_channel

    class Watched(grpc.Channel):  # the real channel, watching how many threads are creating a callable at once
        def __init__(self, real: grpc.Channel) -> None:
            self.real = real

        def _enter(self) -> None:
            with guard:
                inside[0] += 1
                overlaps[0] = max(overlaps[0], inside[0])
            time.sleep(0.01)
            with guard:
                inside[0] -= 1

        def unary_unary(self, *args: Any, **kwargs: Any) -> Any:
            self._enter()
            registered.append(args[3] if len(args) > 3 else kwargs.get("_registered_method", False))
            return self.real.unary_unary(*args, **kwargs)

        def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
            self._enter()
            return self.real.unary_stream(*args, **kwargs)

        def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
            return self.real.stream_unary(*args, **kwargs)

        def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
            return self.real.stream_stream(*args, **kwargs)

        def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
            self.real.subscribe(callback, try_to_connect)

        def unsubscribe(self, callback: Any) -> None:
            self.real.unsubscribe(callback)

        def close(self) -> None:
            self.real.close()

        def __enter__(self) -> Any:
            return self

        def __exit__(self, *exc: object) -> None:
            self.close()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(grpc, "insecure_channel", lambda *a, **k: Watched(original(*a, **k)))
        raw, channel = channel_module.open_channel(server_address, [], session_token, ClientTLS(None, None, None))
    errors: list[BaseException] = []

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stub = health_pb2_grpc.HealthStub(channel)  # generated code: asks grpcio to register its methods

    def call() -> None:
        try:
            for _ in range(5):  # a callable per call, as interceptors make them
                check: Any = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda _: b"",
                                                 response_deserializer=bytes)
                check(b"", timeout=10)
                stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    raw.close()
    assert not errors, errors
    assert overlaps[0] == 1, f"{overlaps[0]} threads were creating callables on the channel at once"
    # ... and never registered with the channel's core (registering while another call ran crashed it too)
    assert len(registered) == 40 and not any(registered), registered
