"""Rotations of a cluster's secrets, as pure planners: the CA in three confirmed phases
(`ca.py`), and the gossip key and API token through add -> primary -> drop (`ring.py`).

Each planner maps what exists (Secrets, by fingerprint or id) and what every node reports
it has loaded (`GET /v1/security`) to the next action and the status to show. Everything
it needs is in the Secrets and the status, so a restarted operator continues where it was.
"""
