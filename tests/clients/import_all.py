"""Import every module of a generated client package (argv: folder, package name)."""

import importlib
import pkgutil
import sys

sys.path.insert(0, sys.argv[1])
package = importlib.import_module(sys.argv[2])
failed = 0
modules = list(pkgutil.walk_packages(package.__path__, f"{sys.argv[2]}."))
for info in modules:
    try:
        importlib.import_module(info.name)
    except Exception as exc:  # noqa: BLE001 - report every module that does not import
        failed += 1
        print(f"FAILED {info.name}: {type(exc).__name__}: {exc}")
print(f"imported {len(modules) - failed} of {len(modules)} modules")
sys.exit(1 if failed else 0)
