"""``python -m biometrics.reference_holder`` -- see ``--help``."""

import sys

from biometrics.reference_holder.server import main

if __name__ == "__main__":
    sys.exit(main())
