#!/usr/bin/env bash
# Set up Dia Studio in ./.venv on a Debian/Ubuntu machine.
#   scripts/setup.sh          runtime only
#   scripts/setup.sh --dev    plus the test tools (pytest, pytest-qt, transformers as the test oracle, ...)
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

DEV=0
[ "${1:-}" = "--dev" ] && DEV=1

# System libraries: PortAudio for sounddevice, the X/EGL bits Qt needs, g++ for the native CPU
# kernels (about 2x faster decoding on the CPU), espeak-ng for test speech.
APT_PKGS="g++ libportaudio2 libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 \
libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-randr0 libxcb-render-util0 \
libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 fonts-dejavu-core"
[ "$DEV" = 1 ] && APT_PKGS="$APT_PKGS espeak-ng xvfb xauth"
if command -v apt-get >/dev/null 2>&1; then
  missing=""
  for p in $APT_PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    echo "Installing system packages:$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
else
  echo "apt-get not found: install PortAudio and Qt's X11/EGL libraries with your package manager." >&2
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# The CPU build of torch first, so the project's 'torch>=2.4' is already satisfied and pip never
# pulls the multi-GB CUDA build. GPU users: install the torch build for your CUDA first.
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/pip install -q "torch==2.13.0"

if [ "$DEV" = 1 ]; then
  .venv/bin/pip install -q -e ".[dev,stt,native]"
else
  .venv/bin/pip install -q -e ".[native]"
fi

# Native CPU kernels for the installed torch (a no-op when already built). Optional: without a
# compiler Dia Studio runs on PyTorch's own kernels, only slower on the CPU.
.venv/bin/python -m engine.native || echo "setup: continuing without the native CPU kernels" >&2
