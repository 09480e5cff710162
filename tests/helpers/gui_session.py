"""A real GIMP 3 GUI under Xvfb in the Debian 13 chroot, driven with xdotool and looked at with
ImageMagick's `import`: the driver of tests/gimp3/test_gimp3_gui.py.

    session = GuiSession(root, work_dir, binds=[...], env={...})
    session.start(["/path/style.png", "/path/photo.png"])   # the last file's window is active
    image_window = session.wait_for_window("photo")
    session.key("slash"); session.type_text("Neural Style"); session.key("Return")
    dialog = session.wait_for_window("^Neural Style Transfer")
    shot = session.screenshot("dialog", window=dialog)       # a PNG path on the host
    session.stop()

Everything runs in a private mount namespace (unshare --mount --propagation private): /proc, /dev,
/dev/pts and the bound folders (the work folder, the checkout, the engine's Python) are mounted into
the chroot only there, so they vanish when the session ends, however it ends. Later commands
(xdotool, import, xwininfo) join that namespace with nsenter, so files they write into a bound
folder land on the host. Needs root, the chroot with tests/gimp3/build-chroot.sh's GUI packages
(.nst-chroot-gui), unshare and nsenter.
"""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

GUI_PACKAGES_MARKER = ".nst-chroot-gui"
SCREEN = (1600, 1000)

# The test HOME's gimprc: no "Keep the Embedded Working Space?" question when an image with a
# colour profile opens, no Welcome dialog, no update check over the network (option names from
# GIMP 3.0.4's /etc/gimp/3.0/gimprc and its binary's own option table).
GIMPRC = """(config-version "3.0.4")
(color-profile-policy keep)
(metadata-rotation-policy keep)
(show-welcome-dialog no)
(check-updates no)
(show-tips no)
"""


class GuiError(RuntimeError):
    pass


def gui_chroot_problem(root):
    """Why this chroot cannot run the GUI session, or None."""
    root = Path(root)
    if not (root / "usr/bin/gimp-3.0").exists():
        return "no GIMP 3 in %s (tests/gimp3/build-chroot.sh %s)" % (root, root)
    if not (root / GUI_PACKAGES_MARKER).exists():
        return ("the chroot %s lacks the GUI packages (Xvfb, xdotool, ImageMagick, openbox): run "
                "tests/gimp3/build-chroot.sh %s again" % (root, root))
    if os.geteuid() != 0:
        return "the GUI session needs root (chroot, mount, unshare)"
    for tool in ("unshare", "nsenter", "chroot", "mount"):
        if subprocess.run(["sh", "-c", "command -v %s" % tool], capture_output=True).returncode:
            return "%s is missing on this machine" % tool
    return None


def free_display(root):
    for number in range(140, 200):
        if not (Path(root) / "tmp" / (".X%d-lock" % number)).exists() and \
                not Path("/tmp/.X%d-lock" % number).exists():
            return number
    raise GuiError("no free X display number between :140 and :199")


class GuiSession(object):
    """One GIMP 3 GUI: start, find windows, click, type, screenshot, stop."""

    def __init__(self, root, work_dir, binds=(), env=None, home=None):
        self.root = str(root).rstrip("/")
        self.work_dir = Path(work_dir)
        self.home = Path(home) if home else self.work_dir / "home"
        self.binds = sorted(set([str(self.work_dir)] + [str(path) for path in binds]),
                            key=len)
        self.env = dict(env or {})
        self.display = None
        self.process = None
        self.log_path = self.work_dir / "gimp-gui.log"
        self.shots = self.work_dir / "shots"

    # -- life cycle ----------------------------------------------------------------------------

    def write_gimprc(self):
        profile = self.home / ".config" / "GIMP" / "3.0"
        profile.mkdir(parents=True, exist_ok=True)
        (profile / "gimprc").write_text(GIMPRC)

    def start(self, files, timeout=180):
        """Starts Xvfb, openbox and GIMP on `files`; returns once GIMP's first image window is
        there (the start takes about 30 s on a shared 2-core CPU)."""
        self.shots.mkdir(parents=True, exist_ok=True)
        self.write_gimprc()
        self.display = free_display(self.root)
        ready = self.work_dir / "namespace-ready"
        script = self.work_dir / "gui-session.sh"
        mounts = ["/proc", "/dev", "/dev/pts"] + self.binds
        env = ["PATH=/usr/bin:/bin", "HOME=%s" % self.home, "LANG=C.UTF-8",
               "DISPLAY=:%d" % self.display, "NO_AT_BRIDGE=1"]
        env += ["%s=%s" % item for item in sorted(self.env.items())]
        inner = ("Xvfb :{d} -screen 0 {w}x{h}x24 -nolisten tcp >{work}/xvfb.log 2>&1 &\n"
                 "for i in $(seq 100); do [ -e /tmp/.X11-unix/X{d} ] && break; sleep 0.1; done\n"
                 "openbox >{work}/openbox.log 2>&1 &\n"
                 "exec gimp-3.0 {files} >{log} 2>&1\n").format(
            d=self.display, w=SCREEN[0], h=SCREEN[1], work=self.work_dir, log=self.log_path,
            files=" ".join("'%s'" % path for path in files))
        script.write_text("\n".join([
            "set -eu",
            "R='%s'" % self.root,
        ] + ["mkdir -p \"$R%s\" && mount --bind '%s' \"$R%s\"" % (path, path, path)
             for path in mounts] + [
            "touch '%s'" % ready,
            "exec chroot \"$R\" env -i %s bash -c %s" % (
                " ".join("'%s'" % item for item in env), shell_quote(inner)),
        ]) + "\n")
        self.process = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "bash", str(script)],
            stdout=open(str(self.work_dir / "session.log"), "w"), stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.time() + 30
        while not ready.exists():
            if self.process.poll() is not None or time.time() > deadline:
                raise GuiError("the session did not start: %s"
                               % (self.work_dir / "session.log").read_text()[-2000:])
            time.sleep(0.1)
        self.wait_for_window(r"GNU Image Manipulation Program", timeout=timeout)

    def stop(self):
        """Ends GIMP, openbox, Xvfb and everything else in the session's namespace."""
        if self.process is None:
            return
        members = self.namespace_members()
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        for pid in members:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        for pid in self.namespace_members() + [self.process.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=15)
        self.process = None

    def namespace_members(self):
        """The processes in this session's mount namespace (started by it, ours to end)."""
        try:
            namespace = os.readlink("/proc/%d/ns/mnt" % self.process.pid)
        except OSError:
            return []
        members = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != self.process.pid:
                try:
                    if os.readlink("/proc/%s/ns/mnt" % entry) == namespace:
                        members.append(int(entry))
                except OSError:
                    pass
        return members

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- commands inside the session -----------------------------------------------------------

    def run(self, *argv, **kwargs):
        """A program inside the chroot, in the session's namespace, on its display."""
        if self.process is None or self.process.poll() is not None:
            raise GuiError("the GUI session is not running; GIMP's output:\n" + self.gimp_log())
        command = ["nsenter", "--target", str(self.process.pid), "--mount", "--",
                   "chroot", self.root, "env", "-i", "PATH=/usr/bin:/bin",
                   "DISPLAY=:%d" % self.display, "HOME=%s" % self.home] + list(argv)
        result = subprocess.run(command, capture_output=True, text=True,
                                timeout=kwargs.get("timeout", 60))
        if kwargs.get("check", True) and result.returncode != 0:
            raise GuiError("%s failed (%d): %s" % (" ".join(argv), result.returncode,
                                                   result.stderr.strip()))
        return result.stdout

    def gimp_log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # -- windows -------------------------------------------------------------------------------

    def find_windows(self, name_pattern):
        """Visible windows whose title matches the regular expression (xdotool's syntax)."""
        out = self.run("xdotool", "search", "--onlyvisible", "--name", name_pattern, check=False)
        return [int(line) for line in out.split()]

    def wait_for_window(self, name_pattern, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            windows = self.find_windows(name_pattern)
            if windows:
                return windows[-1]
            time.sleep(0.5)
        raise GuiError("no window named /%s/ after %d s; windows: %s\nGIMP's output:\n%s"
                       % (name_pattern, timeout, self.window_names(), self.gimp_log()[-3000:]))

    def wait_until_gone(self, window, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if window not in self.find_windows("."):
                return True
            time.sleep(0.5)
        return False

    def window_name(self, window):
        return self.run("xdotool", "getwindowname", str(window), check=False).strip()

    def window_names(self):
        return [self.window_name(window) for window in self.find_windows(".")]

    def geometry(self, window):
        """(x, y, width, height) of a window on the screen."""
        out = self.run("xdotool", "getwindowgeometry", "--shell", str(window))
        values = dict(line.split("=", 1) for line in out.split() if "=" in line)
        return (int(values["X"]), int(values["Y"]), int(values["WIDTH"]),
                int(values["HEIGHT"]))

    def top_level_windows(self):
        """{id: (x, y, width, height)} of the mapped children of the root window (menus and
        tooltips included, which have no title)."""
        out = self.run("xwininfo", "-root", "-children")
        windows = {}
        for match in re.finditer(r"^\s+(0x[0-9a-f]+) .*?(\d+)x(\d+)\+(-?\d+)\+(-?\d+)\s+\+",
                                 out, re.M):
            windows[int(match.group(1), 16)] = (int(match.group(4)), int(match.group(5)),
                                                 int(match.group(2)), int(match.group(3)))
        return windows

    def viewable(self, window):
        out = self.run("xwininfo", "-id", str(window), check=False)
        return "IsViewable" in out

    # -- input ---------------------------------------------------------------------------------

    def activate(self, window):
        self.run("xdotool", "windowactivate", "--sync", str(window), check=False)
        time.sleep(0.3)

    def key(self, *keys, **kwargs):
        """Key presses (xdotool names: "Return", "alt+i", "ctrl+f"), to the focused window."""
        self.run("xdotool", "key", "--delay", "80", *keys)
        time.sleep(kwargs.get("pause", 0.4))

    def type_text(self, text, pause=0.4):
        self.run("xdotool", "type", "--delay", "60", text)
        time.sleep(pause)

    def move(self, x, y, pause=0.2):
        self.run("xdotool", "mousemove", str(x), str(y))
        time.sleep(pause)

    def click(self, x, y, button=1, pause=0.4):
        self.run("xdotool", "mousemove", str(x), str(y), "click", str(button))
        time.sleep(pause)

    # -- looking -------------------------------------------------------------------------------

    def screenshot(self, name, window=None):
        """A PNG of the screen (or of one window) under the work folder; returns its path."""
        path = self.shots / ("%s.png" % name)
        self.run("import", "-window", str(window) if window else "root", str(path))
        return path


def shell_quote(text):
    return "'" + text.replace("'", "'\"'\"'") + "'"


# ---------------------------------------------------------------------------------------------
# The plug-in's windows


def open_dialog(session, image_window):
    """Filters > Artistic > Neural Style Transfer..., through GIMP's action search (/)."""
    session.activate(image_window)
    session.key("slash", pause=1.5)
    session.type_text("Neural Style Transfer", pause=1.5)
    deadline = time.time() + 90
    while time.time() < deadline:
        # On a busy CPU the search lists its result late, and Return before that does nothing.
        search = session.find_windows("^Search Actions$")
        if search:
            session.activate(search[-1])
            session.key("Return", pause=2.0)
        dialogs = session.find_windows("^Neural Style Transfer")
        if dialogs:
            return dialogs[-1]
        time.sleep(1.0)
    session.screenshot("00-no-dialog")
    return session.wait_for_window("^Neural Style Transfer", timeout=5)


def wait_until_no_run_window(session, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not session.find_windows("^Neural Style Transfer: "):
            return True
        time.sleep(0.5)
    return False


def layers_in_title(session, window):
    match = re.search(r"(\d+) layers?\b", session.window_name(window))
    return int(match.group(1)) if match else None
