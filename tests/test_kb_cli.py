"""`threadline kb …` and the file formats it reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from threadline.cli.main import app
from threadline.core.errors import InvalidInputError
from threadline.core.types import ArticleKind
from threadline.memory.ingest import read_articles


def _write(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "gift-wrap.md").write_text("# Gift wrapping\n\nWe gift wrap any order for $5.\n\n- Ribbons are free\n")
    (docs / "store-hours.html").write_text(
        "<html><head><title>Store hours</title><style>p{}</style></head><body><h1>Store hours</h1>"
        "<p>Open 9 to 6, Monday to Saturday.</p><ul><li>Closed on Sundays</li></ul><script>x()</script></body></html>"
    )
    (docs / "loyalty.txt").write_text("Loyalty points\nEvery dollar earns one point.\n")
    (docs / "faq.jsonl").write_text(
        json.dumps({"id": "faq-price-match", "title": "Price match", "content": "We match any local price."}) + "\n"
    )
    (docs / "more.csv").write_text('id,title,content,channels\nfaq-sms,SMS help,"Reply HELP for help.","sms"\n')
    return docs


def test_every_supported_format_is_read(tmp_path: Path) -> None:
    drafts = {d.id: d for d in read_articles(_write(tmp_path), ArticleKind.FAQ)}
    assert set(drafts) == {"gift-wrap", "store-hours", "loyalty", "faq-price-match", "faq-sms"}
    assert drafts["gift-wrap"].title == "Gift wrapping"
    assert "Ribbons are free" in drafts["gift-wrap"].body
    assert drafts["store-hours"].title == "Store hours"
    assert "Closed on Sundays" in drafts["store-hours"].body
    assert "x()" not in drafts["store-hours"].body
    assert "p{}" not in drafts["store-hours"].body
    assert drafts["loyalty"].body.strip() == "Every dollar earns one point."
    assert drafts["faq-sms"].channels == ["sms"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.jsonl", '{"id": "a", "title": "A", "content": "x"}\nnot json\n', "bad.jsonl:2: not valid JSON"),
        ("bad.csv", "name,text\nA,x\n", "CSV needs the columns"),
        ("notes.pdf", "%PDF", "unsupported file type"),
        ("empty.jsonl", '{"id": "a", "title": "A", "content": " "}\n', "empty.jsonl:1: the article has no content"),
        ("kind.jsonl", '{"id": "a", "title": "A", "content": "x", "kind": "rumour"}\n', "not a valid article"),
    ],
)
def test_bad_files_give_one_clear_error(tmp_path: Path, name: str, content: str, message: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(InvalidInputError, match=message):
        read_articles(tmp_path / name)


def test_ingest_is_idempotent_and_search_list_retire_work(db_url: str, tmp_path: Path) -> None:
    docs = _write(tmp_path)
    runner = CliRunner()
    common = ["--database-url", db_url, "--data-dir", str(tmp_path / "data")]
    first = runner.invoke(app, ["kb", "ingest", str(docs), *common])
    assert first.exit_code == 0, first.output
    assert "5 created, 0 updated, 0 unchanged" in first.output
    again = runner.invoke(app, ["kb", "ingest", str(docs), *common])
    assert "0 created, 0 updated, 5 unchanged" in again.output
    (docs / "gift-wrap.md").write_text("# Gift wrapping\n\nGift wrapping is free in December.\n")
    changed = runner.invoke(app, ["kb", "ingest", str(docs / "gift-wrap.md"), *common])
    assert "0 created, 1 updated, 0 unchanged" in changed.output
    found = runner.invoke(app, ["kb", "search", "can you gift wrap my order?", "--json", "--k", "2", *common])
    assert found.exit_code == 0, found.output
    hits = json.loads(found.stdout)
    assert hits[0]["article_id"] == "gift-wrap"
    assert hits[0]["version"] == 2
    sms_only = runner.invoke(app, ["kb", "search", "how do I get help by text?", "--json", "--channel", "web", *common])
    assert "faq-sms" not in {h["article_id"] for h in json.loads(sms_only.stdout)}
    retired = runner.invoke(app, ["kb", "retire", "gift-wrap", *common])
    assert "retired gift-wrap (now version 3)" in retired.output
    listed = runner.invoke(app, ["kb", "list", "--status", "retired", *common])
    assert "gift-wrap" in listed.output
    gone = runner.invoke(app, ["kb", "search", "can you gift wrap my order?", "--json", *common])
    assert "gift-wrap" not in {h["article_id"] for h in json.loads(gone.stdout)}
