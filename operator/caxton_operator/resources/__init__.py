"""Pure builders: a CaxtonCluster spec in, the Kubernetes objects that run it out."""
