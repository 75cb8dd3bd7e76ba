"""The benchmark scripts run end to end (tiny sizes; their numbers mean nothing here)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import extraction  # noqa: E402


def test_the_extraction_benchmark_prints_and_appends_its_tables(tmp_path, capsys):
    out = tmp_path / "RESULTS.md"
    out.write_text("# results\n")
    assert extraction.main(["--backbones", "resnet50", "--sizes", "32", "--batch-sizes", "4", "--n", "8",
                            "--repeats", "1", "--taps", "layer1", "--files", "200x150", "--decode", "full",
                            "--workers", "0", "--models", "ridge", "--read-rows", "400", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.read_text().startswith("# results\n") and printed.strip() in out.read_text()
    for line in ("| resnet50 | 32 | 200x150 | full | 0 | 4 | 1 | 8 |",
                 "Decoding and transforming one 200x150 JPEG for a 32x32 resnet50 input",
                 "Reading one cached dataset (`read_codes`, train split, 300 x 2048", "| ridge |"):
        assert line in printed
