"""The episode view: long-form work on a ``.diaproj`` project beside the quick script view.

``session`` (the open project, autosave, undo), ``rendering`` (block jobs on the app's one render
queue, episode playback across blocks), ``blocks`` (the block list's model), ``view`` (widgets),
``export_dialog`` and ``mode`` (how the main window shows it: menus, mode switch, command line).
"""
