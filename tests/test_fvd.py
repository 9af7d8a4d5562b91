"""Frechet distance against closed forms, and FVD plumbing with a tiny scripted stand-in for I3D."""

import math

import numpy as np
import pytest
import torch

from text2sign.evaluation import (
    DEFAULT_MIN_CLIPS,
    FrechetVideoDistance,
    feature_statistics,
    frechet_distance,
)

# The community I3D detector is a TorchScript file, so torch.jit is the only way to load it (and to script a
# stand-in); torch 2.13 marks torch.jit as deprecated, which is not what these tests are about.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*is deprecated:DeprecationWarning")


def random_covariance(dimension, seed, rank=None):
    generator = np.random.default_rng(seed)
    factor = generator.normal(size=(dimension, rank or dimension))
    return factor @ factor.T / dimension  # (d, d), positive semi-definite, rank-deficient if rank < d


def random_rotation(dimension, seed):
    orthogonal, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(dimension, dimension)))
    return orthogonal


# ---------------------------------------------------------------------------------------------------------------
# Frechet distance: closed forms
# ---------------------------------------------------------------------------------------------------------------


def test_frechet_distance_of_diagonal_gaussians_matches_the_hand_value():
    # |mu1 - mu2|^2 = 1 + 4 + 9 = 14; tr(S1 + S2) = 14 + 6 = 20; 2 tr((S1 S2)^(1/2)) = 2 (2 + 2 + 3) = 14.
    mean_1, mean_2 = np.array([1.0, 2.0, 3.0]), np.zeros(3)
    covariance_1, covariance_2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 1.0, 1.0])
    assert frechet_distance(mean_1, covariance_1, mean_2, covariance_2) == pytest.approx(20.0, rel=1e-12)


def test_frechet_distance_in_one_dimension_is_mean_gap_plus_std_gap_squared():
    # N(m1, s1^2), N(m2, s2^2): (m1 - m2)^2 + (s1 - s2)^2 = 0.25 + 1 = 1.25.
    assert frechet_distance([0.5], [[4.0]], [0.0], [[1.0]]) == pytest.approx(1.25, rel=1e-12)


def test_frechet_distance_of_commuting_covariances_compares_root_eigenvalues():
    # S_i = R diag(a_i) R^T share eigenvectors, so tr((S1 S2)^(1/2)) = sum sqrt(a1 a2) and the covariance
    # part is sum (sqrt(a1) - sqrt(a2))^2.
    rotation = random_rotation(5, seed=0)
    eigenvalues_1, eigenvalues_2 = np.array([0.5, 1.0, 2.0, 3.0, 4.0]), np.array([2.0, 1.0, 0.1, 3.0, 9.0])
    mean_1, mean_2 = np.arange(5.0), np.arange(5.0)[::-1].copy()
    expected = ((mean_1 - mean_2) ** 2).sum() + ((np.sqrt(eigenvalues_1) - np.sqrt(eigenvalues_2)) ** 2).sum()
    distance = frechet_distance(
        mean_1, rotation @ np.diag(eigenvalues_1) @ rotation.T, mean_2, rotation @ np.diag(eigenvalues_2) @ rotation.T
    )
    assert distance == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_of_non_commuting_2d_covariances_matches_the_analytic_root_trace():
    # For 2x2 matrices with eigenvalues l1, l2 of S1 S2: (sqrt l1 + sqrt l2)^2 = tr(S1 S2) + 2 sqrt(det S1 det S2),
    # so tr((S1 S2)^(1/2)) = sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2)).
    covariance_1 = np.array([[2.0, 0.8], [0.8, 1.0]])
    covariance_2 = np.array([[1.0, -0.3], [-0.3, 3.0]])
    assert not np.allclose(covariance_1 @ covariance_2, covariance_2 @ covariance_1)
    root_trace = math.sqrt(
        np.trace(covariance_1 @ covariance_2) + 2 * math.sqrt(np.linalg.det(covariance_1) * np.linalg.det(covariance_2))
    )
    expected = 1.0**2 + 2.0**2 + np.trace(covariance_1) + np.trace(covariance_2) - 2 * root_trace
    distance = frechet_distance([1.0, 0.0], covariance_1, [0.0, 2.0], covariance_2)
    assert distance == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_matches_an_eigenvalue_reference_and_is_symmetric():
    # Independent route: eigenvalues of the non-symmetric product S1 S2 (real, non-negative) by numpy.
    covariance_1, covariance_2 = random_covariance(12, seed=1), random_covariance(12, seed=2)
    mean_1, mean_2 = np.random.default_rng(3).normal(size=(2, 12))
    eigenvalues = np.linalg.eigvals(covariance_1 @ covariance_2).real
    expected = ((mean_1 - mean_2) ** 2).sum() + np.trace(covariance_1 + covariance_2) - 2 * np.sqrt(eigenvalues).sum()
    forward = frechet_distance(mean_1, covariance_1, mean_2, covariance_2)
    assert forward == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(mean_2, covariance_2, mean_1, covariance_1) == pytest.approx(forward, rel=1e-10)


@pytest.mark.parametrize("num_samples", [200, 20])  # full-rank and rank-deficient (20 samples of 32-d features)
def test_frechet_distance_of_identical_feature_sets_is_zero(num_samples):
    features = torch.from_numpy(np.random.default_rng(4).normal(size=(num_samples, 32)) * 3 + 1)
    mean, covariance = feature_statistics(features)
    distance = frechet_distance(mean, covariance, mean, covariance)
    assert distance <= 1e-6 * torch.trace(covariance).item()


def test_frechet_distance_treats_rounding_sized_negative_eigenvalues_as_zero():
    # diag(1, -1e-5) is diag(1, 0) plus rounding-sized error; its distance to diag(1, 0) is 0, not -1e-5 or +1e-5.
    distance = frechet_distance(np.zeros(2), np.diag([1.0, -1e-5]), np.zeros(2), np.diag([1.0, 0.0]))
    assert distance == pytest.approx(0.0, abs=1e-12)


def test_frechet_distance_of_translated_features_is_the_squared_shift():
    features = torch.from_numpy(np.random.default_rng(5).normal(size=(50, 8)))
    shift = torch.arange(8, dtype=torch.float64) / 4
    distance = frechet_distance(*feature_statistics(features), *feature_statistics(features + shift))
    assert distance == pytest.approx((shift**2).sum().item(), rel=1e-6)


def test_feature_statistics_match_numpy():
    features = np.random.default_rng(6).normal(size=(30, 5))
    mean, covariance = feature_statistics(features)
    np.testing.assert_allclose(mean.numpy(), features.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(covariance.numpy(), np.cov(features, rowvar=False), rtol=1e-12)


@pytest.mark.parametrize(
    "covariance_1",
    [
        np.diag([1.0, -1.0]),  # not positive semi-definite
        np.array([[1.0, 0.5], [0.0, 1.0]]),  # not symmetric
        np.eye(3),  # wrong size
        np.array([[1.0, np.nan], [np.nan, 1.0]]),
    ],
)
def test_frechet_distance_rejects_inputs_that_are_not_covariances(covariance_1):
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(2), covariance_1, np.zeros(2), np.eye(2))


def test_feature_statistics_needs_two_samples():
    with pytest.raises(ValueError):
        feature_statistics(np.zeros((1, 4)))


# ---------------------------------------------------------------------------------------------------------------
# FrechetVideoDistance with a scripted stand-in detector
# ---------------------------------------------------------------------------------------------------------------


class FakeI3D(torch.nn.Module):
    """Same call signature as i3d_torchscript.pt; refuses any other convention or input range."""

    def forward(
        self, videos: torch.Tensor, rescale: bool = True, resize: bool = False, return_features: bool = False
    ) -> torch.Tensor:
        if rescale or not resize or not return_features:
            raise RuntimeError("FakeI3D must be called with rescale=False, resize=True, return_features=True")
        if videos.dim() != 5 or videos.size(1) != 3 or videos.min() < -1.0 or videos.max() > 1.0:
            raise RuntimeError("FakeI3D expects float (n, 3, f, h, w) in [-1, 1]")
        channel_means = videos.mean(dim=(2, 3, 4))  # (n, 3)
        channel_spread = videos.std(dim=(2, 3, 4))  # (n, 3)
        motion = (videos[:, :, 1:] - videos[:, :, :-1]).abs().mean(dim=(2, 3, 4))  # (n, 3)
        return torch.cat([channel_means, channel_spread, motion], dim=1)  # (n, 9)


@pytest.fixture
def detector_path(tmp_path):
    path = tmp_path / "i3d_torchscript.pt"
    torch.jit.save(torch.jit.script(FakeI3D()), str(path))
    return path


def random_clips(num_clips, seed, offset=0.0):
    generator = torch.Generator().manual_seed(seed)
    return (0.4 * torch.randn(num_clips, 3, 4, 6, 6, generator=generator) + offset).clamp(-1, 1)  # (n, c, f, h, w)


def test_fvd_of_identical_sets_is_zero_and_grows_with_a_shift(detector_path):
    fvd = FrechetVideoDistance(detector_path, min_clips=32, allow_small_sample=True, batch_size=10)
    real = random_clips(40, seed=0)
    fvd.update_real(real[:25])
    fvd.update_real(real[25:])  # several batches accumulate
    fvd.update_fake(real.clone())
    result = fvd.compute()
    assert result.fvd == pytest.approx(0.0, abs=1e-9)
    assert result.num_real_clips == 40 and result.num_fake_clips == 40 and result.feature_dim == 9

    fvd.reset_fake()
    shifted = random_clips(40, seed=1, offset=0.3)
    fvd.update_fake(shifted)
    detector = torch.jit.load(str(detector_path))
    kwargs = dict(rescale=False, resize=True, return_features=True)
    expected = frechet_distance(*feature_statistics(detector(real, **kwargs)), *feature_statistics(detector(shifted, **kwargs)))
    assert fvd.compute().fvd == pytest.approx(expected, rel=1e-6)
    assert expected > 0.1


def test_fvd_refuses_too_few_clips_and_says_how_many(detector_path):
    fvd = FrechetVideoDistance(detector_path)
    assert fvd.min_clips == DEFAULT_MIN_CLIPS
    fvd.update_real(random_clips(4, seed=0))
    fvd.update_fake(random_clips(4, seed=1))
    with pytest.raises(ValueError, match=rf"at least {DEFAULT_MIN_CLIPS} clips .* got 4 real and 4 generated"):
        fvd.compute()


def test_fvd_needs_an_acknowledgement_to_lower_the_minimum_and_records_it(detector_path):
    with pytest.raises(ValueError, match="allow_small_sample=True"):
        FrechetVideoDistance(detector_path, min_clips=8)
    fvd = FrechetVideoDistance(detector_path, min_clips=8, allow_small_sample=True)
    fvd.update_real(random_clips(8, seed=0))
    fvd.update_fake(random_clips(8, seed=1))
    result = fvd.compute()
    assert result.allow_small_sample is True and result.min_clips == 8
    assert result.comparable_to_published is False and result.covariance_rank_deficient is True


def test_fvd_at_the_default_minimum_runs_without_acknowledgement(detector_path):
    fvd = FrechetVideoDistance(detector_path, batch_size=256)
    fvd.update_real(random_clips(DEFAULT_MIN_CLIPS, seed=0))
    fvd.update_fake(random_clips(DEFAULT_MIN_CLIPS, seed=1))
    result = fvd.compute()
    assert result.allow_small_sample is False and result.covariance_rank_deficient is False
    assert 0 <= result.fvd < 0.05  # two samples of one distribution


def test_fvd_gives_the_same_result_for_uint8_and_float_clips(detector_path):
    rng = np.random.default_rng(0)
    real_uint8 = rng.integers(0, 256, size=(10, 4, 6, 6, 3), dtype=np.uint8)  # (n, f, h, w, c)
    fake_uint8 = rng.integers(0, 200, size=(10, 4, 6, 6, 3), dtype=np.uint8)
    to_float = lambda videos: torch.from_numpy(videos).permute(0, 4, 1, 2, 3).float() / 127.5 - 1  # noqa: E731
    results = []
    for real, fake in ((real_uint8, fake_uint8), (to_float(real_uint8), to_float(fake_uint8))):
        fvd = FrechetVideoDistance(detector_path, min_clips=10, allow_small_sample=True)
        fvd.update_real(real)
        fvd.update_fake(fake)
        results.append(fvd.compute().fvd)
    assert results[0] == pytest.approx(results[1], rel=1e-6) and results[0] > 0


def test_fvd_reports_a_missing_detector_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="i3d_torchscript.pt"):
        FrechetVideoDistance(tmp_path / "missing" / "i3d_torchscript.pt")


def test_fvd_rejects_videos_without_three_channels(detector_path):
    fvd = FrechetVideoDistance(detector_path)
    with pytest.raises(ValueError, match="RGB"):
        fvd.update_real(torch.zeros(2, 1, 4, 6, 6))
