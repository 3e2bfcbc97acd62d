"""Backups of a Caxton cluster: node snapshots, the on-disk format, destinations, verify and restore."""
