"""Reading knowledge articles from files: Markdown, HTML, text, JSONL (`id`/`title`/`content`) and CSV."""

from __future__ import annotations

import csv
import gzip
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from threadline.core.errors import InvalidInputError
from threadline.core.types import ArticleDraft, ArticleKind

SUPPORTED = (".md", ".markdown", ".html", ".htm", ".txt", ".jsonl", ".csv")


def slug(text: str) -> str:
    """A lowercase, hyphenated id."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:120] or "article"


class _HtmlText(HTMLParser):
    """Text of an HTML page with headings kept as Markdown headings and list items as bullets."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.title: str | None = None
        self._tag: str | None = None
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._tag = tag
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in ("h1", "h2", "h3", "h4"):
            self.parts.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag in ("p", "br", "div", "tr"):
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1
        self._tag = None

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._tag == "title" and not self.title:
            self.title = data.strip()
            return
        self.parts.append(data)


def _draft(record: dict[str, Any], kind: ArticleKind, where: str) -> ArticleDraft:
    body = record.get("content") or record.get("body") or ""
    if not str(body).strip():
        raise InvalidInputError(f"{where}: the article has no content")
    fields = {k: v for k, v in record.items() if k in ("tags", "channels", "product_ids", "status", "audience")}
    try:
        return ArticleDraft(
            id=str(record.get("id") or slug(str(record.get("title", "")))),
            kind=ArticleKind(record.get("kind") or kind),
            title=str(record.get("title") or record.get("id") or "").strip(),
            body=str(body).strip() + "\n",
            **fields,
        )
    except (ValidationError, ValueError) as exc:
        raise InvalidInputError(f"{where}: not a valid article ({exc.__class__.__name__}: {exc})") from exc


def _markdown(path: Path, kind: ArticleKind) -> ArticleDraft:
    text = path.read_text(encoding="utf-8")
    heading = re.search(r"^# (.+)$", text, re.M)
    title = heading.group(1).strip() if heading else path.stem.replace("-", " ").replace("_", " ").title()
    body = text[heading.end() :] if heading else text
    return _draft({"id": slug(path.stem), "title": title, "content": body}, kind, str(path))


def _html(path: Path, kind: ArticleKind) -> ArticleDraft:
    parser = _HtmlText()
    parser.feed(path.read_text(encoding="utf-8"))
    body = re.sub(r"\n{3,}", "\n\n", re.sub(r"[ \t]+", " ", "".join(parser.parts))).strip()
    heading = re.search(r"^# (.+)$", body, re.M)
    title = parser.title or (heading.group(1).strip() if heading else path.stem)
    return _draft({"id": slug(path.stem), "title": title, "content": body}, kind, str(path))


def _text(path: Path, kind: ArticleKind) -> ArticleDraft:
    lines = path.read_text(encoding="utf-8").strip().splitlines()
    title = lines[0].strip() if lines else path.stem
    return _draft({"id": slug(path.stem), "title": title, "content": "\n".join(lines[1:]) or title}, kind, str(path))


def jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of a JSON Lines file (gzipped when its name ends in `.gz`); a
    bad line is one clear error."""
    with gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise InvalidInputError(f"{path}:{number}: expected a JSON object")
            yield number, record


def _jsonl(path: Path, kind: ArticleKind) -> Iterator[ArticleDraft]:
    for number, record in jsonl_records(path):
        yield _draft(record, kind, f"{path}:{number}")


def _csv(path: Path, kind: ArticleKind) -> Iterator[ArticleDraft]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"title", "content"} - set(reader.fieldnames or [])
        if missing:
            raise InvalidInputError(f"{path}: CSV needs the columns id, title, content (missing {sorted(missing)})")
        for number, row in enumerate(reader, start=2):
            record: dict[str, Any] = dict(row)
            for key in ("tags", "channels", "product_ids"):
                if record.get(key):
                    record[key] = [v.strip() for v in record[key].split(",") if v.strip()]
                else:
                    record.pop(key, None)
            yield _draft(record, kind, f"{path}:{number}")


def read_articles(path: Path, kind: ArticleKind = ArticleKind.FAQ) -> list[ArticleDraft]:
    """Every article in one file (or every supported file below a directory)."""
    if path.is_dir():
        return [d for p in sorted(path.rglob("*")) if p.suffix.lower() in SUPPORTED for d in read_articles(p, kind)]
    if not path.exists():
        raise InvalidInputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".md", ".markdown"):
        return [_markdown(path, kind)]
    if suffix in (".html", ".htm"):
        return [_html(path, kind)]
    if suffix == ".txt":
        return [_text(path, kind)]
    if suffix == ".jsonl":
        return list(_jsonl(path, kind))
    if suffix == ".csv":
        return list(_csv(path, kind))
    raise InvalidInputError(f"{path}: unsupported file type {suffix!r} (use {', '.join(SUPPORTED)})")
