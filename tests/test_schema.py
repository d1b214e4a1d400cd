"""One schema for every setting: each place derived from ``facebridge.schema`` is checked against it.

The derived places: the client's and the server's parameter classes, the wire mapping (``ProcessParams``),
the ``facebridge process`` options, the hosts' knobs, the panel's sliders, which settings a preview may
change, and validation with one message (CLI before any server starts, knob layer, server).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from facebridge import schema
from facebridge.client.options import add_process_arguments, render_params
from facebridge.client.params import to_proto
from facebridge.settings import RenderParams
from facebridge_wire.v1 import facebridge_pb2 as pb
from facebridge_wire.v1 import facebridge_pb2_grpc as pb_grpc
from host_plugins.common import command, knobs
from inference_server.server.errors import InvalidRequest
from inference_server.server.messages import session_params
from inference_server.server.sessions import SessionParams

REPO = Path(__file__).resolve().parents[1]
PYTHON_TYPES = {"enum": str, "float": float, "int": int, "bool": bool, "string": str, "face": str, "regions": dict}

# A value of every setting that differs from its default (and survives float32 on the wire).
EXAMPLE = {"mode": "swap+restore", "face": "track:3", "blend": 0.5, "regions": {"eyes": 0.25, "mouth": 0.0},
           "grain": 0.75, "feather": 0.125, "erode": -0.25, "colour_match": "histogram", "smoothing": 4.5,
           "stabilise": 0.0, "flow_threshold": 0.0625, "keyframe_interval": 3, "colorspace": "ACEScg",
           "swapper": "inswapper_128", "restorer": "gpen_bfr_512", "parser": "none", "precision": "fp16",
           "allow_unverified": True, "detector": "scrfd_2.5g", "landmarker": "2dfan4", "min_face": 64.0,
           "occluder": "xseg_1", "paste": "replace", "pixel_boost": 512, "restore_weight": 0.7}

# Out-of-bounds or malformed values of every checked setting, as text (as the CLI and a knob field give them).
BAD = [("mode", "morph"), ("face", "track:x"), ("blend", "1.5"), ("grain", "-0.1"), ("feather", "2"),
       ("erode", "0.75"), ("colour_match", "exact"), ("smoothing", "60"), ("stabilise", "6"),
       ("flow_threshold", "0"), ("keyframe_interval", "0"), ("keyframe_interval", "2.5"), ("precision", "int8"), ("min_face", "-1"), ("paste", "blend"),
       ("pixel_boost", "2000"), ("restore_weight", "1.5")]


def _message(name: str, value: object) -> str:
    with pytest.raises(schema.SettingError) as caught:
        schema.check(name, value)
    return str(caught.value)


def test_the_schema_declares_each_setting_completely() -> None:
    assert len(set(schema.NAMES)) == len(schema.NAMES) == len(schema.SETTINGS)
    assert len({s.flag for s in schema.SETTINGS}) == len(schema.SETTINGS)
    for setting in schema.SETTINGS:
        assert setting.kind in schema.KINDS and setting.scope in schema.SCOPES, setting.name
        assert setting.flag.startswith("--") and setting.label and setting.tooltip, setting.name
        assert schema.check(setting.name, setting.default) == setting.default, setting.name
        if setting.kind == "enum":
            assert setting.default in setting.choices, setting.name
        if setting.kind in ("float", "int"):
            lo, hi = setting.slider_range
            assert setting.lo is not None and setting.hi is not None, f"{setting.name} is unbounded"
            assert setting.lo <= lo < hi <= setting.hi, setting.name
    assert set(schema.REGION_NAMES) == {"eyes", "brows", "nose", "mouth", "cheeks", "forehead", "jaw", "skin"}
    assert schema.check_values(EXAMPLE) == EXAMPLE


def test_schema_module_loads_in_the_hosts_interpreters() -> None:
    """Standard library only and Python 3.6 syntax (Resolve 18 documents Python 3.6)."""
    for name in ("schema.py", "tokens.py", "__init__.py"):
        source = (REPO / "facebridge" / name).read_text(encoding="utf-8")
        tree = ast.parse(source, feature_version=(3, 6))
        assert not any(isinstance(n, ast.ImportFrom) and n.module == "__future__" for n in ast.walk(tree)), name
    code = ("import sys; sys.path[:0] = [%r]; import facebridge.schema, facebridge.tokens; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'grpc', 'google', 'facebridge_wire')))"
            % str(REPO))
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_render_params_and_session_params_have_the_schemas_fields_and_defaults() -> None:
    render_fields = dataclasses.fields(RenderParams)
    assert tuple(f.name for f in render_fields) == schema.NAMES
    assert RenderParams().settings() == schema.defaults()
    for f in render_fields:
        expected = PYTHON_TYPES[schema.BY_NAME[f.name].kind]
        assert f.type.split("[")[0] == expected.__name__, f.name  # annotations are strings (postponed)
    session_fields = tuple(f.name for f in dataclasses.fields(SessionParams))
    assert session_fields == schema.NAMES + ("output_format", "quality_checks")


def test_process_params_carries_every_setting_and_numbers_have_presence() -> None:
    wire = pb.ProcessParams.DESCRIPTOR.fields_by_name
    assert set(wire) == set(schema.NAMES) | set(schema.WIRE_ONLY_FIELDS)
    for setting in schema.SETTINGS:
        field = wire[setting.name]
        if setting.kind in ("float", "int"):
            # absent means the default; a value of 0 must stay 0 (flow_threshold 0 is refused, not replaced)
            assert field.has_presence, f"ProcessParams.{setting.name} must be optional"
        elif setting.kind == "regions":
            assert field.message_type is not None and field.message_type.GetOptions().map_entry
        else:
            assert field.type == (field.TYPE_BOOL if setting.kind == "bool" else field.TYPE_STRING), setting.name


@pytest.mark.parametrize("values", [schema.defaults(), EXAMPLE, {**EXAMPLE, "face": "ref:/faces/a.png"}])
def test_wire_mapping_round_trips(values: dict[str, Any]) -> None:
    message = to_proto(RenderParams(**values), "exr")
    decoded = pb.ProcessParams.FromString(message.SerializeToString())
    back = session_params(decoded).validated()
    expected = {**values, "face": "ref" if str(values["face"]).startswith("ref:") else values["face"]}
    assert back.settings() == expected
    assert session_params(pb.ProcessParams()).validated().settings() == schema.defaults()  # empty = defaults


def test_cli_options_are_the_schemas_and_read_back_every_setting(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_process_arguments(parser)
    flags = {option for action in parser._actions for option in action.option_strings}
    assert {s.flag for s in schema.SETTINGS} <= flags
    argv = ["--input", "in.####.exr", "--output", "out.####.exr", *command.param_args(EXAMPLE)]
    assert render_params(parser.parse_args(argv)).settings() == EXAMPLE
    defaults = render_params(parser.parse_args(["--input", "a.exr", "--output", "b.exr"]))
    assert defaults == RenderParams()


def test_knobs_are_derived_from_the_schema() -> None:
    assert knobs.PARAM_DEFAULTS == schema.defaults()
    non_region = [k for k in knobs.PARAM_KNOBS if not k.region]
    assert [k.name for k in non_region] == [s.name for s in schema.SETTINGS if s.kind != "regions"]
    assert [k.region for k in knobs.PARAM_KNOBS if k.region] == list(schema.REGION_NAMES)
    for knob in non_region:
        setting = schema.BY_NAME[knob.field]
        assert (knob.default, knob.choices, knob.label, knob.tooltip) == (setting.default, setting.choices,
                                                                         setting.label, setting.tooltip)
        if setting.kind in ("float", "int"):
            assert (knob.lo, knob.hi) == setting.slider_range
    assert knobs.params_from_knobs({}) == schema.defaults()
    assert knobs.params_from_knobs(knobs.knobs_from_params(EXAMPLE)) == EXAMPLE
    assert sorted(schema.knob_names().values()) == sorted(k.name for k in knobs.PARAM_KNOBS)


def test_panel_sliders_and_preview_settings_are_the_schemas() -> None:
    pytest.importorskip("PySide6")
    from inference_server.server.engine import PREVIEW_CONTROLS
    from ui.panel.widgets import SLIDERS

    assert set(PREVIEW_CONTROLS) == set(schema.PREVIEW_SETTINGS) | {"quality_checks"}
    assert set(schema.PREVIEW_SETTINGS) == {s.name for s in schema.SETTINGS if s.scope in ("temporal", "composite")}
    expected = []
    for name in schema.PREVIEW_SETTINGS:
        setting = schema.BY_NAME[name]
        if setting.kind == "regions":
            expected += [(f"regions.{r}", r, 0.0, 1.0) for r in schema.REGION_NAMES]
        elif setting.kind == "float":
            expected.append((name, setting.label, *setting.slider_range))
    assert [(s.field, s.label, s.lo, s.hi) for s in SLIDERS] == expected


@pytest.mark.parametrize("name,value", BAD)
def test_a_bad_value_gets_one_message_from_knobs_and_server(name: str, value: str) -> None:
    message = _message(name, value)
    assert message.startswith(f"setting '{name}' ") and "\n" not in message
    with pytest.raises(knobs.SettingsError) as knob_error:   # the Nuke node / Resolve dialog layer
        knobs.params_from_knobs({name: value})
    assert str(knob_error.value) == message
    typed = schema.BY_NAME[name]
    number = typed.kind in ("float", "int")
    raw = float(value) if number else value
    if name == "keyframe_interval" and raw == 2.5:
        return   # a uint32 cannot carry 2.5 on the wire
    with pytest.raises(InvalidRequest) as server_error:
        changes: dict[str, Any] = {name: raw}  # one setting, named by the parameter
        dataclasses.replace(SessionParams(), **changes).validated()
    assert str(server_error.value) == message


def test_region_weights_are_checked_the_same_way() -> None:
    message = _message("regions", {"mouth": 2})
    assert message == "setting 'regions.mouth' must be within 0..1, got 2"
    assert _message("regions", "mouth=2") == message
    with pytest.raises(knobs.SettingsError, match=message):
        knobs.params_from_knobs({"region_mouth": "2"})
    with pytest.raises(InvalidRequest, match=message):
        SessionParams(regions={"mouth": 2.0}).validated()
    assert "unknown region 'ears'" in _message("regions", {"ears": 0.5})


def test_cli_refuses_a_bad_setting_before_any_server_starts(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "facebridge", "process", "--mode", "restore", "--input",
                           str(tmp_path / "in.####.exr"), "--output", str(tmp_path / "out.####.exr"),
                           "--stabilise", "6", "--progress", "none", "--cache-dir", str(tmp_path / "cache")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "facebridge: error: " + _message("stabilise", "6")
    assert not (tmp_path / "cache").exists()          # no private server ever ran (it would create its cache)
    assert time.monotonic() - started < 30


def test_server_refuses_a_bad_setting_from_a_client_that_does_not_check(server_address: str,
                                                                        session_token: str) -> None:
    """A careless or hostile client skips the client-side checks: the server refuses with the same message."""
    auth = (("authorization", f"Bearer {session_token}"),)
    with grpc.insecure_channel(server_address) as channel:
        stub = pb_grpc.FaceBridgeStub(channel)
        for params, name, value in [(pb.ProcessParams(mode="restore", stabilise=6.0), "stabilise", 6.0),
                                    (pb.ProcessParams(mode="restore", flow_threshold=0.0), "flow_threshold", 0.0),
                                    (pb.ProcessParams(mode="restore", keyframe_interval=0), "keyframe_interval", 0),
                                    (pb.ProcessParams(mode="restore", regions={"ears": 1.0}), "regions",
                                     {"ears": 1.0})]:
            with pytest.raises(grpc.RpcError) as caught:
                stub.OpenSession(pb.OpenSessionRequest(client="test", shot="bad", params=params), timeout=30,
                                 metadata=auth)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert caught.value.details() == _message(name, value)
        with pytest.raises(grpc.RpcError) as caught:
            stub.ListShots(pb.ListShotsRequest(smoothing=5e5), timeout=30, metadata=auth)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details() == _message("smoothing", 5e5)
