"""The rich renderings of the commands: progress displays and result tables."""
