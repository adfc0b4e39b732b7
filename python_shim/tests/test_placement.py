"""GPU placement: the seed's three 8-GPU tables, the general rule as properties, bytes, visibility."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsserve_shim.placement import (
    PlacementError,
    parse_bytes,
    parse_cuda_visible_devices,
    plan_placement,
    plan_worker,
    visible_gpus,
)

MEM = 48 * 2**30

# The seed's 70b handler, hard-coded for 8 GPUs: worker gpu_id -> (input device, GPUs with memory).
SEED_TABLE_1 = {w: (f"cuda:{w}", (w,)) for w in range(8)}
SEED_TABLE_2 = {
    0: ("cuda:0", (0, 1)), 4: ("cuda:0", (0, 1)),
    1: ("cuda:2", (2, 3)), 5: ("cuda:2", (2, 3)),
    2: ("cuda:4", (4, 5)), 6: ("cuda:4", (4, 5)),
    3: ("cuda:6", (6, 7)), 7: ("cuda:6", (6, 7)),
}
SEED_TABLE_4 = {w: (("cuda:0", (0, 1, 2, 3)) if w % 2 == 0 else ("cuda:4", (4, 5, 6, 7))) for w in range(8)}


@pytest.mark.parametrize(
    "per_model,table", [(1, SEED_TABLE_1), (2, SEED_TABLE_2), (4, SEED_TABLE_4)], ids=["1gpu", "2gpu", "4gpu"]
)
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
