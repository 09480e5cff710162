# Batch code for tests/gimp3/test_gimp3_gui_regions.py: runs INSIDE the real GIMP 3 GUI
# (python-fu-eval, Gimp and Gio imported), before the test drives the dialog. It builds what an
# artist would have open for a two-region run and shows it; it judges nothing.
#
# NST_GUI_SCENE names a JSON file: photo (a picture file), size ([width, height]), file (the
# image's file name, for its window title), ids (where to write the items' ids as JSON).
#   "Styles" image: the flat layers "Red" (top) and "Blue".
#   "Regions" image: the layer "Photo" (selected) and the channel "Upper" (its upper half),
#   made as a user makes one: a rectangle selected, Select > Save to Channel, Select > None.
import json
import os

import gi

gi.require_version("Gegl", "0.4")
from gi.repository import Gegl  # noqa: E402

scene = json.load(open(os.environ["NST_GUI_SCENE"]))
width, height = scene["size"]


def flat_layer(image, name, hex_colour):
    layer = Gimp.Layer.new(image, name, image.get_width(), image.get_height(),
                           Gimp.ImageType.RGB_IMAGE, 100, Gimp.LayerMode.NORMAL)
    image.insert_layer(layer, None, 0)
    Gimp.context_push()
    Gimp.context_set_foreground(Gegl.Color.new(hex_colour))
    layer.fill(Gimp.FillType.FOREGROUND)
    Gimp.context_pop()
    return layer


styles = Gimp.Image.new(48, 48, Gimp.ImageBaseType.RGB)
blue = flat_layer(styles, "Blue", "#1414e6")
red = flat_layer(styles, "Red", "#e61414")
styles.clean_all()
Gimp.Display.new(styles)

image = Gimp.Image.new(width, height, Gimp.ImageBaseType.RGB)
photo = Gimp.file_load_layer(Gimp.RunMode.NONINTERACTIVE, image,
                             Gio.File.new_for_path(scene["photo"]))
photo.set_name("Photo")
image.insert_layer(photo, None, 0)
image.select_rectangle(Gimp.ChannelOps.REPLACE, 0, 0, width, height // 2)
upper = Gimp.Selection.save(image)
upper.set_name("Upper")
Gimp.Selection.none(image)
image.set_selected_layers([photo])
image.set_file(Gio.File.new_for_path(scene["file"]))  # the window title starts with its name
image.clean_all()
Gimp.Display.new(image)
Gimp.displays_flush()
# The items' ids, for the test (it writes the last-used values with them); written last: the test
# waits for this file.
with open(scene["ids"] + ".part", "w") as ids:
    json.dump({"red": red.get_id(), "blue": blue.get_id(), "upper": upper.get_id(),
               "photo": photo.get_id()}, ids)
os.rename(scene["ids"] + ".part", scene["ids"])
