"""Where a model comes from: a hub id (and revision) or a local folder."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ModelRef(BaseModel):
    """A model on the Hugging Face hub (``id``, optional ``revision``) or a local folder."""

    model_config = ConfigDict(extra="forbid", str_max_length=4096)

    id: str = Field(min_length=1, max_length=1024, description="Hub id (org/name) or local directory.")
    revision: str | None = Field(default=None, max_length=256, description="Branch, tag or commit on the hub.")
