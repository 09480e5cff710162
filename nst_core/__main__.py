import sys

from .engine.devices import prefer_passive_threads

prefer_passive_threads()  # before anything imports torch: its OpenMP runtime reads the setting on loading

from .cli import main  # noqa: E402

sys.exit(main())
