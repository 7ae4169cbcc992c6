"""What a prune run writes: one output writer per method kind, behind one interface (:mod:`.base`).

The run picks the writer from the method's declared ``kind`` (never from the type of what
the method returned); a kind without a writer is a programming error the tests catch.
"""

from __future__ import annotations

from ppruning.run.outputs.base import OutputWriter
from ppruning.run.outputs.layers import LayersWriter
from ppruning.run.outputs.structured import StructuredWriter
from ppruning.run.outputs.unstructured import UnstructuredWriter

#: Method kind (``MethodSpec.kind``) -> the writer of its outputs.
WRITERS: dict[str, OutputWriter] = {
    "structured": StructuredWriter(),
    "unstructured": UnstructuredWriter(),
    "layers": LayersWriter(),
}


def writer_for(kind: str) -> OutputWriter:
    try:
        return WRITERS[kind]
    except KeyError:
        raise RuntimeError(f"no output writer for method kind {kind!r}; writers: {', '.join(WRITERS)}") from None
