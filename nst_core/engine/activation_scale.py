"""Whether the backbone's activations have the scale that a run's raw settings assume.

The paper's SSIM on raw Gram matrices with a data range of 1 (``ssim_scaling="none"``) and its raw
1e3 / 1e-2 balance (``loss_normalization="raw"``) were set on Keras' VGG-19, whose weights are the
original Caffe release: BGR input in 0..255 minus the mean. torchvision's weights are another training
of the network, on RGB [0, 1] inputs normalised by mean and std (about 57 times smaller), so no fixed
factor turns their activations into the Caffe network's, and nothing here could check one (docs/METHOD.md,
section 4). So raw-Gram SSIM on trained weights that are not Caffe-format is refused with the weights
to import, and the raw formula on them is warned about. Untrained (``random``) weights are for tests:
they have no scale to keep and are let through.
"""

from ..errors import BadInput

PAPER_ARCHITECTURE = "vgg19"
# The Caffe VGG_ILSVRC_19_layers release in torchvision's layout, the network Keras' VGG-19 carries.
CAFFE_VGG19_EXAMPLE = "vgg19-d01eb7cb.pth (jcjohnson/pytorch-vgg)"


def caffe_weights_advice():
    """How to get the paper's network: the same words wherever a run needs Caffe-format weights."""
    return (f"Import Caffe-format VGG-19 weights (the original VGG release in torchvision layout, e.g. "
            f"{CAFFE_VGG19_EXAMPLE}) once with `nst-core weights import FILE --weights-format caffe`, or "
            f"pass --weights FILE --weights-format caffe for one run.")


def check(source, params):
    """Refuse, or warn about, settings that ``source``'s activations do not fit. Returns the warnings.

    ``source``: a :class:`nst_core.engine.weights.WeightsSource`; ``params``: the run's StyleParams."""
    raw_ssim = params.use_ssim and params.ssim_scaling == "none"
    raw_formula = params.loss_normalization == "raw"
    if source.kind != "file" or not (raw_ssim or raw_formula):
        return []
    if source.preprocessing != "caffe":
        if raw_ssim:
            raise BadInput(
                f"SSIM on raw Gram matrices (--ssim-scaling none, as the paper preset uses it) is defined on "
                f"the activations of the paper's network, VGG-19 with Caffe weights (BGR 0..255 minus the "
                f"mean); the weights in use take {source.preprocessing} input, a different scale, so the "
                f"factor would measure something else. {caffe_weights_advice()} Or keep these weights with "
                f"--ssim-scaling max (SSIM on the Grams divided by max|A|, the same on every backbone; then "
                f"not the paper's SSIM).")
        content_weight, style_weight = params.weights()
        return [f"the raw formula's weights (content {content_weight:g}, style {style_weight:g}) were set for "
                f"Caffe-scale activations; with {source.preprocessing}-format weights the balance differs "
                f"(the content term grows with the square of the activations, the style term with the "
                f"fourth power). {caffe_weights_advice()} Or use --loss-normalization target."]
    if source.architecture != PAPER_ARCHITECTURE:
        return [f"the paper's network is VGG-19; these Caffe-format {source.architecture.upper()} weights have its "
                f"preprocessing and activation scale but other features, so the picture differs from the "
                f"paper's. {caffe_weights_advice()}"]
    return []
