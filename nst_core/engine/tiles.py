"""The overlapping tiles of a full-size refinement, and the weights that cross-fade them."""

import math

import torch


def tile_grid(size, tile, overlap):
    """Tiles (x, y, w, h) covering ``size`` with at least ``overlap`` pixels shared by neighbours."""
    def starts(length):
        if length <= tile:
            return [0], length
        count = math.ceil((length - overlap) / (tile - overlap))
        step = (length - tile) / (count - 1)
        return [round(i * step) for i in range(count)], tile

    xs, w = starts(size[0])
    ys, h = starts(size[1])
    return [(x, y, w, h) for y in ys for x in xs]


def feather(width, height, overlap, device):
    """Blend weights: 1 inside, ramping down across the overlap so neighbouring tiles cross-fade."""
    def ramp(n):
        r = torch.ones(n, device=device)
        k = min(overlap, n // 2)  # a tile as small as the image itself has no neighbour to fade into
        if k > 0:
            edge = torch.linspace(1.0 / (k + 1), 1.0, k, device=device)
            r[:k] = torch.minimum(r[:k], edge)
            r[-k:] = torch.minimum(r[-k:], edge.flip(0))
        return r
    return (ramp(height)[:, None] * ramp(width)[None, :]).view(1, 1, height, width)
