"""Frechet distance between Gaussians fitted to features, and FVD with a local I3D TorchScript detector.

FVD (Unterthiner et al. 2018, "Towards Accurate Generative Models of Video") is the Frechet distance
between Gaussians fitted to I3D features of real and generated clips. It is a set statistic whose estimate
is biased upward for small sets (Chong & Forsyth 2020, "Effectively Unbiased FID and Inception Score and
Where to Find Them": the bias falls like 1 / n), so `FrechetVideoDistance.compute` refuses to report from
too few clips. The prior public attempt at this system reported an "FVD" from 4 clips; that number says
nothing about the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from text2sign.evaluation.metrics import normalise_videos
from text2sign.evaluation.results import FVDScores

# Published FVD numbers (StyleGAN-V's fvd2048_16f, and most video diffusion papers) use 2048 clips per side.
STANDARD_NUM_CLIPS = 2048

# The common I3D detector returns 400-d features (Kinetics-400 logits). With n clips the sample covariance has
# rank at most n - 1, so below 401 clips it is singular and the distance mostly measures the estimation bias.
# 512 clears that with margin; lowering it needs allow_small_sample=True, which the result records.
DEFAULT_MIN_CLIPS = 512

# Negative eigenvalues of a covariance no larger than this fraction of its largest eigenvalue are rounding
# (float32 feature sums, a rank-deficient estimate) and are set to 0; larger ones mean a wrong input.
EIGENVALUE_TOLERANCE = 1e-4

# A covariance must equal its transpose to this relative precision; anything worse is not a covariance.
SYMMETRY_TOLERANCE = 1e-5


def feature_statistics(features: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (d,) and unbiased covariance (d, d), both float64, of features (n, d); as np.cov(rowvar=False)."""
    features = torch.as_tensor(features, dtype=torch.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"features must be (n >= 2, d) to have a covariance, got shape {tuple(features.shape)}.")
    if not torch.isfinite(features).all():
        raise ValueError("features contain NaN or infinite values; check the detector input.")
    mean = features.mean(dim=0)  # (d,)
    centred = features - mean  # (n, d)
    covariance = centred.T @ centred / (features.shape[0] - 1)  # (d, d)
    return mean, covariance


def _symmetric_sqrt(covariance: torch.Tensor, name: str) -> torch.Tensor:
    """Principal square root of a symmetric positive semi-definite matrix (d, d) by eigen-decomposition."""
    asymmetry = (covariance - covariance.T).abs().max()
    scale = covariance.abs().max().clamp_min(torch.finfo(torch.float64).tiny)
    if asymmetry > SYMMETRY_TOLERANCE * scale:
        raise ValueError(f"{name} is not symmetric (max |S - S^T| = {asymmetry.item():.3g}); pass a covariance matrix.")
    eigenvalues, eigenvectors = torch.linalg.eigh((covariance + covariance.T) / 2)  # (d,), (d, d)
    largest = eigenvalues.abs().max().clamp_min(torch.finfo(torch.float64).tiny)
    if eigenvalues.min() < -EIGENVALUE_TOLERANCE * largest:
        raise ValueError(
            f"{name} is not positive semi-definite: eigenvalue {eigenvalues.min().item():.3g} against largest "
            f"{largest.item():.3g}. Pass a covariance, e.g. from feature_statistics."
        )
    root_eigenvalues = eigenvalues.clamp_min(0).sqrt()  # rounding-sized negatives -> 0
    return (eigenvectors * root_eigenvalues) @ eigenvectors.T  # (d, d) = V diag(sqrt(lambda)) V^T


def frechet_distance(
    mean_1: torch.Tensor | np.ndarray,
    covariance_1: torch.Tensor | np.ndarray,
    mean_2: torch.Tensor | np.ndarray,
    covariance_2: torch.Tensor | np.ndarray,
) -> float:
    """Frechet (2-Wasserstein squared) distance between N(mean_1, covariance_1) and N(mean_2, covariance_2).

        d^2 = |mu_1 - mu_2|^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^(1/2))

    (Dowson & Landau 1982, eq. 2; the FID formula of Heusel et al. 2017, eq. 6.) Computed in float64 without
    scipy: with A = S_1^(1/2) S_2^(1/2), A A^T = S_1^(1/2) S_2 S_1^(1/2) has the eigenvalues of S_1 S_2, so
    tr((S_1 S_2)^(1/2)) is the sum of the singular values of A, its nuclear norm. Both square roots are
    symmetric (eigh), and singular values are accurate to rounding times |A| rather than the square root of
    that, which the usual sqrtm(S_1 S_2) of a non-symmetric product does not give: that route returns complex
    parts for singular covariances and needs an added eps * I. Negative eigenvalues of rounding size are
    set to 0 (the input is projected onto the positive semi-definite matrices); a clearly indefinite
    input raises ValueError. The result is a squared distance, >= 0.
    """
    mean_1, mean_2 = (torch.as_tensor(m, dtype=torch.float64) for m in (mean_1, mean_2))
    covariance_1, covariance_2 = (torch.as_tensor(s, dtype=torch.float64) for s in (covariance_1, covariance_2))
    dimension = mean_1.shape[0] if mean_1.ndim == 1 else -1
    if mean_1.ndim != 1 or mean_2.shape != (dimension,):
        raise ValueError(f"means must both be (d,), got {tuple(mean_1.shape)} and {tuple(mean_2.shape)}.")
    for name, covariance in (("covariance_1", covariance_1), ("covariance_2", covariance_2)):
        if covariance.shape != (dimension, dimension):
            raise ValueError(f"{name} must be (d, d) = ({dimension}, {dimension}), got {tuple(covariance.shape)}.")
    for name, tensor in (("mean_1", mean_1), ("mean_2", mean_2), ("covariance_1", covariance_1), ("covariance_2", covariance_2)):
        if not torch.isfinite(tensor).all():
            raise ValueError(f"{name} contains NaN or infinite values.")

    root_1 = _symmetric_sqrt(covariance_1, "covariance_1")  # (d, d)
    root_2 = _symmetric_sqrt(covariance_2, "covariance_2")  # (d, d)
    # Traces come from the roots, tr(S) = |S^(1/2)|_F^2, so they see the same clamped eigenvalues as the
    # cross term: every term then belongs to one positive semi-definite matrix and the distance stays >= 0.
    trace_1, trace_2 = (root_1**2).sum(), (root_2**2).sum()
    trace_of_root_product = torch.linalg.svdvals(root_1 @ root_2).sum()  # tr((S_1 S_2)^(1/2))
    mean_term = ((mean_1 - mean_2) ** 2).sum()
    distance = mean_term + trace_1 + trace_2 - 2 * trace_of_root_product

    # The covariance part is the squared 2-Wasserstein distance between centred Gaussians, so >= 0; rounding can
    # leave a true 0 at -1e-15 of the traces, reported as 0. Anything more negative is a bug here, not in the input.
    scale = (mean_term + trace_1 + trace_2).item()
    assert distance.item() >= -1e-8 * max(scale, 1.0), f"negative Frechet distance {distance.item()} (scale {scale})"
    return max(distance.item(), 0.0)


class FrechetVideoDistance:
    """FVD with the I3D TorchScript detector used by StyleGAN-V (Skorokhodov et al. 2022), loaded from disk.

    The detector is the community `i3d_torchscript.pt` (a port of the Kinetics-400 I3D of the original FVD
    code), which StyleGAN-V and common_metrics_on_video_quality fetch from
    https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt. Nothing is downloaded here: pass the path
    of a local copy. Calling convention (assumed from those repositories, which call it exactly so):

        features = detector(videos, rescale=False, resize=True, return_features=True)  # (n, 400)

    with videos float (n, 3, f, h, w) in [-1, 1]; resize=True lets the detector resize frames to 224x224,
    rescale=False says the input is already in [-1, 1], return_features=True returns the pre-softmax logits.
    The published protocol uses 16-frame clips; the detector may reject much shorter ones.

    Usage: update_real(...) and update_fake(...) in any number of batches, then compute(). Features are kept
    (float64, on CPU), so several checkpoints can be scored against one real set with reset_fake().
    """

    def __init__(
        self,
        detector_path: str | Path,
        min_clips: int = DEFAULT_MIN_CLIPS,
        allow_small_sample: bool = False,
        batch_size: int = 16,
        device: str | torch.device = "cpu",
    ):
        detector_path = Path(detector_path)
        if not detector_path.is_file():
            raise FileNotFoundError(
                f"I3D detector not found at {detector_path}. Download i3d_torchscript.pt (the StyleGAN-V FVD "
                "detector) to a local file and pass its path; this class never downloads."
            )
        if min_clips < 2:
            raise ValueError(f"min_clips must be at least 2 (a covariance needs two samples), got {min_clips}.")
        if min_clips < DEFAULT_MIN_CLIPS and not allow_small_sample:
            raise ValueError(
                f"min_clips={min_clips} is below the default {DEFAULT_MIN_CLIPS}: FVD from so few clips is biased "
                f"and not comparable to published {STANDARD_NUM_CLIPS}-clip numbers. Pass allow_small_sample=True "
                "to acknowledge this; compute() records it."
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}.")
        self.detector_path = detector_path
        self.min_clips = min_clips
        self.allow_small_sample = allow_small_sample
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.detector = torch.jit.load(str(detector_path), map_location=self.device).eval()
        self.real_features: list[torch.Tensor] = []
        self.fake_features: list[torch.Tensor] = []

    @torch.no_grad()
    def extract_features(self, videos: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Detector features (n, d) float64 on CPU of videos (n, 3, f, h, w) in [-1, 1] or uint8 (n, f, h, w, 3)."""
        videos = normalise_videos(videos)  # (n, c, f, h, w)
        if videos.shape[1] != 3:
            raise ValueError(
                f"I3D expects RGB videos (c = 3), got c = {videos.shape[1]}; repeat a grey channel with "
                "videos.expand(-1, 3, -1, -1, -1)."
            )
        batches = []
        for start in range(0, videos.shape[0], self.batch_size):
            batch = videos[start : start + self.batch_size].to(self.device)  # (b, 3, f, h, w)
            features = self.detector(batch, rescale=False, resize=True, return_features=True)
            if not isinstance(features, torch.Tensor) or features.ndim != 2 or features.shape[0] != batch.shape[0]:
                shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
                raise ValueError(
                    f"the detector must return features (b={batch.shape[0]}, d), got {shape}; is it the I3D TorchScript file?"
                )
            batches.append(features.double().cpu())
        if not batches:
            raise ValueError("got an empty batch of videos (n = 0).")
        return torch.cat(batches)  # (n, d)

    def update_real(self, videos: torch.Tensor | np.ndarray) -> None:
        self.real_features.append(self.extract_features(videos))

    def update_fake(self, videos: torch.Tensor | np.ndarray) -> None:
        self.fake_features.append(self.extract_features(videos))

    def reset_fake(self) -> None:
        """Forget the generated clips, keeping the real ones, to score another checkpoint."""
        self.fake_features = []

    @property
    def num_real_clips(self) -> int:
        return sum(features.shape[0] for features in self.real_features)

    @property
    def num_fake_clips(self) -> int:
        return sum(features.shape[0] for features in self.fake_features)

    def compute(self) -> FVDScores:
        """FVD between all real and all generated clips seen so far, refusing sets smaller than min_clips.

        Returns FVDScores: fvd, num_real_clips, num_fake_clips, feature_dim, min_clips, allow_small_sample,
        comparable_to_published (both sides >= 2048 clips), covariance_rank_deficient (a side has no
        more clips than feature dimensions).
        """
        num_real, num_fake = self.num_real_clips, self.num_fake_clips
        if min(num_real, num_fake) < self.min_clips:
            raise ValueError(
                f"FVD needs at least {self.min_clips} clips on each side, got {num_real} real and {num_fake} "
                f"generated. Generate more clips (published FVD uses {STANDARD_NUM_CLIPS}); for a smoke test, "
                "lower min_clips with allow_small_sample=True, which the result records."
            )
        real_features, fake_features = torch.cat(self.real_features), torch.cat(self.fake_features)  # (n, d) each
        if real_features.shape[1] != fake_features.shape[1]:
            raise ValueError(f"real and generated features differ in size: {real_features.shape[1]} vs {fake_features.shape[1]}.")
        feature_dim = real_features.shape[1]
        distance = frechet_distance(*feature_statistics(real_features), *feature_statistics(fake_features))
        return FVDScores(
            fvd=distance,
            num_real_clips=num_real,
            num_fake_clips=num_fake,
            feature_dim=feature_dim,
            min_clips=self.min_clips,
            allow_small_sample=self.allow_small_sample,
            comparable_to_published=min(num_real, num_fake) >= STANDARD_NUM_CLIPS,
            covariance_rank_deficient=min(num_real, num_fake) <= feature_dim,
        )
