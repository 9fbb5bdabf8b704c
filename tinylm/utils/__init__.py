"""PyTorch's `torch.utils` paths: `tinylm.utils.data` (Dataset, DataLoader, samplers) and
`tinylm.utils.tensorboard` (SummaryWriter, which needs the `tensorboard` extra).

Owns nothing itself. `tensorboard` is not imported here, so `import tinylm.utils` never needs
the extra; `from tinylm.utils.tensorboard import SummaryWriter` imports it.
"""
from . import data

__all__ = ["data"]
