"""Initial weights, drawn module by module from generators seeded by (seed, module name).

A module's initial weights depend only on the run's seed and the module's own name, never on
which other components exist or in what order they were built. Two presets trained with the same
seed (say `baseline` and `cmn`) therefore start from identical weights wherever they share a
module, and a comparison between them is paired: only the component named differs.

Schemes (as the anchors): Xavier-uniform for linear layers and embeddings (the Annotated
Transformer), He-normal (fan-out) for convolutions with unit norms (torchvision's ResNets), unit-scale
rows for the memory matrix, a near-identity start for the ACL gate (alpha ~ 0.88 towards the
visual path while T is untrained), zero view embeddings.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Iterator

import torch
from torch import nn


@contextlib.contextmanager
def initial_weights_skipped() -> Iterator[None]:
    """Build modules without drawing any initial weights (PyTorch's `reset_parameters` and ours):
    for a model whose every weight is loaded next. Random initialisation is most of the time it
    takes to build the full-size model (0.9 s of 1 s on a CPU), and `generate` would then throw it
    away. The parameters hold uninitialised memory until loaded: use only when every parameter is
    loaded (`runs.loaded.model_from_checkpoint` checks the names first). Swaps `torch.nn.init`'s
    functions while building (as transformers' `no_init_weights` does): build nothing else in
    another thread meanwhile."""
    names = [n for n in dir(nn.init) if n.endswith("_") and not n.startswith("_") and callable(getattr(nn.init, n))]
    saved = {n: getattr(nn.init, n) for n in names}

    def keep(tensor, *args, **kwargs):
        return tensor

    for n in names:
        setattr(nn.init, n, keep)
    try:
        yield
    finally:
        for n, f in saved.items():
            setattr(nn.init, n, f)


def seeded_generator(seed: int, name: str) -> torch.Generator:
    """A CPU generator seeded by (seed, name), the same in every process and run."""
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def init_weights(model: nn.Module, seed: int) -> None:
    """(Re)draw every parameter of `model` from its module's own seeded generator, in place."""
    with torch.no_grad():
        for name, module in model.named_modules():
            if any(True for _ in module.parameters(recurse=False)):
                _init(name, module, seeded_generator(seed, name))


def _init(name: str, m: nn.Module, g: torch.Generator) -> None:
    from irralctl.model.acl import ClinicalContext
    from irralctl.model.memory import CrossModalMemory
    from irralctl.model.visual import VisualEncoder

    if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=g)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
        if m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.Linear, nn.Embedding)):
        nn.init.xavier_uniform_(m.weight, generator=g)
        if getattr(m, "bias", None) is not None:
            nn.init.zeros_(m.bias)
        if name.endswith("gate.net.2"):  # the gate's output layer: alpha = sigmoid(2) ~ 0.88 for any C
            nn.init.zeros_(m.weight)
            nn.init.constant_(m.bias, 2.0)
    elif isinstance(m, CrossModalMemory):
        nn.init.normal_(m.memory, std=1.0 / math.sqrt(m.memory.shape[1]), generator=g)  # rows of unit scale
    elif isinstance(m, VisualEncoder):
        nn.init.zeros_(m.view_embed)
    elif isinstance(m, ClinicalContext):
        # The sum over observations then starts at a fraction of the tokens' unit scale.
        std = 1.0 / m.present.shape[0]
        nn.init.normal_(m.present, std=std, generator=g)
        nn.init.normal_(m.absent, std=std, generator=g)
    else:
        raise TypeError(f"no initialisation scheme for {name} ({type(m).__name__})")
