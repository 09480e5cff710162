# Batch code (run INSIDE a real GIMP 3, like e2e_batch.py) that measures the time from calling the
# plug-in's procedure to the first live preview on the canvas, as benchmarks/README.md reports it. Not a test:
# it prints figures. Parameters from the JSON file named by NST_FIRST_PREVIEW_PARAMS: content, style,
# target_size [w, h], iterations, runs, preview_log (the file NST_PREVIEW_LOG names), output.
# Run by hand (root), for example with the real VGG-16 weights and the warm local service:
#   tests/gimp3/gimp3-batch.sh --root ~/.cache/nst-gimp-dev/gimp3-trixie --home HOME --bind ... \
#     --env NST_WEIGHTS=/path/vgg16.pth --env NST_WEIGHTS_FORMAT=caffe --env NST_PREVIEW_EVERY=1 \
#     --env NST_PREVIEW_LOG=LOG --env NST_FIRST_PREVIEW_PARAMS=PARAMS tests/gimp3/first_preview_batch.py
import json
import os
import time

params = json.load(open(os.environ["NST_FIRST_PREVIEW_PARAMS"]))
figures = []
for run in range(params["runs"]):
    image = Gimp.Image.new(params["target_size"][0], params["target_size"][1], Gimp.ImageBaseType.RGB)
    layer = Gimp.file_load_layer(Gimp.RunMode.NONINTERACTIVE, image,
                                 Gio.File.new_for_path(params["content"]))
    image.insert_layer(layer, None, 0)
    layer.scale(params["target_size"][0], params["target_size"][1], False)
    style_image = Gimp.Image.new(256, 256, Gimp.ImageBaseType.RGB)
    style = Gimp.file_load_layer(Gimp.RunMode.NONINTERACTIVE, style_image,
                                 Gio.File.new_for_path(params["style"]))
    style_image.insert_layer(style, None, 0)
    procedure = Gimp.get_pdb().lookup_procedure("python-fu-nst-style-transfer")
    config = procedure.create_config()
    config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", [layer])
    config.set_property("style-layer", style)
    config.set_property("iterations", params["iterations"])  # preset standard, size 0 (512 px)
    config.set_property("device", "cpu")
    if os.path.exists(params["preview_log"]):
        os.remove(params["preview_log"])
    started = time.time()
    result = procedure.run(config)
    ended = time.time()
    lines = [json.loads(line) for line in open(params["preview_log"])] \
        if os.path.exists(params["preview_log"]) else []
    previews = [line for line in lines if line["what"] == "preview"]
    figures.append({"run": run + 1, "status": result.index(0).value_nick,
                    "first_preview_s": round(previews[0]["time"] - started, 2) if previews else None,
                    "previews": len(previews), "run_s": round(ended - started, 1)})
    print("first preview figures: %s" % figures[-1])
    image.delete()
    style_image.delete()
with open(params["output"], "w") as handle:
    json.dump(figures, handle, indent=1)
