"""A process kubelet: runs the pods bound to its Nodes as local processes.

No container runtime exists on this machine, so each container's command runs as
a process in its own mount namespace (volumes bind-mounted at their mountPaths) on
a loopback address of its own, with probes, restarts and status like a kubelet's.
"""
