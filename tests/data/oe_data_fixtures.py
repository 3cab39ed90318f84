"""A tiny offline mirror built in code: every dataset of the data layer with its Hub schema and a few rows."""

from pathlib import Path

import datasets


SST_NAMES = ["negative", "positive"]
TREC_COARSE = ["ABBR", "ENTY", "HUM"]
TREC_FINE = ["ABBR:abb", "ABBR:exp", "ENTY:animal", "HUM:ind"]
NG_NAMES = ["alt.atheism", "comp.graphics", "sci.space"]

# One raw string put into an in-distribution, an auxiliary and an OOD set: all three must normalise it identically.
SHARED_RAW = "The  Quick\tBrown FOX jumps over the lazy dog ."
SHARED_NORMALISED = "the quick brown fox jumps over the lazy dog ."

WIKITEXT_VALIDATION = [
    "",
    " = Homarus gammarus = \n",
    "",
    " Homarus gammarus , known as the European lobster , is a species of <unk> lobster . It is closely related to "
    "the American lobster , H. americanus . It may grow to a length of 60 cm . \n",
    "",
    " = = Description = = \n",
    "",
    ' The larger claw is the " crusher " . He said " it is big . " Then it left ( slowly ) for home . \n',
    " @-@ starts with an at sign . 1990 was a year of lobsters . Short . A fragment without an end \n",
    f" {SHARED_RAW} \n",
]
WIKITEXT_TEST = [
    "",
    " = = = Habitat = = = \n",
    " Lobsters live on rocky sea beds in the Atlantic . They hide in holes by day . \n",
    " " + " ".join(["word"] * 61) + " . Short one here . \n",
]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(rows).to_json(str(path), lines=True)


def _write_parquet(path: Path, data: dict, features: datasets.Features) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(data, features=features).to_parquet(str(path))


def _write_card(folder: Path, config: str, splits: dict[str, str]) -> None:
    lines = ["---", "configs:", f"- config_name: {config}", "  data_files:"]
    for split, pattern in splits.items():
        lines += [f"  - split: {split}", f"    path: {pattern}"]
    lines += ["  default: true", "---", ""]
    (folder / "README.md").write_text("\n".join(lines))


def _sst_rows(texts_labels):
    return [{"text": t, "label": y, "label_text": SST_NAMES[y]} for t, y in texts_labels]


def build_fake_mirror(root: Path) -> None:
    d = root / "datasets"
    # SetFit/sst2: jsonl files train/dev/test with text, label (int), label_text.
    _write_jsonl(
        d / "SetFit/sst2/train.jsonl",
        _sst_rows([(SHARED_RAW, 1), ("A  Stirring,\tFUNNY film ", 1), ("dull and LONG", 0), ("bad", 0)]),
    )
    _write_jsonl(d / "SetFit/sst2/dev.jsonl", _sst_rows([("Good Fun", 1), ("Boring", 0)]))
    _write_jsonl(d / "SetFit/sst2/test.jsonl", _sst_rows([("Great!", 1), ("awful", 0), ("meh", 0)]))

    # stanfordnlp/sst2 (GLUE): idx, sentence (trailing space), label ClassLabel; test labels hidden (-1).
    glue = datasets.Features(
        {
            "idx": datasets.Value("int32"),
            "sentence": datasets.Value("string"),
            "label": datasets.ClassLabel(names=SST_NAMES),
        }
    )
    train_sentences = [f"Sentence Number {i} " for i in range(20)]
    _write_parquet(
        d / "stanfordnlp/sst2/data/train-00000-of-00001.parquet",
        {"idx": list(range(20)), "sentence": train_sentences, "label": [i % 2 for i in range(20)]},
        glue,
    )
    _write_parquet(
        d / "stanfordnlp/sst2/data/validation-00000-of-00001.parquet",
        {"idx": [0, 1, 2], "sentence": ["Val One ", "Val Two ", "Val Three "], "label": [0, 1, 1]},
        glue,
    )
    _write_parquet(
        d / "stanfordnlp/sst2/data/test-00000-of-00001.parquet",
        {"idx": [0, 1], "sentence": ["Test One ", "Test Two "], "label": [-1, -1]},
        glue,
    )

    # CogComp/trec: parquet export layout default/{split}/0000.parquet; coarse and fine ClassLabels.
    trec = datasets.Features(
        {
            "text": datasets.Value("string"),
            "coarse_label": datasets.ClassLabel(names=TREC_COARSE),
            "fine_label": datasets.ClassLabel(names=TREC_FINE),
        }
    )
    fine = [0, 1, 2, 3] * 5
    coarse = [[0, 0, 1, 2][f] for f in fine]
    _write_parquet(
        d / "CogComp/trec/default/train/0000.parquet",
        {"text": [f"What Is Question {i} ?" for i in range(20)], "coarse_label": coarse, "fine_label": fine},
        trec,
    )
    _write_parquet(
        d / "CogComp/trec/default/test/0000.parquet",
        {"text": ["Who Wrote Hamlet ?", "What is an ABBR ?"], "coarse_label": [2, 0], "fine_label": [3, 1]},
        trec,
    )

    # SetFit/20_newsgroups: jsonl with text, label, label_text; some posts are empty after header removal.
    ng_train = [
        {"text": f"Post {i}\n\nabout  Things", "label": i % 3, "label_text": NG_NAMES[i % 3]} for i in range(12)
    ]
    ng_train[4]["text"] = ""
    ng_train[7]["text"] = " \n\n "
    _write_jsonl(d / "SetFit/20_newsgroups/train.jsonl", ng_train)
    _write_jsonl(
        d / "SetFit/20_newsgroups/test.jsonl",
        [{"text": t, "label": y, "label_text": NG_NAMES[y]} for t, y in [("Space Post", 2), ("", 0), ("God?", 0)]],
    )

    # Salesforce/wikitext: config wikitext-2-v1 with validation and test only (as in the real mirror).
    wiki = d / "Salesforce/wikitext"
    text = datasets.Features({"text": datasets.Value("string")})
    _write_parquet(wiki / "wikitext-2-v1/validation-00000-of-00001.parquet", {"text": WIKITEXT_VALIDATION}, text)
    _write_parquet(wiki / "wikitext-2-v1/test-00000-of-00001.parquet", {"text": WIKITEXT_TEST}, text)
    _write_card(wiki, "wikitext-2-v1", {"validation": "wikitext-2-v1/validation-*", "test": "wikitext-2-v1/test-*"})

    # stanfordnlp/snli (plain_text): premise, hypothesis, label.
    snli = d / "stanfordnlp/snli"
    snli_features = datasets.Features(
        {
            "premise": datasets.Value("string"),
            "hypothesis": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"]),
        }
    )
    _write_parquet(
        snli / "plain_text/test-00000-of-00001.parquet",
        {
            "premise": ["A premise .", "Another premise .", "Third .", "Fourth ."],
            "hypothesis": [SHARED_RAW, "A Man Sleeps.", "  ", "A Man Sleeps."],
            "label": [0, 1, 2, 0],
        },
        snli_features,
    )
    _write_card(snli, "plain_text", {"test": "plain_text/test-*"})

    # stanfordnlp/imdb (plain_text): text, label.
    imdb = d / "stanfordnlp/imdb"
    _write_parquet(
        imdb / "plain_text/test-00000-of-00001.parquet",
        {"text": [f"Review {i}.<br /><br />It Was OK." for i in range(10)], "label": [0] * 5 + [1] * 5},
        datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}),
    )
    _write_card(imdb, "plain_text", {"test": "plain_text/test-*"})

    # bentrevett/multi30k: jsonl with en, de.
    _write_jsonl(
        d / "bentrevett/multi30k/test.jsonl",
        [{"en": "Two Dogs Run.", "de": "Zwei Hunde rennen."}, {"en": "A Girl\nSmiles.", "de": "Ein Mädchen lächelt."}],
    )

    # wmt/wmt16 (de-en): translation dicts. (Absent from the real mirror; present here to test the English side.)
    wmt = d / "wmt/wmt16"
    _write_parquet(
        wmt / "de-en/test-00000-of-00001.parquet",
        {"translation": [{"de": "Hallo Welt", "en": "Hello World"}, {"de": "Guten Tag", "en": "Good Day"}]},
        datasets.Features({"translation": datasets.Translation(languages=["de", "en"])}),
    )
    _write_card(wmt, "de-en", {"test": "de-en/test-*"})

    # universal_dependencies: parquet export en_ewt/{split}/0000.parquet; genre = prefix of idx. (Yelp: absent.)
    genres = ["answers", "email", "newsgroup", "reviews", "weblog"]
    ids, texts = [], []
    for g, genre in enumerate(genres):
        for k in range(g + 1):
            ids.append(f"{genre}-20111108104724AAuBUR0_ans-{k:04d}")
            texts.append(f"{genre.title()} Sentence {k} .")
    _write_parquet(
        d / "universal_dependencies/en_ewt/test/0000.parquet",
        {"idx": ids, "text": texts, "tokens": [t.split() for t in texts]},
        datasets.Features(
            {
                "idx": datasets.Value("string"),
                "text": datasets.Value("string"),
                "tokens": datasets.List(datasets.Value("string")),
            }
        ),
    )
