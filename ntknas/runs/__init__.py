"""The run commands: correlate, track, the score command, the demo, folder summaries."""
