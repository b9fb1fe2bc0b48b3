"""Collection rules shared by the test suite and the package's doctests (``--doctest-modules``)."""
from pathlib import Path

_ALIAS = "sys.modules[__name__] = _moved"


def pytest_ignore_collect(collection_path: Path, config):
    """Old module names that alias a moved module (``graphprune/recipe.py``, ...) hold no doctests."""
    if collection_path.suffix == ".py" and collection_path.parent.name in ("graphprune", "train"):
        if _ALIAS in collection_path.read_text(encoding="utf-8"):
            return True
    return None
