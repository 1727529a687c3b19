"""Where work items run: executors (one process, a pool, Ray), signals, the device, progress hooks."""
