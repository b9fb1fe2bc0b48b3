"""The one build step pyproject.toml cannot say: the shipped recipes go into the wheel.

``recipes/*.yaml`` live at the top of the checkout (commands and docs name ``recipes/x.yaml``); the wheel
carries them as ``graphprune/recipes/*.yaml`` so that an installed ``graphprune compress --recipe NAME``
finds them (:func:`graphprune.compress.recipe.shipped_recipe`).
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithRecipes(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "graphprune" / "recipes"
        target.mkdir(parents=True, exist_ok=True)
        for recipe in sorted(Path(__file__).parent.joinpath("recipes").glob("*.yaml")):
            shutil.copy2(recipe, target / recipe.name)


setup(cmdclass={"build_py": BuildWithRecipes})
