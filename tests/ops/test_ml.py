"""ai.onnx.ml ops (Binarizer, ArrayFeatureExtractor) and TfIdfVectorizer against ONNX Runtime."""
import numpy as np

from tensorforge.testing import check_against_ort, rand

try:
    from .node_models import F, check_node, domain_model
except ImportError:
    from node_models import F, check_node, domain_model


def test_ml_domain():
    x = rand((3, 6), seed=47)
    m = domain_model("Binarizer", "ai.onnx.ml", [("x", x)], [("y", F)], {"threshold": 0.1}, 1)
    check_against_ort(m, {"x": x})
    idx = np.array([4, 0, 2], np.int64)
    m = domain_model("ArrayFeatureExtractor", "ai.onnx.ml", [("x", x), ("i", idx)], [("y", F)], {}, 1)
    check_against_ort(m, {"x": x, "i": idx})


def test_tfidf_vectorizer():
    tokens = np.array([[1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8], [8, 8, 7, 1, 3, 5, 6, 7, 7, 6, 5, 2]], np.int32)
    for mode, skip, lo in (("TF", 0, 2), ("IDF", 3, 1), ("TFIDF", 5, 1)):
        check_node("TfIdfVectorizer", [tokens], {"mode": mode, "min_gram_length": lo, "max_gram_length": 2,
                                                 "max_skip_count": skip, "ngram_counts": [0, 4],
                                                 "ngram_indexes": [0, 1, 2, 3, 4, 5, 6],
                                                 "pool_int64s": [2, 3, 5, 4, 5, 6, 7, 8, 6, 7],
                                                 "weights": [0.5, 1, 1.5, 2, 2.5, 3, 3.5]},
                   opset=9, out_types=[F])
