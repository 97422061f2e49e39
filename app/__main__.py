"""``python -m app`` starts the Dia Studio window."""

import sys

from app.launcher import main

sys.exit(main())
