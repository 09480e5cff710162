"""An in-memory test double of GIMP 2.10's gimpfu, for the plug-in's unit tests.

It offers what the plug-in imports from gimpfu (register, main, pdb, gimp, fail, PF_*) over a small
model of GIMP: images with a layer tree, layers with pixels (PIL images), offsets, visibility, masks,
layer groups, channels, a selection, undo groups, displays, progress and messages. The pdb functions
keep GIMP's rules that matter here (an item belongs to one image, a mask to one layer, undo groups
nest, an image with a display goes with it) and raise when a call breaks them, so a plug-in bug
shows as a test failure, not as a silent pass.

    world = FakeGimp()
    module = world.as_module()           # install as sys.modules["gimpfu"]
    image = world.new_image(200, 100)
    layer = world.add_layer(image, "photo", 80, 60, offsets=(10, 20), color=(200, 30, 30, 255))
"""

import itertools
import types

from PIL import Image

# gimpfu 2.10's parameter types (gimpfu.py): the plug-in compares against these.
PF_INT8, PF_INT16, PF_INT32 = 0, 1, 2
PF_INT = PF_INT32
PF_FLOAT = 3
PF_STRING = 4
PF_IMAGE, PF_LAYER, PF_CHANNEL, PF_DRAWABLE = 13, 14, 15, 16
PF_TOGGLE = PF_BOOL = 1000
PF_SLIDER = 1001
PF_SPINNER = 1002
PF_FILE = 1004
PF_OPTION = 1013

RGB, GRAY, INDEXED = 0, 1, 2
ADD_ALPHA_MASK = 2
ADD_SELECTION_MASK = 4
MASK_APPLY, MASK_DISCARD = 0, 1


class FakeGimpError(RuntimeError):
    """A call GIMP itself would refuse (the plug-in broke a rule)."""


class error(RuntimeError):  # noqa: N801 - gimpfu's name
    """gimpfu.error"""


_ids = itertools.count(1)


class FakeImage(object):
    def __init__(self, width, height, base_type):
        self.id = next(_ids)
        self.width = width
        self.height = height
        self.base_type = base_type
        self.layers = []  # top-level items, top first
        self.selection = None  # (x, y, w, h) in image coordinates, or None
        self.undo_depth = 0
        self.undo_groups_closed = 0
        self.undo_steps = 0
        self.undo_enabled = True
        self.deleted = False
        self.channels = []

    def __repr__(self):
        return "<FakeImage %d %dx%d>" % (self.id, self.width, self.height)


class FakeDisplay(object):
    def __init__(self, image):
        self.id = next(_ids)
        self.image = image


class FakeItem(object):
    """A layer, layer group, channel or layer mask."""

    def __init__(self, kind, name, width, height, pixels=None):
        self.id = next(_ids)
        self.kind = kind  # "layer", "group", "channel", "mask"
        self.name = name
        self.width = width
        self.height = height
        self.offsets = (0, 0)
        self.visible = True
        self.image = None
        self.parent = None
        self.children = []  # groups only
        self.mask = None  # layers only
        self.owner = None  # masks only: their layer
        self.deleted = False
        self.pixels = pixels if pixels is not None else Image.new("RGBA", (width, height))

    def __repr__(self):
        return "<Fake%s %r>" % (self.kind.capitalize(), self.name)


class FakePdb(object):
    """gimpfu's `pdb`: the procedures the plug-in calls, GIMP 2.10 names and return values."""

    def __init__(self, world):
        self._world = world
        self.calls = []
        self.fail_on = {}  # procedure name -> exception to raise (to test failure paths)

    def __getattribute__(self, name):
        attribute = object.__getattribute__(self, name)
        if not name.startswith("_") and callable(attribute) and name != "calls":
            failures = object.__getattribute__(self, "fail_on")
            calls = object.__getattribute__(self, "calls")

            def recorded(*args):
                calls.append((name, args))
                if name in failures:
                    raise failures[name]
                return attribute(*args)
            return recorded
        return attribute

    # images

    def gimp_image_new(self, width, height, base_type):
        return self._world.new_image(width, height, base_type)

    def gimp_image_delete(self, image):
        self._world.check_image(image)
        if any(display.image is image for display in self._world.displays):
            raise FakeGimpError("%r has a display: delete the display" % image)
        image.deleted = True
        self._world.images.remove(image)

    def gimp_image_base_type(self, image):
        return self._world.check_image(image).base_type

    def gimp_image_insert_layer(self, image, layer, parent, position):
        self._world.check_image(image)
        if layer.image is not None and layer.image is not image:
            raise FakeGimpError("layer %r belongs to another image" % layer)
        if layer in self._world.all_items(image):
            raise FakeGimpError("layer %r is already in the image" % layer)
        if layer.kind not in ("layer", "group"):
            raise FakeGimpError("only layers can be inserted, not %r" % layer)
        siblings = image.layers if parent is None else parent.children
        if parent is not None and (parent.kind != "group" or parent.image is not image):
            raise FakeGimpError("parent %r is not a group of this image" % parent)
        position = max(0, min(position, len(siblings)))
        siblings.insert(position, layer)
        layer.image = image
        layer.parent = parent
        if image.base_type == GRAY:
            layer.pixels = to_gray(layer.pixels)

    def gimp_image_remove_layer(self, image, layer):
        siblings = self._world.siblings(image, layer)
        siblings.remove(layer)
        layer.deleted = True

    def gimp_image_get_item_position(self, image, item):
        return self._world.siblings(image, item).index(item)

    def gimp_image_undo_group_start(self, image):
        self._world.check_image(image).undo_depth += 1

    def gimp_image_undo_group_end(self, image):
        if image.undo_depth <= 0:
            raise FakeGimpError("undo group end without start")
        image.undo_depth -= 1
        image.undo_groups_closed += 1
        if image.undo_depth == 0:
            image.undo_steps += 1  # what one Edit > Undo takes back

    def gimp_image_undo_disable(self, image):
        self._world.check_image(image).undo_enabled = False

    def gimp_image_undo_enable(self, image):
        self._world.check_image(image).undo_enabled = True

    def gimp_image_is_valid(self, image):
        return int(isinstance(image, FakeImage) and not image.deleted and image in self._world.images)

    def gimp_display_new(self, image):
        self._world.check_image(image)
        if self._world.headless:
            raise FakeGimpError("no display in batch mode")
        display = FakeDisplay(image)
        self._world.displays.append(display)
        return display

    def gimp_display_delete(self, display):
        """As GIMP's: the image goes with its last display."""
        self._world.displays.remove(display)
        if not [other for other in self._world.displays if other.image is display.image]:
            self.gimp_image_delete(display.image)

    def gimp_selection_is_empty(self, image):
        return int(self._world.check_image(image).selection is None)

    def gimp_image_width(self, image):
        return self._world.check_image(image).width

    def gimp_image_height(self, image):
        return self._world.check_image(image).height

    def gimp_image_get_selection(self, image):
        """The selection as a channel of the image's size (white inside)."""
        self._world.check_image(image)
        pixels = Image.new("L", (image.width, image.height), 0)
        if image.selection is not None:
            x, y, w, h = image.selection
            pixels.paste(255, (x, y, x + w, y + h))
        channel = FakeItem("channel", "Selection Mask", image.width, image.height, pixels)
        channel.image = image
        return channel

    def gimp_image_flatten(self, image):
        """Every visible layer over the context's background colour, clipped to the image."""
        self._world.check_image(image)
        flat = Image.new("RGBA", (image.width, image.height), tuple(self._world.background) + (255,))
        for layer in reversed(image.layers):
            if layer.visible:
                canvas = Image.new("RGBA", flat.size, (0, 0, 0, 0))
                canvas.paste(layer.pixels.convert("RGBA"), tuple(layer.offsets))  # clipped
                flat = Image.alpha_composite(flat, canvas)
            layer.deleted = True
        item = FakeItem("layer", "Flattened", image.width, image.height, flat.convert("RGB"))
        item.image = image
        image.layers = [item]
        return item

    def gimp_context_push(self):
        self._world.context_stack.append(tuple(self._world.background))

    def gimp_context_pop(self):
        if not self._world.context_stack:
            raise FakeGimpError("context pop without push")
        self._world.background = self._world.context_stack.pop()

    def gimp_context_set_background(self, color):
        self._world.background = tuple(color)

    # items

    def gimp_item_get_name(self, item):
        return self._world.check_item(item).name

    def gimp_item_set_name(self, item, name):
        self._world.check_item(item).name = name

    def gimp_item_get_parent(self, item):
        return self._world.check_item(item).parent

    def gimp_item_set_visible(self, item, visible):
        self._world.check_item(item).visible = bool(visible)

    def gimp_item_delete(self, item):
        if item.image is not None and item in self._world.all_items(item.image):
            raise FakeGimpError("cannot delete %r: it is in an image" % item)
        item.deleted = True

    def gimp_item_is_layer(self, item):
        return int(self._world.check_item(item).kind in ("layer", "group"))

    def gimp_item_is_group(self, item):
        return int(self._world.check_item(item).kind == "group")

    def gimp_item_is_layer_mask(self, item):
        return int(self._world.check_item(item).kind == "mask")

    def gimp_item_is_channel(self, item):
        return int(self._world.check_item(item).kind in ("channel", "mask"))

    def gimp_item_get_image(self, item):
        return self._world.check_item(item).image

    def gimp_layer_from_mask(self, mask):
        if self._world.check_item(mask).kind != "mask":
            raise FakeGimpError("%r is not a layer mask" % mask)
        return mask.owner

    def gimp_drawable_histogram(self, drawable, channel, start_range, end_range):
        """(mean, std_dev, median, pixels, count, percentile) of the value, 0..255 as in GIMP 2.10."""
        values = bytearray(self._world.check_item(drawable).pixels.convert("L").tobytes())
        mean = float(sum(values)) / max(1, len(values))
        return mean, 0.0, 0.0, float(len(values)), float(len(values)), 1.0

    # drawables and layers

    def gimp_drawable_width(self, drawable):
        return self._world.check_item(drawable).width

    def gimp_drawable_height(self, drawable):
        return self._world.check_item(drawable).height

    def gimp_drawable_offsets(self, drawable):
        return tuple(self._world.check_item(drawable).offsets)

    def gimp_layer_new_from_drawable(self, drawable, image):
        source = self._world.check_item(drawable)
        self._world.check_image(image)
        kind = "group" if source.kind == "group" else "layer"
        copy = FakeItem(kind, source.name + " copy", source.width, source.height,
                        source.pixels.convert("RGBA").copy())
        copy.offsets = source.offsets
        copy.visible = source.visible
        copy.image = image
        if source.mask is not None:
            copy.mask = FakeItem("mask", source.mask.name, source.width, source.height,
                                 source.mask.pixels.copy())
            copy.mask.owner = copy
            copy.mask.image = image
        if image.base_type == GRAY:
            copy.pixels = to_gray(copy.pixels)
        return copy

    def gimp_layer_set_offsets(self, layer, offset_x, offset_y):
        if self._world.check_item(layer).kind not in ("layer", "group"):
            raise FakeGimpError("%r is not a layer" % layer)
        layer.offsets = (int(offset_x), int(offset_y))

    def gimp_layer_scale(self, layer, width, height, local_origin):
        self._world.check_item(layer)
        layer.pixels = layer.pixels.resize((width, height))
        layer.width, layer.height = width, height

    def gimp_layer_get_mask(self, layer):
        return self._world.check_item(layer).mask

    def gimp_layer_create_mask(self, layer, mask_type):
        self._world.check_item(layer)
        if mask_type == ADD_ALPHA_MASK:
            item = FakeItem("mask", layer.name + " mask", layer.width, layer.height,
                            layer.pixels.convert("RGBA").getchannel("A"))
            item.image = layer.image
            return item
        if mask_type != ADD_SELECTION_MASK:
            raise FakeGimpError("the double only makes masks from the selection or the alpha")
        mask = Image.new("L", (layer.width, layer.height), 0)
        image = layer.image
        if image is not None and image.selection is not None:
            x, y, w, h = image.selection
            left, top = x - layer.offsets[0], y - layer.offsets[1]
            mask.paste(255, (left, top, left + w, top + h))
        item = FakeItem("mask", layer.name + " mask", layer.width, layer.height, mask)
        item.image = image
        return item

    def gimp_layer_add_mask(self, layer, mask):
        self._world.check_item(layer)
        if layer.mask is not None:
            raise FakeGimpError("%r already has a mask" % layer)
        if (mask.width, mask.height) != (layer.width, layer.height):
            raise FakeGimpError("mask size differs from the layer's")
        layer.mask = mask
        mask.owner = layer

    def gimp_layer_remove_mask(self, layer, mode):
        if self._world.check_item(layer).mask is None:
            raise FakeGimpError("%r has no mask" % layer)
        layer.mask.deleted = True
        layer.mask = None

    # files

    def file_png_save_defaults(self, image, drawable, filename, raw_filename):
        self._world.check_image(image)
        if drawable.image is not image:
            raise FakeGimpError("drawable %r is not in image %r" % (drawable, image))
        drawable.pixels.save(filename, "PNG")

    def gimp_file_load_layer(self, image, filename):
        self._world.check_image(image)
        pixels = Image.open(filename)
        pixels.load()
        pixels = pixels.convert("RGBA")
        layer = FakeItem("layer", filename.split("/")[-1], pixels.size[0], pixels.size[1],
                         pixels)
        layer.image = image
        return layer

    # progress

    def gimp_progress_set_text(self, text):
        self._world.progress_texts.append(text)


class FakeGimpModule(object):
    """gimpfu's `gimp` module: progress and messages."""

    def __init__(self, world):
        self._world = world

    def progress_init(self, text=None):
        self._world.progress_texts.append(text)
        self._world.progress_values.append(0.0)

    def progress_update(self, fraction):
        if not 0.0 <= fraction <= 1.0:
            raise FakeGimpError("progress %r out of 0..1" % fraction)
        self._world.progress_values.append(fraction)

    def message(self, text):
        self._world.messages.append(text)

    def displays_flush(self):
        self._world.flushes += 1


class FakeGimp(object):
    """One GIMP session: its images, and the gimpfu module the plug-in sees."""

    def __init__(self):
        self.images = []
        self.displays = []
        self.headless = False  # True: gimp_display_new fails, as in GIMP's batch mode
        self.registrations = []
        self.progress_texts = []
        self.progress_values = []
        self.messages = []
        self.flushes = 0
        self.main_called = False
        self.background = (255, 255, 255)  # the context's background colour
        self.context_stack = []
        self.pdb = FakePdb(self)
        self.gimp = FakeGimpModule(self)

    # building a scene

    def new_image(self, width, height, base_type=RGB):
        image = FakeImage(width, height, base_type)
        self.images.append(image)
        return image

    def add_layer(self, image, name, width, height, offsets=(0, 0), color=(128, 128, 128, 255),
                  parent=None, position=0, kind="layer"):
        pixels = Image.new("RGBA", (width, height), color)
        # A little structure so that "pixels differ" means something.
        for x in range(0, width, 4):
            pixels.putpixel((x, x * height // max(width, 1)), (0, 0, 0, 255))
        layer = FakeItem(kind, name, width, height, pixels)
        layer.offsets = offsets
        layer.image = image
        layer.parent = parent
        siblings = image.layers if parent is None else parent.children
        siblings.insert(position, layer)
        return layer

    def add_mask(self, layer):
        mask = FakeItem("mask", layer.name + " mask", layer.width, layer.height,
                        Image.new("L", (layer.width, layer.height), 255))
        mask.image = layer.image
        mask.owner = layer
        layer.mask = mask
        return mask

    def add_channel(self, image, name, box=None, size=None):
        """A channel of the image (or of `size`), grey 128, or white inside box (x0, y0, x1, y1)
        and black outside; listed in image.channels."""
        width, height = size or (image.width, image.height)
        pixels = Image.new("L", (width, height), 128 if box is None else 0)
        if box is not None:
            pixels.paste(255, box)
        channel = FakeItem("channel", name, width, height, pixels)
        channel.image = image
        image.channels.append(channel)
        return channel

    # rules

    def check_image(self, image):
        if not isinstance(image, FakeImage) or image.deleted or image not in self.images:
            raise FakeGimpError("not a live image: %r" % (image,))
        return image

    def check_item(self, item):
        if not isinstance(item, FakeItem) or item.deleted:
            raise FakeGimpError("not a live item: %r" % (item,))
        return item

    def all_items(self, image):
        found = []

        def walk(items):
            for item in items:
                found.append(item)
                walk(item.children)
        walk(image.layers)
        return found

    def siblings(self, image, item):
        self.check_image(image)
        siblings = image.layers if item.parent is None else item.parent.children
        if item not in siblings:
            raise FakeGimpError("%r is not in image %r" % (item, image))
        return siblings

    def layer_stack(self, image):
        """[(depth, name, kind, width, height, offsets)] top to bottom, for comparisons."""
        stack = []

        def walk(items, depth):
            for item in items:
                stack.append((depth, item.name, item.kind, item.width, item.height,
                              item.offsets, item.mask is not None))
                walk(item.children, depth + 1)
        walk(image.layers, 0)
        return stack

    # gimpfu's functions

    def register(self, proc_name, blurb, help, author, copyright, date, label,  # noqa: A002
                 imagetypes, params, results, function, menu=None, domain=None,
                 on_query=None, on_run=None):
        for param in params:
            if len(param) < 4:
                raise error("parameter definition must contain at least 4 elements")
        self.registrations.append(dict(
            proc_name=proc_name, blurb=blurb, help=help, label=label, imagetypes=imagetypes,
            params=params, results=results, function=function, menu=menu))

    def main(self):
        self.main_called = True

    def fail(self, message):
        # gimpfu.fail: a message, then an exception (GIMP reports an execution error).
        self.gimp.message(message)
        raise error(message)

    def as_module(self):
        module = types.ModuleType("gimpfu")
        for name, value in globals().items():
            if name.startswith("PF_") or name in ("RGB", "GRAY", "INDEXED",
                                                  "ADD_SELECTION_MASK", "MASK_APPLY",
                                                  "MASK_DISCARD", "error"):
                setattr(module, name, value)
        module.register = self.register
        module.main = self.main
        module.fail = self.fail
        module.pdb = self.pdb
        module.gimp = self.gimp
        module.world = self
        return module


def to_gray(pixels):
    """A GRAY image's layers hold grey pixels (kept as RGBA here, like a converted layer)."""
    alpha = pixels.getchannel("A")
    gray = pixels.convert("L").convert("RGBA")
    gray.putalpha(alpha)
    return gray
