"""The frozen VGG feature network, cut after the deepest layer in use, with its own preprocessing.

Images enter as RGB in 0..255 whatever the weights expect: a backbone carries the preprocessing its
weights were trained with (torchvision: [0, 1] with ImageNet mean/std; Caffe: BGR, 0..255, mean
subtracted), so the optimiser's step sizes mean the same thing for every backbone.
"""

import torch
from torch import nn
from torchvision.models import vgg as tv_vgg

from ..errors import BadInput

# torchvision's VGG configurations: numbers are conv widths, "M" a 2x2 max-pool.
ARCHITECTURES = {"vgg16": tv_vgg.cfgs["D"], "vgg19": tv_vgg.cfgs["E"]}
PREPROCESSING = ("torchvision", "caffe")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def layer_names(architecture):
    """Names of ``features`` indices in the usual relu{block}_{n} style, e.g. {'relu1_1': 1, ...}."""
    names, block, conv, index = {}, 1, 0, 0
    for item in ARCHITECTURES[architecture]:
        if item == "M":
            names[f"pool{block}"] = index
            index += 1
            block, conv = block + 1, 0
        else:
            conv += 1
            names[f"conv{block}_{conv}"] = index
            names[f"relu{block}_{conv}"] = index + 1
            index += 2
    return names


def deepest_index(architecture, layers):
    names = layer_names(architecture)
    unknown = [name for name in layers if name not in names]
    if unknown:
        raise BadInput(f"unknown {architecture} layer(s) {', '.join(unknown)}; known: relu1_1 ... "
                       f"{[n for n in names if n.startswith('relu')][-1]}")
    return max(names[name] for name in layers)


def build_features(architecture, last_index):
    """``torchvision`` VGG ``features`` up to and including ``last_index``, untrained."""
    if architecture not in ARCHITECTURES:
        raise BadInput(f"unknown backbone {architecture!r}: choose vgg19 or vgg16")
    # make_layers builds only the convolutional part: the 500 MB classifier is never allocated.
    features = tv_vgg.make_layers(ARCHITECTURES[architecture], batch_norm=False)
    return features[: last_index + 1]


class Preprocess(nn.Module):
    """RGB 0..255 -> what the weights were trained on."""

    def __init__(self, kind):
        super().__init__()
        if kind not in PREPROCESSING:
            raise BadInput(f"unknown weights format {kind!r}: choose torchvision or caffe")
        self.kind = kind
        if kind == "torchvision":
            scale = torch.tensor([1.0 / (255.0 * s) for s in IMAGENET_STD])
            shift = torch.tensor([-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)])
            order = [0, 1, 2]
        else:
            scale = torch.ones(3)
            shift = -torch.tensor(CAFFE_MEAN_BGR)
            order = [2, 1, 0]
        self.register_buffer("scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", shift.view(1, 3, 1, 1), persistent=False)
        self.order = order

    def forward(self, rgb255):
        return rgb255[:, self.order] * self.scale + self.shift


class VGGFeatures(nn.Module):
    """Frozen VGG that returns the activations of the named layers in one forward pass."""

    def __init__(self, architecture, features, preprocessing):
        super().__init__()
        self.architecture = architecture
        self.preprocess = Preprocess(preprocessing)
        self.features = features
        self.names = layer_names(architecture)
        for module in self.features:
            if isinstance(module, nn.ReLU):
                # In place: the conv output and its ReLU share memory, a large saving at 2 kB/pixel.
                module.inplace = True
        self.requires_grad_(False)
        self.eval()

    @property
    def preprocessing(self):
        return self.preprocess.kind

    def forward(self, image, layers):
        """``image``: N x 3 x H x W RGB in 0..255. Returns {layer name: activation}."""
        wanted = {self.names[name]: name for name in layers}
        last = max(wanted)
        out = {}
        x = self.preprocess(image)
        for index, module in enumerate(self.features):
            x = module(x)
            if index in wanted:
                # A conv output is about to be overwritten by the in-place ReLU after it.
                out[wanted[index]] = x.clone() if wanted[index].startswith("conv") else x
            if index == last:
                break
        return out
