"""Feature-space OOD scores fitted on in-distribution training features; **higher = more anomalous**.

* `MahalanobisScorer` (Lee et al. 2018): class-conditional Gaussians with one shared covariance; the score is the
  smallest squared Mahalanobis distance to a class mean.
* `KNNScorer` (Sun et al. 2022): distance from the L2-normalised feature to its k-th nearest training feature.
* `GaussianScorer`: one Gaussian over all training features (no labels); the score is the squared Mahalanobis
  distance to the training mean, i.e. how atypical a feature is (the detectors use it on the input length).

Both fit in bounded memory: `partial_fit` accumulates batch by batch (`fit` cuts an array into batches), Mahalanobis
keeps only per-class sums and one `d x d` scatter matrix, k-NN keeps a uniform random sample of at most
`max_fit_samples` training features. Scoring runs in chunks as well. Features are what the classification head sees
(`oe_text.inference.predict_logits(..., output_features=True)`).
"""

from __future__ import annotations

import numpy as np
import torch

from .scores import _lookup


__all__ = [
    "FEATURE_SCORES",
    "FeatureScorer",
    "GaussianScorer",
    "KNNScorer",
    "MahalanobisScorer",
    "make_feature_scorer",
]


def _as_features(x, name: str, dim: int | None = None) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"`{name}` must be a 2-D array of numbers, got {type(x).__name__} ({err}).") from None
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"`{name}` must have shape (n, feature_dim) with n, feature_dim >= 1, got {arr.shape}.")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(
            f"`{name}` has feature dimension {arr.shape[1]}, but the scorer was fitted on dimension {dim}."
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"`{name}` contains NaN or inf.")
    return arr


def _as_labels(y, n: int) -> np.ndarray:
    if y is None:
        raise ValueError("`labels` are required: the Mahalanobis score fits one mean per class.")
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"`labels` must have shape ({n},) to match `features`, got {arr.shape}.")
    if arr.dtype.kind not in "iub" or (arr.size and arr.min() < 0):
        raise ValueError("`labels` must be non-negative integer class ids.")
    return arr.astype(np.int64)


def _check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}.")


class FeatureScorer:
    """Base class of feature-space OOD scorers: `fit` / `partial_fit` on ID features, then `score` (higher = OOD)."""

    name: str = "feature"
    needs_labels: bool = False

    def reset(self) -> FeatureScorer:
        """Forget everything fitted so far."""
        raise NotImplementedError

    def partial_fit(self, features, labels=None) -> FeatureScorer:
        """Accumulate one batch of in-distribution training features (and labels when `needs_labels`)."""
        raise NotImplementedError

    @property
    def is_fitted(self) -> bool:
        """Whether at least one batch was fitted."""
        raise NotImplementedError

    def score(self, features) -> np.ndarray:
        """OOD scores of `features` (shape `(n, d)`), float64 of shape `(n,)`; higher = more anomalous."""
        raise NotImplementedError

    def fit(self, features, labels=None, batch_size: int = 4096) -> FeatureScorer:
        """Fit from scratch on all of `features` (shape `(n, d)`), `batch_size` rows at a time.

        Args:
            features (array or `torch.Tensor` of shape `(n, d)`): in-distribution training features.
            labels (array of shape `(n,)`, *optional*): class ids; required by `MahalanobisScorer`.
            batch_size (`int`, *optional*, defaults to 4096): rows accumulated per step.

        Returns:
            the scorer itself.
        """
        _check_batch_size(batch_size)
        feats = _as_features(features, "features")
        if labels is not None or self.needs_labels:
            labels = _as_labels(labels, feats.shape[0])
        self.reset()
        for start in range(0, feats.shape[0], batch_size):
            stop = start + batch_size
            self.partial_fit(feats[start:stop], None if labels is None else labels[start:stop])
        return self

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call `fit` or `partial_fit` first.")

    def options(self) -> dict:
        """The constructor arguments, JSON-serialisable (saved in a detector's config beside the fitted state)."""
        raise NotImplementedError

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The fitted state as float32 tensors (saved as safetensors by a detector); see `load_state_tensors`."""
        raise NotImplementedError

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> FeatureScorer:
        """Restore a fitted state written by `state_tensors`; scores are then exactly those of the saved tensors."""
        raise NotImplementedError

    def state_shapes(self) -> dict[str, list[int]]:
        """Shapes of `state_tensors()`, recorded in a detector's config so that loading can rebuild and check them."""
        return {key: list(t.shape) for key, t in self.state_tensors().items()}


class MahalanobisScorer(FeatureScorer):
    """Class-conditional Gaussian with a shared covariance (Lee et al. 2018), fitted in one streaming pass.

    Fitting accumulates, in float64, per-class counts `n_c` and sums, and the total scatter `sum x x^T` (about a
    shift, the first batch's mean, for numerical accuracy). Then `mu_c = sum_c / n_c` and the shared (maximum
    likelihood) covariance is `Sigma = 1/N sum_c sum_{i in c} (x_i - mu_c)(x_i - mu_c)^T`; its pseudo-inverse (after
    adding `reg * I`) is the precision `P`. Memory: `O(C d + d^2)` whatever the number of training examples,
    C being the number of distinct class ids present (not the largest id).

    `score(x) = min_c (x - mu_c)^T P (x - mu_c)`: the squared Mahalanobis distance to the closest class mean, i.e.
    minus Lee et al.'s confidence score `M(x)`. Higher = more anomalous.

    Args:
        reg (`float`, *optional*, defaults to 0.0): ridge added to the covariance diagonal before inverting.
        batch_size (`int`, *optional*, defaults to 1024): rows scored per chunk.
        max_classes (`int`, *optional*, defaults to 100000): most distinct class ids kept (one mean each); more raise
            a `ValueError` rather than fill memory. Ids need not be contiguous: a stray id such as 1000000 is one
            class.
    """

    name = "mahalanobis"
    needs_labels = True

    def __init__(self, reg: float = 0.0, batch_size: int = 1024, max_classes: int = 100_000):
        if not reg >= 0:
            raise ValueError(f"`reg` must be >= 0, got {reg}.")
        _check_batch_size(batch_size)
        _check_batch_size(max_classes)
        self.reg = float(reg)
        self.batch_size = batch_size
        self.max_classes = max_classes
        self.reset()

    def options(self) -> dict:
        return {"reg": self.reg, "batch_size": self.batch_size, "max_classes": self.max_classes}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """`means` (C, d), `precision` (d, d), `shift` (d,) and `counts` (C,), as float32.

        A detector always scores from these float32 values (in float64 arithmetic), before saving and after loading
        alike, so a saved detector reproduces its scores exactly.
        """
        self._check_fitted()
        self._finalize()
        return {
            "means": torch.from_numpy(self.class_means_).float(),
            "precision": torch.from_numpy(self.precision_).float(),
            "shift": torch.from_numpy(self._shift).float(),
            "counts": torch.from_numpy(self._counts[self._counts > 0]).float(),
        }

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> MahalanobisScorer:
        means, precision, shift, counts = (
            tensors[k].detach().cpu().double().numpy() for k in ("means", "precision", "shift", "counts")
        )
        d = shift.shape[0]
        if means.ndim != 2 or means.shape[1] != d or precision.shape != (d, d) or counts.shape != (means.shape[0],):
            raise ValueError(
                f"Inconsistent Mahalanobis state: means {means.shape}, precision {precision.shape}, shift "
                f"{shift.shape}, counts {counts.shape}."
            )
        self.reset()
        self._shift = shift
        self._counts = counts.astype(np.int64)
        self.classes_ = np.arange(means.shape[0])
        self.class_means_ = means
        self.precision_ = precision
        self._dirty = False
        return self

    def reset(self) -> MahalanobisScorer:
        self._shift: np.ndarray | None = None
        # One row per class id seen, sorted: memory follows the classes present, not the largest id.
        self._labels = np.zeros(0, dtype=np.int64)
        self._counts = np.zeros(0, dtype=np.int64)
        self._sums: np.ndarray | None = None
        self._scatter: np.ndarray | None = None
        self._dirty = True
        self.class_means_: np.ndarray | None = None
        self.covariance_: np.ndarray | None = None
        self.precision_: np.ndarray | None = None
        self.classes_: np.ndarray | None = None
        return self

    @property
    def is_fitted(self) -> bool:
        return bool(self._counts.sum() > 0)

    @property
    def num_fitted(self) -> int:
        """Number of training features accumulated."""
        return int(self._counts.sum())

    def partial_fit(self, features, labels=None) -> MahalanobisScorer:
        """Accumulate a batch of training features and their class labels.

        Args:
            features (array or `torch.Tensor` of shape `(b, d)`): in-distribution training features.
            labels (array of shape `(b,)`): their class ids (non-negative ints). The classes are the ids present:
                ids need not be contiguous, and a stray large id (say 1000000) adds one class, not a million rows.

        Returns:
            the scorer itself.
        """
        dim = None if self._shift is None else self._shift.shape[0]
        x = _as_features(features, "features", dim)
        y = _as_labels(labels, x.shape[0])
        if self._shift is None:
            d = x.shape[1]
            self._shift = x.mean(axis=0)
            self._sums = np.zeros((0, d))
            self._scatter = np.zeros((d, d))
        x = x - self._shift
        new = np.setdiff1d(y, self._labels)
        if new.size:
            if self._labels.size + new.size > self.max_classes:
                raise ValueError(
                    f"`labels` hold {self._labels.size + new.size} distinct class ids (e.g. {new[:5].tolist()} are "
                    f"new), more than MahalanobisScorer(max_classes={self.max_classes}) keeps one mean for; pass "
                    "class labels (or raise `max_classes`)."
                )
            order = np.argsort(np.concatenate([self._labels, new]), kind="stable")
            self._labels = np.concatenate([self._labels, new])[order]
            self._counts = np.concatenate([self._counts, np.zeros(new.size, dtype=np.int64)])[order]
            self._sums = np.concatenate([self._sums, np.zeros((new.size, x.shape[1]))])[order]
        rows = np.searchsorted(self._labels, y)
        self._counts += np.bincount(rows, minlength=self._counts.shape[0])
        np.add.at(self._sums, rows, x)
        self._scatter += x.T @ x
        self._dirty = True
        return self

    def _finalize(self) -> None:
        if not self._dirty:
            return
        self._check_fitted()
        present = self._counts > 0
        counts = self._counts[present].astype(np.float64)
        sums = self._sums[present]
        means_shifted = sums / counts[:, None]
        total = counts.sum()
        # Within-class scatter = total scatter - sum_c n_c mu_c mu_c^T (all about the same shift).
        cov = (self._scatter - (sums.T @ means_shifted)) / total
        cov = (cov + cov.T) / 2
        if self.reg:
            cov = cov + self.reg * np.eye(cov.shape[0])
        self.classes_ = self._labels[present]
        self.covariance_ = cov
        self.class_means_ = means_shifted + self._shift
        self.precision_ = np.linalg.pinv(cov, hermitian=True)
        self._dirty = False

    def score(self, features) -> np.ndarray:
        """Smallest squared Mahalanobis distance to a class mean; higher = more anomalous.

        Args:
            features (array or `torch.Tensor` of shape `(n, d)`): features to score.

        Returns:
            `np.ndarray` of shape `(n,)`, float64, >= 0.
        """
        self._check_fitted()
        self._finalize()
        x = _as_features(features, "features", self._shift.shape[0])
        prec = self.precision_
        mu = self.class_means_ - self._shift
        mu_p = mu @ prec
        mu_p_mu = np.einsum("cd,cd->c", mu_p, mu)
        out = np.empty(x.shape[0])
        for start in range(0, x.shape[0], self.batch_size):
            xs = x[start : start + self.batch_size] - self._shift
            x_p_x = np.einsum("nd,nd->n", xs @ prec, xs)
            dist = x_p_x[:, None] - 2.0 * xs @ mu_p.T + mu_p_mu[None, :]
            out[start : start + xs.shape[0]] = np.maximum(dist.min(axis=1), 0.0)
        return out


class GaussianScorer(MahalanobisScorer):
    """One Gaussian over all training features, fitted without labels: `score(x) = (x - mu)^T P (x - mu)`.

    The single-class case of `MahalanobisScorer` (same streaming fit, state and options): `mu` is the mean of the
    training features and `P` the pseudo-inverse of their covariance (plus `reg * I`). Two-sided: features far above
    or far below the training mean are both atypical. On a 1-D feature it is the squared z-score.
    """

    name = "gaussian"
    needs_labels = False

    def partial_fit(self, features, labels=None) -> GaussianScorer:
        """Accumulate a batch of training features (`(b, d)`); `labels` are ignored: there is one Gaussian."""
        x = _as_features(features, "features", None if self._shift is None else self._shift.shape[0])
        return super().partial_fit(x, np.zeros(x.shape[0], dtype=np.int64))


class KNNScorer(FeatureScorer):
    """Distance to the k-th nearest in-distribution training feature (Sun et al. 2022, "deep nearest neighbours").

    Features are L2-normalised first (`normalize=True`, as in the paper; the distance is then in `[0, 2]`). The bank
    of training features is a uniform random sample, without replacement, of at most `max_fit_samples` of the features
    passed to `fit`/`partial_fit` (each gets a random key and the smallest keys are kept, so memory stays bounded
    however many batches arrive); below that size every feature is kept. Sun et al. score `-r_k`, the negated
    distance, as a confidence; here the score is `r_k` itself, so higher = more anomalous.

    Args:
        k (`int`, *optional*, defaults to 50): which neighbour (Sun et al. use 50 on CIFAR-10's 50k training images;
            a smaller bank wants a smaller `k`).
        normalize (`bool`, *optional*, defaults to `True`): L2-normalise training and test features.
        max_fit_samples (`int`, *optional*, defaults to 100_000): at most this many bank features are kept.
        seed (`int`, *optional*, defaults to 0): seed of the bank subsampling.
        batch_size (`int`, *optional*, defaults to 1024): query rows per chunk.
        bank_chunk_size (`int`, *optional*, defaults to 16384): bank rows per chunk of distance computations.
    """

    name = "knn"
    needs_labels = False

    def __init__(
        self,
        k: int = 50,
        normalize: bool = True,
        max_fit_samples: int = 100_000,
        seed: int = 0,
        batch_size: int = 1024,
        bank_chunk_size: int = 16384,
    ):
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"`k` must be a positive int, got {k!r}.")
        if not isinstance(max_fit_samples, int) or max_fit_samples < k:
            raise ValueError(f"`max_fit_samples` must be an int >= k={k}, got {max_fit_samples!r}.")
        _check_batch_size(batch_size)
        _check_batch_size(bank_chunk_size)
        self.k = k
        self.normalize = normalize
        self.max_fit_samples = max_fit_samples
        self.seed = seed
        self.batch_size = batch_size
        self.bank_chunk_size = bank_chunk_size
        self.reset()

    def options(self) -> dict:
        return {
            "k": self.k,
            "normalize": self.normalize,
            "max_fit_samples": self.max_fit_samples,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "bank_chunk_size": self.bank_chunk_size,
        }

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """`bank`: the (normalised) bank features, float32, shape `(n_bank, d)`."""
        self._check_fitted()
        return {"bank": torch.from_numpy(self.bank_).float()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> KNNScorer:
        bank = tensors["bank"].detach().cpu().float().numpy()
        if bank.ndim != 2 or bank.shape[0] < self.k:
            raise ValueError(f"A k-NN bank must have shape (n >= k={self.k}, d), got {bank.shape}.")
        self.reset()
        self.bank_ = np.ascontiguousarray(bank)
        self._keys = np.zeros(bank.shape[0])
        self.num_seen_ = bank.shape[0]
        return self

    def reset(self) -> KNNScorer:
        self._rng = np.random.default_rng(self.seed)
        self.bank_: np.ndarray | None = None
        self._keys: np.ndarray | None = None
        self.num_seen_ = 0
        return self

    @property
    def is_fitted(self) -> bool:
        return self.bank_ is not None

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float32)
        if self.normalize:
            norms = np.linalg.norm(x, axis=1, keepdims=True)
            x = x / np.maximum(norms, 1e-12)
        return x

    def partial_fit(self, features, labels=None) -> KNNScorer:
        """Add a batch of training features to the bank (labels are ignored).

        Args:
            features (array or `torch.Tensor` of shape `(b, d)`): in-distribution training features.
            labels: ignored (accepted so that every scorer fits the same way).

        Returns:
            the scorer itself.
        """
        dim = None if self.bank_ is None else self.bank_.shape[1]
        x = self._prepare(_as_features(features, "features", dim))
        keys = self._rng.random(x.shape[0])
        self.num_seen_ += x.shape[0]
        if self.bank_ is not None:
            x = np.concatenate([self.bank_, x])
            keys = np.concatenate([self._keys, keys])
        if x.shape[0] > self.max_fit_samples:
            keep = np.sort(np.argpartition(keys, self.max_fit_samples - 1)[: self.max_fit_samples])
            x, keys = x[keep], keys[keep]
        self.bank_, self._keys = x, keys
        return self

    def score(self, features) -> np.ndarray:
        """Distance to the k-th nearest bank feature (`(n,)` float64, >= 0) of `features` (`(n, d)`); higher = more
        anomalous."""
        self._check_fitted()
        if self.bank_.shape[0] < self.k:
            raise ValueError(
                f"KNNScorer(k={self.k}) needs at least k bank features, but only {self.bank_.shape[0]} were fitted."
            )
        q_all = torch.from_numpy(self._prepare(_as_features(features, "features", self.bank_.shape[1])))
        bank = torch.from_numpy(self.bank_)
        bank_sq = (bank * bank).sum(1)
        out = np.empty(q_all.shape[0])
        for start in range(0, q_all.shape[0], self.batch_size):
            q = q_all[start : start + self.batch_size]
            q_sq = (q * q).sum(1, keepdim=True)
            best = None
            # A running top-k over bank chunks keeps memory at batch_size x (k + bank_chunk_size).
            for b0 in range(0, bank.shape[0], self.bank_chunk_size):
                d2 = (
                    q_sq
                    + bank_sq[None, b0 : b0 + self.bank_chunk_size]
                    - 2.0 * q @ bank[b0 : b0 + self.bank_chunk_size].T
                )
                cand = d2 if best is None else torch.cat([best, d2], dim=1)
                best = torch.topk(cand, min(self.k, cand.shape[1]), dim=1, largest=False).values
            out[start : start + q.shape[0]] = best[:, self.k - 1].clamp_min(0).sqrt().double().numpy()
        return out


FEATURE_SCORES: dict[str, type[FeatureScorer]] = {
    "mahalanobis": MahalanobisScorer,
    "knn": KNNScorer,
    "gaussian": GaussianScorer,
}


def make_feature_scorer(name: str, **kwargs) -> FeatureScorer:
    """A new, unfitted feature scorer by name (`"mahalanobis"`, `"knn"` or `"gaussian"`); `kwargs` go to its
    constructor."""
    return _lookup(FEATURE_SCORES, name, "feature score", "feature scores")(**kwargs)
