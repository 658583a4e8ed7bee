"""Fits scikit-learn's IsolationForest with its defaults (n_estimators=100,
max_samples="auto", max_features=1.0) and contamination=0.1 on a headerless
CSV of floats, and writes score_samples() of the same rows, one per line.

Used by warden's parity test (crates/detect/tests/sklearn_parity.rs) and by
`warden bench iforest --python ...`. Prints a JSON line with the timings.

With --seeds K > 1 it writes the mean of the score_samples of K forests
(random_state = seed, seed+1, ...), which is what the parity test compares:
one 100-tree forest ranks points like another sklearn forest only to a
Spearman of about 0.92-0.97, so single forests cannot show parity.

usage: sklearn_iforest.py INPUT.csv OUTPUT.txt [--n-jobs N] [--seed S] [--seeds K]
"""

import argparse
import json
import time

import numpy as np
import sklearn
from sklearn.ensemble import IsolationForest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--n-jobs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=1)
    a = ap.parse_args()
    x = np.loadtxt(a.input, delimiter=",", ndmin=2)
    fit_s = score_s = 0.0
    total = np.zeros(x.shape[0])
    offsets = []
    for k in range(a.seeds):
        t0 = time.perf_counter()
        m = IsolationForest(
            n_estimators=100,
            max_samples="auto",
            contamination=0.1,
            max_features=1.0,
            random_state=a.seed + k,
            n_jobs=a.n_jobs,
        )
        m.fit(x)
        t1 = time.perf_counter()
        total += m.score_samples(x)
        t2 = time.perf_counter()
        fit_s += t1 - t0
        score_s += t2 - t1
        offsets.append(float(m.offset_))
    np.savetxt(a.output, total / a.seeds, fmt="%.17g")
    print(
        json.dumps(
            {
                "sklearn": sklearn.__version__,
                "rows": int(x.shape[0]),
                "features": int(x.shape[1]),
                "seeds": a.seeds,
                "fit_s": fit_s,
                "score_s": score_s,
                "offset": float(np.mean(offsets)),
            }
        )
    )


if __name__ == "__main__":
    main()
