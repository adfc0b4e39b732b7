"""KV operations on a model spread over two GPUs, on a CPU: the KV of layer 0 and the batch's own tensors
stand on "cuda:0", the KV of layer 1 on "cuda:1" (FakeGpus: CPU tensors labelled with the device they stand
for, which refuse, as CUDA does, to mix two GPUs in one operation). Rows leave the batch, a finished row's
KV is gathered for the prefix cache, cached prefixes are loaded, and a decode step's logits come back from
the last layer's GPU."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from tsserve_shim.engine.transformers.batch import DecodeBatch
from tsserve_shim.engine.transformers.model_runner import ModelRunner
from tsserve_shim.engine.transformers.prefix_cache import Block

GPU0, GPU1 = torch.device("cuda:0"), torch.device("cuda:1")
HEADS, DIM, VOCAB = 2, 3, 7


class OnDevice(torch.Tensor):
    """A CPU tensor that says it lives on ``label`` (FakeGpus does what a GPU would with it)."""

    label: torch.device
    __torch_function__ = torch._C._disabled_torch_function_impl

    @staticmethod
    def __new__(cls, data: torch.Tensor, label: torch.device):
        tensor = torch.Tensor._make_subclass(cls, data)
        tensor.label = torch.device(label)
        return tensor

    @property
    def device(self) -> torch.device:
        return self.label


def _is_device(value) -> bool:
    return isinstance(value, (str, torch.device)) and torch.device(value).type == "cuda"


class FakeGpus(TorchFunctionMode):
    """Runs every operation on the CPU, as it would run on GPUs: a tensor made with ``device="cuda:N"`` or
    moved there is labelled with it, a result takes its inputs' label, and an operation on tensors labelled
    with two GPUs fails as CUDA fails (an index on another GPU, a cat across GPUs)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        target = None
        if _is_device(kwargs.get("device")):
            target, kwargs["device"] = torch.device(kwargs["device"]), "cpu"
        if func is torch.Tensor.to and any(_is_device(a) for a in args[1:]):
            target = torch.device(next(a for a in args[1:] if _is_device(a)))
            args = (args[0], *(a for a in args[1:] if not _is_device(a)))
        flat, _ = tree_flatten((args, kwargs))
        labels = {a.label for a in flat if isinstance(a, OnDevice)}
        if len(labels) > 1:
            raise RuntimeError(f"{func.__name__}: expected all tensors on one device, found {sorted(map(str, labels))}")
        out = func(*args, **kwargs)
        label = target or (labels.pop() if labels else None)
        if label is None or func is torch.Tensor.device.__get__:
            return out
        return tree_map(lambda t: OnDevice(t.as_subclass(torch.Tensor), label) if isinstance(t, torch.Tensor) else t, out)


@pytest.fixture(autouse=True)
def fake_gpus():
    with FakeGpus():
        yield


def on(device, tensor: torch.Tensor) -> OnDevice:
    return OnDevice(tensor, device)


def test_the_fake_refuses_an_index_from_another_gpu():
    with pytest.raises(RuntimeError, match="cuda:0"):
        on(GPU1, torch.arange(4.0))[on(GPU0, torch.tensor([1]))]
    assert on(GPU1, torch.arange(4.0))[on(GPU0, torch.tensor([1])).to(GPU1)].tolist() == [1.0]


@dataclass
class FakeRow:
    name: str
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    key: int = 0
    penalty: float = 1.0
    finish_reason: str | None = None

    @property
    def done(self) -> bool:
        return self.finish_reason is not None


def layer_kv(device, rows: int, length: int, layer: int) -> tuple[OnDevice, OnDevice]:
    """KV whose every value says its layer, row and position: 100 * layer + 10 * row + position (values negated)."""
    grid = 100.0 * layer + 10 * torch.arange(rows)[:, None] + torch.arange(length)[None, :]
    keys = grid[:, None, :, None].expand(rows, HEADS, length, DIM).clone()
    return on(device, keys), on(device, -keys)


def two_gpu_cache(rows: int, length: int) -> DynamicCache:
    cache = DynamicCache()
    cache.layers = []
    for index, device in enumerate((GPU0, GPU1)):
        layer = DynamicLayer()
        layer.keys, layer.values = layer_kv(device, rows, length, index)
        layer.dtype, layer.device, layer.is_initialized = torch.float32, device, True
        cache.layers.append(layer)
    return cache


def two_gpu_batch(rows: int = 3, length: int = 4) -> DecodeBatch:
    mask = on(GPU0, torch.ones((rows, length), dtype=torch.long))
    mask[0, 0] = 0  # row 0 is one token shorter (left-padded)
    last_pos = on(GPU0, mask.sum(-1) - 1)
    logits = on(GPU0, torch.zeros((rows, VOCAB)))
    return DecodeBatch([FakeRow(str(i)) for i in range(rows)], two_gpu_cache(rows, length), mask, last_pos, logits, None)


def positions_of(tensor: torch.Tensor) -> list:
    """The positions a [heads, length, dim] (or [rows, heads, length, dim]) KV slice holds, read off its values."""
    return tensor.as_subclass(torch.Tensor)[..., 0, :, 0].tolist()


def test_rows_leave_a_batch_whose_layers_sit_on_two_gpus():
    batch = two_gpu_batch()
    batch.rows[1].finish_reason = "stop"
    assert batch.prune()
    assert [row.name for row in batch.rows] == ["0", "2"]
    for index, (layer, device) in enumerate(zip(batch.cache.layers, (GPU0, GPU1))):
        assert layer.keys.device == device and layer.values.device == device
        assert positions_of(layer.keys) == [[100.0 * index + 10 * row + p for p in range(4)] for row in (0, 2)]


def test_a_rows_kv_is_gathered_from_both_gpus():
    batch = two_gpu_batch()
    keys, values = batch.row_kv(0)(1, 3)  # row 0's positions 1 and 2: columns 2 and 3 (column 0 is padding)
    assert [k.device for k in keys] == [GPU0, GPU1] and [v.device for v in values] == [GPU0, GPU1]
    assert [positions_of(k[None])[0] for k in keys] == [[2.0, 3.0], [102.0, 103.0]]
    assert [positions_of(-v[None])[0] for v in values] == [[2.0, 3.0], [102.0, 103.0]]


def test_cached_prefixes_load_onto_each_layers_gpu_and_join_a_running_batch():
    cache = DynamicCache()  # as prefill makes it: each layer takes the device of the KV it is first given
    blocks = []
    for start in (0, 2):
        kv = [layer_kv(device, 1, 4, layer) for layer, device in enumerate((GPU0, GPU1))]
        blocks.append(
            Block(start, None, (start,), [k[0, :, start : start + 2] for k, _ in kv], [v[0, :, start : start + 2] for _, v in kv])
        )
    ModelRunner._load_prefixes(None, cache, [blocks, []], [3, 0], 3)  # row 0 takes 3 cached positions, row 1 none
    assert [layer.keys.device for layer in cache.layers] == [GPU0, GPU1]
    assert positions_of(cache.layers[1].keys) == [[100.0, 101.0, 102.0], [0.0, 0.0, 0.0]]
    batch = two_gpu_batch()
    prefilled = two_gpu_batch(rows=2, length=3)
    prefilled.cache = cache
    batch.join(prefilled)
    assert [layer.keys.shape[:3] for layer in batch.cache.layers] == [(5, HEADS, 4)] * 2
    assert [layer.keys.device for layer in batch.cache.layers] == [GPU0, GPU1]


class LastLayerOnGpu1:
    """A model whose logits come from a head on the second GPU."""

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None, use_cache=None, logits_to_keep=0):
        rows = input_ids.shape[0]
        return type("Out", (), {"logits": on(GPU1, torch.ones((rows, 1, VOCAB))), "past_key_values": past_key_values})()

    __call__ = forward


def test_a_decode_steps_logits_come_back_to_the_batchs_gpu():
    batch = two_gpu_batch()
    batch.take(on(GPU0, torch.zeros(3, dtype=torch.long)))
    batch.forward(LastLayerOnGpu1())
    assert batch.logits.device == GPU0
    batch.rows[0].finish_reason = "stop"
    assert batch.prune()  # the logits are pruned with the batch's own index
