"""Collection rules shared by the test suite and the package's doctests (``--doctest-modules``)."""
import importlib.util
from pathlib import Path

#: Modules whose docstring examples need an optional package (``pip install -e .[spandrel]``).
_OPTIONAL = {"einops.py": "einops"}


def pytest_ignore_collect(collection_path: Path, config):
    """Skip what the doctests cannot run here: test fixtures, and modules whose optional package is not installed."""
    if collection_path.name == "fixtures" and collection_path.parent.name == "tests":
        return True  # files the tests copy into a user's folder (mynet.py)
    if collection_path.suffix != ".py" or "graphprune" not in collection_path.parts:
        return None
    needs = _OPTIONAL.get(collection_path.name)
    if needs and importlib.util.find_spec(needs) is None:
        return True
    return None
