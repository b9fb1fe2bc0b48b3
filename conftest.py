"""Collection rules shared by the test suite and the package's doctests (``--doctest-modules``)."""
import importlib.util
from pathlib import Path

_ALIAS = "sys.modules[__name__] = _moved"
#: Modules whose docstring examples need an optional package (``pip install -e .[spandrel]``).
_OPTIONAL = {"einops.py": "einops"}


def pytest_ignore_collect(collection_path: Path, config):
    """Skip what has no doctests of its own to run here: old module names that alias a moved module
    (``graphprune/recipe.py``, ...), and modules whose optional package is not installed."""
    if collection_path.name == "fixtures" and collection_path.parent.name == "tests":
        return True  # files the tests copy into a user's folder (mynet.py)
    if collection_path.suffix != ".py" or "graphprune" not in collection_path.parts:
        return None
    if collection_path.parent.name in ("graphprune", "train") and _ALIAS in collection_path.read_text(encoding="utf-8"):
        return True
    needs = _OPTIONAL.get(collection_path.name)
    if needs and importlib.util.find_spec(needs) is None:
        return True
    return None
