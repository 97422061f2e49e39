"""The script editor: highlighting, live validation, completion, line numbers."""
