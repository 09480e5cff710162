"""A straightforward reference implementation to measure the engine against.

Written the way the PyTorch neural-style tutorial does it: the whole VGG ``features`` (no
truncation) run layer by layer with the losses taken at the named layers, ``LBFGS([image])`` with
its defaults stepped until a number of closure evaluations is reached, pixels clamped inside the
closure, float32 throughout.
The loss terms are the engine's own modules (the same formulas), with the Gram matrix as the
tutorial computes it (one product, autograd's backward) and SSIM by the plain ``pytorch_msssim.ssim``
call that METHOD.md names, as a straightforward implementation would; the engine's faster Gram and
GramSSIM give the same values (tests/engine/test_losses.py).
"""

import time

import torch
from torchvision.models import vgg as tv_vgg

from nst_core.engine.backbone import ARCHITECTURES, Preprocess, layer_names
from nst_core.engine.losses import ContentLoss, StyleLoss
from nst_core.engine.weights import _feature_tensors, _read_state_dict


def whole_features(architecture, weights_path=None):
    """All of VGG ``features``, with the given weights or torchvision's default random init."""
    features = tv_vgg.make_layers(ARCHITECTURES[architecture])
    if weights_path:
        tensors = _feature_tensors(_read_state_dict(weights_path))
        with torch.no_grad():
            for index, module in enumerate(features):
                if isinstance(module, torch.nn.Conv2d):
                    module.weight.copy_(tensors[index]["weight"])
                    module.bias.copy_(tensors[index]["bias"])
    return features.eval().requires_grad_(False)


def tutorial_gram(features):
    """G = F F^T / (H W), float32, as the PyTorch tutorial writes it."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (h * w)


class ReferenceNST:
    def __init__(self, architecture, preprocessing, weights_path=None, device="cpu"):
        self.device = torch.device(device)
        self.preprocess = Preprocess(preprocessing).to(self.device)
        self.features = whole_features(architecture, weights_path).to(self.device)
        self.names = layer_names(architecture)

    def _activations(self, image, layers):
        wanted = {self.names[n]: n for n in layers}
        out = {}
        x = self.preprocess(image)
        for index, module in enumerate(self.features):  # every layer, as the tutorial's Sequential does
            x = module(x)
            if index in wanted:
                out[wanted[index]] = x
        return out

    def run(self, content, style, params, evaluations, optimizer="lbfgs", on_evaluation=None):
        """Optimise from the content image; ``on_evaluation(seconds, loss, image)`` after each closure call."""
        normalize = params.loss_normalization == "target"
        with torch.no_grad():
            content_acts = self._activations(content, params.content_layers)
            style_acts = self._activations(style, params.style_layers)
        content_losses = {n: ContentLoss(content_acts[n], normalize) for n in params.content_layers}
        style_losses = {n: StyleLoss(tutorial_gram(style_acts[n]), normalize, params.use_ssim, params.ssim_scaling,
                                     params.ssim_window, params.ssim_sigma, ssim_implementation="pytorch_msssim")
                        for n in params.style_layers}
        layer_weights = dict(zip(params.style_layers, params.layer_weights()))
        image = content.clone().requires_grad_(True)
        if optimizer == "lbfgs":
            opt = torch.optim.LBFGS([image])  # the tutorial's call: lr 1, max_iter 20, history 100
        else:
            opt = torch.optim.Adam([image], lr=params.learning_rate, betas=params.adam_betas, eps=params.adam_eps)
        count = [0]
        start = time.perf_counter()

        def closure():
            with torch.no_grad():
                image.clamp_(0, 255)
            opt.zero_grad()
            acts = self._activations(image, list(params.content_layers) + list(params.style_layers))
            content_term = sum(loss(acts[n]) for n, loss in content_losses.items())
            style_term = sum(layer_weights[n] * loss.compare(tutorial_gram(acts[n]))[0]
                             for n, loss in style_losses.items())
            total = params.content_weight * content_term + params.style_weight * style_term
            total.backward()
            count[0] += 1
            if on_evaluation is not None:
                on_evaluation(time.perf_counter() - start, float(total), image.detach().clone())
            return total

        while count[0] < evaluations:
            opt.step(closure)
        with torch.no_grad():
            image.clamp_(0, 255)
        return image.detach()


STRONG_CONTENT_LAYER = "relu4_2"
STRONG_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
STRONG_STYLE_WEIGHT, STRONG_CONTENT_WEIGHT = 10.0, 1.0
STRONG_MAX_ITER, STRONG_HISTORY = 100, 20


class StrongBaseline:
    """The plain loop as it is written today, done properly: a strong baseline, not the paper's raw loss.

    VGG (up to relu5_1), content relu4_2, style relu1_1..relu5_1 with Gram = F F^T / (H W); each style
    term divided by the mean square of its target Gram and the content term by the mean square of its
    target features; style weight 10 on the mean of the five style terms, content weight 1; no SSIM;
    one ``torch.optim.LBFGS(max_iter=100, history_size=20).step`` on the full-size picture, started
    from the content photo; float32 throughout, no autocast.
    """

    def __init__(self, architecture="vgg16", preprocessing="caffe", weights_path=None, device="cpu"):
        self.device = torch.device(device)
        self.preprocess = Preprocess(preprocessing).to(self.device)
        self.names = layer_names(architecture)
        self.layers = (STRONG_CONTENT_LAYER,) + STRONG_STYLE_LAYERS
        last = max(self.names[n] for n in self.layers)
        self.features = whole_features(architecture, weights_path)[: last + 1].to(self.device)
        self.wanted = {self.names[n]: n for n in self.layers}

    def activations(self, image):
        out = {}
        x = self.preprocess(image)
        for index, module in enumerate(self.features):
            x = module(x)
            if index in self.wanted:
                out[self.wanted[index]] = x
        return out

    def targets(self, content, style):
        """(content target, {layer: target Gram}), computed once before the optimisation."""
        with torch.no_grad():
            content_target = self.activations(content)[STRONG_CONTENT_LAYER]
            style_acts = self.activations(style)
            grams = {n: tutorial_gram(style_acts[n]) for n in STRONG_STYLE_LAYERS}
        return content_target, grams

    def loss(self, image, content_target, grams):
        acts = self.activations(image)
        content_term = (acts[STRONG_CONTENT_LAYER] - content_target).pow(2).mean() / content_target.pow(2).mean()
        style_terms = [(tutorial_gram(acts[n]) - g).pow(2).mean() / g.pow(2).mean() for n, g in grams.items()]
        return STRONG_CONTENT_WEIGHT * content_term + STRONG_STYLE_WEIGHT * sum(style_terms) / len(style_terms)

    def run(self, content, style, targets=None, on_evaluation=None, max_iter=STRONG_MAX_ITER):
        """Optimise from ``content`` (1 x 3 x H x W, 0..255); ``on_evaluation(seconds, loss, image)`` after
        each closure call with the image that call evaluated (clipped to 0..255 as a picture), seconds
        from the optimisation's start. Returns (image, evaluations)."""
        content_target, grams = targets if targets is not None else self.targets(content, style)
        image = content.clone().requires_grad_(True)
        opt = torch.optim.LBFGS([image], max_iter=max_iter, history_size=STRONG_HISTORY)
        count = [0]
        start = time.perf_counter()

        def closure():
            opt.zero_grad()
            total = self.loss(image, content_target, grams)
            total.backward()
            count[0] += 1
            if on_evaluation is not None:
                on_evaluation(time.perf_counter() - start, float(total.detach()), image.detach().clamp(0, 255))
            return total

        opt.step(closure)
        return image.detach().clamp(0, 255), count[0]
