"""Point-supervision losses (class-weighted masked MSE, partial cross-entropy) and registry."""

from pointseg.losses.losses import (
    ClassWeightedMaskedMSE,
    PartialCrossEntropy,
    check_loss_options,
    get_loss,
    list_losses,
    register_loss,
)

__all__ = [
    "ClassWeightedMaskedMSE",
    "PartialCrossEntropy",
    "check_loss_options",
    "get_loss",
    "list_losses",
    "register_loss",
]
