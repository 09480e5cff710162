# -*- coding: utf-8 -*-
"""The engine client's configuration and its transport factory: reads the installer's config beside
the plug-in (nst_config.json, overridden by NST_ENGINE_PYTHON and NST_ENGINE_SERVICE) and makes the
engine that runs the jobs (make_engine): an engine process per run (subprocess_engine), a warm service on
this machine (local_service) or a service elsewhere (http_engine), all with protocol.Engine's
interface. The plug-in and the installer's demo start here.

Pure Python that runs unchanged on GIMP 2.10's Python 2.7 and on GIMP 3's Python 3: no GIMP import,
no torch.
"""

from __future__ import absolute_import, division, print_function

import io
import json
import os

from . import engine_log
from .http_engine import HttpEngine
from .local_service import LocalServiceEngine
from .process import WINDOWS
from .protocol import CONFIG_FILE_NAME, ENGINE_PYTHON_ENV, EngineError
from .subprocess_engine import SubprocessEngine

# Overrides the config's engine_service ("local", "off" or a URL), e.g. to try a run without the service.
ENGINE_SERVICE_ENV = "NST_ENGINE_SERVICE"

# Where the engine's log goes in log_dir (the installer's demo reads it from here).
LOG_FILE_NAME = engine_log.LOG_FILE_NAME


# ---------------------------------------------------------------------------------------------
# Configuration written by the installer


# nst_config.json's keys for the transport (docs/SERVICE.md, "GIMP and the service"):
#   engine_service: "local" (the default: a warm `nst-core serve` on this machine, started by the
#       first run, local_service.LocalServiceEngine), "off" (an engine process per run,
#       subprocess_engine.SubprocessEngine) or the http(s):// address of a service elsewhere
#       (http_engine.HttpEngine);
#   engine_service_token_file: that service's token file (a copy of it on this machine);
#   engine_service_idle_minutes: how long the local service waits for the next job before it exits.
SERVICE_LOCAL = "local"
SERVICE_OFF = "off"
DEFAULT_SERVICE_IDLE_MINUTES = 15


class EngineConfig(object):
    """Where the engine's Python is, where its log goes, and which transport runs the jobs."""

    def __init__(self, engine_python, log_dir, version, source, service=SERVICE_LOCAL,
                 service_token_file="", service_idle_minutes=DEFAULT_SERVICE_IDLE_MINUTES):
        self.engine_python = engine_python
        self.log_dir = log_dir
        self.version = version
        self.source = source  # where engine_python came from, for messages
        self.service = service
        self.service_token_file = service_token_file
        self.service_idle_minutes = service_idle_minutes


def config_path(plugin_dir):
    return os.path.join(plugin_dir, CONFIG_FILE_NAME)


def read_config_file(path):
    """The installer's JSON config as a dict; {} when the file does not exist."""
    if not os.path.exists(path):
        return {}
    try:
        with io.open(path, "r", encoding="utf-8") as handle:
            data = json.load(handle)
    except (IOError, OSError, ValueError) as exc:
        raise EngineError(
            "not_configured",
            "The plug-in's configuration %s could not be read (%s). Run the installer again to "
            "rewrite it." % (path, exc))
    if not isinstance(data, dict):
        raise EngineError(
            "not_configured",
            "The plug-in's configuration %s is not a JSON object. Run the installer again to "
            "rewrite it." % path)
    return data


def find_program(name, environ):
    """`name` when it is a path, else its first match on PATH (shutil.which is not in 2.7)."""
    if os.path.dirname(name):
        return name
    for folder in environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
        if WINDOWS and os.path.isfile(candidate + ".exe"):
            return candidate + ".exe"
    return name


def load_config(plugin_dir, environ=None):
    """Reads the config beside the plug-in; NST_ENGINE_PYTHON overrides its engine_python."""
    environ = os.environ if environ is None else environ
    path = config_path(plugin_dir)
    data = read_config_file(path)
    override = environ.get(ENGINE_PYTHON_ENV, "").strip()
    if override:
        engine_python, source = override, "the %s environment variable" % ENGINE_PYTHON_ENV
    else:
        engine_python, source = data.get("engine_python"), path
    if not engine_python:
        raise EngineError(
            "not_configured",
            "The Neural Style Transfer engine is not set up: %s %s. Run the installer "
            "(python3 installer/install.py) to install the engine and write this file, or set "
            "%s to the Python that has nst_core installed."
            % (path, "has no engine_python entry" if data else "does not exist",
               ENGINE_PYTHON_ENV))
    engine_python = find_program(engine_python, environ)
    if not os.path.isfile(engine_python):
        raise EngineError(
            "engine_missing",
            "The engine's Python was not found at %s (named in %s). The engine may have been "
            "moved or uninstalled: run the installer again, or set %s to the Python that has "
            "nst_core installed." % (engine_python, source, ENGINE_PYTHON_ENV))
    service_override = environ.get(ENGINE_SERVICE_ENV, "").strip()
    if service_override:
        data = dict(data, engine_service=service_override)
        path = "%s (engine_service from the %s environment variable)" % (path, ENGINE_SERVICE_ENV)
    service, token_file, idle_minutes = service_settings(data, path)
    return EngineConfig(engine_python, data.get("log_dir") or "", data.get("version") or "",
                        source, service, token_file, idle_minutes)


def service_settings(data, path):
    """(engine_service, engine_service_token_file, engine_service_idle_minutes) of the config,
    checked, with their defaults."""
    service = data.get("engine_service")
    if service is None or service == "":
        service = SERVICE_LOCAL
    text_types = (type(u""), type(""))
    lowered = service.strip().lower() if isinstance(service, text_types) else None
    if lowered in (SERVICE_LOCAL, SERVICE_OFF):
        service = lowered
    elif lowered is not None and lowered.startswith(("http://", "https://")):
        service = service.strip().rstrip("/")
    else:
        raise EngineError(
            "not_configured",
            "engine_service in %s is %r: write \"local\" (a warm engine service on this computer), "
            "\"off\" (an engine process per run) or the address of an nst-core serve, such as "
            "\"https://gpu.example.org\"." % (path, service))
    token_file = data.get("engine_service_token_file") or ""
    if service not in (SERVICE_LOCAL, SERVICE_OFF) and not token_file:
        raise EngineError(
            "not_configured",
            "engine_service in %s names the service %s but no engine_service_token_file: copy the "
            "service's token file to this computer and name it there (or run the installer with "
            "--server URL --token-file FILE)." % (path, service))
    if token_file:
        token_file = os.path.expanduser(token_file)
    idle = data.get("engine_service_idle_minutes", DEFAULT_SERVICE_IDLE_MINUTES)
    if isinstance(idle, bool) or not isinstance(idle, (int, float)) or not idle > 0:
        raise EngineError(
            "not_configured",
            "engine_service_idle_minutes in %s is %r: write a number of minutes above 0 (default "
            "%d)." % (path, idle, DEFAULT_SERVICE_IDLE_MINUTES))
    return service, token_file, float(idle)


def make_engine(config, fallback_log_dir):
    """The engine that runs the jobs, as engine_service says (a protocol.Engine)."""
    if config.service == SERVICE_OFF:
        return SubprocessEngine(config.engine_python, config.log_dir, fallback_log_dir)
    if config.service == SERVICE_LOCAL:
        return LocalServiceEngine(config, fallback_log_dir)
    return HttpEngine(config.service, config.service_token_file, config.log_dir, fallback_log_dir)
