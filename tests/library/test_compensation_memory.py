"""The resident memory compensation (and the outlier-neuron pass before it) adds to a prune run stays within half
the model's size.

A random Llama-style decoder of about 260 MB (fp32; 24 layers, proportioned like SmolLM2)
is pruned by ``prune()`` in a fresh process, compensation on (its default), measuring off
(the speed measurement keeps a dense copy by design). Resident memory is sampled every
10 ms per stage, against the process's memory just before the call (everything imported).
The issue's budget is a rise of at most 1.5x the model with compensation on; loading alone
takes 1.0x and more, so compensation gets the half that remains: its stage may rise at most
0.5x the model above the highest stage before it. The whole run's rise is printed: on this
small model the fixed costs beside the weights (task data, tokenizer, head) already make it
about 1.45x without compensation, so the total is not asserted here (``bench/llm.py
--memory-probe`` measures it on SmolLM2).
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
import json, sys, threading
from pathlib import Path
import datasets, transformers, torch  # imported before the baseline: the rise is the run's
from ppruning.progress import Progress
from ppruning.run.config import PruneConfig
from ppruning.run.prune import prune
from ppruning.run.report import proc_status_bytes

config = PruneConfig.model_validate(json.loads(sys.argv[1]))
peaks, stage, stop = {}, ["start"], threading.Event()

def sample():
    while not stop.wait(0.01):
        peaks[stage[0]] = max(peaks.get(stage[0], 0), proc_status_bytes("VmRSS"))

class Stages(Progress):
    def start_stage(self, name, total=None, message=""):
        stage[0] = name

before = proc_status_bytes("VmRSS")
thread = threading.Thread(target=sample, daemon=True)
thread.start()
result = prune(config, Path(sys.argv[2]), Stages())
stop.set()
thread.join()
comp = result.report["details"].get("compensation")
print(json.dumps({"before": before, "peaks": peaks, "compensation": comp}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads Linux's /proc/self/status")
def test_compensation_adds_at_most_half_the_model_to_a_prune_runs_resident_memory(tmp_path: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.support.tiny_models import bpe_tokenizer

    tokenizer = bpe_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=512,
        intermediate_size=1408,
        num_hidden_layers=24,
        num_attention_heads=8,
        num_key_value_heads=2,
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
    peaks = {name: peak - probe["before"] for name, peak in probe["peaks"].items()}
    later = ("outlier_units", "compensate", "materialise", "write")
    earlier = max(peak for name, peak in peaks.items() if name not in later)
    print(
        f"model {size / 2**20:.0f} MB; RSS rise per stage (MB): { ({k: round(v / 2**20) for k, v in peaks.items()}) }"
    )
    assert size > 200 * 2**20
    for stage in ("outlier_units", "compensate"):  # each may rise at most half the model above the stages before
        added = peaks[stage] - earlier
        assert added <= 0.5 * size, f"{stage} added {added / 2**20:.0f} MB = {added / size:.2f}x the model"
