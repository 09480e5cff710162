"""The total loss of one scale: content, style (SSIM-weighted) and TV terms over the picture and the
smaller copies the pyramid matches too."""

from torch import nn

from .losses import ContentLoss, StyleLoss, TVLoss


class Objective(nn.Module):
    """The total loss at one scale: alpha * content + beta * sum_l w_l * style_l + tv * TV.

    ``copies``: (size, content targets, Gram targets) of each smaller copy of the image that is matched
    too (``StyleParams.pyramid``): the content and style terms are then each the mean over the
    image and its copies, so every copy keeps the balance the strength was calibrated for.
    """

    def __init__(self, content_targets, style_grams, params, copies=()):
        super().__init__()
        normalize = params.loss_normalization == "target"

        def content_losses(targets):
            return nn.ModuleDict({name: ContentLoss(target, normalize) for name, target in targets.items()})

        def style_losses(grams):
            return nn.ModuleDict(
                {name: StyleLoss(gram, normalize, params.use_ssim, params.ssim_scaling, params.ssim_window,
                                 params.ssim_sigma, params.ssim_implementation) for name, gram in grams.items()})

        self.content_losses = content_losses(content_targets)
        self.style_losses = style_losses(style_grams)
        self.copy_sizes = [tuple(size) for size, _, _ in copies]
        self.copy_content = nn.ModuleList([content_losses(targets) for _, targets, _ in copies])
        self.copy_style = nn.ModuleList([style_losses(grams) for _, _, grams in copies])
        self.layer_weights = dict(zip(params.style_layers, params.layer_weights()))
        self.content_weight, self.style_weight = params.weights()  # given, or those of the strength
        self.tv_weight = params.tv_weight
        self.tv = TVLoss()

    @property
    def layers(self):
        return list(self.content_losses) + [n for n in self.style_losses if n not in self.content_losses]

    def _content(self, losses, features, zero):
        return sum((loss(features[name]) for name, loss in losses.items()), zero)

    def _style(self, losses, features, zero):
        style, factors = zero, []
        for name, loss in losses.items():
            value, factor = loss(features[name])
            style = style + self.layer_weights[name] * value
            factors.append(factor)
        return style, factors

    def forward(self, features, image, copy_features=()):
        """``features``: the image's, by layer; ``copy_features``: those of each smaller copy, in order.
        The reported SSIM factors are the full-size image's."""
        zero = image.new_zeros(())
        content = self._content(self.content_losses, features, zero)
        style, factors = self._style(self.style_losses, features, zero)
        for content_losses, style_losses, copy in zip(self.copy_content, self.copy_style, copy_features):
            content = content + self._content(content_losses, copy, zero)
            style = style + self._style(style_losses, copy, zero)[0]
        levels = 1 + len(self.copy_sizes)
        content, style = content / levels, style / levels
        tv = self.tv(image) if self.tv_weight > 0 else zero
        total = self.content_weight * content + self.style_weight * style + self.tv_weight * tv
        return total, {"content": content, "style": style, "tv": tv, "factors": factors}
