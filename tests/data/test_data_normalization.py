import pytest
import tokenizers
from tokenizers import models, normalizers
from transformers import PreTrainedTokenizerFast

from oe_text.data import TextNormalization, tokenizer_lowercases


def _backend(normalizer):
    tok = tokenizers.Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    tok.normalizer = normalizer
    return tok


def test_default_policy_lowercases_and_normalises_whitespace():
    norm = TextNormalization()
    assert norm("  Hello\tWORLD\n\nA\u00a0B  ") == "hello world a b"
    assert norm("") == ""
    assert norm.to_dict() == {"lowercase": True, "normalize_whitespace": True, "strip": True, "unicode_form": None}


def test_options_are_explicit():
    assert TextNormalization(lowercase=False)(" Hello  World ") == "Hello World"
    assert TextNormalization(normalize_whitespace=False)(" A  b\t ") == "a  b"
    assert TextNormalization(normalize_whitespace=False, strip=False)(" A  b ") == " a  b "
    assert TextNormalization(unicode_form="NFKC")("\ufb01ne") == "fine"
    assert TextNormalization(lowercase=False, normalize_whitespace=False, strip=False).is_identity
    assert TextNormalization().batch(["A", " b "]) == ["a", "b"]


def test_bad_arguments_and_input():
    with pytest.raises(ValueError, match="unicode_form"):
        TextNormalization(unicode_form="NFX")
    with pytest.raises(TypeError, match="lowercase"):
        TextNormalization(lowercase="yes")
    with pytest.raises(TypeError, match="must be a str"):
        TextNormalization()(3)


def test_for_tokenizer_follows_the_tokenizer():
    class Declared:
        def __init__(self, value):
            self.do_lower_case = value

    assert TextNormalization.for_tokenizer(Declared(True)).lowercase is True
    assert TextNormalization.for_tokenizer(Declared(False)).lowercase is False

    lower = _backend(normalizers.Sequence([normalizers.NFD(), normalizers.Lowercase()]))
    assert tokenizer_lowercases(lower) is True
    assert tokenizer_lowercases(PreTrainedTokenizerFast(tokenizer_object=lower)) is True
    assert tokenizer_lowercases(_backend(normalizers.BertNormalizer(lowercase=False))) is False
    assert tokenizer_lowercases(_backend(normalizers.BertNormalizer(lowercase=True))) is True
    cased = PreTrainedTokenizerFast(tokenizer_object=_backend(None))
    assert TextNormalization.for_tokenizer(cased).lowercase is False

    # A tokenizer that does not say (e.g. a bare SentencePiece model trained on normalised text): the default.
    assert tokenizer_lowercases(object()) is None
    assert TextNormalization.for_tokenizer(object()).lowercase is True
    assert TextNormalization.for_tokenizer(object(), default_lowercase=False).lowercase is False
    # Explicit fields win over what is inferred.
    norm = TextNormalization.for_tokenizer(cased, lowercase=True, unicode_form="NFC")
    assert (norm.lowercase, norm.unicode_form, norm.normalize_whitespace) == (True, "NFC", True)
