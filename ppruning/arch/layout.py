"""Where a model family keeps its prunable projections and which config fields hold their sizes.

A family's adapter declares one :class:`BlockLayout` and one :class:`SizeFields`; every
piece of code that touches a family's modules reads them from there: the adapter's own
surgery and shape reading, the methods (SMP's six matrices, PruneNet's FFN input), and the
portable checkpoint format. Both are plain data: :meth:`BlockLayout.as_dict` is what a
self-describing pruned checkpoint carries in its ``config.json`` (``pruned_layout``), so
the modelling file shipped beside its weights rebuilds the layers without importing this
library. Paths are dotted attribute paths, from the backbone (``blocks``) or from one
transformer block (everything else).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: The key of ``config.json`` that carries a family's layout in a self-describing pruned checkpoint.
LAYOUT_KEY = "pruned_layout"


@dataclass(frozen=True)
class SizeFields:
    """The names of the config fields that hold the model width, the head counts and the FFN width."""

    hidden: str
    heads: str
    #: The KV head count of grouped-query families; None where every head has its own K and V.
    kv_heads: str | None
    ffn: str


@dataclass(frozen=True)
class BlockLayout:
    """One transformer block's projections, and the attributes a cut must update."""

    #: Path from the backbone to the sequence of blocks (``encoder.layer``, ``h``, ``layers``).
    blocks: str
    #: Path (in a block) of the attribute that holds the head size.
    head_dim: str
    #: The attention output projection; its input columns are the head outputs.
    attn_out: str
    #: The FFN-in projection(s); each output row is a neuron (gated FFNs: gate, then up).
    ffn_in: tuple[str, ...]
    #: The FFN-out projection; its input columns are the neuron outputs.
    ffn_out: str
    #: Separate Q, K and V projections (every family but GPT-2) ...
    query: str | None = None
    key: str | None = None
    value: str | None = None
    #: ... or one fused projection holding Q, K and V side by side (GPT-2's ``c_attn``).
    qkv: str | None = None
    #: True where projections store their weight as [in, out] (GPT-2's ``Conv1D``).
    transposed: bool = False
    #: Attributes set to a layer's query-head count after its heads are cut.
    head_count_attrs: tuple[str, ...] = ()
    #: Attributes set to a layer's query width (heads x head size) after its heads are cut.
    head_width_attrs: tuple[str, ...] = ()
    #: Attributes set to a layer's FFN width after its neurons are cut.
    ffn_size_attrs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        separate = (self.query, self.key, self.value)
        named = sum(path is not None for path in separate)
        if not ((self.qkv is None and named == 3) or (self.qkv is not None and named == 0)):
            raise ValueError("a block layout names either query, key and value, or one fused qkv projection")

    def as_dict(self, size_fields: SizeFields) -> dict[str, Any]:
        """The layout and the size fields as JSON values (what a self-describing checkpoint carries)."""
        return {**asdict(self), "size_fields": asdict(size_fields)}
