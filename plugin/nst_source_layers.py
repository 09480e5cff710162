# -*- coding: utf-8 -*-
"""The layers a run reads, for both procedures: whether a layer can be styled or be the style
(target_problem, style_problem: a message for the user, or None), and a layer's pixels as a PNG for
the engine (export_layer_png). The user's image is only read. Python 2.7-compatible.
"""

from __future__ import absolute_import, division, print_function

from nst_gimp import IMAGE_INDEXED, IMAGE_RGB, MASK_DISCARD, pdb


def item_name(item):
    return pdb.gimp_item_get_name(item)


def target_problem(image, drawable):
    """Why the active drawable cannot be styled, or None when it can."""
    if pdb.gimp_image_base_type(image) == IMAGE_INDEXED:
        return ("Only RGB and grayscale images can be styled, and this one is indexed. "
                "Convert it with Image > Mode > RGB and run the filter again.")
    if drawable is None:
        return "There is no active layer. Select the layer to style in the Layers dialog."
    if pdb.gimp_item_is_layer_mask(drawable):
        return ("The layer mask is active, not the layer. Click the layer's own thumbnail in "
                "the Layers dialog and run the filter again.")
    if not pdb.gimp_item_is_layer(drawable):
        return ("A channel is active, not a layer. Select the layer to style in the Layers "
                "dialog and run the filter again.")
    if pdb.gimp_item_is_group(drawable):
        return ("'%s' is a layer group. Select one of its layers, or merge the group first "
                "(Layer > Merge Layer Group) and run the filter again." % item_name(drawable))
    return None


def style_problem(style_layer, drawable):
    """Why this style layer cannot be used, or None when it can."""
    if style_layer is None:
        return ("Choose a style layer: the picture whose style to copy. It can be a layer of "
                "any open image, for example a painting opened as a second image.")
    if pdb.gimp_item_is_layer_mask(style_layer) or not pdb.gimp_item_is_layer(style_layer):
        return "The style must be a layer, not a channel or a layer mask: choose a layer."
    if pdb.gimp_item_is_group(style_layer):
        return ("The style layer '%s' is a layer group. Choose one of its layers, or merge the "
                "group first (Layer > Merge Layer Group)." % item_name(style_layer))
    if style_layer == drawable:
        return ("The style layer is the layer being styled. Choose another layer as the style, "
                "for example a painting opened as a second image.")
    return None


def export_layer_png(drawable, path):
    """Writes the layer's own pixels, with alpha and without its mask, to an RGB(A) PNG.

    A throw-away RGB image holds a copy of the layer at (0, 0): this drops the offsets and the
    mask, turns grayscale or indexed pixels into RGB, and leaves the user's image untouched.
    """
    width = pdb.gimp_drawable_width(drawable)
    height = pdb.gimp_drawable_height(drawable)
    scratch = pdb.gimp_image_new(width, height, IMAGE_RGB)
    try:
        copy = pdb.gimp_layer_new_from_drawable(drawable, scratch)
        pdb.gimp_image_insert_layer(scratch, copy, None, 0)
        pdb.gimp_layer_set_offsets(copy, 0, 0)
        pdb.gimp_item_set_visible(copy, True)
        if pdb.gimp_layer_get_mask(copy) is not None:
            pdb.gimp_layer_remove_mask(copy, MASK_DISCARD)
        pdb.file_png_save_defaults(scratch, copy, path, path)
    finally:
        pdb.gimp_image_delete(scratch)
    return path
