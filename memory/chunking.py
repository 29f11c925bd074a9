"""Split knowledge articles into self-contained, embeddable chunks along their Markdown structure."""

from __future__ import annotations

import re

from threadline.core.types import EDITOR_NOTES, Article

_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
_LIST_ITEM = re.compile(r"^(?:[-*+]|\d+[.)])\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _sections(body: str) -> list[tuple[str, list[str]]]:
    """The body as (heading, blocks) pairs; a block is a paragraph or a list item with its sub-lines."""
    sections: list[tuple[str, list[str]]] = [("", [])]
    block: list[str] = []

    def close() -> None:
        if block:
            sections[-1][1].append("\n".join(block).strip())
            block.clear()

    for raw in body.splitlines():
        line = raw.rstrip()
        heading = _HEADING.match(line)
        if heading:
            close()
            sections.append((heading.group(1), []))
        elif not line.strip():
            close()
        else:
            if _LIST_ITEM.match(line):
                close()  # a top-level list item starts its own block; indented sub-bullets stay with it
            block.append(line)
    close()
    return [(heading, blocks) for heading, blocks in sections if heading or blocks]


def _split_long(text: str, limit: int) -> list[str]:
    """Cut an oversize block at line breaks, then sentence ends, then spaces, into pieces of at most `limit`."""
    if len(text) <= limit:
        return [text]
    pieces: list[tuple[str, str]] = []  # (separator before the piece, piece)
    for line in text.split("\n"):
        sep = "\n"
        for sentence in _SENTENCE_END.split(line) if len(line) > limit else [line]:
            while len(sentence) > limit:
                cut = sentence.rfind(" ", 0, limit)
                cut = cut if cut > limit // 2 else limit
                pieces.append((sep, sentence[:cut].rstrip()))
                sentence, sep = sentence[cut:].lstrip(), " "
            pieces.append((sep, sentence))
            sep = " "
    merged: list[str] = []
    for sep, piece in pieces:
        if merged and len(merged[-1]) + 1 + len(piece) <= limit:
            merged[-1] += sep + piece
        elif piece.strip():
            merged.append(piece.strip())
    return merged


def chunk_article(article: Article, max_chars: int = 800) -> list[tuple[int, str]]:
    """Chunk an article on headings, paragraphs and list items so each chunk stands alone for retrieval.

    Small blocks are merged up to `max_chars` (not counting the title and section heading that prefix every
    chunk); a block longer than that is cut at sentence ends. Numbered steps keep their sub-bullets. The
    result is deterministic: the same article always yields the same `(chunk number, text)` pairs.
    """
    title = article.title.strip()
    chunks: list[str] = []
    for heading, all_blocks in _sections(article.body):
        blocks = [b for b in all_blocks if not b.startswith(EDITOR_NOTES)]
        if all_blocks and not blocks and not heading:
            continue  # only notes to the article's editors
        prefix = f"{title}\n\n{heading}\n" if heading and heading != title else f"{title}\n\n"
        current: list[str] = []
        size = 0
        for piece in [part for block in blocks for part in _split_long(block, max_chars)]:
            if current and size + 2 + len(piece) > max_chars:
                chunks.append(prefix + "\n\n".join(current))
                current, size = [], 0
            size += len(piece) + (2 if current else 0)
            current.append(piece)
        if current:
            chunks.append(prefix + "\n\n".join(current))
        elif not blocks:
            chunks.append(prefix.rstrip())  # a heading with nothing under it still says something
    return list(enumerate(chunks or [title]))


_CLAUSE_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")


def split_request(text: str, min_chars: int = 20, max_clauses: int = 48) -> list[str]:
    """A customer's request cut into sentences and lines, so each can be matched on its own.

    Fragments shorter than `min_chars` ("Hi,", "Thanks!") are dropped; a request with nothing longer than that
    is returned whole. At most `max_clauses` are kept, evenly spread over a very long request.
    """
    clauses = [p.strip(" \t-*>#") for p in _CLAUSE_BREAK.split(text)]
    clauses = [c for c in clauses if len(c) >= min_chars]
    if not clauses:
        stripped = text.strip()
        return [stripped] if stripped else []
    if len(clauses) > max_clauses:
        step = len(clauses) / max_clauses
        clauses = [clauses[int(i * step)] for i in range(max_clauses)]
    return clauses
