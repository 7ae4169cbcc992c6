"""The classifier mask learning trains against: the pre-trained MLM head at the label words, or a new one.

SMP (Jiang et al., 2023) trains no classifier: the MLM head reads the hidden state at
[CLS] and only the logits of one label word per class are kept (SST-2: "terrible",
"great"). Encoders shipped without an MLM head (a bare checkpoint such as
all-MiniLM-L6-v2) use ``head: "new"`` instead: the task's own classifier, freshly
initialised and trained beside the scores while the encoder (pooler included) stays
frozen. ("Head" alone means an attention head in this library; the parameter keeps its
public name ``head``, and its values name the classifier: ``mlm`` or ``new``.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ppruning.arch import get_adapter
from ppruning.errors import InvalidConfigError
from ppruning.methods.contract import MethodContext
from ppruning.methods.smp.params import ClassifierParams
from ppruning.model.loading import load_task_model, load_tokenizer
from ppruning.model.refs import ModelRef
from ppruning.tasks.collate import PadCollator
from ppruning.tasks.registry import TaskInfo

#: The paper's label words for GLUE, in the task's label-id order.
GLUE_LABEL_WORDS: dict[str, tuple[str, ...]] = {
    "sst2": ("terrible", "great"),
    "cola": ("incorrect", "correct"),
    "mnli": ("Yes", "Maybe", "No"),
    "qnli": ("Yes", "No"),
    "rte": ("Yes", "No"),
    "mrpc": ("No", "Yes"),
    "qqp": ("No", "Yes"),
}
_MLM_ARCHITECTURES = ("ForMaskedLM", "ForPreTraining")


def has_mlm_head(hf_config: Any) -> bool:
    """Whether the checkpoint was saved with an MLM head (its ``architectures`` say so)."""
    return any(a.endswith(_MLM_ARCHITECTURES) for a in (getattr(hf_config, "architectures", None) or ()))


def label_words_for(task: TaskInfo, given: Sequence[str] | None) -> list[str]:
    """The words given, else the paper's for a GLUE task; InvalidConfigError naming params.label_words."""
    words = list(given) if given else list(GLUE_LABEL_WORDS.get(task.name, ()))
    if not words:
        raise InvalidConfigError(
            f"params.label_words: task {task.name!r} has no default label words; give one word per class "
            "in label-id order",
            field="params.label_words",
        )
    if task.label_names and len(words) != len(task.label_names):
        raise InvalidConfigError(
            f"params.label_words: task {task.name!r} has {len(task.label_names)} classes "
            f"({', '.join(task.label_names)}), got {len(words)} words",
            field="params.label_words",
        )
    return words


def label_word_ids(tokenizer: Any, words: Sequence[str]) -> list[int]:
    """One token id per word (a leading space, as the word follows a space in text); else the word is refused."""
    ids = []
    for i, word in enumerate(words):
        pieces = tokenizer.encode(" " + word, add_special_tokens=False)
        if len(pieces) != 1:
            shown = tokenizer.convert_ids_to_tokens(pieces)
            raise InvalidConfigError(
                f"params.label_words.{i}: {word!r} is {len(pieces)} tokens for this model's tokenizer ({shown}); "
                "each label word must be a single token",
                field=f"params.label_words.{i}",
            )
        ids.append(int(pieces[0]))
    if len(set(ids)) != len(ids):
        raise InvalidConfigError(
            "params.label_words: two label words map to the same token", field="params.label_words"
        )
    return ids


def check_classifier(
    kind: str, label_words: Sequence[str] | None, model: ModelRef, task: TaskInfo, hf_config: Any
) -> None:
    """Submission checks of the classifier ``kind``: for ``mlm``, an MLM head and single-token label words."""
    if kind != "mlm":
        return
    if not has_mlm_head(hf_config):
        archs = ", ".join(getattr(hf_config, "architectures", None) or ["none recorded"])
        raise InvalidConfigError(
            f"params.head: model {model.id!r} ships without an MLM head (architectures: {archs}); "
            'use head: "new" to train a new classifier with the encoder frozen',
            field="params.head",
        )
    label_word_ids(load_tokenizer(model), label_words_for(task, label_words))


def load_classifier_model(
    kind: str, ref: ModelRef, task: TaskInfo, label_names: list[str] | None
) -> tuple[nn.Module, Any]:
    """The masked language model (``mlm``) or the task's sequence classifier, its classifier fresh (``new``)."""
    if kind == "mlm":
        from transformers import AutoModelForMaskedLM

        return AutoModelForMaskedLM.from_pretrained(ref.id, revision=ref.revision), load_tokenizer(ref)
    model, tokenizer, _ = load_task_model(ref, task, label_names=label_names)
    return model, tokenizer


def mlm_logits_at_cls(model: nn.Module, hidden: torch.Tensor, label_ids: torch.Tensor) -> torch.Tensor:
    """The MLM head's logits of the label words at position 0 ([CLS] / <s>), read by the family's adapter."""
    return get_adapter(model).mlm_scores(hidden[:, :1])[:, 0, label_ids]


def classifier_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters outside the encoder (``base_model``): the classifier of a sequence classifier."""
    encoder = {id(p) for p in model.base_model.parameters()}
    return [p for p in model.parameters() if id(p) not in encoder]


class Classifier:
    """Logits per class for a batch, through the chosen classifier (``mlm`` at the label words, or ``new``)."""

    def __init__(self, model: nn.Module, kind: str, label_ids: Sequence[int] | None) -> None:
        self.model, self.kind = model, kind
        device = next(model.parameters()).device
        self.label_ids = torch.tensor(list(label_ids or []), dtype=torch.long, device=device)

    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        if self.kind == "mlm":
            hidden = self.model.base_model(**inputs)[0]
            return mlm_logits_at_cls(self.model, hidden, self.label_ids)
        return self.model(**inputs).logits


def final_classifier_linear(model: nn.Module) -> nn.Linear:
    """The classifier's last Linear (BERT/DistilBERT ``classifier``, RoBERTa ``classifier.out_proj``)."""
    encoder = {id(m) for m in model.base_model.modules()}
    num_labels = int(model.config.num_labels)
    found = [
        m for m in model.modules() if isinstance(m, nn.Linear) and id(m) not in encoder and m.out_features == num_labels
    ]
    if not found:  # pragma: no cover - every sequence classifier of the supported families has one
        raise InvalidConfigError("the model's classifier has no final Linear layer to start", field="params.head")
    return found[-1]


def probe_start(
    model: nn.Module, batches: Sequence[dict[str, torch.Tensor]], l2: float | None = None
) -> dict[str, float]:
    """Start a new classifier's last layer at the linear probe of the frozen model's features.

    With every encoder weight frozen (the pooler included), a freshly initialised head
    learns slowly: on a sentence-embedding checkpoint such as all-MiniLM-L6-v2 the pooled
    [CLS] features vary little between inputs (a spread of about 0.04), so a head started
    at random and trained with the scores stays at chance for hundreds of steps, and the
    scores learn nothing from a head that says nothing. The probe (multinomial logistic
    regression, L2 ``1/n`` as scikit-learn's default ``C = 1``, fitted by L-BFGS on the
    dense model's features of the training rows) costs one forward pass over them and
    gives the masks a head to learn against from the first step.
    """
    linear = final_classifier_linear(model)
    features: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    handle = linear.register_forward_hook(
        lambda _m, args, _out: features.append(args[0].detach().reshape(-1, args[0].shape[-1]))
    )
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                model(**{k: v for k, v in batch.items() if k != "labels"})
                labels.append(batch["labels"])
    finally:
        handle.remove()
        model.train(was_training)
    x, y = torch.cat(features).float(), torch.cat(labels)
    n = len(y)
    l2 = 1.0 / n if l2 is None else l2
    weight = torch.zeros(linear.out_features, x.shape[1], requires_grad=True)
    bias = torch.zeros(linear.out_features, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weight.T + bias, y) + 0.5 * l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        linear.weight.copy_(weight.to(linear.weight))
        linear.bias.copy_(bias.to(linear.bias))
        accuracy = float(((x @ weight.T + bias).argmax(-1) == y).float().mean())
        loss = float(torch.nn.functional.cross_entropy(x @ weight.T + bias, y))
    return {"rows": n, "train_accuracy": round(accuracy, 4), "train_loss": round(loss, 4)}


def make_classifier(ctx: MethodContext, params: ClassifierParams) -> tuple[Classifier, list[str] | None]:
    if params.head != "mlm":
        return Classifier(ctx.model, "new", None), None
    words = label_words_for(ctx.task, params.label_words)
    if ctx.label_names and len(words) != len(ctx.label_names):
        raise InvalidConfigError(
            f"params.label_words: the data has {len(ctx.label_names)} classes, got {len(words)} words",
            field="params.label_words",
        )
    return Classifier(ctx.model, "mlm", label_word_ids(ctx.tokenizer, words)), words


def start_classifier(ctx: MethodContext, params: ClassifierParams, device: torch.device) -> dict[str, Any] | None:
    """The new classifier's linear-probe start (head 'new', ``head_start: probe``); None otherwise."""
    if params.head != "new" or params.head_start != "probe":
        return None
    assert ctx.examples is not None
    collate, size = PadCollator(ctx.tokenizer), params.train_batch_size
    batches = (
        {k: v.to(device) for k, v in collate(list(ctx.examples[i : i + size])).items()}
        for i in range(0, len(ctx.examples), size)
    )
    ctx.progress.event("fitting the new classifier on the frozen model's features (linear probe)")
    return probe_start(ctx.model, list(batches))
