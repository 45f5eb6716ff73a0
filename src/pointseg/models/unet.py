"""The plain UNet of Ronneberger et al. (2015), as used by the paper, with a width setting."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UNet"]


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """UNet: an encoder of ``depth`` max-pool stages and a mirrored decoder with skip links.

    Parameters
    ----------
    in_channels : int
        Input bands.
    num_classes : int
        Output classes.
    base_channels : int
        Width of the first stage; doubles at each stage (64 in the original UNet).
    depth : int
        Number of down-sampling stages (4 in the original UNet).

    Notes
    -----
    Input (B, in_channels, H, W) of any size: the decoder pads to the skip's size, so H and W
    need not be multiples of ``2**depth``. Output (B, num_classes, H, W) logits.
    """

    def __init__(
        self, *, in_channels: int = 3, num_classes: int, base_channels: int = 64, depth: int = 4
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"UNet depth must be >= 1, got {depth}")
        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.inc = _double_conv(in_channels, widths[0])
        self.down = nn.ModuleList(_double_conv(widths[i], widths[i + 1]) for i in range(depth))
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
            for i in reversed(range(depth))
        )
        self.dec = nn.ModuleList(
            _double_conv(2 * widths[i], widths[i]) for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for block in self.down:
            skips.append(block(F.max_pool2d(skips[-1], 2)))
        y = skips.pop()
        for up, dec in zip(self.up, self.dec, strict=True):
            y = up(y)
            skip = skips.pop()
            dh, dw = skip.shape[-2] - y.shape[-2], skip.shape[-1] - y.shape[-1]
            if dh or dw:
                y = F.pad(y, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
            y = dec(torch.cat([skip, y], dim=1))
        return self.head(y)
