import numpy as np
import pytest
import torch

from oe_text.feature_scores import FEATURE_SCORES, KNNScorer, MahalanobisScorer, make_feature_scorer


def _class_data(rng, n=300, d=6, num_classes=3):
    means = rng.normal(scale=4, size=(num_classes, d))
    y = rng.integers(0, num_classes, size=n)
    a = rng.normal(size=(d, d))
    x = means[y] + rng.normal(size=(n, d)) @ a * 0.5 + 100.0  # large offset: tests the shifted accumulation
    return x, y


def _mahalanobis_reference(x, y, q):
    classes = np.unique(y)
    means = np.stack([x[y == c].mean(0) for c in classes])
    centered = x - means[np.searchsorted(classes, y)]
    cov = centered.T @ centered / x.shape[0]
    prec = np.linalg.pinv(cov)
    d = np.stack([np.einsum("nd,de,ne->n", q - m, prec, q - m) for m in means], 1)
    return d.min(1), means, cov


def test_mahalanobis_matches_direct_computation():
    rng = np.random.default_rng(0)
    x, y = _class_data(rng)
    q = rng.normal(size=(40, 6)) * 5 + 100.0
    ref, means, cov = _mahalanobis_reference(x, y, q)
    scorer = MahalanobisScorer(batch_size=7).fit(x, y, batch_size=64)
    np.testing.assert_allclose(scorer.score(q), ref, rtol=1e-6)
    np.testing.assert_allclose(scorer.class_means_, means, rtol=1e-9)
    np.testing.assert_allclose(scorer.covariance_, cov, rtol=1e-6, atol=1e-9)
    assert scorer.num_fitted == 300


def test_mahalanobis_streaming_equals_one_shot_and_handles_late_classes():
    rng = np.random.default_rng(1)
    x, y = _class_data(rng, num_classes=4)
    order = np.argsort(y, kind="stable")  # class 3 only appears in the last batches
    x, y = x[order], y[order]
    q = rng.normal(size=(25, 6)) * 3 + 100.0
    one_shot = MahalanobisScorer().fit(x, y, batch_size=10_000).score(q)
    streamed = MahalanobisScorer()
    for start in range(0, 300, 37):
        streamed.partial_fit(torch.tensor(x[start : start + 37]), torch.tensor(y[start : start + 37]))
    np.testing.assert_allclose(streamed.score(q), one_shot, rtol=1e-7)
    assert streamed.classes_.tolist() == [0, 1, 2, 3]


def test_mahalanobis_is_higher_far_from_the_data():
    rng = np.random.default_rng(2)
    x, y = _class_data(rng)
    scorer = MahalanobisScorer().fit(x, y)
    near, far = scorer.score(x[:50]), scorer.score(x[:50] + 50.0)
    assert (near >= 0).all() and far.min() > near.max()


def test_mahalanobis_errors():
    scorer = MahalanobisScorer()
    with pytest.raises(RuntimeError, match="not fitted"):
        scorer.score(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="labels` are required"):
        scorer.fit(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"`labels` must have shape \(4,\)"):
        scorer.fit(np.zeros((4, 3)), [0, 1])
    with pytest.raises(ValueError, match="non-negative integer"):
        scorer.fit(np.zeros((2, 3)), [0.5, 1.0])
    with pytest.raises(ValueError, match="NaN or inf"):
        scorer.fit(np.array([[0.0, np.nan]]), [0])
    scorer.fit(np.random.default_rng(0).normal(size=(10, 3)), np.arange(10) % 2)
    with pytest.raises(ValueError, match="feature dimension 4, but the scorer was fitted on dimension 3"):
        scorer.score(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="reg"):
        MahalanobisScorer(reg=-1)


def _knn_reference(bank, q, k, normalize):
    if normalize:
        bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    d = np.sqrt(((q[:, None, :] - bank[None, :, :]) ** 2).sum(-1))
    return np.sort(d, axis=1)[:, k - 1]


@pytest.mark.parametrize("normalize", [True, False])
def test_knn_matches_brute_force_with_chunking(normalize):
    rng = np.random.default_rng(3)
    bank, q = rng.normal(size=(120, 5)), rng.normal(size=(33, 5)) * 1.5
    scorer = KNNScorer(k=7, normalize=normalize, batch_size=8, bank_chunk_size=25).fit(bank, batch_size=50)
    np.testing.assert_allclose(scorer.score(q), _knn_reference(bank, q, 7, normalize), rtol=1e-4, atol=1e-4)
    assert scorer.bank_.shape == (120, 5) and scorer.num_seen_ == 120


def test_knn_is_higher_far_from_the_data_and_scale_invariant_when_normalized():
    rng = np.random.default_rng(4)
    bank = np.abs(rng.normal(size=(200, 4))) + np.array([5.0, 0, 0, 0])
    scorer = KNNScorer(k=5).fit(bank)
    near = scorer.score(bank[:20] * 3.0)  # rescaling does not matter after L2 normalisation
    far = scorer.score(-bank[:20])
    assert far.min() > near.max()
    assert (far <= 2.0 + 1e-6).all()


def test_knn_bank_is_a_bounded_seeded_uniform_sample():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1000, 3))
    a = KNNScorer(k=3, normalize=False, max_fit_samples=100, seed=1)
    for start in range(0, 1000, 64):
        a.partial_fit(x[start : start + 64])
        assert a.bank_.shape[0] <= 100
    b = KNNScorer(k=3, normalize=False, max_fit_samples=100, seed=1).fit(x, batch_size=64)
    assert a.bank_.shape == (100, 3) and a.num_seen_ == 1000
    np.testing.assert_array_equal(a.bank_, b.bank_)
    # Every bank row is one of the inputs, no row twice, drawn from the whole stream (not just the start).
    rows = {tuple(r) for r in x.astype(np.float32)}
    assert all(tuple(r) in rows for r in a.bank_) and len({tuple(r) for r in a.bank_}) == 100
    idx = [int(np.flatnonzero((x.astype(np.float32) == r).all(1))[0]) for r in a.bank_]
    assert max(idx) > 800 and min(idx) < 200
    other = KNNScorer(k=3, normalize=False, max_fit_samples=100, seed=2).fit(x)
    assert not np.array_equal(other.bank_, a.bank_)


def test_knn_errors():
    with pytest.raises(ValueError, match="`k` must be a positive int"):
        KNNScorer(k=0)
    with pytest.raises(ValueError, match="max_fit_samples"):
        KNNScorer(k=10, max_fit_samples=5)
    scorer = KNNScorer(k=10).fit(np.ones((4, 2)))
    with pytest.raises(ValueError, match="at least k bank features, but only 4"):
        scorer.score(np.ones((1, 2)))
    with pytest.raises(RuntimeError, match="not fitted"):
        KNNScorer().score(np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"shape \(n, feature_dim\)"):
        KNNScorer().fit(np.ones(3))


def test_registry():
    assert set(FEATURE_SCORES) == {"mahalanobis", "knn", "gaussian"}
    assert make_feature_scorer("knn", k=3).k == 3
    with pytest.raises(ValueError, match="Unknown feature score"):
        make_feature_scorer("odin")
