"""The documentation stands on its own: links resolve, no page points at files users do not have.

Reads text files only (fast). Covers documentation/**/*.md and README.md.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTATION = ROOT / "documentation"
PAGES = sorted(DOCUMENTATION.rglob("*.md")) + [ROOT / "README.md"]

# [text](target) or ![alt](target), target up to the first space or ")"; code spans and fenced
# blocks are removed first, so examples of Markdown inside code do not count.
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
# Files of the design notes that are not shipped to users.
_UNSHIPPED = re.compile(r"METHOD\.md|PIPELINE\.md|DATASETS\.md|STYLE\.md|(?<![\w-])shared/")


def _prose(text: str) -> str:
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def _relative_links(page: Path) -> list[str]:
    links = []
    for target in _LINK.findall(_prose(page.read_text(encoding="utf-8"))):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("#"):
            continue  # http:, https:, mailto: ... and links inside the same page
        links.append(target)
    return links


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for line in _FENCE.sub("", page.read_text(encoding="utf-8")).splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            heading = re.sub(r"[^\w\- ]", "", match.group(1).lower().replace("`", ""))
            anchors.add(heading.replace(" ", "-"))
    return anchors


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_there_are_pages():
    assert len(PAGES) > 10 and (DOCUMENTATION / "index.md") in PAGES


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_relative_link_resolves(page: Path):
    broken = []
    for target in _relative_links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve()
        if not resolved.exists():
            broken.append(f"{target} (no file {resolved})")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target} (no heading #{anchor} in {resolved.name})")
    assert not broken, f"{_page_id(page)}: broken links: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_no_page_cites_the_unshipped_design_notes(page: Path):
    hits = [f"line {number}: {line.strip()}"
            for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
            if _UNSHIPPED.search(line)]
    assert not hits, (f"{_page_id(page)} cites files users do not have (METHOD.md, PIPELINE.md, "
                      f"shared/ ...); link documentation/explanation/method_numbers.md instead: {hits}")


def test_the_index_lists_every_page():
    index = DOCUMENTATION / "index.md"
    linked = {(index.parent / target.partition("#")[0]).resolve() for target in _relative_links(index)}
    missing = [_page_id(page) for page in PAGES
               if page.is_relative_to(DOCUMENTATION) and page != index and page.resolve() not in linked]
    assert not missing, f"documentation/index.md does not link: {missing}"


def test_link_pattern_reads_the_usual_forms(tmp_path: Path):
    page = tmp_path / "page.md"
    page.write_text("See [a](a.md), [b](sub/b.md#part \"title\"), ![f](fig.png), [web](https://x.org), "
                    "[here](#top) and `[code](not_a_link.md)`.\n```\n[fenced](nor_this.md)\n```\n")
    assert _relative_links(page) == ["a.md", "sub/b.md#part", "fig.png"]
    heading = tmp_path / "h.md"
    heading.write_text("# The paper's Table 1\n## Where `disyre_v2` departs, from it\n")
    assert _anchors(heading) == {"the-papers-table-1", "where-disyre_v2-departs-from-it"}
