"""The panel's display maths without Qt: the sRGB view with exposure, the OCIO view, wipe, side by side,
difference, flip, overlay geometry and region tints."""

from __future__ import annotations

import numpy as np
import pytest

from ui.panel import display


def _srgb8(x: float) -> int:
    x = min(1.0, max(0.0, x))
    return int((x * 12.92 if x <= 0.0031308 else 1.055 * x ** (1 / 2.4) - 0.055) * 255 + 0.5)


def test_srgb_view_of_half_floats_with_exposure() -> None:
    linear = np.array([[[0.0, 0.18, 1.0], [4.0, np.nan, np.inf]], [[-1.0, 0.002, 0.5], [0.09, 0.045, 65504]]],
                      np.float16)
    shown = display.view_srgb(linear)
    assert shown.dtype == np.uint8 and shown.shape == (2, 2, 3)
    assert shown[0, 0].tolist() == [0, _srgb8(float(np.float16(0.18))), 255]
    assert shown[0, 1].tolist() == [255, 0, 255], "above 1 clips, NaN shows black, Inf white"
    assert shown[1, 0].tolist() == [0, _srgb8(float(np.float16(0.002))), _srgb8(0.5)]
    brighter = display.view_srgb(linear, exposure=1.0)  # one stop up: 0.09 shows as 0.18 did
    assert brighter[1, 1, 0] == _srgb8(float(np.float16(0.09)) * 2)
    assert brighter[1, 1, 1] == _srgb8(float(np.float16(0.045)) * 2)
    assert np.array_equal(display.view_srgb(linear.astype(np.float32)), shown), "float32 goes through half"


def test_ocio_view_from_the_environment(tmp_path) -> None:
    import OpenImageIO as oiio

    assert display.OcioView.from_environment({}) is None
    config = oiio.ColorConfig()
    if config.getNumDisplays() == 0:
        pytest.skip("no OCIO displays in OpenImageIO's built-in config")
    view = display.OcioView(config.getDefaultDisplayName(), "Un-tone-mapped"
                            if "Un-tone-mapped" in config.getViewNames(config.getDefaultDisplayName())
                            else config.getDefaultViewName(config.getDefaultDisplayName()))
    ramp = np.array([[[0.0, 0.0, 0.0], [0.18, 0.18, 0.18], [1.0, 1.0, 1.0]]], np.float16)
    shown = display.to_display(ramp, view=view, colourspace="lin_rec709")
    assert shown.dtype == np.uint8 and shown.shape == (1, 3, 3)
    assert shown[0, 0].max() <= 2 and shown[0, 1, 0] < shown[0, 2, 0], "black stays black, a ramp stays a ramp"
    assert abs(int(shown[0, 1, 0]) - _srgb8(0.18)) <= 20, "an untone-mapped sRGB display is close to the sRGB curve"


def test_wipe_takes_columns_left_of_the_divider_from_the_first_image() -> None:
    a = np.zeros((4, 10, 3), np.uint8)
    b = np.full((4, 10, 3), 200, np.uint8)
    out = display.wipe(a, b, 0.3)
    assert display.wipe_column(10, 0.3) == 3
    assert (out[:, :3] == 0).all() and (out[:, 3:] == 200).all()
    assert np.array_equal(display.wipe(a, b, 0.0), b) and np.array_equal(display.wipe(a, b, 1.0), a)
    assert np.array_equal(display.wipe(a, b, -2.0), b), "positions clamp to 0..1"
    with pytest.raises(ValueError):
        display.wipe(a, b[:, :5], 0.5)


def test_side_by_side_places_both_images_with_a_gap() -> None:
    a = np.full((3, 4, 3), 10, np.uint8)
    b = np.full((2, 5, 3), 90, np.uint8)
    out = display.side_by_side(a, b, gap=2)
    assert out.shape == (3, 11, 3) and out.flags.c_contiguous
    assert (out[:, :4] == 10).all() and (out[:, 4:6] == 0).all() and (out[:2, 6:] == 90).all()
    assert (out[2, 6:] == 0).all(), "the shorter image is padded below"


def test_difference_is_amplified_and_zero_where_the_images_agree() -> None:
    a = np.full((2, 3, 3), 0.5, np.float16)
    b = a.copy()
    b[1, 2] = [0.51, 0.5, np.nan]
    d = display.difference(a, b, gain=10.0)
    assert d.dtype == np.float32 and (d[0] == 0).all()
    assert d[1, 2, 0] == pytest.approx(10 * abs(float(np.float16(0.51)) - 0.5), rel=1e-3)
    assert d[1, 2, 2] == 0.0, "a NaN difference counts as none"
    shown = display.compose("difference", a, b, gain=10.0)
    assert (shown[0] == 0).all() and shown[1, 2, 0] == _srgb8(float(d[1, 2, 0]))
    assert np.array_equal(display.compose("difference", a, b, gain=10.0, flipped=True), shown)


def test_compose_modes_and_flip() -> None:
    a = np.full((2, 4, 3), 0.2, np.float16)
    b = np.full((2, 4, 3), 0.8, np.float16)
    va, vb = display.view_srgb(a), display.view_srgb(b)
    assert np.array_equal(display.compose("a", a, b), va)
    assert np.array_equal(display.compose("b", a, b), vb)
    assert np.array_equal(display.compose("a", a, b, flipped=True), vb), "flip shows B where A was"
    wiped = display.compose("wipe", a, b, position=0.5)
    assert np.array_equal(wiped[:, :2], va[:, :2]) and np.array_equal(wiped[:, 2:], vb[:, 2:])
    flipped = display.compose("wipe", a, b, position=0.5, flipped=True)
    assert np.array_equal(flipped[:, :2], vb[:, :2])
    side = display.compose("side", a, b)
    assert side.shape == (2, 8 + display.SIDE_GAP, 3)
    assert np.array_equal(display.compose("a", a, b, exposure=2.0), display.view_srgb(a * 4))
    with pytest.raises(ValueError):
        display.compose("onion", a, b)


def test_overlay_points_follow_the_preview_geometry() -> None:
    box = (100, 50, 300, 150)  # a 200 x 100 region shown at 100 x 50
    points = np.array([[100.0 - 0.5, 50.0 - 0.5], [299.5, 149.5], [200.0 - 0.5, 100.0 - 0.5]])
    mapped = display.to_image_points(points, box, (100, 50))
    assert np.allclose(mapped, [[-0.5, -0.5], [99.5, 49.5], [49.5, 24.5]])


def test_region_tint_is_transparent_outside_faces_and_weighted_inside() -> None:
    labels = np.array([[0, 1], [4, 2]], np.uint8)
    colours = np.array([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)], np.uint8)
    weights = np.array([1.0, 0.0, 1.0, 0.5], np.float32)
    tint = display.region_tint(labels, (4, 4), colours, weights, opacity=1.0)
    assert tint.shape == (4, 4, 4) and tint.dtype == np.uint8
    assert (tint[:2, :2] == 0).all(), "label 0: transparent"
    assert tint[0, 3].tolist() == [255, 0, 0, 255]
    assert tint[3, 3, :3].tolist() == [0, 255, 0] and tint[3, 3, 3] == int(0.15 * 255), "weight 0 stays faint"
    assert 0.15 * 255 < tint[3, 0, 3] < 255


def test_the_command_line_module_loads_no_qt() -> None:
    """``facebridge`` builds its parser with the panel's arguments without loading PySide6."""
    import subprocess
    import sys

    code = ("import argparse, sys; from ui.panel.cli import add_panel_arguments; "
            "add_panel_arguments(argparse.ArgumentParser()); "
            "from ui.panel import display, state; assert 'PySide6' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
