"""Joining and trimming left-padded KV caches: what lets rows join a running decode batch.

A running batch and a newly prefilled one are both left-padded: their caches
hold [batch, heads, length, head_dim] per layer and an attention mask
[batch, length] marks the real positions. Joining pads the shorter one on the
left (mask 0) and concatenates along the batch; since every row keeps its own
position ids, padding never shifts a row's positions. When rows leave,
columns that are padding in every remaining row are cut off again.

A model spread over several GPUs keeps each layer's KV on that layer's GPU, and PyTorch
refuses an index on another GPU than the tensor it indexes: every index is moved to each
layer's device first (``IndexOnDevices``).
"""

from __future__ import annotations

import torch


def mergeable(cache) -> bool:
    """Only plain dynamic layers (full attention, no sliding window or quantized cache) can be joined."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


class IndexOnDevices:
    """One index tensor, copied once to each device it is asked for."""

    def __init__(self, index: torch.Tensor) -> None:
        self._copies = {index.device: index}

    def on(self, device: torch.device) -> torch.Tensor:
        copy = self._copies.get(device)
        if copy is None:
            copy = self._copies[device] = next(iter(self._copies.values())).to(device)
        return copy


def layer_device(layer) -> torch.device | None:
    keys = getattr(layer, "keys", None)
    return keys.device if isinstance(keys, torch.Tensor) else getattr(layer, "device", None)


def select_rows(cache, rows: torch.Tensor) -> None:
    """Keep only ``rows`` (batch indices) in every layer, each layer indexed on its own device."""
    index = IndexOnDevices(rows)
    for layer in cache.layers:
        device = layer_device(layer)
        layer.batch_select_indices(index.on(device) if device is not None else rows)


def row_positions(cache, row: int, columns: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Copies of row ``row``'s keys and values at ``columns``, per layer ([heads, len(columns), head_dim]) on its device."""
    index = IndexOnDevices(columns)
    keys = [layer.keys[row][:, index.on(layer.keys.device)] for layer in cache.layers]
    values = [layer.values[row][:, index.on(layer.values.device)] for layer in cache.layers]
    return keys, values


def left_pad(tensor: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    missing = width - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def join_caches(into, other, width: int) -> None:
    """Append ``other``'s rows to ``into`` (in place), both padded on the left to ``width`` positions.
    When a layer's copy fails (out of memory), the layers already joined are cut back: ``into`` is as it was."""
    rows, held = into.layers[0].keys.shape[0], into.layers[0].keys.shape[2]
    joined = []
    try:
        for mine, theirs in zip(into.layers, other.layers):
            keys = torch.cat([left_pad(mine.keys, width, 2), left_pad(theirs.keys, width, 2)], dim=0)
            mine.values = torch.cat([left_pad(mine.values, width, 2), left_pad(theirs.values, width, 2)], dim=0)
            mine.keys = keys
            joined.append(mine)
    except BaseException:
        for mine in joined:
            mine.keys, mine.values = mine.keys[:rows, :, width - held :], mine.values[:rows, :, width - held :]
        raise


def layer_lengths(cache) -> list[int]:
    return [layer.keys.shape[-2] for layer in cache.layers]


def crop_layers(cache, lengths: list[int]) -> None:
    """Cut every layer back to the positions it held (a forward that failed part way added one to some)."""
    for layer, length in zip(cache.layers, lengths):
        layer.keys, layer.values = layer.keys[..., :length, :], layer.values[..., :length, :]


def padding_columns(mask: torch.Tensor) -> int:
    """How many leading columns are padding in every row."""
    real = mask.any(dim=0)
    if not bool(real.any()):
        return 0
    return int(real.to(torch.int8).argmax())


def drop_columns(cache, columns: int) -> None:
    """Cut the first ``columns`` positions from every layer."""
    for layer in cache.layers:
        layer.keys = layer.keys[:, :, columns:]
        layer.values = layer.values[:, :, columns:]
