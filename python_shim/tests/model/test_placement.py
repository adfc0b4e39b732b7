"""GPU placement: the seed's three 8-GPU tables, the general rule as properties, bytes, visibility."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsserve_shim.model.placement import (
    PlacementError,
    model_workers,
    parse_bytes,
    parse_cuda_visible_devices,
    plan_placement,
    plan_worker,
    visible_gpus,
    worker_device_ids,
)

MEM = 48 * 2**30

# The seed's 70b handler, hard-coded for 8 GPUs: worker gpu_id -> (input device, GPUs with memory).
SEED_TABLE_1 = {w: (f"cuda:{w}", (w,)) for w in range(8)}
SEED_TABLE_2 = {
    0: ("cuda:0", (0, 1)),
    4: ("cuda:0", (0, 1)),
    1: ("cuda:2", (2, 3)),
    5: ("cuda:2", (2, 3)),
    2: ("cuda:4", (4, 5)),
    6: ("cuda:4", (4, 5)),
    3: ("cuda:6", (6, 7)),
    7: ("cuda:6", (6, 7)),
}
SEED_TABLE_4 = {w: (("cuda:0", (0, 1, 2, 3)) if w % 2 == 0 else ("cuda:4", (4, 5, 6, 7))) for w in range(8)}


@pytest.mark.parametrize("per_model,table", [(1, SEED_TABLE_1), (2, SEED_TABLE_2), (4, SEED_TABLE_4)], ids=["1gpu", "2gpu", "4gpu"])
@pytest.mark.parametrize("worker", range(8))
def test_seed_tables_on_8_gpus(per_model, table, worker):
    plan = plan_placement(8, worker, per_model, 4.8e10)
    device, gpus = table[worker]
    assert plan.device == device
    assert plan.group == gpus
    assert plan.max_memory == {i: (48_000_000_000 if i in gpus else 0) for i in range(8)}


def test_errors_are_clear():
    with pytest.raises(PlacementError, match="num_gpu_per_model is 4 but only 2 GPU"):
        plan_placement(2, 0, 4, MEM)
    with pytest.raises(PlacementError, match="no GPU is visible"):
        plan_placement(0, 0, 1, MEM)
    with pytest.raises(PlacementError, match="at least 1"):
        plan_placement(8, 0, 0, MEM)
    with pytest.raises(PlacementError, match="needs about"):
        plan_placement(8, 0, 2, "10GiB", model_bytes=30 * 2**30)
    assert plan_placement(8, 0, 2, "15GiB", model_bytes=30 * 2**30).group == (0, 1)
    with pytest.raises(PlacementError, match="gpu_max_memory"):
        plan_placement(8, 0, 1, "lots")


def test_leftover_gpus_stay_unused():
    # 6 GPUs, 4 per model: one group (0-3); GPUs 4 and 5 get nothing.
    for worker in range(6):
        plan = plan_placement(6, worker, 4, MEM)
        assert plan.group == (0, 1, 2, 3) and plan.max_memory[4] == plan.max_memory[5] == 0


@pytest.mark.parametrize(
    "value,expected",
    [
        (4.8e10, 48_000_000_000),
        (48000000000, 48_000_000_000),
        ("48GiB", 48 * 2**30),
        ("45GB", 45_000_000_000),
        ("4.8e10", 48_000_000_000),
        (" 512 MiB ", 512 * 2**20),
        ("1.5gib", int(1.5 * 2**30)),
        ("100", 100),
    ],
)
def test_parse_bytes(value, expected):
    assert parse_bytes(value) == expected


@pytest.mark.parametrize("value", [0, -1, "0GB", "48 GiBs", "", "GiB", True, None, float("nan"), float("inf")])
def test_parse_bytes_refuses(value):
    with pytest.raises(PlacementError):
        parse_bytes(value)


def test_cuda_visible_devices():
    assert parse_cuda_visible_devices(None) is None
    assert parse_cuda_visible_devices("") == []
    assert parse_cuda_visible_devices("0,2,3") == ["0", "2", "3"]
    assert parse_cuda_visible_devices("1,-1,2") == ["1"]  # CUDA stops at the first invalid entry
    assert parse_cuda_visible_devices("GPU-abc,MIG-def") == ["GPU-abc", "MIG-def"]
    assert visible_gpus(environ={"CUDA_VISIBLE_DEVICES": "4,5,6"}) == [0, 1, 2]
    assert visible_gpus(device_count=8) == list(range(8))
    assert visible_gpus([2, 3, 6], device_count=8) == [2, 3, 6]
    with pytest.raises(PlacementError, match="deviceIds names GPU 3 but only 2"):
        visible_gpus([3], environ={"CUDA_VISIBLE_DEVICES": "0,1"})
    with pytest.raises(PlacementError, match="twice"):
        visible_gpus([1, 1], device_count=4)
    with pytest.raises(PlacementError, match="cannot tell"):
        visible_gpus(environ={})


def test_device_ids_pick_the_groups():
    # deviceIds [2,3,4,5], 2 GPUs per model: TorchServe hands out gpu_id 2,3,4,5,2,...
    usable = visible_gpus([2, 3, 4, 5], device_count=8)
    plans = {g: plan_worker(g, 2, MEM, usable, 8) for g in usable}
    assert plans[2].group == (2, 3) and plans[2].device == "cuda:2"
    assert plans[3].group == (4, 5) and plans[3].device == "cuda:4"
    assert plans[4].group == (2, 3) and plans[5].group == (4, 5)
    assert plans[2].max_memory == {0: 0, 1: 0, 2: MEM, 3: MEM, 4: 0, 5: 0, 6: 0, 7: 0}
    # no deviceIds: gpu_id is a counter over all GPUs
    assert plan_worker(5, 2, MEM, list(range(8)), 8).group == (2, 3)
    assert plan_worker(None, 1, MEM, [0], 1).device == "cuda:0"


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 16).flatmap(lambda n: st.tuples(st.just(n), st.integers(1, n))), st.integers(1, 2**40))
def test_one_round_of_workers_partitions_the_gpus(n_and_k, memory):
    n, k = n_and_k
    groups = n // k
    plans = [plan_placement(n, worker, k, memory) for worker in range(groups)]
    seen: set[int] = set()
    for plan in plans:
        assert len(plan.group) == k
        assert not seen & set(plan.group)  # disjoint
        seen |= set(plan.group)
        assert plan.device_index in plan.group and plan.device_index == min(plan.group)
        assert list(plan.group) == list(range(plan.group[0], plan.group[0] + k))  # contiguous
        assert set(plan.max_memory) == set(range(n))
        assert all(plan.max_memory[i] == (memory if i in plan.group else 0) for i in range(n))
    assert seen == set(range(groups * k))  # every usable GPU covered (leftovers < k stay out)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 16).flatmap(lambda n: st.tuples(st.just(n), st.integers(1, n), st.integers(0, 1000))))
def test_workers_wrap_around_the_groups(args):
    n, k, worker = args
    groups = n // k
    assert plan_placement(n, worker, k, 1).group == plan_placement(n, worker % groups, k, 1).group
    assert plan_placement(n, worker, k, 1).group == plan_placement(n, worker + groups, k, 1).group


# ---------------------------------------------------------------- Llama-2-70b's real shapes, no weights

LLAMA_2_70B = dict(
    hidden_size=8192,
    intermediate_size=28672,
    num_hidden_layers=80,
    num_attention_heads=64,
    num_key_value_heads=8,
    vocab_size=32000,
    max_position_embeddings=4096,
    rms_norm_eps=1e-5,
)


@pytest.fixture(scope="module")
def llama_70b(tmp_path_factory):
    """Llama-2-70b's config, and a folder whose safetensors header lists its tensors (the shim's size check reads only that)."""
    import json
    import struct

    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(**LLAMA_2_70B, dtype="float16")
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float16)
    header, offset = {}, 0
    for name, tensor in model.state_dict().items():
        size = tensor.numel() * 2
        header[name] = {"dtype": "F16", "shape": list(tensor.shape), "data_offsets": [offset, offset + size]}
        offset += size
    assert 68.9e9 < offset / 2 < 69.0e9  # 68,976,648,192 parameters
    folder = tmp_path_factory.mktemp("llama-2-70b")
    raw = json.dumps(header).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw)  # header only: no weights
    return config, folder


def plan_70b(folder, gpu_id, **section):
    from tsserve_shim.model.handler_config import HandlerConfig
    from tsserve_shim.model.load_plan import plan_load

    return plan_load(
        HandlerConfig.from_section({"model_path": str(folder), **section}),
        model_dir=None,
        gpu_id=gpu_id,
        device_type="gpu",
        device_ids=None,
        cuda_available=True,
        device_count=8,
    )


@pytest.mark.parametrize(
    "gpu_id,section,group",
    [
        (3, {"quantize": "nf4", "num_gpu_per_model": 1, "gpu_max_memory": 4.8e10}, (3,)),  # the seed's shipped config
        (5, {"dtype": "float16", "num_gpu_per_model": 2, "gpu_max_memory": "76GiB"}, (2, 3)),  # 80 GB GPUs
        (1, {"dtype": "float16", "num_gpu_per_model": 4, "gpu_max_memory": 4.8e10}, (4, 5, 6, 7)),
        (2, {"num_gpu_per_model": 4, "gpu_max_memory": 4.8e10}, (0, 1, 2, 3)),  # dtype auto: the checkpoint's float16
        (6, {"quantize": "int8", "num_gpu_per_model": 1, "gpu_max_memory": "76GiB"}, (6,)),  # 69.5 GB in int8
    ],
    ids=["nf4-1gpu", "fp16-2gpu", "fp16-4gpu", "auto-4gpu", "int8-1gpu"],
)
def test_accelerate_places_70b_inside_the_planned_group(llama_70b, gpu_id, section, group):
    from tsserve_shim.model.loading import infer_device_map

    config, folder = llama_70b
    plan = plan_70b(folder, gpu_id, **section)
    assert plan.placement.group == group and plan.device == f"cuda:{group[0]}"
    device_map = infer_device_map(plan, config)
    # Nothing spills to the CPU or disk, and every GPU of the group (only those) holds part of the model.
    assert set(device_map.values()) == set(group), device_map
    # Decoder layers stay whole (model._no_split_modules), and the inputs' GPU holds the embeddings.
    assert all(not key.startswith("model.layers.") or key.count(".") == 2 for key in device_map)
    assert device_map.get("model.embed_tokens", device_map.get("model", device_map.get(""))) == group[0]


@pytest.mark.parametrize(
    "section,gpus,needs",
    [
        (
            {"dtype": "float16", "num_gpu_per_model": 2},
            (0, 1),
            r"needs about 128\.5 GiB .* 2 GPU\(s\) x gpu_max_memory 44\.7 GiB \(48000000000 bytes\) = ",
        ),
        (
            {"quantize": "int8", "num_gpu_per_model": 1},
            (0,),
            r"needs about 64\.7 GiB .* 1 GPU\(s\) x gpu_max_memory 44\.7 GiB \(48000000000 bytes\) x 0\.9 \(bitsandbytes",
        ),
    ],
    ids=["fp16-2gpu", "int8-1gpu"],
)
def test_what_the_size_check_refuses_accelerate_cannot_place(llama_70b, section, gpus, needs):
    """At 4.8e10 per GPU the shim refuses these, and transformers would indeed push layers to disk (or refuse to)."""
    import dataclasses

    from tsserve_shim.model.loading import infer_device_map

    config, folder = llama_70b
    with pytest.raises(PlacementError, match=needs):
        plan_70b(folder, 0, gpu_max_memory=4.8e10, **section)
    plan = plan_70b(folder, 0, gpu_max_memory=4.8e11, **section)
    squeezed = dataclasses.replace(plan, kwargs={**plan.kwargs, "max_memory": {i: 48_000_000_000 for i in gpus}})
    if "quantize" in section:  # transformers' bitsandbytes quantizer refuses the spill itself, as from_pretrained would
        with pytest.raises(ValueError, match="Some modules are dispatched on the CPU or the disk"):
            infer_device_map(squeezed, config)
    else:
        assert "disk" in set(infer_device_map(squeezed, config).values())


def test_near_the_limit_the_load_is_refused_before_any_weight_is_read(llama_70b):
    """fp16 on 2 x 70e9: the totals fit (138 GB in 140 GB), but whole decoder layers and accelerate's buffer do not."""
    from tsserve_shim.model.loading import check_device_map

    config, folder = llama_70b
    plan = plan_70b(folder, 0, dtype="float16", num_gpu_per_model=2, gpu_max_memory=70e9)  # the size check passes
    with pytest.raises(
        PlacementError,
        match=r"transformers would put 4 module\(s\) on disk with max_memory \(GPU 0: 65\.2 GiB, GPU 1: 65\.2 GiB\); raise gpu_max_memory",
    ):
        check_device_map(plan, config)
    roomy = plan_70b(folder, 0, dtype="float16", num_gpu_per_model=2, gpu_max_memory=72e9)
    assert set(check_device_map(roomy, config).values()) == {0, 1}


def test_a_quantized_spill_is_refused_with_the_numbers(llama_70b):
    import dataclasses

    from tsserve_shim.model.loading import check_device_map

    config, folder = llama_70b
    plan = plan_70b(folder, 0, quantize="int8", gpu_max_memory=4.8e11)
    squeezed = dataclasses.replace(plan, kwargs={**plan.kwargs, "max_memory": {0: 48_000_000_000}})
    with pytest.raises(PlacementError, match=r"does not fit in max_memory \(GPU 0: 44\.7 GiB\): Some modules are dispatched"):
        check_device_map(squeezed, config)


# ---------------------------------------------------------------- the environment TorchServe 0.12 gives a worker


class FrontendFailure(Exception):
    """TorchServe's frontend itself fails to start the worker."""


def torchserve_workers(num_gpus: int, model_config: dict, workers: int):
    """(gpu_id, CUDA_VISIBLE_DEVICES entries or None, torchrun WORLD_SIZE or None) for each new worker of one model.

    A model of TorchServe 0.12's frontend, read from pytorch/serve v0.12.0:
    Model.java (torchrun's nproc-per-node becomes parallelLevel only with a
    parallelType; numCores is len(deviceIds) or every GPU), WorkLoadManager
    .addThreads (per-model counter in steps of parallelLevel when deviceIds or a
    parallelLevel is set, else a server-wide counter starting at 1),
    WorkerThread.getDeviceIds and WorkerLifeCycle (CUDA_VISIBLE_DEVICES set only
    with a parallelLevel; torchrun only for pp, tp and pptp).
    """
    parallel_type = model_config.get("parallelType")
    torchrun = model_config.get("torchrun")
    nproc = torchrun.get("nproc-per-node", 1) if isinstance(torchrun, dict) else 0
    level = nproc if parallel_type else 0
    device_ids = model_config.get("deviceIds") or None
    cores = len(device_ids) if device_ids else num_gpus
    stride = level or 1
    model_counter, server_counter = 0, 0
    for _ in range(workers):
        if device_ids or level > 0:
            gpu_id, model_counter = model_counter, (model_counter + stride) % cores
            if level == 0:
                gpu_id = device_ids[gpu_id]
        else:
            server_counter = (server_counter + 1) % num_gpus
            gpu_id = server_counter
        visible = None
        if level > 0:
            visible = device_ids[gpu_id : gpu_id + level] if device_ids else list(range(gpu_id, gpu_id + level))
            if len(visible) != level:
                raise FrontendFailure(f"deviceIds.subList({gpu_id}, {gpu_id + level}) is out of range")
        world = nproc if parallel_type in ("pp", "tp", "pptp") else None
        yield gpu_id, visible, world


def physical_groups(num_gpus: int, model_config: dict, workers: int) -> list[tuple[int, ...]]:
    """Each worker's plan, run in the environment TorchServe gives it, as physical GPU indices."""
    from tsserve_shim.model.handler_config import HandlerConfig
    from tsserve_shim.model.load_plan import plan_load

    groups = []
    for gpu_id, visible, world in torchserve_workers(num_gpus, model_config, workers):
        environ = {} if visible is None else {"CUDA_VISIBLE_DEVICES": ",".join(map(str, visible))}
        if world is not None:
            environ["WORLD_SIZE"] = str(world)
        plan = plan_load(
            HandlerConfig.from_section(model_config["handler"]),
            model_dir=None,
            gpu_id=gpu_id,
            device_type="gpu",
            device_ids=worker_device_ids(model_config),
            cuda_available=True,
            device_count=num_gpus if visible is None else len(visible),  # torch.cuda.device_count() honours the variable
            environ=environ,
            check_model_size=False,
        )
        physical = plan.placement.group if visible is None else tuple(visible[i] for i in plan.placement.group)
        assert plan.device == f"cuda:{plan.placement.group[0]}"
        groups.append(physical)
    return groups


def handler(per_model: int) -> dict:
    return {"model_path": "/models/llama", "num_gpu_per_model": per_model, "gpu_max_memory": "40GiB"}


@pytest.mark.parametrize(
    "config,workers,expected",
    [
        ({"handler": handler(2)}, 4, [(2, 3), (4, 5), (6, 7), (0, 1)]),  # server-wide counter starts at 1
        ({"deviceIds": [4, 5, 6, 7], "handler": handler(2)}, 2, [(4, 5), (6, 7)]),
        # The seed's 70b config: torchrun without parallelType is ignored by TorchServe 0.12.
        ({"torchrun": {"nproc-per-node": 1}, "handler": handler(1)}, 8, [(i,) for i in (1, 2, 3, 4, 5, 6, 7, 0)]),
        # parallelType custom: the frontend narrows CUDA_VISIBLE_DEVICES to nproc-per-node GPUs per worker.
        ({"parallelType": "custom", "torchrun": {"nproc-per-node": 2}, "handler": handler(2)}, 4, [(0, 1), (2, 3), (4, 5), (6, 7)]),
        (
            {"parallelType": "custom", "torchrun": {"nproc-per-node": 2}, "deviceIds": [2, 3, 4, 5], "handler": handler(2)},
            2,
            [(2, 3), (4, 5)],
        ),
        ({"parallelType": "custom", "torchrun": {"nproc-per-node": 4}, "handler": handler(4)}, 2, [(0, 1, 2, 3), (4, 5, 6, 7)]),
    ],
    ids=["counter", "deviceIds", "seed-torchrun-ignored", "custom", "custom-deviceIds", "custom-4"],
)
def test_one_round_of_torchserve_workers_gets_disjoint_groups(config, workers, expected):
    assert physical_groups(8, config, workers) == expected


def test_custom_with_fewer_processes_than_gpus_per_model_cannot_place():
    config = {"parallelType": "custom", "torchrun": {"nproc-per-node": 1}, "handler": handler(2)}
    with pytest.raises(PlacementError, match="num_gpu_per_model is 2 but only 1 GPU"):
        physical_groups(8, config, 1)


@pytest.mark.parametrize("parallel_type", ["pp", "tp", "pptp"])
def test_torchrun_copies_of_a_worker_are_refused(parallel_type):
    config = {"parallelType": parallel_type, "torchrun": {"nproc-per-node": 2}, "handler": handler(2)}
    with pytest.raises(PlacementError, match="one of 2 processes that torchrun started"):
        physical_groups(8, config, 1)


def test_worker_device_ids():
    assert worker_device_ids({"deviceIds": [4, 5]}) == [4, 5]
    assert worker_device_ids({"deviceIds": [4, 5], "torchrun": {"nproc-per-node": 2}}) == [4, 5]  # ignored torchrun
    assert worker_device_ids({"deviceIds": [4, 5], "parallelType": "custom", "torchrun": {"nproc-per-node": 2}}) is None
    assert worker_device_ids({}) is None and worker_device_ids({"deviceIds": []}) is None


def _shared_layouts():
    import json

    from conftest import ROOT

    spec = json.loads((ROOT / "test" / "fixtures" / "gpu-layouts" / "cases.json").read_text())
    return [pytest.param(spec["gpus"], case, id=case["name"]) for case in spec["cases"]]


@pytest.mark.parametrize("gpus,case", _shared_layouts())
def test_shared_layouts_place_as_the_fixture_says(gpus, case):
    """The same layouts vitest feeds to `tsserve archive`'s check (test/unit/config/gpu-layout.test.ts)."""
    config = {**case["config"], "handler": {**handler(case["config"]["handler"]["num_gpu_per_model"])}}
    try:
        groups = physical_groups(gpus, config, case["workers"])
    except (PlacementError, FrontendFailure):
        outcome = "refused"
    else:
        outcome = "ok"
        assert all(len(g) == config["handler"]["num_gpu_per_model"] for g in groups)
        assert len(set(groups)) == len(groups)  # one round of workers: every group distinct
    assert outcome == case["worker"]


def test_model_workers_is_the_most_a_config_lets_torchserve_start():
    assert model_workers({}) is None
    assert model_workers({"minWorkers": 2}) == 2
    assert model_workers({"minWorkers": 1, "maxWorkers": 3}) == 3
    assert model_workers({"maxWorkers": True}) is None
