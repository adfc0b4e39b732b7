"""The seed's example request (seed/README.md), from the fixture the TypeScript tests and the demo read too."""

import json
import os

from bundles import ROOT

with open(os.path.join(ROOT, "test", "fixtures", "seed-request.json"), encoding="utf-8") as _handle:
    SEED_REQUEST = json.load(_handle)
