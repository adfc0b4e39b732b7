"""Where the shim finds TorchServe's max_response_size: the frontend's config file, $TS_MAX_RESPONSE_SIZE, TorchServe's default."""

import os

from tsserve_shim.model.handler_config import HandlerConfig
from tsserve_shim.worker.frontend import frontend_config_file, parse_properties
from tsserve_shim.worker.limits import TORCHSERVE_DEFAULT_MAX_RESPONSE_SIZE, GenerateLimits, max_response_size


def test_properties_are_read_the_way_torchserve_reads_them():
    text = "# comment\n! also\nmax_response_size=123\nmax_request_size : 45\nallowed_urls  file://.*\nlong=a\\\n  b\n"
    assert parse_properties(text) == {"max_response_size": "123", "max_request_size": "45", "allowed_urls": "file://.*", "long": "ab"}


def test_the_frontend_config_file_is_found_on_an_ancestor_command_line(tmp_path):
    proc = {
        "/proc/200/cmdline": "python\0ts/model_service_worker.py\0--sock-type\0unix\0",
        "/proc/200/stat": "200 (python) S 100 1 1",
        "/proc/100/cmdline": "java\0-cp\0x.jar\0org.pytorch.serve.ModelServer\0--python\0python\0"
        "-f\0/etc/ts/config.properties\0-s\0store\0",
    }
    assert frontend_config_file(200, read=proc.get) == "/etc/ts/config.properties"
    assert frontend_config_file(200, read={**proc, "/proc/100/cmdline": "java\0org.pytorch.serve.ModelServer\0"}.get) is None
    assert frontend_config_file(300, read={}.get) is None


def test_the_smaller_of_the_config_file_and_the_environment_wins(tmp_path):
    config = tmp_path / "config.properties"
    config.write_text("max_response_size=33554432\n")
    assert max_response_size({}, str(config)) == 33554432
    assert max_response_size({"TS_MAX_RESPONSE_SIZE": "1000"}, str(config)) == 1000
    assert max_response_size({"TS_MAX_RESPONSE_SIZE": "not a number"}, str(config)) == 33554432
    config.write_text("inference_address=http://127.0.0.1:8080\n")
    assert max_response_size({}, str(config)) == TORCHSERVE_DEFAULT_MAX_RESPONSE_SIZE
    assert max_response_size({"TS_CONFIG_FILE": os.devnull}) == TORCHSERVE_DEFAULT_MAX_RESPONSE_SIZE


def test_generate_limits_count_rows_per_request_and_prompt_bytes():
    limits = GenerateLimits.from_config(HandlerConfig.from_section({"model_path": "m", "max_num_seqs": 8}), context_length=100)
    assert limits == GenerateLimits(max_rows=8, max_prompt_bytes=6400)
    config = HandlerConfig.from_section({"model_path": "m", "max_num_seqs": 8, "max_rows_per_request": 4})
    assert GenerateLimits.from_config(config, 100).max_rows == 4
    two_by_three = [{"prompt": "a", "num_sequences": 3}] * 2
    assert limits.refusal(two_by_three) is None
    assert limits.refusal(two_by_three * 2).startswith("n: the request asks for 12 sequences at once")
    assert limits.refusal(two_by_three * 2, request_count=2) is None  # a TorchServe batch of two requests
    assert limits.refusal([{"prompt": "a"}] * 9).startswith("prompt: the request asks for 9 sequences")
    assert (
        limits.refusal([{"prompt": "é" * 3201}])
        == "prompt: 6,402 bytes, more than fit the model's context (100 tokens, at most 6,400 bytes)"
    )
    assert limits.refusal([{"prompt": "a"}, {"prompt": "x" * 6401}]).startswith("prompt.1: 6,401 bytes")
