"""What the loader checks before transformers sees the plan (model/loading.py)."""

from __future__ import annotations

import pytest

from tsserve_shim.model.handler_config import HandlerConfig, ModelConfigError
from tsserve_shim.model.load_plan import plan_load


@pytest.mark.parametrize("key", ["model_path", "tokenizer_path"])
def test_a_missing_folder_is_named_before_transformers_sees_it(tmp_path, tiny_model_dir, key):
    from tsserve_shim.model.loading import load_tokenizer

    missing = str(tmp_path / "nowhere")
    section = {"model_path": missing} if key == "model_path" else {"model_path": str(tiny_model_dir), "tokenizer_path": missing}
    plan = plan_load(
        HandlerConfig.from_section(section),
        model_dir=str(tmp_path),
        gpu_id=None,
        device_type=None,
        device_ids=None,
        cuda_available=False,
        check_model_size=False,
    )
    with pytest.raises(ModelConfigError, match=rf"^handler\.{key} '{missing}' is not a folder$"):
        load_tokenizer(plan)
