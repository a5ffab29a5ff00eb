"""Long-running loops (watchers, exporters)."""
