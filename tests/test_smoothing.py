"""Zero-phase smoothing and gap filling of landmark trajectories (synthetic, exact expectations)."""

import numpy as np

from inference_server.temporal.smoothing import fill_gaps, jitter, smooth_trajectory


def test_linear_motion_is_kept_exactly_including_the_ends() -> None:
    t = np.arange(30, dtype=np.float64)
    traj = np.stack([3.0 * t + 5.0, -0.5 * t], axis=1)[:, None, :]
    assert np.allclose(smooth_trajectory(traj, sigma=3.0), traj, atol=1e-9)


def test_zero_phase_no_lag_on_a_symmetric_bump() -> None:
    t = np.arange(41, dtype=np.float64)
    bump = np.exp(-0.5 * ((t - 20) / 4.0) ** 2)
    traj = np.stack([bump, bump], axis=1)[:, None, :]
    smoothed = smooth_trajectory(traj, sigma=2.0)
    assert int(np.argmax(smoothed[:, 0, 0])) == 20


def test_short_gaps_are_interpolated_and_long_gaps_split_the_track() -> None:
    traj = np.arange(20, dtype=np.float64)[:, None, None].repeat(2, axis=2)
    traj[5:7] = np.nan
    traj[10:16] = np.nan
    filled = fill_gaps(traj, max_gap=4)
    assert np.allclose(filled[5:7, 0, 0], [5.0, 6.0])
    assert np.isnan(filled[10:16]).all()
    smoothed = smooth_trajectory(traj, sigma=1.0, max_gap=4)
    assert np.isnan(smoothed[10:16]).all() and not np.isnan(smoothed[:10]).any() and not np.isnan(smoothed[16:]).any()


def test_noise_is_reduced() -> None:
    rng = np.random.default_rng(0)
    traj = rng.normal(0.0, 1.0, (100, 68, 2))
    assert jitter(smooth_trajectory(traj, sigma=2.0)) < 0.2 * jitter(traj)
