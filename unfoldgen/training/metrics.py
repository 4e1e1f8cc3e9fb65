"""Image quality: PSNR and SSIM of a batch of estimated images against the truth.

Both take the data range of each true image (its max minus its min), as images here are not
limited to [0, 1]. SSIM is Wang et al. (2004): Gaussian windows of standard deviation 1.5
(truncated at 3.5 sigma, an 11 x 11 window), ``K1 = 0.01``, ``K2 = 0.03``, population
(co)variances, averaged over the pixels whose window fits inside the image, the choices of
``skimage.metrics.structural_similarity(gaussian_weights=True, use_sample_covariance=False)``.
"""

from __future__ import annotations

import torch

SIGMA = 1.5
K1, K2 = 0.01, 0.03


def data_range(truth: torch.Tensor) -> torch.Tensor:
    """Per image (batch-first ``[B, m, n]``): max - min, at least the dtype's tiny."""
    flat = truth.flatten(1)
    return (flat.max(dim=1).values - flat.min(dim=1).values).clamp_min(torch.finfo(truth.dtype).tiny)


def psnr_db(estimate: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """``10 log10(range^2 / MSE)`` per image."""
    mse = (estimate - truth).flatten(1).square().mean(dim=1)
    return 10 * torch.log10(data_range(truth) ** 2 / mse.clamp_min(torch.finfo(truth.dtype).tiny))


def _window(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    radius = int(3.5 * SIGMA + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    line = torch.exp(-offsets**2 / (2 * SIGMA**2))
    line = line / line.sum()
    return (line[:, None] * line[None, :])[None, None]


def ssim(estimate: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """The mean structural similarity per image (images at least 11 x 11)."""
    window = _window(truth.dtype, truth.device)
    if min(truth.shape[-2:]) < window.shape[-1]:
        raise ValueError(f"SSIM needs images of at least {window.shape[-1]} x {window.shape[-1]}")

    def mean(image: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(image.unsqueeze(1), window).squeeze(1)  # valid windows only

    x, y = estimate, truth
    mu_x, mu_y = mean(x), mean(y)
    var_x, var_y = mean(x * x) - mu_x**2, mean(y * y) - mu_y**2
    cov = mean(x * y) - mu_x * mu_y
    scale = data_range(truth).reshape(-1, 1, 1)
    c1, c2 = (K1 * scale) ** 2, (K2 * scale) ** 2
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return index.flatten(1).mean(dim=1)

