"""`salla-pipeline rag search`: the assistant's retrieval, from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from data_pipeline.entrypoints.cli.console import console, fail
from data_pipeline.entrypoints.cli.service import (
    DEFAULT_URL,
    DataDirOption,
    ServiceClient,
    UrlOption,
)

app = typer.Typer(help="Retrieval over a merchant's products and orders.", no_args_is_help=True)


def rows_table(query: str, matches: list[dict[str, Any]]) -> Table:
    table = Table(title=f"“{query}”", title_justify="left")
    for column, justify in (("#", "right"), ("id", "left"), ("score", "right"), ("", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for rank, match in enumerate(matches, 1):
        meta = match["metadata"]
        if meta.get("entity") == "product":
            price = (
                f" · {meta['price']:.2f} {meta.get('currency', '')}" if meta.get("price") else ""
            )
            about = f"{meta.get('name', '')}{price} · {meta.get('status') or ''}"
        else:
            total = f"{meta.get('total') or 0:.2f} {meta.get('currency', '')}"
            city = f" · {meta['city']}" if meta.get("city") else ""
            about = f"{meta.get('status', '')} · {total}{city} · {meta.get('created_date', '')}"
        table.add_row(str(rank), match["id"], f"{match['score']:.3f}", about)
    return table


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="Free text, Arabic or English.")],
    merchant: Annotated[int, typer.Option("--merchant", help="Salla merchant id.")],
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=50)] = 5,
    filter: Annotated[
        str | None, typer.Option(help='Metadata filter JSON, e.g. \'{"entity": "product"}\'.')
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw answer.")] = False,
    url: UrlOption = DEFAULT_URL,
    data_dir: DataDirOption = Path(".data"),
) -> None:
    """Search a merchant's products and orders (hybrid vector + exact-name ranking)."""
    body: dict[str, Any] = {"merchantId": merchant, "query": query, "topK": top_k}
    if filter is not None:
        try:
            body["filter"] = json.loads(filter)
        except ValueError as error:
            fail(f"--filter is not JSON: {error}")
    client = ServiceClient.connect(url, data_dir)
    _, answer = client.call("POST", "/api/rag/search", json=body)
    if as_json:
        console.print_json(data=answer)
    elif not answer["matches"]:
        console.print(f"no matches for “{query}” in merchant {merchant}")
    else:
        console.print(rows_table(query, answer["matches"]))
