"""OOD detection metrics for the `evaluate` library: AUROC, AUPR-Out, AUPR-In, FPR at TPR, detection error.

Load it offline with `evaluate.load("<path to this folder>")` or `oe_text.hf_metrics.load_ood_metric()`.
The numbers come from `oe_text.metrics` (one implementation for the library, its reports and this module).
"""

import datasets
import evaluate

from oe_text.metrics import ood_detection_metrics_from_labels


_DESCRIPTION = """
Out-of-distribution (OOD) detection metrics with OOD as the positive class, as in Outlier Exposure
(Hendrycks, Mazeika & Dietterich, ICLR 2019). `predictions` are OOD scores where higher means more anomalous
(e.g. the negative maximum softmax probability); `references` are 1 for OOD inputs and 0 for in-distribution inputs.
AUROC equals sklearn's roc_auc_score; AUPR-Out is the average precision with OOD positive (the paper's "AUPR");
AUPR-In is the average precision with in-distribution positive and negated scores; FPR<x> is the fraction of
in-distribution inputs flagged at the threshold detecting x% of OOD inputs (method "paper": the threshold whose
TPR is closest to x, as the paper's code; "at_least": the highest threshold with TPR >= x); detection_error is
min over thresholds of 0.5 * (1 - TPR) + 0.5 * FPR. All values are fractions in [0, 1].
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `float`): OOD scores, higher = more anomalous.
    references (`list` of `int`): 1 for OOD (positive class), 0 for in-distribution.
    fpr_tprs (`list` of `float`, *optional*, defaults to `[0.9, 0.95]`): OOD recalls at which to report the FPR.
    fpr_method (`str`, *optional*, defaults to `"paper"`): `"paper"` or `"at_least"`.
Returns:
    auroc, aupr_out, aupr_in, fpr90, fpr95 (one key per fpr_tprs entry), detection_error: `float` in [0, 1].
Examples:
    >>> metric = evaluate.load("oe_text/hf_metrics/ood_detection")
    >>> metric.compute(predictions=[0.1, 0.4, 0.35, 0.8], references=[0, 0, 1, 1])["auroc"]
    0.75
"""

_CITATION = """
@inproceedings{hendrycks2019oe,
  title={Deep Anomaly Detection with Outlier Exposure},
  author={Hendrycks, Dan and Mazeika, Mantas and Dietterich, Thomas},
  booktitle={International Conference on Learning Representations},
  year={2019}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class OODDetection(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("int32")}
            ),
            reference_urls=["https://arxiv.org/abs/1812.04606"],
        )

    def _compute(self, predictions, references, fpr_tprs=(0.9, 0.95), fpr_method="paper"):
        return ood_detection_metrics_from_labels(
            predictions, references, fpr_tprs=tuple(fpr_tprs), fpr_method=fpr_method
        )
