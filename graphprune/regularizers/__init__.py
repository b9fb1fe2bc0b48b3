"""Pruning regularizers (trainer hooks): ASSL and SRP on one growing-penalty schedule."""
from .assl import ASSL, ssa_loss
from .base import COUPLED_SELECTIONS, GrowingPenaltyRegularizer
from .schedule import PenaltySchedule
from .srp import SRP

REGULARIZERS = {"assl": ASSL, "srp": SRP}

__all__ = ["ASSL", "SRP", "GrowingPenaltyRegularizer", "PenaltySchedule", "ssa_loss", "REGULARIZERS",
           "COUPLED_SELECTIONS"]
