"""The committed result files and the documents that cite them agree: every file a document links or names under
results/ or benchmarks/results/ exists, and every folder or file at the top of results/ is listed in its manifest
(results/README.md) with what it backs."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = ["README.md", "RESULTS.md", "BENCHMARKS.md", "RUN_EXPERIMENTS.md", "results/README.md",
             *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]
# a path as documents write it: in a Markdown link target or in backticks, starting at a results folder
CITED = re.compile(r"(?:\]\(|`)((?:benchmarks/)?results/[^)`\s]*)")


def cited_paths(text: str) -> set[str]:
    out = set()
    for path in CITED.findall(text):
        path = path.split("#")[0].rstrip(".,;:")
        if any(ch in path for ch in "*{}<>"):  # a pattern or a placeholder, not one file
            continue
        out.add(path)
    return out


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_result_file_a_document_cites_exists(document):
    cited = cited_paths((REPO / document).read_text(encoding="utf-8"))
    # results/README.md names its folders from results/, BENCHMARKS.md its files from benchmarks/
    base = {"results/README.md": REPO / "results", "BENCHMARKS.md": REPO / "benchmarks"}.get(document, REPO)
    missing = sorted(p for p in cited if not (REPO / p).exists() and not (base / p).exists())
    assert not missing, f"{document} cites result files that are not in the repository: {missing}"


def test_every_entry_of_results_is_in_its_manifest():
    manifest = (REPO / "results" / "README.md").read_text(encoding="utf-8")
    first_cells = [line.split("|")[1] for line in manifest.splitlines() if line.startswith("| `")]
    listed = {name.rstrip("/") for cell in first_cells for name in re.findall(r"`([^`]+)`", cell)}
    entries = {p.name for p in (REPO / "results").iterdir() if p.name != "README.md"}
    assert entries, "results/ is empty"
    assert not entries - listed, f"results/ entries missing from results/README.md: {sorted(entries - listed)}"


def test_the_citation_pattern_finds_links_and_backticks():
    text = ("see [`results/main_job/`](results/main_job/phase1_comparison.json), `benchmarks/results/x.json`, "
            "`results/phase{1,2}/reports/` and (results/README.md).")
    assert cited_paths(text) == {"results/main_job/", "results/main_job/phase1_comparison.json",
                                 "benchmarks/results/x.json"}
