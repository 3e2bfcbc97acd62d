"""Kopf handlers: gather the world, call the pure builders, apply, write status."""
