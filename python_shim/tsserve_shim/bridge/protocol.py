"""The protocol's facts on the Python side, read from the JSON Schema that
scripts/export-schemas.ts exports from the zod definitions in src/protocol/."""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "protocol.schema.json")


@lru_cache(maxsize=1)
def schema() -> dict:
    with open(SCHEMA_PATH, encoding="utf-8") as handle:
        return json.load(handle)


PROTOCOL_VERSION: int = schema()["protocolVersion"]

# Method names, as defined once in src/protocol/methods.ts.
INITIALIZE = "initialize"
HANDLE = "handle"
SHUTDOWN = "shutdown"
PING = "ping"
GENERATION_DELTA = "generation/delta"
GENERATE = "generate"
TOKENIZE = "tokenize"
DETOKENIZE = "detokenize"
STREAM_CHUNK = "stream/chunk"
CANCELLED = "notifications/cancelled"  # either side: stop serving request_id

# What a GenerateRequest's `stage` (a metrics label value) may be, as messages.ts's MetricsStage says.
STAGE_PATTERN = re.compile(schema()["methods"]["generate"]["params"]["properties"]["requests"]["items"]["properties"]["stage"]["pattern"])
