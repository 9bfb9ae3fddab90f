"""The TUI's widgets, one per concept: array map (+ legend), cell detail, action form, campaign panel,
remote watch, log, status bar, help."""
