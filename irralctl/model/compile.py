"""Regional compilation: `torch.compile` the model's repeated blocks, not the whole training step.

IRRAL-Net is a stack of a few kinds of identical blocks: the CNN's residual blocks (33 bottlenecks in
ResNet-101), the encoder layers and the decoder layers. Compiling each block in place
(`nn.Module.compile`) gives the fusions a whole-graph compile gives inside each block (normalisation,
activation and residual add around the convolutions and matmuls, which dominate the time), while
Dynamo traces a block's code once per distinct input shape and reuses it for every instance of the
same shape: seconds of compilation instead of minutes for one graph of the whole step, and no graph
break between blocks can leave the step uncompiled.

Validation and generation decode token by token, with shapes that change at every step: a compiled
block would be recompiled for each new length, so they run eagerly (`eager()`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from irralctl.model.backbone import BasicBlock, Bottleneck, _TinyBlock
from irralctl.model.transformer import DecoderLayer, EncoderLayer

REPEATED_BLOCKS = (BasicBlock, Bottleneck, _TinyBlock, EncoderLayer, DecoderLayer)


def compile_repeated_blocks(module: nn.Module, **options: Any) -> int:
    """`torch.compile` every repeated block inside `module` in place (its `forward` is unchanged for
    state_dict, DDP and the optimiser); `options` go to torch.compile. Returns how many were compiled."""
    blocks = [m for m in module.modules() if isinstance(m, REPEATED_BLOCKS)]
    for block in blocks:
        block.compile(**options)
    return len(blocks)


@contextlib.contextmanager
def eager() -> Iterator[None]:
    """Run compiled blocks eagerly inside this context (`torch.compiler.set_stance`, PyTorch 2.6+;
    older versions run them compiled)."""
    set_stance = getattr(torch.compiler, "set_stance", None)
    if set_stance is None:
        yield
        return
    with set_stance("force_eager"):
        yield
