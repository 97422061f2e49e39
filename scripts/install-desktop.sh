#!/usr/bin/env bash
# Linux desktop integration for the bundle: menu entry + icons under ~/.local/share (XDG), and a
# `dia-studio` command in ~/.local/bin.
#   scripts/install-desktop.sh [BUNDLE_DIR]      default: dist/dia-studio (built by scripts/build_bundle.sh)
#   scripts/install-desktop.sh --uninstall
# Move the bundle folder wherever you like first (e.g. ~/Applications/dia-studio); the entry points
# at the absolute path you give here, so run the script again after moving it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=${XDG_DATA_HOME:-$HOME/.local/share}
BIN=$HOME/.local/bin
APPS=$DATA/applications
ICONS=$DATA/icons/hicolor
SIZES="16 22 24 32 48 64 128 256 512"

refresh() {
  command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$APPS" || true
  command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t -f "$ICONS" || true
}

if [ "${1:-}" = "--uninstall" ]; then
  rm -f "$APPS/dia-studio.desktop" "$ICONS/scalable/apps/dia-studio.svg"
  for s in $SIZES; do rm -f "$ICONS/${s}x${s}/apps/dia-studio.png"; done
  [ -L "$BIN/dia-studio" ] && rm -f "$BIN/dia-studio"
  refresh
  echo "Removed the Dia Studio menu entry, icons and ~/.local/bin/dia-studio link."
  exit 0
fi

BUNDLE=$(cd "${1:-$ROOT/dist/dia-studio}" 2>/dev/null && pwd) || {
  echo "install-desktop: bundle folder ${1:-dist/dia-studio} not found; run scripts/build_bundle.sh first" >&2
  exit 1
}
EXE="$BUNDLE/dia-studio"
[ -x "$EXE" ] || { echo "install-desktop: $EXE is not an executable bundle" >&2; exit 1; }
# Icons and the .desktop template: from the source tree, or from inside the bundle.
RES="$ROOT/resources"
[ -f "$RES/dia-studio.desktop" ] || RES="$BUNDLE/_internal/resources"

mkdir -p "$APPS" "$BIN" "$ICONS/scalable/apps"
for s in $SIZES; do
  install -D -m 644 "$RES/icons/hicolor/${s}x${s}/apps/dia-studio.png" "$ICONS/${s}x${s}/apps/dia-studio.png"
done
install -m 644 "$RES/icons/dia-studio.svg" "$ICONS/scalable/apps/dia-studio.svg"
# Desktop entry Exec values quote paths with spaces in double quotes.
exec_path=$EXE
case "$EXE" in *" "*) exec_path="\"$EXE\"" ;; esac
sed -e "s|^Exec=.*|Exec=$exec_path %f|" -e "s|^TryExec=.*|TryExec=$EXE|" "$RES/dia-studio.desktop" \
  > "$APPS/dia-studio.desktop"
chmod 644 "$APPS/dia-studio.desktop"
ln -sfn "$EXE" "$BIN/dia-studio"
# .diaproj files open in Dia Studio (the MIME type the .desktop entry declares)
install -D -m 644 "$RES/dia-studio-mime.xml" "$HOME/.local/share/mime/packages/dia-studio.xml"
command -v update-mime-database >/dev/null 2>&1 && update-mime-database "$HOME/.local/share/mime" || true
refresh
echo "Installed: $APPS/dia-studio.desktop -> $EXE"
echo "Icons under $ICONS; command: $BIN/dia-studio (add ~/.local/bin to PATH if it is not)."
