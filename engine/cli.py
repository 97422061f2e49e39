"""The ``dia-studio`` command-line subcommands (``render``, ``voices`` ...)."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dia-studio", description="Dia Studio: render spoken dialogue with Dia.")
    parser.add_subparsers(dest="command")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:
        build_parser().print_help()
        return 2
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
