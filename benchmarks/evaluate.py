"""One judge for any stylised image, independent of the loss that made it.

    python benchmarks/evaluate.py OUTPUT CONTENT STYLE [--reference PHOTO ...] [--size 256]

Two numbers, each on a scale that the content photo itself fixes:

  style distance   D_s(x) / D_s(c), where D_s(y) = mean over relu1_1, relu2_1, relu3_1, relu4_1, relu5_1
                   of ||G(y) - G(s)||^2 / ||G(s)||^2 and G = F F^T / (H W) of the layer's features:
                   1 is "as far from the style as the photo was", 0 is the style's own statistics.
  content distance D_c(x) / D_c(u), where D_c(y) = ||F(y) - F(c)||^2 / ||F(c)||^2 at relu4_2 and u is
                   an unrelated photo: 0 is the content, 1 is "as far as another photo".

A result is **good** when style <= 0.15 and content <= 0.5 (``is_good``).

Fixed choices (where the definition leaves them open):
  - Features: the real ImageNet VGG-16 (Caffe preprocessing) of ``../shared/data/weights`` (or the file
    that ``NST_TEST_WEIGHTS`` names), loaded through nst_core's own weights and backbone code, float32,
    no autocast, whatever the engine's precision.
  - Evaluation size: long side 256 (``EVAL_LONG_SIDE``). The output, the content and the unrelated
    photos are resized (bicubic, antialiased when shrinking) to the content's aspect at that size; the
    style image to its own aspect at that long side. The engine also renders the style at the working
    long side, so a result made at 256 or 512 px keeps its brush strokes in proportion to the style.
    Not larger: a result made at 256 px would have to be enlarged, and enlarging costs style distance
    by itself (the style image brought down to 256 px and judged at 384 scores 0.09 of the 0.15 allowed;
    judged at 256 it scores 0.02, and brought down from 512 px 0.01).
  - Unrelated photo: by default the example photos (``examples/chelsea.png``, ``coffee.png``,
    ``astronaut.png``) other than the content, the distances averaged (``default_references``). A photo
    is recognised by its pixels, not its name.
"""

import argparse
import functools
import hashlib
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

EXAMPLES = os.path.join(REPO, "examples")
EXAMPLE_PHOTOS = [os.path.join(EXAMPLES, name) for name in ("chelsea.png", "coffee.png", "astronaut.png")]
SHARED_WEIGHTS = os.path.join(os.path.dirname(REPO), "shared", "data", "weights", "vgg16-imagenet-caffe-features.pth")
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"
EVAL_LONG_SIDE = 256
GOOD_STYLE = 0.15
GOOD_CONTENT = 0.5


def weights_path():
    """The real VGG-16 file: ``NST_TEST_WEIGHTS`` if set, else the shared copy; None when neither exists."""
    path = os.environ.get("NST_TEST_WEIGHTS") or SHARED_WEIGHTS
    return path if os.path.isfile(path) else None


def is_good(style_distance, content_distance):
    return style_distance <= GOOD_STYLE and content_distance <= GOOD_CONTENT


@functools.lru_cache(maxsize=16)
def _load(path, mtime):
    from nst_core.engine.images import as_loaded

    return as_loaded(path, "image").rgb


def _rgb_array(image):
    """A path, PIL image, H x W x 3 array (0..255) or 1 x 3 x H x W tensor (0..255) -> float32 H x W x 3."""
    from nst_core.engine.images import as_loaded

    if isinstance(image, (str, os.PathLike)):
        return _load(os.fspath(image), os.path.getmtime(image))  # read once per process
    try:
        import torch

        if isinstance(image, torch.Tensor):
            return image.detach().float().squeeze(0).permute(1, 2, 0).cpu().numpy()
    except ImportError:
        pass
    return as_loaded(image, "image").rgb


def _key(rgb):
    return hashlib.blake2b(np.ascontiguousarray(rgb, dtype=np.float32).tobytes(), digest_size=16).hexdigest()


def default_references(content):
    """The example photos other than ``content`` (compared by pixels)."""
    key = _key(_rgb_array(content))
    return [path for path in EXAMPLE_PHOTOS if _key(_rgb_array(path)) != key]


class Evaluator:
    """Scores images; keeps the network and the per-(content, style) targets between calls."""

    def __init__(self, weights=None, weights_format="caffe", backbone="vgg16", size=EVAL_LONG_SIDE):
        import torch

        from nst_core.engine import weights as weights_mod
        from nst_core.engine.backbone import VGGFeatures, deepest_index

        weights = weights or weights_path()
        if weights is None:
            raise SystemExit(f"no VGG-16 weights: {SHARED_WEIGHTS} is absent and NST_TEST_WEIGHTS is unset")
        self.torch = torch
        self.source = weights_mod.resolve(backbone, weights, weights_format, download=False)
        last = deepest_index(self.source.architecture, list(STYLE_LAYERS) + [CONTENT_LAYER])
        features = weights_mod.load_features(self.source, last)
        self.net = VGGFeatures(self.source.architecture, features, self.source.preprocessing).float()
        self.size = size
        self._cache = {}

    # ----- features -----------------------------------------------------------------------------

    def _tensor(self, image, fit_to=None):
        """1 x 3 x H x W float32 at the evaluation size (``fit_to``: an exact (w, h), else long side)."""
        from nst_core.engine.images import resize, to_tensor
        from nst_core.engine.schedule import fit_long_side

        rgb = _rgb_array(image)
        tensor = to_tensor(rgb.astype(np.float32), "cpu")
        target = fit_to or fit_long_side((rgb.shape[1], rgb.shape[0]), self.size)
        return resize(tensor, target)

    def _features(self, tensor):
        from nst_core.engine.losses import gram_matrix

        with self.torch.no_grad():
            acts = self.net(tensor, list(STYLE_LAYERS) + [CONTENT_LAYER])
            grams = {name: gram_matrix(acts[name]).float() for name in STYLE_LAYERS}
            return grams, acts[CONTENT_LAYER].float()

    @staticmethod
    def _style_raw(grams, style_grams):
        values = [float((grams[n] - style_grams[n]).pow(2).sum() / style_grams[n].pow(2).sum()) for n in STYLE_LAYERS]
        return sum(values) / len(values)

    @staticmethod
    def _content_raw(features, content_features):
        return float((features - content_features).pow(2).sum() / content_features.pow(2).sum())

    def _targets(self, content, style, references):
        content_rgb = _rgb_array(content)
        style_rgb = _rgb_array(style)
        refs = [_rgb_array(r) for r in references]
        key = (_key(content_rgb), _key(style_rgb), tuple(_key(r) for r in refs))
        if key not in self._cache:
            content_t = self._tensor(content_rgb)
            size = (content_t.shape[-1], content_t.shape[-2])
            content_grams, content_feats = self._features(content_t)
            style_grams, _ = self._features(self._tensor(style_rgb))
            style_scale = self._style_raw(content_grams, style_grams)
            content_scale = sum(self._content_raw(self._features(self._tensor(r, size))[1], content_feats)
                                for r in refs) / len(refs)
            self._cache[key] = (size, style_grams, content_feats, style_scale, content_scale)
        return self._cache[key]

    def __call__(self, output, content, style, reference_photo=None):
        """(style distance, content distance) of ``output``; see the module's docstring."""
        if reference_photo is None:
            references = default_references(content)
        elif isinstance(reference_photo, (list, tuple)):
            references = list(reference_photo)
        else:
            references = [reference_photo]
        if not references:
            raise ValueError("at least one unrelated photo is needed for the content scale")
        size, style_grams, content_feats, style_scale, content_scale = self._targets(content, style, references)
        grams, feats = self._features(self._tensor(output, size))
        style = self._style_raw(grams, style_grams) / style_scale
        return style, self._content_raw(feats, content_feats) / content_scale


_DEFAULT = []


def evaluate(output, content, style, reference_photo=None):
    """(style distance, content distance) of ``output`` with the real VGG-16, at the evaluation size.

    Images: paths, PIL images, H x W x 3 arrays or 1 x 3 x H x W tensors (0..255).
    ``reference_photo``: the unrelated photo(s) for the content scale; default ``default_references``.
    """
    if not _DEFAULT:
        _DEFAULT.append(Evaluator())
    return _DEFAULT[0](output, content, style, reference_photo)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="+", help="stylised image(s) to judge")
    parser.add_argument("--content", required=True)
    parser.add_argument("--style", required=True)
    parser.add_argument("--reference", nargs="+", help="unrelated photo(s); default: the other example photos")
    parser.add_argument("--weights", help="VGG-16 Caffe-format weights (default: NST_TEST_WEIGHTS or the shared file)")
    parser.add_argument("--size", type=int, default=EVAL_LONG_SIDE, help="evaluation long side (keep 256 to compare)")
    args = parser.parse_args(argv)
    judge = Evaluator(args.weights, size=args.size)
    print(f"{'image':<40} {'style':>7} {'content':>8}  good (style <= {GOOD_STYLE}, content <= {GOOD_CONTENT})")
    for path in args.output:
        style, content = judge(path, args.content, args.style, args.reference)
        good = "yes" if is_good(style, content) else "no"
        print(f"{os.path.basename(path):<40} {style:>7.3f} {content:>8.3f}  {good}")


if __name__ == "__main__":
    main()
