"""Point-supervision losses (class-weighted masked MSE, partial cross-entropy), regularisers on
the unlabelled pixels (dense CRF loss), and their registries."""

from pointseg.losses.losses import (
    ClassWeightedMaskedMSE,
    PartialCrossEntropy,
    check_loss_options,
    get_loss,
    list_losses,
    register_loss,
)
from pointseg.losses.regularisers import (
    DenseCRFLoss,
    check_regulariser_options,
    get_regulariser,
    list_regularisers,
    register_regulariser,
)

__all__ = [
    "ClassWeightedMaskedMSE",
    "DenseCRFLoss",
    "PartialCrossEntropy",
    "check_loss_options",
    "check_regulariser_options",
    "get_loss",
    "get_regulariser",
    "list_losses",
    "list_regularisers",
    "register_loss",
    "register_regulariser",
]
