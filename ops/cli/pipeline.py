"""``healthbus pipeline show``: the pipeline declaration as a table, a Mermaid picture or JSON."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ops.pipeline_map import declaration_rows, mermaid

pipeline_app = typer.Typer(help="The pipeline declaration: which stage reads and writes what.", no_args_is_help=True)


@pipeline_app.command("show")
def pipeline_show(
    form: Annotated[
        str, typer.Option("--as", help="table, mermaid (the picture in docs/architecture.md) or json")
    ] = "table",
) -> None:
    """Every stage: its kind, what it reads and writes, the command that runs it and its metrics port."""
    rows = declaration_rows()
    if form == "json":
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    elif form == "mermaid":
        print(mermaid(), end="")
    elif form == "table":
        for r in rows:
            print(f"{r['stage']:<21} {r['kind']:<8} :{r['metrics_port']:<5} healthbus {' '.join(r['command'])}")
            print(f"    reads  {', '.join(r['reads']) or '-'}")
            print(f"    writes {', '.join(r['writes']) or '-'}")
            if r["stores"]:
                print(f"    stores {', '.join(r['stores'])}")
    else:
        raise typer.BadParameter("one of table, mermaid, json", param_hint="--as")
