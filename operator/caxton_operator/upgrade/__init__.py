"""Canary-then-rolling upgrades: what the roller sees (world), how it judges (gates),
what it decides (planner), and the version rules (versions)."""
