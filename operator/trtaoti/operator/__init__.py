"""The Kopf operator: thin handlers that feed a work queue of level-based reconciles."""
