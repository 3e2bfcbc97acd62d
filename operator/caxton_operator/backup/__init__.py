"""CaxtonBackup: the pure planner of a backup run."""
