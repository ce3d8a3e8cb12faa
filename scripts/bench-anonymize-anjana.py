#!/usr/bin/env python3
"""Peer run for BENCHMARKS.md: anjana (PyPI `anjana`) k-anonymity on Adult, end to end.

    python3 scripts/bench-anonymize-anjana.py ../shared/data/adult K SUPPRESSION_PERCENT

Same data, hierarchies and quasi-identifiers as the kiban run it is compared with (the 8
quasi-identifiers of the Adult README; occupation is the sensitive attribute). Prints the
wall time of the whole process body (read, anonymize, write) and the smallest class size.
"""
import sys
import time

start = time.perf_counter()
import pandas as pd  # noqa: E402
from anjana.anonymity import k_anonymity  # noqa: E402

adult_dir, k, supp = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
qis = ["age", "education", "marital-status", "native-country", "race", "salary-class", "sex",
       "workclass"]
data = pd.read_csv(f"{adult_dir}/adult.csv", sep=";")
hierarchies = {
    qi: dict(pd.read_csv(f"{adult_dir}/adult_hierarchy_{qi}.csv", header=None, sep=";"))
    for qi in qis
}
released = k_anonymity(data, [], qis, k, supp, hierarchies)
released.to_csv("/tmp/anjana-release.csv", sep=";", index=False)
elapsed = time.perf_counter() - start
classes = released.groupby(qis).size()
print(f"anjana k={k} supp={supp}%: {len(released)} rows released, smallest class "
      f"{classes.min()}, {len(classes)} classes, {elapsed:.3f} s")
