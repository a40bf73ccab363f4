"""The change feed (every committed write as a thin CloudEvent) and its broker relay."""
