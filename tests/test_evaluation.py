import json
import math

import datasets
import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

from oe_text.evaluation import (
    OODResults,
    compare_results,
    compare_results_to_dict,
    evaluate_ood,
    evaluate_ood_from_logits,
    evaluate_ood_from_scores,
    plan_ood_subsets,
)
from oe_text.feature_scores import KNNScorer, MahalanobisScorer
from oe_text.inference import predict_logits
from oe_text.metrics import calibration_metrics, ood_detection_metrics
from oe_text.scores import max_softmax_probability, msp_score


# ------------------------------------------------------------------------------------------------ subset plans


def test_paper_plan_draws_one_fifth_without_replacement_deterministically():
    plan = plan_ood_subsets(500, {"big": 10_000, "small": 60}, seed=3)
    assert plan.protocol == "paper" and plan.num_id == 500
    assert len(plan.subsets["big"]) == 10
    for sub in plan.subsets["big"]:
        assert sub.size == 100 and np.unique(sub).size == 100 and sub.max() < 10_000
        assert np.array_equal(sub, np.sort(sub))
    assert len({tuple(s) for s in plan.subsets["big"]}) == 10  # different draws
    # A set smaller than the subset size is used whole in every subset.
    assert all(np.array_equal(s, np.arange(60)) for s in plan.subsets["small"])
    assert plan.subset_size("small") == 60 and plan.subset_size("big") == 100
    needed = plan.indices_to_score("big")
    assert needed.size <= 1000 and set(needed) == set(np.concatenate(plan.subsets["big"]))
    again = plan_ood_subsets(500, {"big": 10_000, "small": 60}, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(plan.subsets["big"], again.subsets["big"]))
    other_seed = plan_ood_subsets(500, {"big": 10_000}, seed=4)
    assert not np.array_equal(other_seed.subsets["big"][0], plan.subsets["big"][0])


def test_plan_of_a_set_does_not_depend_on_the_other_sets():
    a = plan_ood_subsets(100, {"x": 1000}, seed=0)
    b = plan_ood_subsets(100, {"y": 500, "x": 1000}, seed=0)
    assert all(np.array_equal(s, t) for s, t in zip(a.subsets["x"], b.subsets["x"]))


def test_full_plan_and_max_ood_samples():
    full = plan_ood_subsets(100, {"x": 1000}, protocol="full")
    assert full.subsets["x"][0].size == 1000 and len(full.subsets["x"]) == 1
    capped = plan_ood_subsets(100, {"x": 1000}, protocol="full", max_ood_samples=300)
    assert capped.subsets["x"][0].size == 300
    paper_capped = plan_ood_subsets(100, {"x": 1000}, max_ood_samples=50, ood_to_id_ratio=0.2)
    assert paper_capped.indices_to_score("x").size <= 50
    assert plan_ood_subsets(3, {"x": 100}).subset_size("x") == 1  # at least one OOD input per subset


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"protocol": "openood"}, "protocol"),
        ({"num_subsets": 0}, "num_subsets"),
        ({"ood_to_id_ratio": 0}, "ood_to_id_ratio"),
        ({"max_ood_samples": 0}, "max_ood_samples"),
    ],
)
def test_plan_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        plan_ood_subsets(100, {"x": 10}, **kwargs)


def test_plan_empty_inputs():
    with pytest.raises(ValueError, match="at least one OOD set"):
        plan_ood_subsets(100, {})
    with pytest.raises(ValueError, match="'x' is empty"):
        plan_ood_subsets(100, {"x": 0})


# ------------------------------------------------------------------------------------------------ from logits


def _toy_logits(seed=0, n_id=300, n_ood=(1200, 40)):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=n_id)
    id_logits = rng.normal(size=(n_id, 3))
    id_logits[np.arange(n_id), labels] += 3.0
    id_logits[:30] = rng.normal(size=(30, 3))  # some errors
    ood = {f"ood{i}": rng.normal(size=(n, 3)) * (1 + i) for i, n in enumerate(n_ood)}
    return id_logits, labels, ood


def test_paper_protocol_averages_metrics_over_the_planned_subsets():
    id_logits, labels, ood = _toy_logits()
    res = evaluate_ood_from_logits(id_logits, ood, id_labels=labels, scores=("msp", "energy"), seed=7)
    plan = plan_ood_subsets(300, {k: v.shape[0] for k, v in ood.items()}, seed=7)
    for score in ("msp", "energy"):
        fn = msp_score if score == "msp" else None
        ids = fn(id_logits) if fn else -np.log(np.exp(id_logits).sum(1))
        for name, z in ood.items():
            all_ood = fn(z) if fn else -np.log(np.exp(z).sum(1))
            per = [ood_detection_metrics(ids, all_ood[sub]) for sub in plan.subsets[name]]
            for key in ("auroc", "aupr_out", "aupr_in", "fpr90", "fpr95", "detection_error"):
                vals = [m[key] for m in per]
                summary = res.metrics[score][name][key]
                assert summary["mean"] == pytest.approx(np.mean(vals), abs=1e-12)
                assert summary["std"] == pytest.approx(np.std(vals), abs=1e-12)
                assert summary["values"] == pytest.approx(vals)
    assert res.metrics["msp"]["ood1"]["auroc"]["std"] == 0.0  # 40 < 60: the whole set in every subset
    assert res.num_ood == {"ood0": 1200, "ood1": 40} and res.num_ood_per_subset == {"ood0": 60, "ood1": 40}
    assert res.accuracy == pytest.approx(np.mean(id_logits.argmax(1) == labels))
    mean = res.mean_metrics("msp")
    assert mean["auroc"] == pytest.approx(np.mean([res.get("msp", n, "auroc") for n in ood]))
    assert res.get("msp", "mean", "fpr90") == mean["fpr90"]


def test_calibration_uses_the_id_plus_ood_mixture_with_ood_wrong():
    id_logits, labels, ood = _toy_logits(1)
    res = evaluate_ood_from_logits(id_logits, ood, id_labels=labels, temperature=2.0, seed=0)
    plan = plan_ood_subsets(300, {k: v.shape[0] for k, v in ood.items()}, seed=0)
    conf_id = max_softmax_probability(id_logits, 2.0)
    correct = (id_logits.argmax(1) == labels).astype(float)
    for name, z in ood.items():
        conf_ood = max_softmax_probability(z, 2.0)
        per = [
            calibration_metrics(np.r_[conf_id, conf_ood[sub]], np.r_[correct, np.zeros(sub.size)])
            for sub in plan.subsets[name]
        ]
        for key in per[0]:
            assert res.calibration[name][key]["mean"] == pytest.approx(np.mean([m[key] for m in per]), abs=1e-12)
    assert res.id_calibration == pytest.approx(calibration_metrics(conf_id, correct))
    assert res.settings["temperature"] == 2.0


def test_full_protocol_and_only_needed_rows_give_the_same_results():
    id_logits, labels, ood = _toy_logits(2)
    full = evaluate_ood_from_logits(id_logits, ood, id_labels=labels, protocol="full")
    for name, z in ood.items():
        assert full.metrics["msp"][name]["auroc"]["values"] == [
            pytest.approx(ood_detection_metrics(msp_score(id_logits), msp_score(z))["auroc"])
        ]
    plan = plan_ood_subsets(300, {k: v.shape[0] for k, v in ood.items()}, seed=5, max_ood_samples=500)
    reduced = {k: v[plan.indices_to_score(k)] for k, v in ood.items()}
    a = evaluate_ood_from_logits(id_logits, ood, id_labels=labels, plan=plan, seed=5, max_ood_samples=500)
    b = evaluate_ood_from_logits(id_logits, reduced, id_labels=labels, plan=plan, seed=5, max_ood_samples=500)
    c = evaluate_ood_from_logits(id_logits, ood, id_labels=labels, seed=5, max_ood_samples=500)
    assert a.metrics == b.metrics == c.metrics and a.calibration == b.calibration
    assert c.ood_scores["msp"]["ood0"].size == plan.indices_to_score("ood0").size
    with pytest.raises(ValueError, match="expected the full set"):
        evaluate_ood_from_logits(id_logits, {k: v[:7] for k, v in ood.items()}, plan=plan)


def test_recall_level_is_reported_first_and_added_to_fprs():
    id_logits, labels, ood = _toy_logits(3)
    res = evaluate_ood_from_logits(id_logits, ood, recall_level=0.95, fpr_tprs=(0.9,), calibration=False)
    assert res.metric_names[:3] == ["fpr95", "auroc", "aupr_out"]
    assert "fpr90" in res.metric_names
    assert res.accuracy is None and res.calibration is None  # no labels
    assert "FPR95 ↓ | AUROC ↑ | AUPR-Out ↑" in res.to_markdown()


def test_feature_scores_from_logits():
    id_logits, labels, ood = _toy_logits(4)
    rng = np.random.default_rng(0)
    # ID features around +4 e_1 and OOD around -4 e_1: apart in direction too, as k-NN normalises them.
    shift = np.array([4.0, 0, 0, 0, 0])
    id_f = rng.normal(size=(300, 5)) + shift
    ood_f = {"ood0": rng.normal(size=(1200, 5)) - shift, "ood1": rng.normal(size=(40, 5)) - shift}
    fit_x, fit_y = rng.normal(size=(200, 5)) + shift, rng.integers(0, 3, size=200)
    res = evaluate_ood_from_logits(
        id_logits,
        ood,
        id_labels=labels,
        scores=("msp", "mahalanobis", KNNScorer(k=5)),
        id_features=id_f,
        ood_features=ood_f,
        fit_features=fit_x,
        fit_labels=fit_y,
    )
    assert res.score_names == ["msp", "mahalanobis", "knn"]
    assert res.get("mahalanobis", "ood0", "auroc") > 0.95 and res.get("knn", "ood0", "auroc") > 0.95
    expected = MahalanobisScorer().fit(fit_x, fit_y).score(id_f)
    np.testing.assert_allclose(res.id_scores["mahalanobis"], expected)
    with pytest.raises(ValueError, match="need `id_features` and `ood_features`"):
        evaluate_ood_from_logits(id_logits, ood, scores=("knn",))
    with pytest.raises(ValueError, match="not fitted: pass `fit_features`"):
        evaluate_ood_from_logits(id_logits, ood, scores=("mahalanobis",), id_features=id_f, ood_features=ood_f)


def test_from_logits_bad_input():
    id_logits, labels, ood = _toy_logits(5)
    with pytest.raises(ValueError, match="at least one OOD set"):
        evaluate_ood_from_logits(id_logits, {})
    with pytest.raises(ValueError, match=r"`ood_logits\['ood0'\]` has 2 classes but `id_logits` has 3"):
        evaluate_ood_from_logits(id_logits, {"ood0": np.zeros((5, 2))})
    bad = id_logits.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="`id_logits` contains NaN or inf"):
        evaluate_ood_from_logits(bad, ood)
    with pytest.raises(ValueError, match=r"`id_labels` must be in \[0, 3\)"):
        evaluate_ood_from_logits(id_logits, ood, id_labels=labels + 1)
    with pytest.raises(ValueError, match=r"`id_labels` must have shape \(300,\)"):
        evaluate_ood_from_logits(id_logits, ood, id_labels=labels[:10])
    with pytest.raises(ValueError, match="Unknown score 'odin'"):
        evaluate_ood_from_logits(id_logits, ood, scores=("odin",))
    with pytest.raises(ValueError, match="requested twice"):
        evaluate_ood_from_logits(id_logits, ood, scores=("msp", "msp"))
    with pytest.raises(ValueError, match="fpr_method"):
        evaluate_ood_from_logits(id_logits, ood, fpr_method="interp")
    with pytest.warns(UserWarning, match="unlabelled"):
        res = evaluate_ood_from_logits(id_logits, ood, id_labels=np.full(300, -1))
    assert res.accuracy is None


def test_from_scores():
    rng = np.random.default_rng(6)
    res = evaluate_ood_from_scores(
        {"s": rng.normal(size=200)}, {"far": {"s": rng.normal(2, size=400)}}, protocol="full", accuracy=0.5
    )
    assert res.get("s", "far", "auroc") > 0.85 and res.accuracy == 0.5 and res.calibration is None
    with pytest.raises(ValueError, match=r"`ood_scores\['far'\]\['s'\]` contains NaN"):
        evaluate_ood_from_scores({"s": rng.normal(size=20)}, {"far": {"s": [np.nan, 1.0]}})
    with pytest.raises(ValueError, match="has scores"):
        evaluate_ood_from_scores({"s": rng.normal(size=20)}, {"far": {"t": [0.0, 1.0]}})


# ------------------------------------------------------------------------------------------------ reports


def test_report_markdown_csv_json_and_plots(tmp_path):
    id_logits, labels, ood = _toy_logits(7)
    res = evaluate_ood_from_logits(
        id_logits, ood, id_labels=labels, scores=("msp", "energy"), unavailable={"wmt16": "not in the mirror"}
    )
    md = str(res)
    assert "Protocol `paper`" in md and "OOD:ID = 1:5" in md and "ood1: all 40" in md
    assert "| ood0 |" in md and "| **Mean** |" in md and "Score `energy`" in md
    assert "In-distribution test accuracy" in md and "Calibration" in md and "Soft F1" in md
    assert "`wmt16` (not in the mirror)" in md
    assert "`wmt16`" in res.to_markdown(score="msp") and "Calibration" not in res.to_markdown(score="msp")
    row = next(line for line in md.splitlines() if line.startswith("| ood0 |"))
    assert row.split("|")[2].strip() == f"{100 * res.get('msp', 'ood0', 'fpr90'):.2f}"

    written = res.save(tmp_path / "out")
    for key in ("json", "csv", "markdown", "roc_msp", "hist_msp", "roc_energy", "hist_energy"):
        assert written[key].is_file() and written[key].stat().st_size > 0
    assert written["roc_msp"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    loaded = OODResults.from_json(tmp_path / "out")
    assert loaded.metrics == res.metrics and loaded.unavailable == res.unavailable
    assert loaded.to_markdown() == res.to_markdown()
    with pytest.raises(RuntimeError, match="no raw scores"):
        loaded.plot_roc("msp")
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert data["mean"]["msp"]["auroc"] == pytest.approx(res.mean_metrics("msp")["auroc"])
    assert data["metrics"]["msp"]["ood0"]["fpr90"]["std"] >= 0

    csv_lines = (tmp_path / "out" / "results.csv").read_text().splitlines()
    assert csv_lines[0] == "kind,score,ood_set,metric,mean,std,num_subsets"
    auroc_row = next(line for line in csv_lines if line.startswith("ood,msp,ood0,auroc,"))
    assert float(auroc_row.split(",")[4]) == res.get("msp", "ood0", "auroc")
    assert any(line.startswith("accuracy,") for line in csv_lines)
    assert "unavailable,,wmt16,not in the mirror,,," in csv_lines


def test_compare_results_side_by_side():
    id_logits, labels, ood = _toy_logits(8)
    base = evaluate_ood_from_logits(id_logits, ood, id_labels=labels)
    sharper = evaluate_ood_from_logits(id_logits * 3, ood, id_labels=labels, unavailable={"wmt16": "missing"})
    table = compare_results({"Baseline": base, "OE": sharper})
    header = next(line for line in table.splitlines() if line.startswith("| OOD set"))
    assert header == (
        "| OOD set | FPR90 ↓ Baseline | FPR90 ↓ OE | AUROC ↑ Baseline | AUROC ↑ OE | AUPR-Out ↑ Baseline | "
        "AUPR-Out ↑ OE |"
    )
    acc_row = next(line for line in table.splitlines() if "ID test accuracy" in line)
    assert f"{100 * base.accuracy:.2f}" in acc_row
    assert "`wmt16` (missing)" in table
    d = compare_results_to_dict({"Baseline": base, "OE": sharper}, metrics=["auroc"])
    assert d["runs"]["OE"]["per_set"]["ood0"]["auroc"] == sharper.get("msp", "ood0", "auroc")
    assert d["runs"]["Baseline"]["mean"]["auroc"] == base.mean_metrics("msp")["auroc"]
    with pytest.raises(KeyError, match="no score 'knn'"):
        compare_results({"a": base}, score="knn")


# ------------------------------------------------------------------------------------------------ text models

WORDS = "the a movie film good bad great awful cat dog sat on mat man woman plays guitar red blue".split()


@pytest.fixture(scope="module")
def tiny_bert():
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    tokenizer = BertTokenizerFast(vocab=vocab)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=2,
    )
    return BertForSequenceClassification(config), tokenizer


def _sentences(rng, words, n):
    return [" ".join(rng.choice(words, size=int(rng.integers(2, 9)))) for _ in range(n)]


def test_evaluate_ood_text_scores_only_needed_inputs_and_matches_from_logits(tiny_bert):
    model, tokenizer = tiny_bert
    model.train()
    rng = np.random.default_rng(0)
    id_texts = _sentences(rng, WORDS[:8], 50)
    id_ds = datasets.Dataset.from_dict({"text": id_texts, "label": rng.integers(0, 2, size=50).tolist()})
    snli_like = datasets.Dataset.from_dict({"premise": ["x"] * 200, "hypothesis": _sentences(rng, WORDS[8:], 200)})
    ood_list = _sentences(rng, WORDS[8:], 7)
    res = evaluate_ood(
        model,
        tokenizer,
        id_ds,
        {"snli": datasets.Dataset.from_dict({"hypothesis": snli_like["hypothesis"]}), "tiny": ood_list},
        scores=("msp", "energy"),
        batch_size=16,
        progress=False,
        seed=1,
    )
    assert model.training  # mode restored
    plan = plan_ood_subsets(50, {"snli": 200, "tiny": 7}, seed=1)
    assert res.ood_scores["msp"]["snli"].size == plan.indices_to_score("snli").size < 200
    ref = evaluate_ood_from_logits(
        predict_logits(model, tokenizer, id_texts),
        {
            "snli": predict_logits(model, tokenizer, snli_like["hypothesis"]),
            "tiny": predict_logits(model, tokenizer, ood_list),
        },
        id_labels=id_ds["label"],
        scores=("msp", "energy"),
        seed=1,
    )
    for s in ("msp", "energy"):
        for name in ("snli", "tiny"):
            for k, v in ref.metrics[s][name].items():
                assert res.metrics[s][name][k]["mean"] == pytest.approx(v["mean"], abs=1e-5)
    assert res.accuracy == ref.accuracy
    assert res.num_ood_per_subset == {"snli": 10, "tiny": 7}
    with pytest.raises(ValueError, match="has no column 'text' and 2 string columns"):
        evaluate_ood(model, tokenizer, id_ds, {"snli": snli_like}, progress=False)


def test_evaluate_ood_feature_scores_fit_in_chunks(tiny_bert):
    model, tokenizer = tiny_bert
    rng = np.random.default_rng(1)
    fit = datasets.Dataset.from_dict({"text": _sentences(rng, WORDS[:8], 40), "label": [0, 1] * 20})
    id_texts, ood_texts = _sentences(rng, WORDS[:8], 20), _sentences(rng, WORDS[8:], 30)
    res = evaluate_ood(
        model,
        tokenizer,
        id_texts,
        {"other": ood_texts},
        scores=("mahalanobis", KNNScorer(k=3)),
        feature_fit_dataset=fit,
        feature_fit_chunk_size=16,
        protocol="full",
        progress=False,
    )
    assert res.accuracy is None and res.calibration is None  # ID given as plain texts
    assert res.score_names == ["mahalanobis", "knn"]
    # Fitting chunk by chunk (16 texts at a time) gives the scorer fitted on all features at once.
    _, fit_feats = predict_logits(model, tokenizer, fit["text"], output_features=True)
    _, id_feats = predict_logits(model, tokenizer, id_texts, output_features=True)
    expected = MahalanobisScorer().fit(fit_feats, np.array(fit["label"])).score(id_feats)
    np.testing.assert_allclose(res.id_scores["mahalanobis"], expected, rtol=1e-4)
    expected_knn = KNNScorer(k=3).fit(fit_feats).score(id_feats)
    np.testing.assert_allclose(res.id_scores["knn"], expected_knn, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="need `feature_fit_dataset`"):
        evaluate_ood(model, tokenizer, ["the movie"] * 5, {"o": ["cat"] * 5}, scores=("knn",), progress=False)
    with pytest.raises(ValueError, match="has no labels, but the Mahalanobis score needs them"):
        evaluate_ood(
            model,
            tokenizer,
            ["the movie"] * 5,
            {"o": ["cat"] * 5},
            scores=("mahalanobis",),
            feature_fit_dataset=["the good film"] * 5,
            progress=False,
        )


def test_evaluate_ood_bad_text_inputs(tiny_bert):
    model, tokenizer = tiny_bert
    with pytest.raises(ValueError, match=r"`ood_datasets\['wiki'\]` has 1 empty or whitespace-only text"):
        evaluate_ood(model, tokenizer, ["the movie"] * 5, {"wiki": ["cat sat", "  "]}, progress=False)
    with pytest.raises(ValueError, match="`ood_datasets` is empty"):
        evaluate_ood(model, tokenizer, ["the movie"] * 5, {}, progress=False)
    with pytest.raises(TypeError, match="single string"):
        evaluate_ood(model, tokenizer, "the movie", {"o": ["cat"]}, progress=False)
    with pytest.raises(ValueError, match="carries no `tokenizer`"):
        evaluate_ood(model, None, ["the movie"] * 5, {"o": ["cat"]}, progress=False)


@pytest.mark.integration
def test_minilm_sst2_vs_snli_on_the_mirror(mirror, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from oe_text.hub import load_hub_dataset

    path = mirror / "models" / "sentence-transformers" / "all-MiniLM-L6-v2"
    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    sst2 = load_hub_dataset("SetFit/sst2", split="test").select(range(120))
    snli = load_hub_dataset("stanfordnlp/snli", "plain_text", split="test").select(range(40))
    res = evaluate_ood(
        model,
        tokenizer,
        sst2,
        {"snli": snli["hypothesis"]},
        scores=("msp", "max_logit"),
        batch_size=64,
        progress=False,
    )
    assert res.num_id == 120 and res.num_ood_per_subset == {"snli": 24}
    assert 0 <= res.accuracy <= 1 and math.isfinite(res.get("msp", "snli", "auroc"))
    assert res.ood_scores["msp"]["snli"].size <= 40
    # Every reported number is a mean over 10 subsets of the scored SNLI hypotheses.
    assert len(res.metrics["msp"]["snli"]["auroc"]["values"]) == 10
    written = res.save(tmp_path)
    assert written["roc_msp"].stat().st_size > 1000
