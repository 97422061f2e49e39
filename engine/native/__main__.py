"""``python -m engine.native``: compile the native kernels for the installed PyTorch."""

from __future__ import annotations

import sys

from engine import native


def main() -> int:
    if not native.supported():
        print("native kernels: not built on this platform; Dia Studio uses PyTorch's kernels", file=sys.stderr)
        return 0
    try:
        path = native.build(verbose="-v" in sys.argv)
    except Exception as exc:  # noqa: BLE001 - any compiler/toolchain failure: report, app still works
        print(f"native kernels not built ({exc.__class__.__name__}: {str(exc).strip()[:400]});"
              " Dia Studio will use PyTorch's kernels (slower on the CPU)", file=sys.stderr)
        return 1
    state = native.isa()
    print(f"native kernels: {path} ({state or 'not loadable'})")
    return 0 if state else 1


if __name__ == "__main__":
    sys.exit(main())
