"""A synthetic animation with known motion: a camera that pans across a photo while it slowly zooms in.

Frame t shows the photo around a centre that moves ``pan`` photo pixels per frame to the right, at a
scale (photo pixels per frame pixel) multiplied by ``zoom`` each frame. Because the camera is known, so
is the true motion between any two frames (``true_motion``), which the flicker is measured along.
"""

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


class CameraPath:
    def __init__(self, photo_size, frame_size, frames, pan=3.0, zoom=0.99):
        self.photo_w, self.photo_h = photo_size
        self.width, self.height = frame_size
        self.frames = frames
        self.pan, self.zoom = pan, zoom
        # Start where the whole path stays inside the photo: the first frame is the widest.
        self.scale0 = min(self.photo_h / self.height, (self.photo_w - pan * frames) / self.width) * 0.95
        self.cx0 = self.scale0 * self.width / 2 + 2
        self.cy = self.photo_h / 2

    def camera(self, t):
        return self.cx0 + self.pan * t, self.cy, self.scale0 * self.zoom ** t

    def photo_coords(self, t):
        """Photo coordinates (X, Y) of every pixel of frame t, H x W each."""
        cx, cy, scale = self.camera(t)
        v, u = np.mgrid[0:self.height, 0:self.width].astype(np.float64)
        return cx + (u - (self.width - 1) / 2) * scale, cy + (v - (self.height - 1) / 2) * scale

    def true_motion(self, t, s):
        """Where each pixel of frame t lies in frame s: (u, v) in s's pixels, and whether it is inside s."""
        x, y = self.photo_coords(t)
        cx, cy, scale = self.camera(s)
        u = (x - cx) / scale + (self.width - 1) / 2
        v = (y - cy) / scale + (self.height - 1) / 2
        inside = (u >= 0) & (u <= self.width - 1) & (v >= 0) & (v <= self.height - 1)
        return u, v, inside


def _sample(image, u, v):
    """``image`` (1 x C x H x W float) sampled bilinearly at pixel coordinates (u, v) (H' x W' each)."""
    height, width = image.shape[-2:]
    grid = np.stack([2 * u / (width - 1) - 1, 2 * v / (height - 1) - 1], axis=-1)[None]
    return F.grid_sample(image, torch.from_numpy(grid).float(), mode="bilinear", padding_mode="border",
                         align_corners=True)


def _tensor(picture):
    rgb = np.asarray(picture.convert("RGB"), dtype=np.float32)
    return torch.from_numpy(rgb).permute(2, 0, 1)[None]


def _picture(tensor):
    rgb = tensor[0].permute(1, 2, 0).clamp(0, 255).numpy()
    return Image.fromarray((rgb + 0.5).astype(np.uint8), "RGB")


def make_animation(photo_path, frame_size=(192, 128), frames=12, pan=3.0, zoom=0.99):
    """(frames as PIL images, the CameraPath that made them)."""
    photo = Image.open(photo_path).convert("RGB")
    path = CameraPath(photo.size, frame_size, frames, pan, zoom)
    source = _tensor(photo)
    pictures = []
    for t in range(frames):
        x, y = path.photo_coords(t)
        pictures.append(_picture(_sample(source, x, y)))
    return pictures, path


def flicker(styled, path):
    """Mean absolute difference (grey levels, all channels) between each styled frame t and styled frame
    t-1 carried along the true motion, over the pixels visible in both; one value per frame pair."""
    values = []
    for t in range(1, len(styled)):
        u, v, inside = path.true_motion(t, t - 1)
        carried = _sample(_tensor(styled[t - 1]), u, v)
        difference = (_tensor(styled[t]) - carried).abs().mean(dim=1)[0].numpy()
        values.append(float(difference[inside].mean()))
    return values
