//! `kiban link`: links identity records of many providers into persons (名寄せ), from the
//! CSV form shared with other linkage tools, and scores the result against a truth file.
//! `--review-out` also writes the uncertain pairs for clerical review: record ids (the
//! caller's own), the match probability and weight, and per compared field its comparison
//! level and weight, never an identity value.

use anyhow::{Context, Result, bail};
use kiban_linkage::keys::{ProjectKey, write_keys_csv};
use kiban_linkage::link::{
    ADJUSTMENTS_EVIDENCE, LinkOptions, Linkage, ReviewCandidate, link_csv, link_records, person_id,
};
use kiban_linkage::model::FIELDS;
use kiban_linkage::records::{LoadedRecords, UnlinkableReason, load_identity_csv};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use crate::LinkArgs;

/// Runs `kiban link`.
pub async fn run(args: LinkArgs) -> Result<()> {
    let defaults = LinkOptions::default();
    let options = LinkOptions {
        match_threshold: args.threshold,
        max_kept_pairs: args.max_kept_pairs.max(1),
        max_weak_pairs: args.max_weak_pairs.max(1),
        review_band: if args.no_review {
            None
        } else {
            args.review_band.or(defaults.review_band)
        },
        ..defaults
    };
    if let Some(data_dir) = &args.data {
        return crate::link_store::run(
            data_dir,
            args.key_file.as_deref(),
            &options,
            args.revert,
            args.full,
        )
        .await;
    }
    let (Some(csv), Some(out)) = (&args.csv, &args.out) else {
        bail!("give --csv RECORDS --out LINKS, or --data DATA_DIR to link a store in place");
    };
    if args.review_band.is_some() && args.review_out.is_none() {
        bail!(
            "--review-band needs --review-out REVIEW_CSV (or --data): the band picks the pairs written there"
        );
    }
    // A bad project key fails before any work is done.
    let project_key = args
        .project_key
        .as_deref()
        .map(ProjectKey::read)
        .transpose()?;
    let (report, review_written) = match &args.review_out {
        None => (
            link_csv(csv, out, &options)
                .with_context(|| format!("linkage of {}", csv.display()))?,
            None,
        ),
        Some(review_out) => {
            // Loaded once for the links and the review pairs.
            let started = Instant::now();
            let loaded =
                load_identity_csv(csv).with_context(|| format!("loading {}", csv.display()))?;
            let linkage = link_records(&loaded, &options);
            write_atomically(out, |w| write_links(w, &loaded, &linkage))
                .with_context(|| format!("writing {}", out.display()))?;
            write_atomically(review_out, |w| write_review(w, &loaded, &linkage.review))
                .with_context(|| format!("writing {}", review_out.display()))?;
            let written = linkage.review.len();
            let mut report = linkage.report;
            report.elapsed = started.elapsed();
            (report, Some((review_out, written)))
        }
    };
    println!(
        "link: {records} records -> {persons} persons in {seconds:.1} s ({compared} pairs compared, {links} links above {threshold}, {refused} merges refused: one record per provider and person) / 名寄せ: {records}レコード → {persons}人、{seconds:.1} 秒（比較した組 {compared}、{threshold} を超えるリンク {links}、統合の拒否 {refused}件: 1人につき医療機関ごとに1レコード）",
        records = report.records,
        persons = report.persons,
        seconds = report.elapsed.as_secs_f64(),
        compared = report.pairs_compared,
        links = report.pairs_above_threshold,
        threshold = args.threshold,
        refused = report.merges_refused_same_provider
    );
    for warning in &report.model_warnings {
        println!(
            "  WARNING: {warning} / 警告: 学習したモデルが一致の集団を捉えていません（リンク結果は信頼できません）"
        );
    }
    if report.weak_pairs_let_go > 0 {
        println!(
            "  memory budget: {pairs} weak candidate pairs (match probability under {floor:.4}) left out of clustering (--max-weak-pairs) / メモリ上限: 一致確率 {floor:.4} 未満の弱い候補の組 {pairs}件をクラスタリングから除外（--max-weak-pairs）",
            pairs = report.weak_pairs_let_go,
            floor = report.cluster_floor_probability
        );
    }
    if !report.unlinkable.is_empty() {
        println!(
            "  {rows} rows could not be linked (each is its own person in {out}): / 名寄せできないレコード {rows}件（{out} ではそれぞれが1人として扱われます）:",
            rows = report.unlinkable.len(),
            out = out.display()
        );
        for row in report.unlinkable.iter().take(20) {
            println!(
                "    line {line}: {} / {line}行目: {}",
                row.reason.describe(),
                unlinkable_reason_ja(row.reason),
                line = row.line
            );
        }
    }
    println!("  links: {out} / リンク: {out}", out = out.display());
    if let (Some((review_out, written)), Some((low, high))) = (review_written, options.review_band)
    {
        println!(
            "  clerical review: {in_band} pairs with match probability in [{low}, {high}] ({written} written, at most {limit}): {path} / 確認待ち: 一致確率が [{low}, {high}] の組 {in_band}件（書き出し {written}件、上限 {limit}）: {path}",
            in_band = report.review_pairs_in_band,
            limit = options.review_limit,
            path = review_out.display()
        );
    }
    if let (Some(keys_out), Some(key)) = (&args.keys_out, &project_key) {
        write_linkage_keys(csv, keys_out, key)?;
    }
    if let Some(truth) = &args.truth {
        let score = kiban_linkage::evaluate::evaluate_files(out, truth)
            .with_context(|| format!("scoring against {}", truth.display()))?;
        println!(
            "  against {truth}: pairwise precision {pp:.4}, recall {pr:.4}; cluster precision {cp:.4}, recall {cr:.4} / {truth} との比較: 組単位の適合率 {pp:.4}、再現率 {pr:.4}、クラスタ単位の適合率 {cp:.4}、再現率 {cr:.4}",
            truth = truth.display(),
            pp = score.pairwise_precision,
            pr = score.pairwise_recall,
            cp = score.cluster_precision,
            cr = score.cluster_recall
        );
    }
    Ok(())
}

/// Parses `--review-band LOW:HIGH`: two probabilities, the lower first.
pub(crate) fn parse_review_band(text: &str) -> Result<(f64, f64), String> {
    let (low, high) = text
        .split_once(':')
        .ok_or_else(|| "expected LOW:HIGH, two probabilities such as 0.2:0.98".to_owned())?;
    let probability = |s: &str| {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|p| (0.0..=1.0).contains(p))
            .ok_or_else(|| format!("{s:?} is not a probability in [0, 1]"))
    };
    let (low, high) = (probability(low)?, probability(high)?);
    if low > high {
        return Err("the lower end of the band is above the upper end".to_owned());
    }
    Ok((low, high))
}

/// Writes a file through `write`, to a temporary file beside it renamed into place: the file is
/// never left partial, and the temporary file is removed when writing fails.
fn write_atomically(path: &Path, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|e| anyhow::anyhow!("random name: {e}"))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.{}.tmp", hex::encode(suffix)));
    let written = (|| -> Result<()> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, &file);
        write(&mut out)?;
        out.flush()?;
        drop(out);
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        Ok(())
    })();
    if written.is_err() {
        // Nothing partial is left behind; the file may not even exist.
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// The links, as `kiban_linkage::link::link_csv` writes them:
/// `record_id,person_id,match_probability`.
fn write_links(out: &mut dyn Write, loaded: &LoadedRecords, linkage: &Linkage) -> Result<()> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(["record_id", "person_id", "match_probability"])?;
    for (r, id) in loaded.record_ids.iter().enumerate() {
        let probability = linkage
            .match_probability
            .get(r)
            .copied()
            .flatten()
            .map(|p| format!("{p:.6}"))
            .unwrap_or_default();
        let person = linkage.person.get(r).copied().unwrap_or_default();
        writer.write_record([id.as_ref(), &person_id(person), &probability])?;
    }
    writer.flush()?;
    Ok(())
}

/// The header of the review file: the pair, then per compared field its level and weight,
/// then the rest of the weight ([`ADJUSTMENTS_EVIDENCE`]).
fn review_header() -> Vec<String> {
    let mut header: Vec<String> = [
        "record_id_a",
        "record_id_b",
        "match_probability",
        "weight_bits",
    ]
    .map(String::from)
    .to_vec();
    for field in FIELDS {
        header.push(format!("{}_level", field.name()));
        header.push(format!("{}_weight_bits", field.name()));
    }
    header.push(format!("{ADJUSTMENTS_EVIDENCE}_weight_bits"));
    header
}

/// The pairs for clerical review, one row each, most uncertain first.
fn write_review(
    out: &mut dyn Write,
    loaded: &LoadedRecords,
    review: &[ReviewCandidate],
) -> Result<()> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(review_header())?;
    let record_id = |r: u32| {
        loaded
            .record_ids
            .get(r as usize)
            .map(|id| id.as_ref())
            .unwrap_or_default()
    };
    for pair in review {
        let mut row = vec![
            record_id(pair.a).to_owned(),
            record_id(pair.b).to_owned(),
            format!("{:.6}", pair.match_probability),
            format!("{:.4}", pair.weight),
        ];
        for field in FIELDS {
            match pair.evidence.iter().find(|e| e.field == field.name()) {
                Some(e) => {
                    row.push(e.level.to_owned());
                    row.push(format!("{:.4}", e.weight_bits));
                }
                None => row.extend([String::new(), String::new()]),
            }
        }
        row.push(
            pair.evidence
                .iter()
                .find(|e| e.field == ADJUSTMENTS_EVIDENCE)
                .map(|e| format!("{:.4}", e.weight_bits))
                .unwrap_or_default(),
        );
        writer.write_record(&row)?;
    }
    writer.flush()?;
    Ok(())
}

/// Writes the linkage keys of every record of `csv` under the project key.
fn write_linkage_keys(csv: &Path, keys_out: &Path, key: &ProjectKey) -> Result<()> {
    let loaded = load_identity_csv(csv).with_context(|| format!("loading {}", csv.display()))?;
    let rows = write_keys_csv(&loaded, key, keys_out)?;
    println!(
        "  linkage keys: {path} ({rows} records) / 名寄せ用の鍵: {path}（{rows}レコード）",
        path = keys_out.display()
    );
    Ok(())
}

/// Why a row cannot be linked, in Japanese (the English is [`UnlinkableReason::describe`]).
fn unlinkable_reason_ja(reason: UnlinkableReason) -> &'static str {
    match reason {
        UnlinkableReason::NoName => "漢字氏名もカナ氏名もありません",
        UnlinkableReason::NoBirthDateNorCard => "生年月日も保険証もありません",
    }
}

#[cfg(test)]
mod tests {
    use super::parse_review_band;

    #[test]
    fn a_review_band_is_two_ordered_probabilities() {
        assert_eq!(parse_review_band("0.2:0.98"), Ok((0.2, 0.98)));
        assert_eq!(parse_review_band(" 0 : 1 "), Ok((0.0, 1.0)));
        assert!(parse_review_band("0.9:0.2").is_err());
        assert!(parse_review_band("0.2").is_err());
        assert!(parse_review_band("0.2:1.5").is_err());
        assert!(parse_review_band("a:0.5").is_err());
    }
}
