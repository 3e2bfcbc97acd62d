"""The Caxton Kopf operator (CaxtonCluster, CaxtonUpgrade, CaxtonAgent)."""
