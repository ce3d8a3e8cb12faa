#!/usr/bin/env python3
"""Person linkage with Splink (DuckDB backend), for the side-by-side benchmark with
`kiban link` (issue 5).

Usage:
    python3 scripts/bench-link-splink.py RECORDS_CSV TRUTH_CSV OUT_CSV

RECORDS_CSV has the header of `kiban synth --identity-csv`:
    record_id,hospital_id,hospital_patient_id,name_kanji,name_kana,sex,birth_date,
    postal_code,address,insurer_number,insured_symbol,insured_number,insured_branch
TRUTH_CSV is `record_id,person_id`. OUT_CSV receives `record_id,person_id`.

The preprocessing is what a Splink user would plausibly write (NFKC, spaces removed,
Japanese-era birth dates converted to ISO); the model follows the Splink documentation:
u by random sampling, lambda from deterministic rules, m by EM, predict at 0.9 and
connected components at 0.9. The timed section runs from loading the CSV to writing
the clusters; the evaluation against the truth is outside it.

Needs: pip install splink   (tested with splink 5.0.0, duckdb 2.0.0)
"""

import re
import sys
import time
import unicodedata
from datetime import date

import pandas as pd

import splink
import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import Linker, SettingsCreator, block_on
from splink.backends.duckdb import DuckDBAPI

ERA_START_YEAR = {
    "明治": 1868,
    "大正": 1912,
    "昭和": 1926,
    "平成": 1989,
    "令和": 2019,
    "M": 1868,
    "T": 1912,
    "S": 1926,
    "H": 1989,
    "R": 2019,
}

KANJI_ERA = re.compile(r"^(明治|大正|昭和|平成|令和)(元|\d{1,2})年(\d{1,2})月(\d{1,2})日$")
INITIAL_ERA = re.compile(r"^([MTSHR])(元|\d{1,2})[./\-](\d{1,2})[./\-](\d{1,2})$")
WESTERN_SEPARATED = re.compile(r"^(\d{4})[./\-](\d{1,2})[./\-](\d{1,2})$")
WESTERN_KANJI = re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日$")
WESTERN_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")


def iso_or_none(year: int, month: int, day: int):
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        return None


def normalize_birth_date(raw):
    """Western or Japanese-era birth date (any width) -> ISO yyyy-mm-dd, None if unreadable."""
    if raw is None:
        return None
    text = unicodedata.normalize("NFKC", raw).strip().replace(" ", "").upper()
    if not text:
        return None
    for pattern in (KANJI_ERA, INITIAL_ERA):
        m = pattern.match(text)
        if m:
            era, year_text, month, day = m.groups()
            era_year = 1 if year_text == "元" else int(year_text)
            return iso_or_none(ERA_START_YEAR[era] + era_year - 1, int(month), int(day))
    for pattern in (WESTERN_SEPARATED, WESTERN_KANJI, WESTERN_COMPACT):
        m = pattern.match(text)
        if m:
            year, month, day = m.groups()
            return iso_or_none(int(year), int(month), int(day))
    return None


WHITESPACE = re.compile(r"\s+")


def clean_text(raw):
    """NFKC and all whitespace removed; empty -> None."""
    if raw is None:
        return None
    text = WHITESPACE.sub("", unicodedata.normalize("NFKC", raw))
    return text or None


def clean_digits(raw):
    """NFKC, hyphens and whitespace removed (postal codes, card numbers); empty -> None."""
    text = clean_text(raw)
    if text is None:
        return None
    text = text.replace("-", "")
    return text or None


def load_and_preprocess(records_csv: str) -> pd.DataFrame:
    raw = pd.read_csv(records_csv, dtype=str, keep_default_na=False)
    raw = raw.replace({"": None})
    df = pd.DataFrame()
    df["unique_id"] = raw["record_id"]
    df["name_kanji"] = raw["name_kanji"].map(clean_text)
    df["name_kana"] = raw["name_kana"].map(clean_text)
    df["sex"] = raw["sex"].map(clean_text)
    df["birth_date"] = raw["birth_date"].map(normalize_birth_date)
    df["birth_year"] = df["birth_date"].str.slice(0, 4)
    df["postal_code"] = raw["postal_code"].map(clean_digits)
    df["address"] = raw["address"].map(clean_text)
    df["insurer_number"] = raw["insurer_number"].map(clean_digits)
    df["insured_symbol"] = raw["insured_symbol"].map(clean_text)
    df["insured_number"] = raw["insured_number"].map(clean_text)
    df["insured_branch"] = raw["insured_branch"].map(clean_digits)
    # One insurance card = insurer + symbol + number (the symbol may be absent).
    has_card = df["insurer_number"].notna() & df["insured_number"].notna()
    card = (
        df["insurer_number"].fillna("")
        + "|"
        + df["insured_symbol"].fillna("")
        + "|"
        + df["insured_number"].fillna("")
    )
    df["insurance_card"] = card.where(has_card, None)
    return df


def model_settings() -> SettingsCreator:
    # Kanji and kana spell the same name, so they form one comparison: two separate
    # comparisons would count one agreement twice (a broken independence assumption
    # that linked namesakes in the same postal code in an earlier version).
    name = cl.CustomComparison(
        output_column_name="name",
        comparison_levels=[
            cll.And(cll.NullLevel("name_kanji"), cll.NullLevel("name_kana")),
            cll.ExactMatchLevel("name_kanji").configure(tf_adjustment_column="name_kanji"),
            cll.ExactMatchLevel("name_kana").configure(tf_adjustment_column="name_kana"),
            cll.LevenshteinLevel("name_kanji", 1),
            cll.JaroWinklerLevel("name_kanji", 0.9),
            cll.JaroWinklerLevel("name_kana", 0.9),
            cll.JaroWinklerLevel("name_kana", 0.8),
            cll.ElseLevel(),
        ],
    )
    address = cl.CustomComparison(
        output_column_name="address",
        comparison_levels=[
            cll.NullLevel("address"),
            cll.ExactMatchLevel("address"),
            cll.LevenshteinLevel("address", 3),
            cll.JaroWinklerLevel("address", 0.9),
            cll.ElseLevel(),
        ],
    )
    insurance_card = cl.CustomComparison(
        output_column_name="insurance_card",
        comparison_levels=[
            cll.NullLevel("insurance_card"),
            cll.And(
                cll.ExactMatchLevel("insurance_card"),
                cll.ExactMatchLevel("insured_branch"),
            ),
            # Same card with one branch number missing. Same card with a different
            # branch (another member of the household) falls to the else level: the
            # random-sampling u of a shared card is ~1e-6, which would otherwise make a
            # household's shared card near-conclusive evidence of one person.
            cll.CustomLevel(
                "insurance_card_l = insurance_card_r"
                " AND (insured_branch_l IS NULL OR insured_branch_r IS NULL)",
                label_for_charts="Same card, a branch number missing",
            ),
            cll.ElseLevel(),
        ],
    )
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        comparisons=[
            name,
            cl.DateOfBirthComparison(
                "birth_date",
                input_is_string=True,
                datetime_thresholds=[1, 1],
                datetime_metrics=["month", "year"],
            ),
            cl.ExactMatch("sex"),
            cl.ExactMatch("postal_code"),
            address,
            insurance_card,
        ],
        blocking_rules_to_generate_predictions=[
            block_on("birth_date"),
            # Full names are far from unique (the most common kana name is shared by
            # hundreds of records), so the name rule is tightened with the birth year.
            block_on("name_kana", "birth_year"),
            block_on("insured_number", "insurer_number"),
            block_on("postal_code", "name_kanji"),
        ],
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
    )


def link(records_csv: str, out_csv: str) -> int:
    df = load_and_preprocess(records_csv)
    db_api = DuckDBAPI()
    linker = Linker(db_api.register(df), model_settings())

    linker.training.estimate_probability_two_random_records_match(
        [
            block_on("name_kanji", "birth_date"),
            block_on("insurance_card", "insured_branch", "birth_date"),
        ],
        recall=0.7,
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("birth_date"))
    # Blocking EM on the name alone (~19M pairs) or on name + postal code gives a
    # degenerate "same name" class (birth-date m far too low): the synthetic name pool
    # is small. Name + address pairs are mostly true matches and train birth_date.
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("name_kanji", "address")
    )

    predictions = linker.inference.predict(threshold_match_probability=0.9)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=0.9
    )
    out = clusters.as_pandas_dataframe()[["unique_id", "cluster_id"]]
    out.columns = ["record_id", "person_id"]
    out.to_csv(out_csv, index=False)
    return len(out)


def pairs(group_sizes: pd.Series) -> int:
    return int((group_sizes * (group_sizes - 1) // 2).sum())


def evaluate(out_csv: str, truth_csv: str) -> None:
    predicted = pd.read_csv(out_csv, dtype=str)
    truth = pd.read_csv(truth_csv, dtype=str)
    joined = truth.merge(predicted, on="record_id", how="left", suffixes=("_true", "_pred"))
    missing = int(joined["person_id_pred"].isna().sum())
    # A record missing from the output is its own singleton cluster.
    joined["person_id_pred"] = joined["person_id_pred"].fillna("missing:" + joined["record_id"])

    true_pairs = pairs(joined.groupby("person_id_true").size())
    predicted_pairs = pairs(joined.groupby("person_id_pred").size())
    correct_pairs = pairs(joined.groupby(["person_id_true", "person_id_pred"]).size())
    precision = correct_pairs / predicted_pairs if predicted_pairs else 1.0
    recall = correct_pairs / true_pairs if true_pairs else 1.0

    # Cluster level: a cluster counts when its record set equals a true person's exactly.
    def cluster_sets(column: str) -> set:
        return set(
            joined.groupby(column)["record_id"].apply(lambda ids: tuple(sorted(ids))).tolist()
        )

    true_clusters = cluster_sets("person_id_true")
    predicted_clusters = cluster_sets("person_id_pred")
    exact = len(true_clusters & predicted_clusters)

    print(f"records={len(joined)} missing_from_output={missing}")
    print(f"true_pairs={true_pairs} predicted_pairs={predicted_pairs} correct_pairs={correct_pairs}")
    print(f"pairwise_precision={precision:.5f} pairwise_recall={recall:.5f}")
    print(
        f"persons={len(true_clusters)} clusters={len(predicted_clusters)} "
        f"cluster_precision={exact / len(predicted_clusters):.5f} "
        f"cluster_recall={exact / len(true_clusters):.5f}"
    )


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    records_csv, truth_csv, out_csv = sys.argv[1:]
    print(f"splink {splink.__version__}")
    started = time.perf_counter()
    written = link(records_csv, out_csv)
    elapsed = time.perf_counter() - started
    print(f"linkage_wall_seconds={elapsed:.1f} (load to clusters written, {written} records)")
    evaluate(out_csv, truth_csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
