"""The installer of the Neural Style Transfer plug-in for GIMP (stdlib only, Python 3.8+).

Run it as ``python3 installer/install.py``; ``--help`` lists the options and exit codes. The modules:

- ``platforms``: where things live on Linux, macOS and Windows (pure functions of home, env, platform)
- ``torch_choice``: which torch wheels fit this machine
- ``plan``: what an install will do, built from options and host facts (pure), and its preflight checks
- ``engine``: the engine's virtual environment, pip, ``doctor`` and the weights
- ``plugin_files``: building and swapping the plug-in folders so they appear complete or not at all
- ``manifest``: the record of what the installer created, which ``--uninstall`` reads
- ``install`` / ``uninstall`` / ``demo`` / ``summary``: carrying out a plan and reporting on it
- ``cli``: the command line
"""
