"""Frame preprocessing exactly as the official SAM 2 video loader does it."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

IMG_MEAN = (0.485, 0.456, 0.406)
IMG_STD = (0.229, 0.224, 0.225)


def preprocess_frame(rgb: np.ndarray, image_size: int, device: torch.device) -> torch.Tensor:
    """RGB frame -> normalised model input.

    ``rgb``: (H, W, 3) uint8. Returns (1, 3, image_size, image_size) float32 on ``device``.
    Matches ``sam2.utils.misc.load_video_frames``: PIL resize (bicubic) to a square, /255 in
    float64, cast to float32, then mean/std normalisation in float32.
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 frame, got {rgb.shape} {rgb.dtype}")
    resized = np.array(Image.fromarray(rgb).resize((image_size, image_size)))
    image = torch.from_numpy(resized / 255.0).permute(2, 0, 1).to(torch.float32)
    image = image.to(device)
    mean = torch.tensor(IMG_MEAN, dtype=torch.float32, device=device)[:, None, None]
    std = torch.tensor(IMG_STD, dtype=torch.float32, device=device)[:, None, None]
    image -= mean
    image /= std
    return image.unsqueeze(0)
