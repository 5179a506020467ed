"""Every citation in a code comment resolves to a heading of a document in this repository.

Comments cite `[crm-behaviour: <heading>]` (docs/crm-behaviour.md: the CRM API facts the code relies on)
and `[architecture: <heading>]` (docs/architecture.md: layout, stages, invariants). No comment cites a
document outside the repository, and the generated configuration reference carries no citation at all.

Checked: the Python files under connector/, bench/ and tests/ (except this file, which spells out the
forms it looks for), and the markdown files in MARKDOWN_SOURCES. Markdown cites with the same bracket
text, written as a link: `[crm-behaviour: <heading>](../docs/crm-behaviour.md#<anchor>)`; the link must
point at that document and at the heading's anchor.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = {"crm-behaviour": ROOT / "docs" / "crm-behaviour.md", "architecture": ROOT / "docs" / "architecture.md"}
SOURCE_ROOTS = ("connector", "bench", "tests")
MARKDOWN_SOURCES = ("bench/README.md",)
SELF = Path(__file__).resolve()

CITATION = re.compile(r"\[(crm-behaviour|architecture): ([^\]\n]+)\]")
CITATION_START = re.compile(r"\[(crm-behaviour|architecture):")
# Citations of the documents that used to live outside the repository: "[facts §1.4]", "facts §2.3",
# "(invariant 2)", "invariants 2 and 5", "pitfall 12", "DESIGN invariants", a bare "§1.10", and that
# reference's source tags such as "[SF-LIM]" or "[HS-SIG3]".
OLD_STYLE = re.compile(r"facts §|\[facts\b|§\s*\d|\binvariants? \d|\bpitfalls? \d|\bDESIGN\b|crm-api-facts", re.IGNORECASE)
SOURCE_TAG = re.compile(
    r"[\[,]\s*(?:HS|SF|AB|AE|TAP|TAPSF|SG|DLT|PHP|PD|SS|GL|PRIS|GH|HD|LT|TG|WM|KDP|MAUTIC|INGESTR|ESTUARY|FT|SVC|FS|JSF|RH)"
    r"-[A-Z0-9]+(?:-[A-Z0-9]+)*\]"
)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
# A markdown citation written as a link: "[crm-behaviour: heading](../docs/crm-behaviour.md#anchor)".
CITATION_LINK = re.compile(r"\[(crm-behaviour|architecture): ([^\]\n]+)\]\(([^)#\s]*)(?:#([^)\s]*))?\)")


def headings(path: Path) -> list[str]:
    found: list[str] = []
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := HEADING.match(line)):
            found.append(match.group(1))
    return found


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def source_files() -> list[Path]:
    python = (p for name in SOURCE_ROOTS for p in (ROOT / name).rglob("*.py") if ".venv" not in p.parts)
    return sorted([p for p in python if p.resolve() != SELF] + [ROOT / name for name in MARKDOWN_SOURCES])


def citations() -> list[tuple[str, int, str, str]]:
    """(file, line, document, heading) for every citation in the sources."""
    found = []
    for path in source_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for match in CITATION.finditer(line):
                found.append((str(path.relative_to(ROOT)), number, match.group(1), match.group(2)))
    return found


@pytest.mark.parametrize("doc", sorted(DOCS))
def test_each_document_exists_with_unique_headings(doc: str) -> None:
    names = headings(DOCS[doc])
    assert names, f"{DOCS[doc]} has no headings"
    duplicates = sorted({name for name in names if names.count(name) > 1})
    assert not duplicates, f"{DOCS[doc].name}: a citation of these headings would be ambiguous: {duplicates}"


def test_every_citation_names_a_heading_of_its_document() -> None:
    known = {doc: set(headings(path)) for doc, path in DOCS.items()}
    found = citations()
    assert {doc for _, _, doc, _ in found} == set(DOCS), "both documents should be cited from the code"
    unknown = [f"{file}:{line}: [{doc}: {heading}]" for file, line, doc, heading in found if heading not in known[doc]]
    assert not unknown, "citations without a matching heading (fix the citation or add the heading):\n" + "\n".join(unknown)


def test_no_citation_is_broken_across_lines_or_unclosed() -> None:
    broken = []
    for path in source_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if len(CITATION_START.findall(line)) != len(CITATION.findall(line)):
                broken.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not broken, "a citation must open and close on one line:\n" + "\n".join(broken)


def test_no_citation_of_documents_outside_the_repository_remains() -> None:
    old = []
    for path in source_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if OLD_STYLE.search(line) or SOURCE_TAG.search(line):
                old.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not old, "cite [crm-behaviour: …] or [architecture: …] instead:\n" + "\n".join(old)


def test_the_generated_configuration_reference_carries_no_citation() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for marker in ("[facts", "crm-behaviour:", "architecture:", "§", "invariant ", "pitfall "):
        assert marker not in text, f"docs/configuration.md contains {marker!r}: keep citations out of field comments"


@pytest.mark.parametrize("name", MARKDOWN_SOURCES)
def test_markdown_citation_links_point_at_their_heading(name: str) -> None:
    path = ROOT / name
    wrong = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        cited = len(CITATION.findall(line))
        links = CITATION_LINK.findall(line)
        if len(links) != cited:
            wrong.append(f"{name}:{number}: write each citation as a link to its document: {line.strip()}")
        for doc, heading, target, fragment in links:
            if (path.parent / target).resolve() != DOCS[doc] or fragment != anchor(heading):
                wrong.append(f"{name}:{number}: [{doc}: {heading}] should link to "
                             f"{DOCS[doc].relative_to(ROOT)}#{anchor(heading)}, not {target}#{fragment}")
    assert not wrong, "\n".join(wrong)
