"""Pure functions from the typed spec to child manifests, names and artifact keys."""
