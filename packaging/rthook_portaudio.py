"""PyInstaller runtime hook: make sounddevice load the PortAudio library shipped in the bundle.

sounddevice finds PortAudio with ``ctypes.util.find_library("portaudio")``, which only asks the
system's linker cache and never looks inside the bundle. On a machine without libportaudio2 the
frozen app would then fail with "PortAudio library not found". This hook answers that one lookup
with the bundled copy (``libportaudio.so.2`` on Linux) and leaves every other name alone.
"""

import ctypes.util
import glob
import os
import sys

_system_find_library = ctypes.util.find_library


def _bundled(name):
    base = getattr(sys, "_MEIPASS", None)
    if not base or name not in ("portaudio", "libportaudio"):
        return None
    patterns = ("libportaudio.so*", "libportaudio*.dylib", "libportaudio*.dll", "portaudio*.dll")
    for folder in (base, os.path.join(base, "_sounddevice_data", "portaudio-binaries")):
        for pattern in patterns:
            found = sorted(glob.glob(os.path.join(folder, pattern)))
            if found:
                return found[0]
    return None


def _find_library(name):
    return _bundled(name) or _system_find_library(name)


ctypes.util.find_library = _find_library
