"""The benchmark scripts run end to end (tiny sizes; their numbers mean nothing here)."""

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import extraction  # noqa: E402


def test_the_extraction_benchmark_prints_and_appends_its_tables(tmp_path, capsys):
    out = tmp_path / "RESULTS.md"
    out.write_text("# results\n")
    assert extraction.main(["--backbones", "resnet50", "--sizes", "32", "--batch-sizes", "4", "--n", "8",
                            "--repeats", "1", "--taps", "layer1", "--files", "200x150", "--decode", "full",
                            "--workers", "0", "--layouts", "contiguous", "--models", "ridge", "--read-rows", "400", "--answer-repeats", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.read_text().startswith("# results\n") and printed.strip() in out.read_text()
    for line in ("| resnet50 | 32 | 200x150 | full | 0 | contiguous | 4 | 1 | 8 |",
                 "A worker's work on one 200x150 JPEG for a 32x32 resnet50 input",
                 "Reading one cached dataset (`read_codes`, train split, 300 x 2048", "| ridge |",
                 "| python -c pass | import torch | import torch, torchvision | pipeline --help | pipeline status |"):
        assert line in printed


def test_the_extraction_benchmark_runs_the_stage_in_its_own_process(tmp_path, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(extraction.subprocess, "run", lambda *args, **kwargs: calls.append(args))
    assert extraction.main(["--backbones", "resnet50", "--sizes", "32", "--batch-sizes", "4", "--n", "8",
                            "--repeats", "1", "--taps", "layer1", "--files", "200x150", "--workers", "0",
                            "--in-process", "--models", "--read-rows", "400", "--answer-repeats", "0"]) == 0
    assert not calls  # no `python -m pipeline extract`: features.extract ran here
    printed = capsys.readouterr().out
    assert "| resnet50 | 32 | 200x150 | fast | 0 | channels_last | 4 | 1 | 8 |" in printed
    share = re.search(r"\| resnet50 \| 32 \| 0 \| ([\d.]+) % \|", printed)  # the forward's share, clocked in the stage
    assert share and 0 < float(share.group(1)) <= 100


def test_the_precision_benchmark_compares_stores(image_folder, tmp_path, capsys):
    import precision

    from features import ImageFolder, Recipe, Runtime, extract_codes, resolve_weights

    weights = resolve_weights("resnet50", "random")
    full, half = [extract_codes(ImageFolder(image_folder), Recipe(weights, image_size=32, precision=name),
                                taps=["layer1", "pool"], poolings=["avg"], cache_dir=tmp_path,
                                runtime=Runtime(batch_size=8, progress=False)).path
                  for name in ("float32", "bfloat16")]
    assert precision.main(["codes", str(full), str(half)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(f"| {half.name} |")]
    assert len(lines) == 2 and all("| bfloat16 |" in line and "| avg | 16 |" in line for line in lines)
    whole = [float(line.split("|")[7]) for line in lines]
    assert all(0 < value < 1e-2 for value in whole)


def test_the_precision_benchmark_times_each_precision_and_names_the_cpus_instructions(tmp_path, capsys):
    import precision

    assert precision.main(["speed", "--backbones", "resnet50", "--sizes", "32", "--precisions", "float32",
                           "bfloat16", "--batch-size", "4", "--rounds", "2", "--bare-seconds", "0.1", "--images",
                           "8", "--workers", "0", "--cache", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "avx512_bf16 " in printed and "avx512_vnni " in printed and "amx " in printed
    rows = [line for line in printed.splitlines() if line.startswith("| resnet50 | 32 |")]
    assert [row.split(" | ")[2] for row in rows] == ["bare", "stage"]
    assert all(row.split(" | ")[4] == "1.00x" for row in rows)  # float32 against itself


def test_the_forward_benchmark_compares_the_networks_settings(capsys):
    import forward

    assert forward.main(["--backbones", "resnet50", "--sizes", "32", "--batch-size", "2", "--seconds", "0.1",
                         "--repeats", "2"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| resnet50 | 32 | 2 |")]
    assert [row.split(" | ")[3] for row in rows] == ["plain", "channels_last", "folded", "bfloat16"]
    assert rows[0].endswith("| +0 % |")


def test_the_classifier_benchmark_has_a_row_per_table_and_one_for_the_fused_tables(image_folder, tmp_path, capsys):
    import importlib.util

    from features import ImageFolder, Recipe, Runtime, extract_codes, resolve_weights

    store = extract_codes(ImageFolder(image_folder), Recipe(resolve_weights("resnet50", "random"), image_size=32),
                          taps=["layer1", "pool"], poolings=["avg"], cache_dir=tmp_path,
                          runtime=Runtime(batch_size=8, progress=False)).path
    spec = importlib.util.spec_from_file_location("classifier_benchmark", Path(extraction.__file__).with_name(
        "classifiers.py"))  # by its path: the name "classifiers" is the package's
    benchmark_script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark_script)
    assert benchmark_script.main([str(store), "--models", "logreg", "ridge", "sgd", "--cv-folds", "2",
                                  "--n-jobs", "1", "--out", str(tmp_path / "table.md")]) == 0
    rows = [line.split(" | ")[1:] for line in capsys.readouterr().out.splitlines()
            if line.startswith(f"| {store.name} | resnet50 |")]
    assert [(row[2], row[3]) for row in rows] == [("layer1", "avg"), ("pool", "avg"), ("layer1+pool", "avg+avg"),
                                                  ("layer1+pool", "avg+avg")]
    assert all("-" not in row[7:10] and row[10] == "-" for row in rows[:2])
    assert 1 <= rows[2][7:10].count("-") <= 2 and rows[2][10] == "-"  # fused: the classifiers of the best two cells
    assert rows[3][7:10] == ["-"] * 3 and rows[3][10] != "-" and rows[3][11] == "ensemble"  # stacked: its own row
    assert (tmp_path / "table.md").read_text().count(" | resnet50 |") == 4


def test_the_heads_benchmark_times_settings_and_scores_soft_votes(image_folder, tmp_path, capsys):
    import numpy as np

    import heads
    from classifiers import make_model
    from classifiers.persistence import save_model
    from classifiers.cells import load_fused_codes
    from features import ImageFolder, Recipe, Runtime, extract_codes, resolve_weights

    store = extract_codes(ImageFolder(image_folder), Recipe(resolve_weights("resnet50", "random"), image_size=32),
                          taps=["layer1", "pool"], poolings=["avg"], cache_dir=tmp_path,
                          runtime=Runtime(batch_size=8, progress=False)).path
    parts = ["layer1/avg", "pool/avg"]
    heads.main([str(store), "--parts", *parts, "--settings", '{"max_iter": 2}', '{"max_iter": 2, "hidden_units": [8]}'])
    out = capsys.readouterr().out
    assert "layer1+pool / avg+avg" in out and "avx512_bf16" in out
    assert [line.split(" | ")[0] for line in out.splitlines() if line.startswith("| `{")] == [
        '| `{"max_iter": 2}`', '| `{"max_iter": 2, "hidden_units": [8]}`']
    seeds = ['{"max_iter": 2}', '{"max_iter": 2, "random_state": 1, "tuning": {"preprocessing": ["standard"]}}']
    heads.main([str(store), "--parts", *parts, "--vote-settings", "--settings", *seeds, '{"max_iter": 2, "refit": true}'])
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][2:]
    assert [row[0] for row in rows] == ["| `" + seeds[0] + "`", "| `" + seeds[1] + "`", "| soft vote of the 2 above",
                                        '| `{"max_iter": 2, "refit": true}`', "| soft vote of the 3 above"]
    assert 0 < float(rows[2][1]) <= 100 and rows[3][1] == "(refit)" and rows[4][1] == ""  # no held-out rows: no score
    assert rows[3][3] == "2 (best 2)" and 0 < float(rows[4][2]) <= 100

    codes = load_fused_codes(store, [("layer1", "avg"), ("pool", "avg")])
    held = np.arange(0, len(codes.y_fit), 3)
    models = tmp_path / "models"
    models.mkdir()
    both = [("layer1", "avg"), ("pool", "avg")]
    for fitted_on, columns in [(both[:1], slice(0, 256)), (both[1:], slice(256, None)), (both, slice(None))]:
        model = make_model("mlp-head", params={"max_iter": 2}).fit(codes.X_fit[:, columns], codes.y_fit,
                                                                    classifier__validation_rows=held)
        save_model(model, models / f"{len(fitted_on)}-{fitted_on[-1][0]}-mlp-head.joblib", {"parts": fitted_on}, {},
                   classifier="mlp-head")
    save_model(make_model("ridge").fit(codes.X_fit, codes.y_fit), models / "ridge.joblib", {"parts": both}, {},
               classifier="ridge")  # not a head: left out
    heads.main([str(store), "--parts", *parts, "--vote", str(models)])
    votes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| `")]
    assert sorted(line.count("`") // 2 for line in votes) == [1, 1, 1, 2, 2, 2, 3]  # each alone, the pairs, all
