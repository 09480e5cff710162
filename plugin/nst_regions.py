# -*- coding: utf-8 -*-
"""Regions in GIMP: which style paints where (docs/PROTOCOL.md "Regions"; docs/PLUGIN.md).

A region is a channel (a saved selection: Select > Save to Channel), a layer mask, a layer's alpha,
or the current selection; the dialog has a few fixed region rows (gimpfu's parameter list is
fixed, and fixed parameters are what Filters > Repeat remembers). Each region becomes a grey PNG
in the run folder, aligned to the layer being styled: a channel and the selection are in image
coordinates, a layer mask and a layer's alpha in their layer's, and the target layer may be offset
or smaller than the image. White paints that region's style, black keeps the photo.

No GIMP import here: the caller passes gimpfu's `pdb` (GIMP 2.10's, or nst_gimpfu3's on GIMP 3), so
the module runs on both and in the tests' fake GIMP. Python 2.7-compatible, no torch.
"""

from __future__ import absolute_import, division, print_function

import os

from nst_client import protocol

# (name, label) of a region row's source; the names are what a script passes on GIMP 3.
SOURCE_OFF, SOURCE_ITEM, SOURCE_ALPHA, SOURCE_SELECTION, SOURCE_REST = (
    "off", "item", "alpha", "selection", "rest")
SOURCE_CHOICES = (
    (SOURCE_OFF, "Off"),
    (SOURCE_ITEM, "Region item: a channel or a layer mask (a layer: its mask, else its alpha)"),
    (SOURCE_ALPHA, "Region item's alpha (a layer)"),
    (SOURCE_SELECTION, "The current selection"),
    (SOURCE_REST, "What the other region leaves"),
)
# The first row is the style layer's region; each further row brings its own style layer. The
# labels' mnemonics also avoid F: Alt+F is Factory Defaults in the Reset button's menu.
ROW_COUNT = 2
WEIGHT_RANGE = (0.0, 4.0)
WEIGHT_DEFAULT = 1.0

# GIMP enum values, the same numbers in GIMP 2.10 and 3 (GimpImageBaseType, GimpAddMaskType,
# GimpHistogramChannel); the GIMP 3 shim turns them into enum objects.
IMAGE_RGB = 0
ADD_MASK_ALPHA = 2
HISTOGRAM_VALUE = 0
BLACK = (0, 0, 0)


def region_parameters(pf_option, pf_drawable, pf_layer, pf_slider):
    """The region rows as gimpfu parameters (the PF_* values of the gimpfu in use are passed in),
    appended after the one-style parameters so that scripts written for those keep working."""
    labels = tuple(label for _name, label in SOURCE_CHOICES)
    names = tuple(name for name, _label in SOURCE_CHOICES)
    weights = WEIGHT_RANGE + (0.1,)
    parameters = [
        (pf_option, "region", "Re_gion of the style layer", 0, labels, names),
        (pf_drawable, "region_item", "Its regio_n item (channel, layer mask or layer)", None),
        (pf_slider, "region_weight", "Its region _weight (1 = as the style strength says)", WEIGHT_DEFAULT, weights),
    ]
    for row in range(2, ROW_COUNT + 1):
        parameters += [
            (pf_option, "region%d" % row, "Region _%d" % row, 0, labels, names),
            (pf_drawable, "region%d_item" % row, "Region %d item (ch_annel, layer mask or layer)" % row, None),
            (pf_layer, "region%d_style" % row, "Region %d style layer (any open image; _unused when Off)" % row, None),
            (pf_slider, "region%d_weight" % row, "Region %d weight (_by default 1)" % row, WEIGHT_DEFAULT, weights),
        ]
    return parameters


TOOLTIPS = {
    "region": "Where the style layer paints. Off: everywhere (or, when region 2 is on, everywhere "
              "region 2 leaves). A region is a channel (Select > Save to Channel), a layer mask, a "
              "layer's alpha, or the current selection; white paints, black keeps your picture.",
    "region_item": "The channel, layer mask or layer that holds the region (for 'Region item' and "
                   "'Region item's alpha').",
    "region_weight": "How hard the style paints its region: 1 as the style strength says, 0.5 "
                     "half, 2 twice. Same time.",
    "region2": "A second style in its own region, painted in the same run (no seam where the two "
               "meet). Off: one style only, as fast as before.",
    "region2_item": "The channel (Select > Save to Channel), layer mask or layer that holds region "
                    "2, for 'Region item' and 'Region item's alpha'. A channel must have this "
                    "image's size; a layer or mask must be in this image.",
    "region2_style": "The style layer that paints region 2: a layer of any open image (open the "
                     "painting as a second image), not the layer being styled. Unused while region "
                     "2 is Off.",
    "region2_weight": "How hard region 2's style paints its region: 1 as the style strength says, "
                      "0.5 half, 2 twice. It costs no time.",
}


class Region(object):
    """One region row in use: its source, the item that holds it (None for the selection and the
    rest), its style layer and weight, and how a message names it."""

    def __init__(self, label, source, item, style_layer, weight):
        self.label = label
        self.source = source
        self.item = item
        self.style_layer = style_layer
        self.weight = float(weight)


def source_name(index, what):
    try:
        index = int(index)
    except (TypeError, ValueError):
        index = -1
    if not 0 <= index < len(SOURCE_CHOICES):
        raise protocol.EngineError(
            "bad_parameter", "The %s must be a number from 0 to %d (got %r)."
            % (what, len(SOURCE_CHOICES) - 1, index))
    return SOURCE_CHOICES[index][0]


def read_rows(style_layer, row1, row2):
    """The regions in use, from the rows' values (row1: (source index, item, weight); row2:
    (source index, item, style layer, weight)); [] when every row is off: no regions, the one-style
    run of before. When only the further rows are on, the style layer takes what they leave."""
    source1 = source_name(row1[0], "region of the style layer")
    source2 = source_name(row2[0], "region 2")
    if source1 == SOURCE_OFF and source2 == SOURCE_OFF:
        return []
    first = Region("The style layer's region", source1, row1[1], style_layer, row1[2])
    if source1 == SOURCE_OFF:
        first.source = SOURCE_REST
    regions = [first]
    if source2 != SOURCE_OFF:
        regions.append(Region("Region 2", source2, row2[1], row2[2], row2[3]))
    return regions


def rows_problem(pdb, image, regions, style_problem):
    """Why these regions cannot be painted, or None; style_problem(layer) says why a style layer
    cannot be used. Checked before anything changes, so a refusal leaves the image as it was."""
    rests = [region for region in regions if region.source == SOURCE_REST]
    if len(rests) > 1:
        return "Only one region can be 'What the other region leaves': set the other to a region."
    if len(rests) == len(regions):
        return ("'What the other region leaves' needs another region: set the other row to a "
                "channel, a layer mask, a layer's alpha or the selection, or set this one Off.")
    for region in regions:
        if region.style_layer is None:
            return ("%s has no style: choose its style layer, or set it Off." % region.label)
        problem = style_problem(region.style_layer)
        if problem:
            return "%s: %s" % (region.label, problem)
        problem = item_problem(pdb, image, region)
        if problem:
            return problem
    if not any(region.weight > 0 for region in regions):
        return "Every region weight is 0: give at least one region a weight above 0."
    return None


def item_problem(pdb, image, region):
    """Why a region's item cannot hold it, or None."""
    if region.source == SOURCE_SELECTION:
        if pdb.gimp_selection_is_empty(image):
            return ("%s is the current selection, and nothing is selected. Select the region "
                    "(or choose a saved one: a channel) and run the filter again." % region.label)
        return None
    if region.source not in (SOURCE_ITEM, SOURCE_ALPHA):
        return None
    item = region.item
    if item is None:
        return ("%s needs its region item: choose the channel, layer mask or layer that holds "
                "it." % region.label)
    name = pdb.gimp_item_get_name(item)
    is_mask = pdb.gimp_item_is_layer_mask(item)
    if region.source == SOURCE_ALPHA and not pdb.gimp_item_is_layer(item):
        return ("%s is the alpha of '%s', which is a %s, not a layer: choose a layer, or 'Region "
                "item' for a channel or a layer mask." % (region.label, name,
                                                          "layer mask" if is_mask else "channel"))
    if pdb.gimp_item_is_layer(item) and pdb.gimp_item_is_group(item):
        return ("%s: '%s' is a layer group. Choose a layer, a layer mask or a channel."
                % (region.label, name))
    if not is_mask and not pdb.gimp_item_is_layer(item):  # a channel: image coordinates
        size = (pdb.gimp_drawable_width(item), pdb.gimp_drawable_height(item))
        image_size = (pdb.gimp_image_width(image), pdb.gimp_image_height(image))
        if size != image_size:
            return ("%s: the channel '%s' is %dx%d, and this image is %dx%d: a channel of another "
                    "image size cannot mark a region here. Save the region from this image "
                    "(Select > Save to Channel)." % ((region.label, name) + size + image_size))
        return None
    if pdb.gimp_item_get_image(item) != image:
        return ("%s: '%s' belongs to another image. A layer or layer mask region must be in the "
                "image being styled (copy it there), or save the region as a channel."
                % (region.label, name))
    return None


def export_region_png(pdb, image, region, target, path):
    """Writes the region as a grey PNG of the target layer's size, aligned to it (black where the
    region's item does not reach), and returns its path; REST_MASK for the rest. The user's image
    is not changed: the pixels are copied into a throw-away image."""
    if region.source == SOURCE_REST:
        return protocol.REST_MASK
    width = pdb.gimp_drawable_width(target)
    height = pdb.gimp_drawable_height(target)
    target_x, target_y = pdb.gimp_drawable_offsets(target)
    scratch = pdb.gimp_image_new(width, height, IMAGE_RGB)
    pdb.gimp_context_push()
    try:
        pdb.gimp_context_set_background(BLACK)  # what flattening puts where the region is not
        grey, (left, top) = region_copy(pdb, image, region, scratch)
        pdb.gimp_layer_set_offsets(grey, left - target_x, top - target_y)
        flat = pdb.gimp_image_flatten(scratch)
        mean = pdb.gimp_drawable_histogram(flat, HISTOGRAM_VALUE, 0.0, 1.0)[0]
        if not mean > 0:
            raise protocol.EngineError(
                "bad_input", "%s (%s) does not cover any of the layer '%s': move or redraw the "
                "region so that it covers part of the layer, or set the row Off."
                % (region.label, describe(pdb, region), pdb.gimp_item_get_name(target)))
        pdb.file_png_save_defaults(scratch, flat, path, path)
    finally:
        pdb.gimp_context_pop()
        pdb.gimp_image_delete(scratch)
    return path


def region_copy(pdb, image, region, scratch):
    """A grey layer in `scratch` holding the region's pixels, and where its top-left corner lies in
    the image's coordinates."""
    if region.source == SOURCE_SELECTION:
        return insert_copy(pdb, pdb.gimp_image_get_selection(image), scratch), (0, 0)
    item = region.item
    if pdb.gimp_item_is_layer_mask(item):
        layer = pdb.gimp_layer_from_mask(item)
        return insert_copy(pdb, item, scratch), pdb.gimp_drawable_offsets(layer)
    if not pdb.gimp_item_is_layer(item):  # a channel
        return insert_copy(pdb, item, scratch), (0, 0)
    offsets = pdb.gimp_drawable_offsets(item)
    mask = pdb.gimp_layer_get_mask(item)
    if region.source == SOURCE_ITEM and mask is not None:
        return insert_copy(pdb, mask, scratch), offsets
    # The alpha: a copy of the layer gets a mask from its alpha, and that mask is the region.
    copy = insert_copy(pdb, item, scratch)
    if pdb.gimp_layer_get_mask(copy) is not None:
        pdb.gimp_layer_remove_mask(copy, 1)  # MASK_DISCARD: its alpha alone
    alpha = pdb.gimp_layer_create_mask(copy, ADD_MASK_ALPHA)
    pdb.gimp_layer_add_mask(copy, alpha)
    grey = insert_copy(pdb, alpha, scratch)
    pdb.gimp_image_remove_layer(scratch, copy)
    return grey, offsets


def insert_copy(pdb, drawable, scratch):
    copy = pdb.gimp_layer_new_from_drawable(drawable, scratch)
    pdb.gimp_image_insert_layer(scratch, copy, None, 0)
    pdb.gimp_item_set_visible(copy, True)
    return copy


def describe(pdb, region):
    if region.source == SOURCE_SELECTION:
        return "the selection"
    return "'%s'" % pdb.gimp_item_get_name(region.item)


def region_files(pdb, image, regions, target, run_dir, suffix=""):
    """The masks of one target's run, in the regions' order."""
    return [export_region_png(pdb, image, region, target,
                              os.path.join(run_dir, "region-%d%s.png" % (index, suffix)))
            for index, region in enumerate(regions)]
