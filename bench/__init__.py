"""Benchmark harness: the service against a minimal floor app, same machine, same run."""
