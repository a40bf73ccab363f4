"""Every benchmark script still imports. They are run by hand, not by the suite, so a helper
renamed elsewhere breaks one silently (bench.deploy imported a `stop` that the tests had
renamed `stop_service`; it failed at its first line until this test)."""

import importlib
import pkgutil

import pytest

import bench

SCRIPTS = sorted(module.name for module in pkgutil.iter_modules(bench.__path__))


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_benchmark_script_imports(name: str) -> None:
    importlib.import_module(f"bench.{name}")


def test_every_script_is_found() -> None:
    assert {"run", "inprocess", "deploy", "ha_rehearsal", "fresh"} <= set(SCRIPTS)
