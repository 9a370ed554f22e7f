"""Cross-file checks: repository model, object store, connectivity, mirror policy."""
