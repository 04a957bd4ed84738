"""Terminal UI for interactive fiction (the TUI issue builds this package)."""
