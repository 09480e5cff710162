# Batch code for tests/gimp3/test_gimp3_gui_frames.py: runs INSIDE the real GIMP 3 GUI
# (python-fu-eval, Gimp and Gio imported), before the test drives the dialog. It opens what an
# artist would have for an animation run, and shows it; it judges nothing.
#
# NST_GUI_SCENE names a JSON file: frames (picture files, frame 1 first), names (the layers' names),
# size ([width, height] of the canvas), frame_size, offsets, style (a picture file), file (the
# animation's file name, for its window title), ready (a file written last, for the test to wait on).
#   "Style" image: the layer "Great Wave".
#   "walk" image: one layer per frame, frame 1 at the bottom, the bottom one selected.
import json
import os

scene = json.load(open(os.environ["NST_GUI_SCENE"]))


def load_layer(image, path, name, size, offsets):
    layer = Gimp.file_load_layer(Gimp.RunMode.NONINTERACTIVE, image, Gio.File.new_for_path(path))
    layer.set_name(name)
    image.insert_layer(layer, None, 0)
    layer.scale(size[0], size[1], False)
    layer.set_offsets(*offsets)
    return layer


styles = Gimp.Image.new(48, 48, Gimp.ImageBaseType.RGB)
load_layer(styles, scene["style"], "Great Wave", (48, 48), (0, 0))
styles.clean_all()
Gimp.Display.new(styles)

image = Gimp.Image.new(scene["size"][0], scene["size"][1], Gimp.ImageBaseType.RGB)
frames = [load_layer(image, path, name, scene["frame_size"], scene["offsets"])
          for path, name in zip(scene["frames"], scene["names"])]
image.set_selected_layers([frames[0]])
image.set_file(Gio.File.new_for_path(scene["file"]))  # the window title starts with its name
image.clean_all()
Gimp.Display.new(image)
Gimp.displays_flush()
with open(scene["ready"], "w") as ready:
    ready.write("shown\n")
