# -*- coding: utf-8 -*-
"""A gimpfu-compatible surface on GIMP 3, for plug-ins written against GIMP 2.10's gimpfu.

GIMP 3 has no gimpfu. This module offers the part of it that the plug-in uses (nst_gimp.py chooses
between the two): register(), main(), fail(), error, the PF_* constants, and `pdb` / `gimp` objects
whose methods have GIMP 2.10's names and return conventions but call GIMP 3's API (Gimp 3.0,
GimpUi 3.0, Gio, GLib, Gegl).

register() takes the plain gimpfu description. main() turns it into a Gimp.PlugIn subclass with one
Gimp.ImageProcedure per registration: each PF_* parameter becomes a GIMP 3 argument named like the
gimpfu one with "-" for "_" (style_layer -> style-layer), PF_OPTION becomes a choice argument (its
choices named by an optional sixth element, which gimpfu ignores, else after their labels), and in
interactive mode a GimpUi.ProcedureDialog replaces gimpfu's dialog (GIMP 3 remembers the last
values itself). When the procedure runs, the config's values are turned back into the positional
arguments a gimpfu function expects (a choice back into its index). set_dialog_options() adds what
gimpfu's dialog lacks (tooltips, the plug-in's own Help page, greyed-out choices, required layers, a
hook when the dialog opens), and run_is_interactive() tells the function whether the user's dialog
called it. The plug-in's own GIMP 3 windows beyond this surface (the run window) are nst_gimp3_ui's.

It must never be called gimpfu.py: on GIMP 2.10 it would shadow the real gimpfu. The translation
logic (argument_specs, function_args, configure_procedure, suggest_layer) imports nothing from GIMP,
so it is testable without GIMP; gi is imported only when GIMP 3 actually runs the plug-in.
Python 2.7-compatible like the rest of the plug-in (vermin checks it), although only GIMP 3 runs it.
"""

from __future__ import absolute_import, division, print_function

import re
import sys
import traceback

# The PF_* values of GIMP 2.10's gimpfu for the parameter types this shim translates (and PF_COLOR,
# which it refuses), so that code comparing them behaves the same.
PF_INT8, PF_INT16, PF_INT32 = 0, 1, 2
PF_FLOAT = 3
PF_STRING = 4
PF_COLOR = 10
PF_IMAGE = 13
PF_LAYER = 14
PF_CHANNEL = 15
PF_DRAWABLE = 16
PF_TOGGLE = 1000
PF_SLIDER = 1001
PF_SPINNER = 1002
PF_TEXT = 1009
PF_OPTION = 1013

# GIMP's int range (G_MININT..G_MAXINT) and double range, for parameters gimpfu gives no bounds.
INT_RANGE = (-2147483648, 2147483647)
DOUBLE_RANGE = (-sys.float_info.max, sys.float_info.max)


class error(RuntimeError):  # noqa: N801 - gimpfu's name
    """gimpfu.error: a failure with a message for the user."""


def fail(message):
    """gimpfu.fail: stop with a message. The procedure then returns an execution error carrying
    the message, which GIMP 3 shows to the user after an interactive run and hands to a PDB caller
    otherwise."""
    raise error(message)


# ---------------------------------------------------------------------------------------------
# Registration, as gimpfu does it


class Registration(object):
    """Everything one gimpfu register() call said."""

    def __init__(self, proc_name, blurb, help_text, author, copyright_notice, date, label,
                 image_types, params, results, function, menu):
        self.name = procedure_name(proc_name)
        self.blurb = blurb
        self.help = help_text
        self.author = author
        self.copyright = copyright_notice
        self.date = date
        self.label = label
        self.image_types = image_types
        self.params = list(params)
        self.results = list(results)
        self.function = function
        self.menu = menu
        self.dialog = DialogOptions()


class DialogOptions(object):
    """What a plug-in may add on GIMP 3 beyond gimpfu's description (set_dialog_options)."""

    def __init__(self, tooltips=None, help_page=None, unavailable_choices=None,
                 required_layers=None, several_drawables=False, on_shown=None):
        self.tooltips = dict(tooltips or {})  # gimpfu name -> the argument's blurb (its tooltip)
        self.help_page = help_page  # a local file the dialog's Help button opens
        self.unavailable_choices = dict(unavailable_choices or {})  # gimpfu name -> [choice index
        # or label]; greyed out in the dialog, still valid for scripts
        self.required_layers = dict(required_layers or {})  # gimpfu name -> message when empty
        # True: the procedure also runs with several drawables selected, and the function's
        # drawable argument is then the list of them (one selected: the drawable itself).
        self.several_drawables = bool(several_drawables)
        # Called once, without arguments, when the dialog is first shown: a plug-in can prepare
        # there what its run will need while the user chooses (it must return at once).
        self.on_shown = on_shown


REGISTRATIONS = []


def procedure_name(proc_name):
    """gimpfu's naming rule: "python-fu-" unless a known prefix is there; "-" for "_"."""
    name = proc_name.replace("_", "-")
    if not name.startswith(("python-", "extension-", "plug-in-", "file-")):
        name = "python-fu-" + name
    return name


def set_dialog_options(proc_name, tooltips=None, help_page=None, unavailable_choices=None,
                       required_layers=None, several_drawables=False, on_shown=None):
    """GIMP 3 only (gimpfu 2.10 has no such call): per-parameter tooltips, a Help page of the
    plug-in's own instead of GIMP's manual, choices to grey out in the dialog (by name, e.g.
    {"device": ["cuda"]}), and layer parameters the dialog must not close without (with what to
    tell the user), whether the function takes several selected drawables (as a list), and what
    to start when the dialog is shown (on_shown, see DialogOptions)."""
    name = procedure_name(proc_name)
    for registration in REGISTRATIONS:
        if registration.name == name:
            registration.dialog = DialogOptions(tooltips, help_page, unavailable_choices,
                                                required_layers, several_drawables, on_shown)
            return registration
    raise ValueError("set_dialog_options: %s is not registered" % proc_name)


def register(proc_name, blurb, help, author, copyright, date, label, imagetypes, params,  # noqa: A002
             results, function, menu=None, domain=None, on_query=None, on_run=None):
    """gimpfu.register with GIMP 2.10's signature; main() creates the procedures."""
    if menu is None and label and "/" in label:
        # gimpfu's old style: the whole menu path in the label.
        menu, label = label.rsplit("/", 1)
    registration = Registration(proc_name, blurb, help, author, copyright, date, label,
                                imagetypes, params, results, function, menu)
    argument_specs(registration.params)  # fail at registration, not at the first run
    if results:
        raise ValueError("nst_gimpfu3 does not support return values (results) yet")
    REGISTRATIONS[:] = [r for r in REGISTRATIONS if r.name != registration.name]
    REGISTRATIONS.append(registration)
    return registration


# ---------------------------------------------------------------------------------------------
# PF_* parameters -> GIMP 3 argument specs -> function arguments (pure, testable without GIMP)


class ArgumentSpec(object):
    """One GIMP 3 argument made from one gimpfu parameter."""

    def __init__(self, kind, name, nick, blurb, default=None, minimum=None, maximum=None,
                 choices=None):
        self.kind = kind  # int, double, boolean, string, choice, layer, drawable, channel, image
        self.name = name
        self.nick = nick
        self.blurb = blurb
        self.default = default
        self.minimum = minimum
        self.maximum = maximum
        self.choices = choices or []  # [(nick, label)] for kind == "choice"

    def __repr__(self):
        return "ArgumentSpec(%s %s)" % (self.kind, self.name)


def argument_name(gimpfu_name):
    """GIMP 3 argument names use "-": style_layer -> style-layer."""
    return gimpfu_name.replace("_", "-").lower()


def choice_nick(label):
    """A choice's GIMP 3 name when the parameter names none: the label's words before " (", lower
    case, "-" between words."""
    head = label.split(" (")[0]
    return re.sub(r"[^a-z0-9]+", "-", head.lower()).strip("-") or "choice"


def choice_nicks(labels):
    nicks = []
    for index, label in enumerate(labels):
        nick = choice_nick(label)
        if nick in nicks:
            nick = "%s-%d" % (nick, index)
        nicks.append(nick)
    return nicks


def is_whole(value):
    return isinstance(value, int) and not isinstance(value, bool)


def number_bounds(param, default_range):
    """(minimum, maximum) from a parameter's optional 5th element (lower, upper, step)."""
    if len(param) > 4 and param[4] is not None:
        return param[4][0], param[4][1]
    return default_range


def leading_image_params(params):
    """How many leading parameters GIMP 3's ImageProcedure provides itself (image, drawables)."""
    count = 0
    if len(params) > 0 and params[0][0] == PF_IMAGE:
        count = 1
        if len(params) > 1 and params[1][0] == PF_DRAWABLE:
            count = 2
    return count


def argument_specs(params, tooltips=None):
    """The GIMP 3 arguments for a gimpfu parameter list (without the leading image, drawable).
    An argument's blurb is its tooltip in GIMP 3's dialog: tooltips[name] when given, else the
    label without its mnemonic mark (gimpfu 2.10 does the same with the label)."""
    tooltips = tooltips or {}
    specs = []
    for param in params[leading_image_params(params):]:
        pf_type, name, desc = param[0], param[1], param[2]
        default = param[3] if len(param) > 3 else None
        nick = desc
        blurb = tooltips.get(name) or desc.replace("_", "")
        gimp_name = argument_name(name)
        if pf_type in (PF_INT8, PF_INT16, PF_INT32):
            low, high = number_bounds(param, INT_RANGE)
            spec = ArgumentSpec("int", gimp_name, nick, blurb, int(default or 0), low, high)
        elif pf_type == PF_FLOAT or pf_type == PF_SLIDER:
            low, high = number_bounds(param, DOUBLE_RANGE)
            spec = ArgumentSpec("double", gimp_name, nick, blurb, float(default or 0.0),
                                float(low), float(high))
        elif pf_type == PF_SPINNER:
            low, high = number_bounds(param, INT_RANGE)
            step = param[4][2] if len(param) > 4 else 1
            if all(is_whole(v) for v in (default or 0, low, high, step)):
                spec = ArgumentSpec("int", gimp_name, nick, blurb, int(default or 0), low, high)
            else:
                spec = ArgumentSpec("double", gimp_name, nick, blurb, float(default or 0.0),
                                    float(low), float(high))
        elif pf_type == PF_TOGGLE:
            spec = ArgumentSpec("boolean", gimp_name, nick, blurb, bool(default))
        elif pf_type in (PF_STRING, PF_TEXT):
            spec = ArgumentSpec("string", gimp_name, nick, blurb, default or "")
        elif pf_type == PF_OPTION:
            labels = list(param[4])
            # An optional sixth element names the choices (GIMP 2.10's gimpfu ignores it); without
            # it the names come from the labels.
            nicks = list(param[5]) if len(param) > 5 else choice_nicks(labels)
            if len(nicks) != len(labels) or len(set(nicks)) != len(nicks):
                raise ValueError("the choice names %r of %s do not match its %d options one to one"
                                 % (nicks, name, len(labels)))
            index = int(default or 0)
            if not 0 <= index < len(labels):
                raise ValueError("default %r of %s is not an index of its options" % (default, name))
            spec = ArgumentSpec("choice", gimp_name, nick, blurb, nicks[index],
                                choices=list(zip(nicks, labels)))
        elif pf_type == PF_LAYER:
            spec = ArgumentSpec("layer", gimp_name, nick, blurb)
        elif pf_type == PF_DRAWABLE:
            spec = ArgumentSpec("drawable", gimp_name, nick, blurb)
        elif pf_type == PF_CHANNEL:
            spec = ArgumentSpec("channel", gimp_name, nick, blurb)
        elif pf_type == PF_IMAGE:
            spec = ArgumentSpec("image", gimp_name, nick, blurb)
        else:
            raise ValueError("nst_gimpfu3 does not support the parameter type %r of %s yet"
                             % (pf_type, name))
        spec.gimpfu_name = name
        specs.append(spec)
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError("two parameters have the same GIMP 3 name: %s" % names)
    return specs


def function_args(specs, values):
    """The positional arguments for the gimpfu function, from the GIMP 3 config's values."""
    args = []
    for spec in specs:
        value = values.get(spec.name)
        if spec.kind == "choice":
            nicks = [nick for nick, _label in spec.choices]
            if value not in nicks:
                raise error("'%s' is not a valid %s: use one of %s"
                            % (value, spec.name, ", ".join(nicks)))
            value = nicks.index(value)
        elif spec.kind == "int":
            value = int(value)
        elif spec.kind == "double":
            value = float(value)
        elif spec.kind == "boolean":
            value = bool(value)
        elif spec.kind == "string":
            value = value or ""
        args.append(value)
    return args


def suggest_layer(image, target, open_images, layers_of, is_group):
    """A style layer to preselect in the dialog when none is set (gimpfu's layer menu also starts
    on some layer): the top layer of another open image, else another layer of this image."""
    others = [other for other in open_images if other != image]
    for candidate_image in others + [image]:
        for layer in layers_of(candidate_image):
            if layer != target and not is_group(layer):
                return layer
    return None


def configure_procedure(procedure, registration, Gimp, GObject):  # noqa: N803 - gi module names
    """Describes a registration on a GIMP 3 procedure (Gimp and GObject passed in for tests)."""
    procedure.set_image_types(registration.image_types)
    # A gimpfu function takes one drawable: no menu entry when several are selected, unless the
    # plug-in said its function takes a list of them too.
    mask = Gimp.ProcedureSensitivityMask.DRAWABLE
    if registration.dialog.several_drawables:
        mask = mask | Gimp.ProcedureSensitivityMask.DRAWABLES
    procedure.set_sensitivity_mask(mask)
    procedure.set_menu_label(registration.label)
    if registration.menu:
        procedure.add_menu_path(registration.menu)
    procedure.set_documentation(registration.blurb, registration.help, registration.name)
    procedure.set_attribution(registration.author, registration.copyright, registration.date)
    flags = GObject.ParamFlags.READWRITE
    specs = argument_specs(registration.params, registration.dialog.tooltips)
    for spec in specs:
        if spec.kind == "int":
            procedure.add_int_argument(spec.name, spec.nick, spec.blurb, spec.minimum,
                                       spec.maximum, spec.default, flags)
        elif spec.kind == "double":
            procedure.add_double_argument(spec.name, spec.nick, spec.blurb, spec.minimum,
                                          spec.maximum, spec.default, flags)
        elif spec.kind == "boolean":
            procedure.add_boolean_argument(spec.name, spec.nick, spec.blurb, spec.default, flags)
        elif spec.kind == "string":
            procedure.add_string_argument(spec.name, spec.nick, spec.blurb, spec.default, flags)
        elif spec.kind == "choice":
            choice = Gimp.Choice.new()
            for index, (nick, label) in enumerate(spec.choices):
                choice.add(nick, index, label, "")
            procedure.add_choice_argument(spec.name, spec.nick, spec.blurb, choice, spec.default,
                                          flags)
        else:
            # Object arguments may be empty: the function explains what to choose, which reads
            # better than GIMP's generic "invalid argument".
            add = getattr(procedure, "add_%s_argument" % spec.kind)
            add(spec.name, spec.nick, spec.blurb, True, flags)
    for spec in specs:
        if spec.kind in REMEMBERED_KINDS:
            # GIMP cannot keep a layer (or any item) in the last-used values (it cannot serialise
            # one): its id is kept in a string beside it, for the dialog and Filters > Repeat.
            procedure.add_string_aux_argument(
                remembered_id_name(spec.name), "Last %s id" % spec.name,
                "The id of the %s used last time, for the dialog and Filters > Repeat" % spec.kind,
                "", flags)
    return procedure


# The object arguments whose item is remembered by its id; a layer argument left empty gets a
# suggestion, a drawable one (a region item) stays empty.
REMEMBERED_KINDS = ("layer", "drawable")


def remembered_id_name(argument):
    return argument + "-last-id"


def resolve_layer(current, remembered_id, suggestion, layer_by_id):
    """The layer for a layer argument outside non-interactive runs: the value given, else the
    layer used last time if it still exists, else the suggestion (GIMP cannot store a layer in the
    last-used values, so Filters > Repeat and the dialog would otherwise start empty)."""
    if current is not None:
        return current
    try:
        layer_id = int(remembered_id or "")
    except ValueError:
        layer_id = None
    if layer_id is not None:
        layer = layer_by_id(layer_id)
        if layer is not None:
            return layer
    return suggestion()


def unavailable_nicks(spec, unavailable):
    """The GIMP 3 names of the choices to grey out, from choice names, indices or labels."""
    nicks = []
    for entry in unavailable or []:
        for index, (nick, label) in enumerate(spec.choices):
            if entry in (nick, index, label):
                nicks.append(nick)
    return nicks


def drawables_problem(label, drawables, several_allowed=False):
    """Why a run with these selected drawables cannot call the gimpfu function."""
    title = label.replace("_", "").rstrip(".")
    if not drawables:
        return "%s needs an active layer: select one in the Layers dialog." % title
    if len(drawables) > 1 and not several_allowed:
        return ("%s works on one layer at a time, and %d are selected: select just one in the "
                "Layers dialog." % (title, len(drawables)))
    return None


# ---------------------------------------------------------------------------------------------
# GIMP 3 itself (gi imported lazily)


class GiModules(object):
    """Gimp, GimpUi, Gio, GLib, GObject and Gegl, imported on first use."""

    _loaded = None

    @classmethod
    def get(cls):
        if cls._loaded is None:
            try:
                import gi
                gi.require_version("Gimp", "3.0")
                gi.require_version("Gegl", "0.4")
                from gi.repository import Gegl, Gimp, Gio, GLib, GObject
            except (ImportError, ValueError) as exc:
                raise ImportError(
                    "This plug-in needs GIMP 2.10 (with Python-Fu) or GIMP 3 (with Python 3 "
                    "plug-in support); neither gimpfu nor GIMP 3's gi module is usable here: %s"
                    % exc)
            modules = cls()
            modules.Gimp, modules.Gio, modules.GLib = Gimp, Gio, GLib
            modules.GObject, modules.Gegl = GObject, Gegl
            cls._loaded = modules
        return cls._loaded

    @staticmethod
    def gimp_ui():
        import gi
        gi.require_version("GimpUi", "3.0")
        from gi.repository import GimpUi
        return GimpUi


def gi():
    return GiModules.get()


def checked(result, what):
    """GIMP 3 calls report failure by returning False/None (and a warning on stderr)."""
    if result is None or result is False:
        raise error("GIMP could not %s." % what)
    return result


class Gimp3Pdb(object):
    """The gimpfu `pdb` calls the plug-in makes, with 2.10's names, done with GIMP 3's API."""

    def gimp_image_base_type(self, image):
        return int(image.get_base_type())

    def gimp_image_new(self, width, height, base_type):
        g = gi().Gimp
        return checked(g.Image.new(width, height, g.ImageBaseType(base_type)), "create an image")

    def gimp_image_delete(self, image):
        image.delete()

    def gimp_image_insert_layer(self, image, layer, parent, position):
        checked(image.insert_layer(layer, parent, position), "insert a layer")

    def gimp_image_remove_layer(self, image, layer):
        image.remove_layer(layer)

    def gimp_image_get_item_position(self, image, item):
        return image.get_item_position(item)

    def gimp_image_undo_group_start(self, image):
        image.undo_group_start()

    def gimp_image_undo_group_end(self, image):
        image.undo_group_end()

    # a new image (nst_animation.py)

    def gimp_image_undo_disable(self, image):
        image.undo_disable()

    def gimp_image_undo_enable(self, image):
        image.undo_enable()

    def gimp_image_is_valid(self, image):
        return image.is_valid()

    def gimp_display_new(self, image):
        return checked(gi().Gimp.Display.new(image), "show the image")

    def gimp_display_delete(self, display):
        display.delete()

    def gimp_item_get_name(self, item):
        return item.get_name()

    def gimp_item_set_name(self, item, name):
        item.set_name(name)

    def gimp_item_get_parent(self, item):
        return item.get_parent()

    def gimp_item_set_visible(self, item, visible):
        item.set_visible(bool(visible))

    def gimp_item_delete(self, item):
        item.delete()

    def gimp_item_is_layer(self, item):
        return item.is_layer()

    def gimp_item_is_group(self, item):
        return item.is_group_layer()

    def gimp_item_is_layer_mask(self, item):
        return item.is_layer_mask()

    def gimp_drawable_width(self, drawable):
        return drawable.get_width()

    def gimp_drawable_height(self, drawable):
        return drawable.get_height()

    def gimp_drawable_offsets(self, drawable):
        _ok, offset_x, offset_y = drawable.get_offsets()
        return offset_x, offset_y

    def gimp_layer_new_from_drawable(self, drawable, image):
        return checked(gi().Gimp.Layer.new_from_drawable(drawable, image), "copy the layer")

    def gimp_layer_set_offsets(self, layer, offset_x, offset_y):
        checked(layer.set_offsets(offset_x, offset_y), "move the layer")

    def gimp_layer_scale(self, layer, width, height, local_origin):
        checked(layer.scale(width, height, bool(local_origin)), "scale the layer")

    def gimp_layer_get_mask(self, layer):
        return layer.get_mask()

    def gimp_layer_create_mask(self, layer, mask_type):
        return checked(layer.create_mask(gi().Gimp.AddMaskType(mask_type)), "create a layer mask")

    def gimp_layer_add_mask(self, layer, mask):
        checked(layer.add_mask(mask), "add the layer mask")

    def gimp_layer_remove_mask(self, layer, mode):
        layer.remove_mask(gi().Gimp.MaskApplyMode(mode))

    def gimp_selection_is_empty(self, image):
        return gi().Gimp.Selection.is_empty(image)

    # regions (nst_regions.py)

    def gimp_image_width(self, image):
        return image.get_width()

    def gimp_image_height(self, image):
        return image.get_height()

    def gimp_image_get_selection(self, image):
        return checked(image.get_selection(), "read the selection")

    def gimp_image_flatten(self, image):
        return checked(image.flatten(), "flatten the image")

    def gimp_context_push(self):
        checked(gi().Gimp.context_push(), "save the context")

    def gimp_context_pop(self):
        checked(gi().Gimp.context_pop(), "restore the context")

    def gimp_context_set_background(self, color):
        g = gi()
        value = g.Gegl.Color.new("black")
        value.set_rgba(color[0] / 255.0, color[1] / 255.0, color[2] / 255.0, 1.0)
        checked(g.Gimp.context_set_background(value), "set the background colour")

    def gimp_item_is_channel(self, item):
        return item.is_channel()

    def gimp_item_get_image(self, item):
        return item.get_image()

    def gimp_layer_from_mask(self, mask):
        return checked(gi().Gimp.Layer.from_mask(mask), "find the layer of the mask")

    def gimp_drawable_histogram(self, drawable, channel, start_range, end_range):
        # GIMP 3 returns (success, mean, std_dev, median, pixels, count, percentile)
        result = drawable.histogram(gi().Gimp.HistogramChannel(channel), start_range, end_range)
        checked(result[0], "measure the region")
        return tuple(result[1:])

    def gimp_file_load_layer(self, image, filename):
        g = gi()
        layer = g.Gimp.file_load_layer(g.Gimp.RunMode.NONINTERACTIVE, image,
                                       g.Gio.File.new_for_path(filename))
        return checked(layer, "load %s" % filename)

    def file_png_save_defaults(self, image, drawable, filename, raw_filename):
        # GIMP 3 exports the image (here a one-layer scratch image); the format comes from the
        # extension, with the PNG exporter's defaults.
        g = gi()
        checked(g.Gimp.file_save(g.Gimp.RunMode.NONINTERACTIVE, image,
                                 g.Gio.File.new_for_path(filename), None),
                "export %s" % filename)

    def gimp_progress_set_text(self, text):
        gi().Gimp.progress_set_text(text)


class Gimp3Gimp(object):
    """The gimpfu `gimp` module's functions the plug-in uses."""

    def __init__(self, pdb_object):
        self.pdb = pdb_object

    def progress_init(self, text=None):
        gi().Gimp.progress_init(text or "")

    def progress_update(self, fraction):
        gi().Gimp.progress_update(float(fraction))

    def message(self, text):
        gi().Gimp.message(text)

    def displays_flush(self):
        gi().Gimp.displays_flush()


pdb = Gimp3Pdb()
gimp = Gimp3Gimp(pdb)


# What the function may ask about the run under way (run_is_interactive).
RUN_STATE = {"interactive": False}


def run_is_interactive():
    """True while the function runs on behalf of the user's dialog (not a script, not Repeat)."""
    return RUN_STATE["interactive"]


def run_registration(registration, procedure, run_mode, image, drawables, config):
    """Runs a gimpfu function as a GIMP 3 ImageProcedure; returns its return values."""
    g = gi()
    status = g.Gimp.PDBStatusType
    several_allowed = registration.dialog.several_drawables
    problem = drawables_problem(registration.label, drawables, several_allowed)
    if problem:
        return procedure.new_return_values(status.CALLING_ERROR, g.GLib.Error(problem))
    specs = argument_specs(registration.params, registration.dialog.tooltips)
    try:
        if run_mode != g.Gimp.RunMode.NONINTERACTIVE:
            fill_layer_arguments(config, specs, image, drawables[0])
        if run_mode == g.Gimp.RunMode.INTERACTIVE:
            if not show_dialog(procedure, config, registration, image, drawables[0], specs):
                return procedure.new_return_values(status.CANCEL, g.GLib.Error())
        values = dict((spec.name, config.get_property(spec.name)) for spec in specs)
        args = function_args(specs, values)
        drawable = list(drawables) if several_allowed and len(drawables) > 1 else drawables[0]
        RUN_STATE["interactive"] = run_mode == g.Gimp.RunMode.INTERACTIVE
        try:
            registration.function(image, drawable, *args)
        finally:
            RUN_STATE["interactive"] = False
        remember_layer_arguments(config, specs, values)
    except error as exc:
        return procedure.new_return_values(status.EXECUTION_ERROR, g.GLib.Error(str(exc)))
    except Exception as exc:
        traceback.print_exc()
        message = "%s failed: %s: %s" % (registration.label.rstrip("."),
                                         type(exc).__name__, exc)
        return procedure.new_return_values(status.EXECUTION_ERROR, g.GLib.Error(message))
    if run_mode != g.Gimp.RunMode.NONINTERACTIVE:
        g.Gimp.displays_flush()
    return procedure.new_return_values(status.SUCCESS, g.GLib.Error())


def suggested_layer(image, drawable):
    return suggest_layer(image, drawable, gi().Gimp.get_images(), lambda img: img.get_layers(),
                         lambda item: item.is_group_layer())


def layer_by_id(layer_id):
    g = gi()
    if not g.Gimp.Item.id_is_layer(layer_id):
        return None
    return g.Gimp.Layer.get_by_id(layer_id)


def drawable_by_id(item_id):
    g = gi()
    if not g.Gimp.Item.id_is_drawable(item_id):
        return None
    return g.Gimp.Item.get_by_id(item_id)


def fill_layer_arguments(config, specs, image, drawable):
    """Layer (and drawable) arguments GIMP could not restore (see resolve_layer), for the dialog
    and for Filters > Repeat (run with last values)."""
    for spec in specs:
        if spec.kind not in REMEMBERED_KINDS:
            continue
        if spec.kind == "drawable":
            suggestion, by_id = (lambda: None), drawable_by_id
        else:
            suggestion, by_id = (lambda: suggested_layer(image, drawable)), layer_by_id
        layer = resolve_layer(config.get_property(spec.name),
                              config.get_property(remembered_id_name(spec.name)),
                              suggestion, by_id)
        if layer is not None:
            config.set_property(spec.name, layer)


def remember_layer_arguments(config, specs, values):
    for spec in specs:
        if spec.kind in REMEMBERED_KINDS and values.get(spec.name) is not None:
            config.set_property(remembered_id_name(spec.name), str(values[spec.name].get_id()))


def open_help_page(path, parent):
    """The plug-in's own help page in the desktop's browser (GIMP's Help would look for a GIMP
    manual page that does not exist)."""
    g = gi()
    try:
        g.Gio.AppInfo.launch_default_for_uri(g.Gio.File.new_for_path(path).get_uri(), None)
        return None
    except Exception as exc:  # no browser, no desktop: say where the page is
        return "Could not open the help page %s (%s). Open it in a web browser." % (path, exc)


def show_message(parent, title, text):
    """A warning over the dialog, which stays open behind it."""
    import gi as gi_module
    gi_module.require_version("Gtk", "3.0")
    from gi.repository import Gtk
    message = Gtk.MessageDialog(transient_for=parent, modal=True,
                                message_type=Gtk.MessageType.WARNING,
                                buttons=Gtk.ButtonsType.CLOSE, text=text, title=title)
    message.run()
    message.destroy()


def show_dialog(procedure, config, registration, image, drawable, specs):
    """GIMP 3's generated dialog for the arguments; False when the user cancels."""
    g = gi()
    GimpUi = GiModules.gimp_ui()
    GimpUi.init(registration.name)
    options = registration.dialog
    layer_specs = [spec for spec in specs if spec.kind == "layer"]
    for spec in specs:
        nicks = unavailable_nicks(spec, options.unavailable_choices.get(spec.gimpfu_name))
        if spec.kind == "choice" and nicks:
            if config.get_property(spec.name) in nicks:
                config.set_property(spec.name, spec.default)
            choice = g.Gimp.param_spec_choice_get_choice(config.find_property(spec.name))
            for nick in nicks:
                choice.set_sensitive(nick, False)

    dialog = GimpUi.ProcedureDialog(procedure=procedure, config=config)
    dialog.fill([spec.name for spec in specs])  # not the aux arguments (remembered layer ids)
    title = registration.label.replace("_", "").rstrip(".")
    refreshing = []

    def restore_suggestion(spec):
        # Reset > Factory Defaults empties a layer argument: suggest one again.
        if config.get_property(spec.name) is None:
            layer = suggested_layer(image, drawable)
            if layer is not None:
                config.set_property(spec.name, layer)
        return False

    def on_layer_changed(_config, _pspec, spec):
        if not refreshing and config.get_property(spec.name) is None:
            g.GLib.idle_add(restore_suggestion, spec)

    def refresh_choosers():
        # GIMP 3.0's GimpDrawableChooser draws its thumbnail at the size the widget has when the
        # value is set: a value set before the dialog was shown stays invisible. Set it again.
        refreshing.append(True)
        try:
            for spec in layer_specs:
                layer = config.get_property(spec.name)
                if layer is not None:
                    config.set_property(spec.name, None)
                    config.set_property(spec.name, layer)
        finally:
            refreshing.pop()
        return False

    def on_help(_button):
        problem = open_help_page(options.help_page, dialog)
        if problem:
            show_message(dialog, "%s: help" % title, problem)

    def on_response(widget, response):
        if response == GTK_RESPONSE_OK:
            for spec in layer_specs:
                message = options.required_layers.get(spec.gimpfu_name)
                if message and config.get_property(spec.name) is None:
                    # Keep the dialog open and say what to choose, instead of closing it on an
                    # error that loses the settings.
                    widget.stop_emission_by_name("response")
                    show_message(widget, title, message)
                    return

    for spec in layer_specs:
        config.connect("notify::%s" % spec.name, on_layer_changed, spec)
    dialog.connect("map", lambda _widget: g.GLib.timeout_add(150, refresh_choosers))
    if options.on_shown is not None:
        shown = []

        def on_map(_widget):
            if shown:
                return
            shown.append(True)
            try:
                options.on_shown()
            except Exception:  # a preparation that fails must not take the dialog with it
                traceback.print_exc()
        dialog.connect("map", on_map)
    dialog.connect("response", on_response)
    if options.help_page:
        replace_help_button(dialog, on_help)
    accepted = dialog.run()
    dialog.destroy()
    return accepted


def replace_help_button(dialog, on_help):
    """Puts a Help button of our own where GimpDialog's is: GIMP's opens the GIMP manual's page for
    the procedure (seen in 3.0.4: "GIMP user manual is missing"), and it does not go through the
    dialog's response signal, so it cannot be intercepted there."""
    import gi as gi_module
    gi_module.require_version("Gtk", "3.0")
    from gi.repository import Gtk
    gimps = dialog.get_widget_for_response(GTK_RESPONSE_HELP)
    if gimps is None:
        return None
    box = gimps.get_parent()
    ours = Gtk.Button.new_with_mnemonic("_Help")
    box.add(ours)
    if isinstance(box, Gtk.ButtonBox):
        box.set_child_secondary(ours, box.get_child_secondary(gimps))
    box.reorder_child(ours, box.get_children().index(gimps))
    gimps.set_no_show_all(True)
    gimps.hide()  # hidden, it is no mnemonic target either: Alt+H reaches ours
    ours.connect("clicked", on_help)
    ours.show()
    return ours


# Gtk.ResponseType values (GTK 3), without importing Gtk where it is not needed.
GTK_RESPONSE_OK, GTK_RESPONSE_HELP = -5, -11


def make_plugin_class():
    """The Gimp.PlugIn subclass that serves every registration."""
    g = gi()

    class GimpfuShimPlugIn(g.Gimp.PlugIn):
        __gtype_name__ = "NstGimpfuShimPlugIn"

        def do_query_procedures(self):
            return [registration.name for registration in REGISTRATIONS]

        def do_set_i18n(self, name):
            return False

        def do_create_procedure(self, name):
            for registration in REGISTRATIONS:
                if registration.name == name:
                    return self.create_procedure(registration)
            return None

        def create_procedure(self, registration):
            def run(procedure, run_mode, image, drawables, config, data):
                return run_registration(registration, procedure, run_mode, image, drawables,
                                        config)

            procedure = g.Gimp.ImageProcedure.new(self, registration.name,
                                                  g.Gimp.PDBProcType.PLUGIN, run, None)
            return configure_procedure(procedure, registration, g.Gimp, g.GObject)

    return GimpfuShimPlugIn


def main():
    """gimpfu.main: hands the registered procedures to GIMP 3."""
    plugin_class = make_plugin_class()
    gi().Gimp.main(plugin_class.__gtype__, sys.argv)
