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
