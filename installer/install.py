#!/usr/bin/env python3
"""Install the Neural Style Transfer plug-in for GIMP and its engine: python3 installer/install.py --help

Standard library only, Python 3.8+, Linux, macOS and Windows. The work is done by the nst_installer
package beside this file.
"""

import os
import sys

if sys.version_info < (3, 8):
    sys.stderr.write("The installer needs Python 3.8 or newer; this is %d.%d.\n" % sys.version_info[:2])
    sys.exit(2)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nst_installer.cli import main  # noqa: E402  (needs the path above)

if __name__ == "__main__":
    sys.exit(main())
