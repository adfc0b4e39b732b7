"""The real shim (TsserveHandler) with the bundled Llama-2 chat handler and the tiny model,
driven through TorchServe's own Context, without the TorchServe frontend."""

import os

import orjson
from bundles import ROOT, bundle
from ts.context import Context, RequestProcessor

from tsserve_shim.handler import TsserveHandler


def make_context(model_dir: str, config: dict, batch: int) -> Context:
    context = Context("tiny", model_dir, {"model": {"modelName": "tiny"}}, batch, None, "0.12.0", model_yaml_config=config)
    context.request_ids = {i: f"req-{i}" for i in range(batch)}
    context.request_processor = [RequestProcessor({}) for _ in range(batch)]
    return context


LLAMA_2_CHAT_HANDLER = os.path.join(ROOT, "handlers", "llama-2-7b-chat.ts")


def open_shim(
    tmp_path_factory,
    tiny_model_dir,
    *,
    batch_size: int = 8,
    handler_file: str = LLAMA_2_CHAT_HANDLER,
    async_communication: bool = False,
    **handler_section,
):
    """The real shim, initialized with a bundled handler (the Llama-2 chat one unless told) and the tiny model:
    (handler, model_dir, config). ``async_communication`` configures it as TorchServe's async worker drives it."""
    model_dir = str(tmp_path_factory.mktemp("model-dir"))
    bundle(handler_file, model_dir)
    config = {
        "batchSize": batch_size,
        **({"asyncCommunication": True} if async_communication else {}),
        "responseTimeout": 120,
        "handler": {"model_path": str(tiny_model_dir), "dtype": "float32", **handler_section},
    }
    handler = TsserveHandler()
    handler.initialize(make_context(model_dir, config, 1))
    return handler, model_dir, config


def ask(shim, *bodies):
    handler, model_dir, config = shim
    context = make_context(model_dir, config, len(bodies))
    rows = [{"body": orjson.dumps(b)} if not isinstance(b, bytes) else {"body": b} for b in bodies]
    answers = handler.handle(rows, context)
    return [(context.get_response_status(i)[0] or 200, orjson.loads(a)) for i, a in enumerate(answers)]
