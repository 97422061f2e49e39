"""The voice library window and the recorder dialog."""
