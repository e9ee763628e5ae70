"""Which institutions an adapter process serves: one YAML file, one entry per exchange database.

```yaml
sources:
  - kind: hospital                  # hospital (HIS/LIS/PACS/EMR exchange DB) or county (public-health DB)
    org_code: 12411502MB0000001X    # GB 32100 code the adapter publishes as (and may only publish as)
    name: 浉河区第1人民医院
    region_code: "411502"           # GB/T 2260 code of the institution
    dsn: postgresql://reader@10.1.2.3:5432/exchange
    schema: public                  # PostgreSQL schema holding the exchange tables
    overlap_seconds: 300            # optional: how far behind its watermark each poll looks again (late commits)
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field


class SourceConfig(BaseModel):
    kind: Literal["hospital", "county"]
    org_code: str = Field(min_length=18, max_length=18)
    name: str
    region_code: str = Field(pattern=r"^\d{6}$")
    dsn: str
    schema_name: str = Field("public", alias="schema")
    # Rows committed late (a source transaction longer than the settle delay) or stamped by a clock behind
    # land behind the watermark: every poll re-reads this much behind it (docs/adapters.md).
    overlap_seconds: float = Field(default=300.0, ge=0)

    model_config = {"populate_by_name": True}

    @property
    def source_id(self) -> str:
        """Stable id of this exchange database for watermarks and metrics (no personal data)."""
        return f"{self.kind}:{self.org_code}"


class AdapterConfig(BaseModel):
    sources: list[SourceConfig]


def load_config(path: Path) -> AdapterConfig:
    return AdapterConfig.model_validate(yaml.safe_load(path.read_text("utf-8")))


def dump_config(config: AdapterConfig, path: Path) -> None:
    data = config.model_dump(by_alias=True)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "utf-8")
