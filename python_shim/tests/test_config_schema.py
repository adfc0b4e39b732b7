"""The shipped model configs and the seed's example against the JSON Schema exported from zod."""

import glob
import json
import os

import jsonschema
import pytest
import yaml
from bundles import ROOT
from seed_request import SEED_REQUEST

SHIM = os.path.join(ROOT, "python_shim", "tsserve_shim")


def load_schema(name: str) -> dict:
    with open(os.path.join(SHIM, name), encoding="utf-8") as handle:
        return json.load(handle)


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml"))), ids=os.path.basename)
def test_shipped_configs_match_the_model_config_schema(path):
    with open(path, encoding="utf-8") as handle:
        jsonschema.validate(yaml.safe_load(handle), load_schema("model-config.schema.json"))


def test_the_schema_refuses_a_config_without_model_path():
    with pytest.raises(jsonschema.ValidationError, match="model_path"):
        jsonschema.validate({"handler": {"quantize": "nf4"}}, load_schema("model-config.schema.json"))


def test_the_seed_request_matches_the_request_schema_and_a_bad_one_does_not():
    schema = load_schema("completion-request.schema.json")
    jsonschema.validate(SEED_REQUEST, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"prompt": "x", "max_tokens": -1}, schema)
