"""The handler section parsed once into a HandlerConfig: the schema's defaults, the checks and their messages."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
from bundles import ROOT

from tsserve_shim.model.handler_config import DEFAULTS, HandlerConfig, ModelConfigError


def handler_schema() -> dict:
    with open(os.path.join(ROOT, "python_shim", "tsserve_shim", "model-config.schema.json"), encoding="utf-8") as handle:
        return json.load(handle)["properties"]["handler"]


def parse(**section) -> HandlerConfig:
    return HandlerConfig.from_section({"model_path": "m", **section})


def test_every_key_of_the_schema_is_a_field_and_its_default_the_schema_s():
    properties = handler_schema()["properties"]
    fields = {f.name for f in dataclasses.fields(HandlerConfig)}
    # per_gpu_mem folds into gpu_max_memory; max_num_seqs_set says whether max_num_seqs was written
    assert fields == (set(properties) - {"per_gpu_mem"}) | {"extra", "max_num_seqs_set"}
    config = parse()
    for key, spec in properties.items():
        if "default" in spec:
            # An unset prefix_cache_mb stays None: the transformers engine sizes the cache from its KV budget then.
            value = config.prefix_cache_size_mb if key == "prefix_cache_mb" else getattr(config, key)
            assert value == spec["default"] == DEFAULTS[key], key
    assert DEFAULTS["max_num_seqs"] == 64 and config.engine == "transformers"


def test_unset_keys_are_none_and_derived_defaults_follow_the_schema_s_descriptions():
    config = parse()
    assert config.tokenizer_path is None and config.kv_cache_mb is None and config.handle_timeout_s is None
    assert config.max_rows == config.max_num_seqs == 64  # max_rows_per_request's default: max_num_seqs
    assert parse(max_num_seqs=8).max_rows == 8 and parse(max_num_seqs=8, max_rows_per_request=4).max_rows == 4
    assert config.prefix_cache_mb is None and config.prefix_cache_size_mb == DEFAULTS["prefix_cache_mb"]
    assert parse(prefix_cache_mb=0).prefix_cache_size_mb == 0


def test_values_are_typed_and_the_seed_s_per_gpu_mem_folds_into_gpu_max_memory():
    config = parse(dtype="float16", quantize="nf4", double_quant=True, num_gpu_per_model=2.0, cpu_threads=3, handle_timeout_s=5)
    assert (config.dtype, config.quantize, config.double_quant, config.num_gpu_per_model) == ("float16", "nf4", True, 2)
    assert config.cpu_threads == 3 and config.handle_timeout_s == 5.0
    assert parse(per_gpu_mem="45GB").gpu_max_memory == "45GB"
    assert parse(gpu_max_memory=4.8e10, per_gpu_mem="45GB").gpu_max_memory == 4.8e10


def test_keys_the_schema_does_not_know_stay_reachable():
    config = parse(chat_template="{{ x }}", per_gpu_mem="1GB")
    assert dict(config.extra) == {"chat_template": "{{ x }}"}


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"engine": "tgi"}, r"^handler\.engine must be one of vllm, transformers, got 'tgi'$"),
        ({"dtype": "float8"}, r"^handler\.dtype must be one of auto, float16, bfloat16, float32, got 'float8'$"),
        ({"quantize": "gptq"}, r"^handler\.quantize must be one of none, int8, fp4, nf4, got 'gptq'$"),
        ({"num_gpu_per_model": 0}, r"^handler\.num_gpu_per_model must be a positive integer, got 0$"),
        ({"max_num_seqs": "8"}, r"^handler\.max_num_seqs must be a positive integer, got '8'$"),
        ({"kv_cache_mb": 0}, r"^handler\.kv_cache_mb must be a positive number of MiB, got 0$"),
        ({"prefix_cache_mb": -1}, r"^handler\.prefix_cache_mb must be a number of MiB"),
        ({"handle_timeout_s": True}, r"^handler\.handle_timeout_s must be a positive number of seconds"),
        ({"enforce_eager": "yes"}, r"^handler\.enforce_eager must be true or false, got 'yes'$"),
        ({"tokenizer_path": 3}, r"^handler\.tokenizer_path must be a string$"),
        ({"gguf_file": ""}, r"^handler\.gguf_file must be a file name inside model_path, or a path$"),
    ],
)
def test_a_bad_value_is_a_model_config_error_naming_its_key(section, message):
    with pytest.raises(ModelConfigError, match=message):
        parse(**section)


def test_model_path_is_required():
    with pytest.raises(ModelConfigError, match="model_path is required"):
        HandlerConfig.from_section({})


def test_handler_vllm_is_kept_and_refuses_the_arguments_tsserve_sets_naming_the_key():
    assert parse().vllm == {} and not parse().max_num_seqs_set and parse(max_num_seqs=64).max_num_seqs_set
    assert parse(vllm={"max_num_batched_tokens": 4096}).vllm == {"max_num_batched_tokens": 4096}
    with pytest.raises(ModelConfigError, match=r"^handler\.vllm\.kv_cache_memory_bytes: tsserve sets it: use handler\.kv_cache_mb$"):
        parse(vllm={"kv_cache_memory_bytes": 1})
