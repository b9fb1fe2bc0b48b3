"""sr_models: a timm-style zoo of super-resolution networks for graphprune.

>>> import sr_models
>>> model = sr_models.create_model("edsr_baseline_x2", n_resblocks=2)
>>> model.gp_spec["name"], model.scale
('edsr_baseline_x2', 2)

Families (one module each; every model is registered for x2, x3, x4): ``edsr`` (EDSR, EDSR-baseline),
``ledsr`` (ASSL/SRP large EDSR), ``rirsr`` (SRP's RCAN without attention), ``rcan``, ``carn``
(CARN, CARN-M), ``imdn``, ``pan``, ``srresnet``, ``swinir`` (SwinIR-light).
"""
from ._factory import create_model, load_checkpoint
from ._registry import is_model, list_models, model_entrypoint, register_model

# Explicit import list: importing a family module registers its models.
from . import edsr  # noqa: E402,F401
from . import ledsr  # noqa: E402,F401
from . import rirsr  # noqa: E402,F401
from . import rcan  # noqa: E402,F401
from . import carn  # noqa: E402,F401
from . import imdn  # noqa: E402,F401
from . import pan  # noqa: E402,F401
from . import srresnet  # noqa: E402,F401
from . import swinir  # noqa: E402,F401

__all__ = ["register_model", "create_model", "list_models", "is_model", "model_entrypoint", "load_checkpoint"]
