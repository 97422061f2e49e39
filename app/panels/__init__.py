"""Side and bottom panels of the main window: cast, parameters, player, history, queue."""
