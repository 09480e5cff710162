# -*- coding: utf-8 -*-
"""The plug-in's client of the nst_core engine, without GIMP: it runs jobs on the engine and reads its
events (docs/PROTOCOL.md). GIMP's plug-in and the installer's demo use it.

protocol (what a job is, the Engine interface, events, messages for a person), engine_config (the
installer's config and the transport it names: make_engine), the transports subprocess_engine (an
engine process per job), http_engine (an `nst-core serve` at an address) and local_service (a warm
service on this machine), and their helpers process (pids, the engine's environment, atomic
replace), engine_log and run_folders (the run's temporary folders).

Standard library only and Python 2.7-compatible (GIMP 2.10); no GIMP, no torch. Its modules import
one another relatively, so the package works wherever its folder is put.
"""
