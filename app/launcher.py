"""Entry point of the ``dia-studio`` command.

With a subcommand (``render``, ``voices`` ...) it runs the engine's CLI and never loads Qt;
without one it starts the desktop window.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and not argv[0].startswith("--self-test"):
        from engine.cli import main as cli_main

        return cli_main(argv)
    from app.main import main as app_main

    return app_main(argv)


if __name__ == "__main__":
    sys.exit(main())
