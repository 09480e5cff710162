"""The strong plain baseline (benchmarks/reference.py, StrongBaseline) on an untrained VGG-16: its loss
is the stated formula, it starts from the content photo and it lowers the loss."""

import torch
from reference import STRONG_STYLE_LAYERS, StrongBaseline, tutorial_gram  # benchmarks/ is on the pythonpath


def small_pair():
    generator = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, 48, 64, generator=generator) * 255
    style = torch.rand(1, 3, 48, 64, generator=generator) * 255  # same shape: one content term for both
    return content, style


def test_the_content_photo_has_no_content_term_and_the_style_image_no_style_term():
    torch.manual_seed(0)
    baseline = StrongBaseline(weights_path=None)
    content, style = small_pair()
    content_target, grams = baseline.targets(content, style)
    acts = baseline.activations(content)
    style_terms = [(tutorial_gram(acts[n]) - grams[n]).pow(2).mean() / grams[n].pow(2).mean()
                   for n in STRONG_STYLE_LAYERS]
    expected = 10.0 * sum(style_terms) / len(style_terms)  # content term 0: the content is its own target
    with torch.no_grad():
        assert torch.allclose(baseline.loss(content, content_target, grams), expected, rtol=1e-5)
        style_acts = baseline.activations(style)
        content_at_style = (style_acts["relu4_2"] - content_target).pow(2).mean() / content_target.pow(2).mean()
        # the style image matches its own Grams exactly: only the content term is left
        assert torch.allclose(baseline.loss(style, content_target, grams), content_at_style, rtol=1e-5)


def test_it_starts_from_the_content_and_lowers_the_loss():
    torch.manual_seed(0)
    baseline = StrongBaseline(weights_path=None)
    content, style = small_pair()
    seen = []
    image, evaluations = baseline.run(content, style, on_evaluation=lambda t, loss, x: seen.append((loss, x)),
                                      max_iter=8)
    # untrained weights give small gradients: LBFGS may stop on its tolerance before max_iter
    assert evaluations == len(seen) >= 2
    assert torch.equal(seen[0][1], content.clamp(0, 255))  # the first evaluation is of the content photo
    assert min(loss for loss, _ in seen) < seen[0][0]
    assert image.shape == content.shape and float(image.min()) >= 0 and float(image.max()) <= 255
