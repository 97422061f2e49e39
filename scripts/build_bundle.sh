#!/usr/bin/env bash
# Build the self-contained desktop bundle: dist/dia-studio/ (PyInstaller onedir, CPU torch).
#   scripts/build_bundle.sh          then: scripts/check_bundle.sh
# Needs the project venv (scripts/setup.sh) and, on Linux, libportaudio2 + the libxcb-* packages
# on the build machine (setup.sh installs them) so PyInstaller can copy them into the bundle.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
PYINSTALLER_VERSION=6.22.3
if ! .venv/bin/python -c "import PyInstaller, sys; sys.exit(PyInstaller.__version__ != '$PYINSTALLER_VERSION')" 2>/dev/null; then
  echo "Installing PyInstaller $PYINSTALLER_VERSION into .venv"
  .venv/bin/pip install -q "pyinstaller==$PYINSTALLER_VERSION" pyinstaller-hooks-contrib
fi
start=$(date +%s)
.venv/bin/pyinstaller --noconfirm --clean --log-level WARN --distpath dist --workpath build/pyinstaller build.spec
echo "Built dist/dia-studio/ in $(( $(date +%s) - start )) s ($(du -sm dist/dia-studio | cut -f1) MB)"
