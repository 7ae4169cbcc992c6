"""The resident-memory rise of a prune run with compensation on stays within 1.5x the model's size.

A random Llama-style decoder of about 230 MB (fp32) is pruned by ``prune()`` in a fresh
process, compensation on (its default), measuring off (the speed measurement keeps a dense
copy by design). The rise is the process's high-water mark (``VmHWM``, which ``prune()``
resets when it starts) over its resident memory just before the call, with everything
already imported; the model's size is its checkpoint file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.reviews import reviews_task

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
from pathlib import Path
import datasets, transformers, torch  # imported before the baseline: the rise is the run's
from ppruning.run.config import PruneConfig
from ppruning.run.prune import prune
from ppruning.run.report import proc_status_bytes

config = PruneConfig.model_validate(json.loads(sys.argv[1]))
before = proc_status_bytes("VmRSS")
result = prune(config, Path(sys.argv[2]))
peak = proc_status_bytes("VmHWM")
print(json.dumps({"before": before, "peak": peak, "compensation": result.report["details"].get("compensation")}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads Linux's /proc/self/status")
def test_rss_rise_of_a_prune_with_compensation_stays_within_one_and_a_half_models(tmp_path: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.support.tiny_models import bpe_tokenizer

    tokenizer = bpe_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=6,
        num_attention_heads=12,
        num_key_value_heads=4,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model_dir = tmp_path / "model"
    LlamaForCausalLM(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    size = sum(p.stat().st_size for p in model_dir.glob("*.safetensors"))
    spec = {
        "model": {"id": str(model_dir)},
        "task": reviews_task(),
        "method": "random",
        "target": {"params_reduction": 0.3},
        "sampling": {"max_instances": 48, "max_length": 32, "batch_size": 16},
        "measure": False,
        "compensation": {"tokens": 768},
    }
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(spec), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert probe["compensation"]["refit"]["ffn"], "compensation must have run for the figure to mean anything"
    rise = probe["peak"] - probe["before"]
    assert size > 150 * 2**20
    assert rise <= 1.5 * size, f"RSS rise {rise / 2**20:.0f} MB = {rise / size:.2f}x the model ({size / 2**20:.0f} MB)"
