"""PyInstaller entry script: the same as the ``dia-studio`` console script."""

import sys

from app.launcher import main

if __name__ == "__main__":
    sys.exit(main())
