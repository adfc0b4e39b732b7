"""Which GPUs a TorchServe worker's model lives on, and how much of each it may use.

Pure functions, testable without CUDA.

Rule (generalising the seed's hard-coded 8-GPU tables): the usable GPUs split
into ``num_usable // num_gpu_per_model`` contiguous groups; a worker takes group
``gpu_id mod groups``; every GPU of the group may hold ``gpu_max_memory`` bytes
and every other GPU 0; the worker's input device is the group's first GPU.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


class PlacementError(ValueError):
    """A placement that cannot work (bad config, group larger than the machine, not enough memory)."""


_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_bytes(value: int | float | str) -> int:
    """``4.8e10``, ``"48GiB"``, ``"45GB"``, ``"4.8e10"`` -> bytes (an int). Same rules as src/config/bytes.ts."""
    if isinstance(value, bool):
        raise PlacementError(f'gpu_max_memory must be bytes such as 4.8e10, "48GiB" or "45GB", got {value!r}')
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value <= 0:
            raise PlacementError(f"gpu_max_memory must be a positive number of bytes, got {value!r}")
        return math.floor(value)
    if isinstance(value, str):
        match = _SIZE.match(value)
        factor = _UNITS.get(match.group(2).lower()) if match else None
        if match is None or factor is None:
            raise PlacementError(f'gpu_max_memory must be bytes such as 4.8e10, "48GiB" or "45GB", got {value!r}')
        size = float(match.group(1)) * factor
        if size <= 0:
            raise PlacementError(f"gpu_max_memory must be a positive number of bytes, got {value!r}")
        return math.floor(size)
    raise PlacementError(f'gpu_max_memory must be a number of bytes or a string such as "48GiB", got {type(value).__name__}')


@dataclass(frozen=True)
class Placement:
    """Where one worker's model goes."""

    device: str  # "cuda:N": where inputs go (the group's first GPU)
    max_memory: dict[int, int]  # every visible GPU index -> bytes (0 outside the group)
    group: tuple[int, ...]  # the GPU indices the model is spread over
    usable_gpus: int = 1  # how many GPUs the worker may choose its group among (deviceIds, else all visible)

    @property
    def device_index(self) -> int:
        return int(self.device.split(":", 1)[1])


def plan_placement(
    num_visible_gpus: int,
    gpu_id: int,
    num_gpu_per_model: int,
    gpu_max_memory: int | float | str,
    *,
    model_bytes: int | None = None,
    usable_share: float = 1.0,
) -> Placement:
    """Plan one worker's GPUs on a machine with GPUs ``0 .. num_visible_gpus-1``.

    ``gpu_id`` is the id TorchServe gave the worker (it wraps around the GPUs);
    ``model_bytes``, when known, is checked against the group's total memory,
    of which the loader may fill ``usable_share`` (transformers' bitsandbytes
    quantizers hand accelerate 90 % of ``max_memory``).
    """
    for name, value in (("num_visible_gpus", num_visible_gpus), ("gpu_id", gpu_id), ("num_gpu_per_model", num_gpu_per_model)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise PlacementError(f"{name} must be an integer, got {value!r}")
    if num_visible_gpus < 1:
        raise PlacementError("no GPU is visible to this worker (check CUDA_VISIBLE_DEVICES and deviceIds)")
    if num_gpu_per_model < 1:
        raise PlacementError(f"num_gpu_per_model must be at least 1, got {num_gpu_per_model}")
    if num_gpu_per_model > num_visible_gpus:
        raise PlacementError(f"num_gpu_per_model is {num_gpu_per_model} but only {num_visible_gpus} GPU(s) are visible to this worker")
    if gpu_id < 0:
        raise PlacementError(f"gpu_id must be non-negative, got {gpu_id}")
    per_gpu = parse_bytes(gpu_max_memory)
    groups = num_visible_gpus // num_gpu_per_model
    group_index = gpu_id % groups
    first = group_index * num_gpu_per_model
    group = tuple(range(first, first + num_gpu_per_model))
    usable = int(per_gpu * usable_share) * len(group)
    if model_bytes is not None and usable < model_bytes:
        share = "" if usable_share == 1.0 else f" x {usable_share:g} (bitsandbytes keeps the rest for quantization buffers)"
        raise PlacementError(
            f"the model needs about {_fmt(model_bytes)} but {len(group)} GPU(s) x gpu_max_memory {_fmt(per_gpu)}{share} "
            f"= {_fmt(usable)}; raise gpu_max_memory or num_gpu_per_model, or quantize"
        )
    max_memory = {index: (per_gpu if index in group else 0) for index in range(num_visible_gpus)}
    return Placement(device=f"cuda:{first}", max_memory=max_memory, group=group, usable_gpus=num_visible_gpus)


def _fmt(n: int) -> str:
    return f"{n / 2**30:.1f} GiB ({n} bytes)"


def parse_cuda_visible_devices(value: str | None) -> list[str] | None:
    """The entries of CUDA_VISIBLE_DEVICES (None when unset). As CUDA does, parsing stops at the first invalid entry."""
    if value is None:
        return None
    entries: list[str] = []
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            break
        if item.lstrip("-").isdigit():
            if int(item) < 0:
                break
        elif not re.match(r"^(GPU|MIG)-", item):
            break
        entries.append(item)
    return entries


def visible_gpus(
    device_ids: Sequence[int] | None = None,
    *,
    device_count: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[int]:
    """The CUDA ordinals this worker may spread its model over, in order.

    ``device_count`` is what ``torch.cuda.device_count()`` says (it already
    honours CUDA_VISIBLE_DEVICES); without it the count comes from
    CUDA_VISIBLE_DEVICES in ``environ``. ``device_ids`` is the model config's
    ``deviceIds`` (ordinals in that visible space): when given, only those.
    """
    env = os.environ if environ is None else environ
    if device_count is None:
        entries = parse_cuda_visible_devices(env.get("CUDA_VISIBLE_DEVICES"))
        if entries is None:
            raise PlacementError("cannot tell how many GPUs are visible: pass device_count or set CUDA_VISIBLE_DEVICES")
        device_count = len(entries)
    ordinals = list(range(device_count))
    if not device_ids:
        return ordinals
    seen: set[int] = set()
    chosen: list[int] = []
    for raw in device_ids:
        index = int(raw)
        if index not in ordinals:
            raise PlacementError(
                f"deviceIds names GPU {index} but only {device_count} GPU(s) are visible"
                + (f" (CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']})" if "CUDA_VISIBLE_DEVICES" in env else "")
            )
        if index in seen:
            raise PlacementError(f"deviceIds names GPU {index} twice")
        seen.add(index)
        chosen.append(index)
    return chosen


def plan_worker(
    gpu_id: int | None,
    num_gpu_per_model: int,
    gpu_max_memory: int | float | str,
    usable: Sequence[int],
    device_count: int,
    *,
    model_bytes: int | None = None,
    usable_share: float = 1.0,
) -> Placement:
    """plan_placement over the ``usable`` ordinals (deviceIds), mapped back to CUDA ordinals.

    TorchServe hands a worker a ``gpu_id`` taken from ``deviceIds`` when that is
    configured, else a counter over all GPUs; either way its position in
    ``usable`` picks the group. ``max_memory`` covers all ``device_count`` GPUs.
    """
    if gpu_id is None:
        gpu_id = 0
    position = list(usable).index(gpu_id) if gpu_id in usable else gpu_id
    local = plan_placement(len(usable), position, num_gpu_per_model, gpu_max_memory, model_bytes=model_bytes, usable_share=usable_share)
    group = tuple(usable[i] for i in local.group)
    per_gpu = parse_bytes(gpu_max_memory)
    max_memory = {index: (per_gpu if index in group else 0) for index in range(device_count)}
    return Placement(device=f"cuda:{group[0]}", max_memory=max_memory, group=group, usable_gpus=len(usable))


def model_workers(model_config: Mapping[str, object]) -> int | None:
    """The most workers model-config.yaml lets TorchServe start (minWorkers, maxWorkers); None when it names neither."""
    counts = [v for v in (model_config.get("minWorkers"), model_config.get("maxWorkers")) if isinstance(v, int) and not isinstance(v, bool)]
    return max(counts) if counts else None


def check_one_group_per_worker(workers: int, usable_gpus: int, num_gpu_per_model: int) -> None:
    """A worker that owns its GPUs' memory share (vLLM's gpu_memory_utilization) needs a group of its own:
    a second worker on the same group finds too little free memory. Same rule as src/config/engine-support.ts."""
    groups = usable_gpus // num_gpu_per_model
    if workers > groups:
        raise PlacementError(
            f"{workers} worker(s) but {usable_gpus} GPU(s) make only {groups} group(s) of handler.num_gpu_per_model {num_gpu_per_model}; "
            f"on the vLLM engine each worker needs a group of its own: set maxWorkers (and minWorkers) to at most {groups}"
        )


def worker_device_ids(model_config: Mapping[str, object]) -> list[int] | None:
    """The ``deviceIds`` a worker still has to choose among, after what TorchServe did with them.

    TorchServe 0.12 acts on ``torchrun`` only with a ``parallelType``. With
    ``parallelType: custom`` its frontend starts one Python worker whose
    CUDA_VISIBLE_DEVICES already holds just that worker's ``nproc-per-node``
    GPUs (taken from ``deviceIds`` when set), so the ids are spent: the worker
    uses every GPU it sees. Otherwise the worker sees every GPU and picks from
    ``deviceIds`` itself.
    """
    ids = model_config.get("deviceIds")
    if model_config.get("parallelType") == "custom" and isinstance(model_config.get("torchrun"), Mapping):
        return None
    return list(ids) if isinstance(ids, (list, tuple)) and ids else None


def check_one_process_per_worker(environ: Mapping[str, str]) -> None:
    """Refuses a worker that torchrun started as one of several processes (parallelType pp, tp or pptp).

    tsserve spreads one model over a worker's GPUs itself (num_gpu_per_model,
    device_map), in one process; under torchrun every process would load the
    whole model onto the same GPUs.
    """
    size = environ.get("WORLD_SIZE")
    if size is not None and size.strip().isdigit() and int(size) > 1:
        raise PlacementError(
            f"this worker is one of {int(size)} processes that torchrun started (WORLD_SIZE={size}: parallelType pp, tp "
            "or pptp with torchrun nproc-per-node > 1), but tsserve loads the whole model in one process and spreads it "
            "over GPUs itself; remove parallelType (or use parallelType: custom with torchrun nproc-per-node equal to "
            "handler.num_gpu_per_model) and set handler.num_gpu_per_model"
        )
