//! `kiban anonymize`: a release of a table (delimited or Parquet) under k-anonymity (and
//! ℓ-diversity, t-closeness with equal, ordered or hierarchical distance) with the
//! generalization that loses the least information, from a TOML job file or from command-line
//! options.

use anyhow::{Context, Result, bail};
use kiban_anonymize::{
    AgeAtEventSpec, Aggregation, AttributeType, DeltaPresence, HierarchySource, HierarchySpec,
    Icd10Level, Icd10Spec, JobConfig, LDiversity, Metric, PrivacyModels, TDistance,
};

use crate::AnonymizeArgs;

/// Runs `kiban anonymize`.
pub fn run(args: AnonymizeArgs) -> Result<()> {
    let mut job = job_of(&args)?;
    // `--streaming` also applies to a job file.
    if args.streaming {
        job.streaming = Some(true);
    }
    let streamed = job.streams().context("anonymization")?;
    let report = kiban_anonymize::run(&job).context("anonymization")?;
    let (streamed_en, streamed_ja) = if streamed {
        (" (streamed)", "（逐次処理）")
    } else {
        ("", "")
    };
    println!(
        "anonymize{streamed_en}: {records} records -> {out} ({suppressed} suppressed), levels {levels:?} for [{qi}], k = {k}, {classes} classes / 匿名加工{streamed_ja}: {records}レコード → {out}（{suppressed}レコードを削除）、一般化レベル {levels:?}（対象 [{qi}]）、k = {k}、同値クラス {classes}",
        records = report.records,
        out = job.output.display(),
        suppressed = report.suppressed_records,
        levels = report.levels,
        qi = report.quasi_identifiers.join(", "),
        k = report.k,
        classes = report.equivalence_classes,
    );
    println!(
        "  information loss ({metric}): {loss}; prosecutor risk max {max:.4}, mean {mean:.4}; {at_risk} records at risk above {threshold} / 情報損失（{metric}）: {loss}、検察官リスク 最大 {max:.4}・平均 {mean:.4}、リスクが {threshold} を超えるレコード {at_risk}件",
        metric = report.metric_name,
        loss = report.information_loss,
        max = report.risk.prosecutor_max,
        mean = report.risk.prosecutor_mean,
        at_risk = report.risk.records_at_risk,
        threshold = report.risk.threshold
    );
    let uniqueness = &report.risk.population_uniqueness;
    let (dankar_en, dankar_ja) = uniqueness.dankar.map_or_else(
        || ("not estimable".to_owned(), "推定できません".to_owned()),
        |u| (format!("{u:.6}"), format!("{u:.6}")),
    );
    println!(
        "  marketer risk {marketer:.4}; sample uniques {sample:.4}; population uniques (Dankar) {dankar_en} / マーケターリスク {marketer:.4}、標本一意 {sample:.4}、母集団一意（Dankar） {dankar_ja}",
        marketer = report.risk.marketer,
        sample = report.risk.sample_uniques,
    );
    if let Some(t) = report.t {
        let distance = report.t_distance.map_or("equal", |d| d.name());
        println!(
            "  t-closeness ({distance} distance): achieved t = {t:.6} / t-近接性（{distance} 距離）: 達成した t = {t:.6}"
        );
    }
    if let Some(dp) = &report.differential_privacy {
        println!(
            "  (ε, δ)-DP: ε = {epsilon} (anonymization {anonymization:.4}, search {search}), δ = {delta}, β = {beta:.4}, derived k = {k}; {sampled} of {input} records sampled; score {score:.4} / 差分プライバシー (ε, δ): ε = {epsilon}（匿名加工 {anonymization:.4}、探索 {search}）、δ = {delta}、β = {beta:.4}、導かれた k = {k}、{input}レコード中 {sampled}レコードを標本抽出、スコア {score:.4}",
            epsilon = dp.epsilon,
            anonymization = dp.epsilon_anonymization,
            search = dp.epsilon_search,
            delta = dp.delta,
            beta = dp.beta,
            k = dp.k,
            sampled = dp.sampled_records,
            input = dp.input_records,
            score = dp.score
        );
    }
    if let Some(local) = &report.local_recoding {
        println!(
            "  local recoding: {recoded} of {suppressed} suppressed records recoded instead, {after} still suppressed ({}) / ローカル再符号化: 削除対象 {suppressed}レコード中 {recoded}レコードを再符号化、なお削除 {after}レコード",
            local.stopped_because,
            recoded = local.records_recoded,
            suppressed = local.suppressed_by_global,
            after = local.suppressed_after,
        );
    }
    if let Some(k_map) = report.k_map {
        println!(
            "  population: {members} members, k-map {k_map}; journalist risk max {max:.4}, mean {mean:.4} / 母集団: {members}レコード、k-map {k_map}、ジャーナリストリスク 最大 {max:.4}・平均 {mean:.4}",
            members = report.population_records.unwrap_or(0),
            max = report.risk.journalist_max,
            mean = report.risk.journalist_mean
        );
    }
    for path in [&job.report, &job.report_html].into_iter().flatten() {
        println!("  report: {path} / レポート: {path}", path = path.display());
    }
    Ok(())
}

/// The job: the TOML file, or the options (an input file and `--qi` at least).
fn job_of(args: &AnonymizeArgs) -> Result<JobConfig> {
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read job file {}", path.display()))?;
        let mut job: JobConfig =
            basic_toml::from_str(&text).with_context(|| format!("job file {}", path.display()))?;
        // Relative paths in a job file are relative to the file, not to the working directory.
        let base = path.parent().unwrap_or_else(|| std::path::Path::new("."));
        job.input = base.join(&job.input);
        job.output = base.join(&job.output);
        job.report = job.report.map(|r| base.join(r));
        job.report_html = job.report_html.map(|r| base.join(r));
        job.hierarchy_dir = job.hierarchy_dir.map(|d| base.join(d));
        job.population = job.population.map(|p| base.join(p));
        for source in job.hierarchies.values_mut() {
            if let kiban_anonymize::HierarchySource::File { file } = source {
                *file = base.join(&*file);
            }
        }
        return Ok(job);
    }
    let Some(input) = &args.input else {
        bail!("give an input file (or --config job.toml)");
    };
    if args.qi.is_empty() {
        bail!("give the quasi-identifiers with --qi (comma-separated)");
    }
    let Some(out) = &args.out else {
        bail!("give the release file with --out");
    };
    let mut privacy = PrivacyModels::k_anonymity(args.k, args.max_suppression);
    privacy.l_diversity = match &args.l_diversity {
        Some(text) => Some(parse_l_diversity(text)?),
        None => None,
    };
    if let Some(text) = &args.models.t_closeness {
        let (distance, t) = parse_t_closeness(text)?;
        privacy.t_closeness = Some(t);
        privacy.t_distance = distance;
    }
    privacy.k_map = args.models.k_map;
    if let (Some(range), Some(column)) = (&args.models.delta_presence, &args.models.subset_column) {
        let bounds: Vec<f64> = range
            .split(':')
            .map(|p| p.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("--delta-presence `{range}`: use MIN:MAX"))?;
        let [delta_min, delta_max] = bounds[..] else {
            bail!("--delta-presence `{range}`: use MIN:MAX");
        };
        privacy.delta_presence = Some(DeltaPresence {
            delta_min,
            delta_max,
            subset_column: column.clone(),
        });
    }
    let mut job = JobConfig::new(input, out, args.qi.clone(), privacy);
    job.population = args.models.population.clone();
    job.separator = args.sep;
    job.sensitive = args.sensitive.clone();
    job.identifying = args.identifying.clone();
    job.hierarchy_dir = args.hierarchies.clone();
    job.report = args.report.clone();
    job.report_html = args.report_html.clone();
    job.sampling_fraction = args.sampling_fraction;
    job.metric = parse_metric(&args.metric)?;
    job.drop_suppressed = args.drop_suppressed;
    job.streaming_row_threshold = args.models.streaming_threshold;
    if let Some(text) = &args.models.dp {
        let parts: Vec<f64> = text
            .split(':')
            .map(|p| p.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("--dp `{text}`: use EPSILON:DELTA"))?;
        let [epsilon, delta] = parts[..] else {
            bail!("--dp `{text}`: use EPSILON:DELTA");
        };
        job.differential_privacy = Some(kiban_anonymize::DifferentialPrivacy::new(
            epsilon,
            delta,
            args.models.dp_seed,
        ));
    }
    job.search.local_recoding = args.models.local_recoding;
    job.search.max_local_recoding_iterations = args.models.local_recoding_iterations;
    let icd10 = if args.models.icd10_levels.is_empty() {
        HierarchySpec::Icd10
    } else {
        let levels = args
            .models
            .icd10_levels
            .iter()
            .map(|level| match level.trim() {
                "category" => Ok(Icd10Level::Category),
                "block" => Ok(Icd10Level::Block),
                "chapter" => Ok(Icd10Level::Chapter),
                other => bail!("--icd10-levels `{other}`: use category, block or chapter"),
            })
            .collect::<Result<Vec<_>>>()?;
        HierarchySpec::Icd10Levels(Icd10Spec { levels })
    };
    for column in &args.models.icd10 {
        job.hierarchies.insert(
            column.trim().to_string(),
            HierarchySource::Built(icd10.clone()),
        );
    }
    for declaration in &args.models.age_at_event {
        let parsed = declaration
            .split_once('=')
            .and_then(|(name, dates)| Some((name, dates.split_once(':')?)));
        let Some((name, (birth, event))) = parsed else {
            bail!("--age-at-event `{declaration}`: use NAME=BIRTH:EVENT");
        };
        let event = event.trim();
        let is_date = chrono::NaiveDate::parse_from_str(event, "%Y-%m-%d").is_ok();
        let spec = AgeAtEventSpec {
            birth_date: birth.trim().to_string(),
            event_date: (!is_date).then(|| event.to_string()),
            event_on: is_date.then(|| event.to_string()),
            top: args.models.age_top,
            widths: args.models.age_bands.clone(),
        };
        let name = name.trim();
        spec.validate(name)
            .with_context(|| format!("--age-at-event `{declaration}`"))?;
        if !job.quasi_identifiers.iter().any(|qi| qi == name) {
            bail!("--age-at-event: `{name}` must also be listed in --qi");
        }
        job.hierarchies.insert(
            name.to_string(),
            HierarchySource::Built(HierarchySpec::AgeAtEvent(spec)),
        );
    }
    for declaration in &args.models.types {
        let Some((column, kind)) = declaration.split_once('=') else {
            bail!("--types `{declaration}`: use COLUMN=TYPE");
        };
        let kind: AttributeType = kind
            .parse()
            .with_context(|| format!("--types, column `{}`", column.trim()))?;
        job.types.insert(column.trim().to_string(), kind);
    }
    for declaration in &args.models.microaggregate {
        let function = match declaration.split_once('=') {
            Some((column, "mean")) => (column, Aggregation::Mean),
            Some((column, "median")) => (column, Aggregation::Median),
            _ => bail!("--microaggregate `{declaration}`: use COLUMN=mean or COLUMN=median"),
        };
        job.microaggregation
            .insert(function.0.trim().to_string(), function.1);
    }
    Ok(job)
}

/// `0.2` or `equal:0.2` (equal distance), `ordered:0.2`, `hierarchical:0.2`.
fn parse_t_closeness(text: &str) -> Result<(TDistance, f64)> {
    let (distance, number) = match text.split_once(':') {
        Some((name, number)) => {
            let distance = match name.trim().to_ascii_lowercase().as_str() {
                "equal" => TDistance::Equal,
                "ordered" => TDistance::Ordered,
                "hierarchical" => TDistance::Hierarchical,
                other => bail!(
                    "--t-closeness `{text}`: unknown distance `{other}`; use equal, ordered or hierarchical"
                ),
            };
            (distance, number)
        }
        None => (TDistance::Equal, text),
    };
    let t: f64 = number
        .trim()
        .parse()
        .with_context(|| format!("--t-closeness `{text}`: expected a number for t"))?;
    Ok((distance, t))
}

fn parse_metric(name: &str) -> Result<Metric> {
    Ok(match name.trim().to_ascii_lowercase().as_str() {
        "entropy" | "nu-entropy" | "non-uniform-entropy" => Metric::Entropy,
        "loss" => Metric::Loss,
        "discernibility" => Metric::Discernibility,
        "aecs" => Metric::Aecs,
        "height" => Metric::Height,
        "precision" => Metric::Precision,
        "kl-divergence" | "kl_divergence" | "kl" => Metric::KlDivergence,
        other => bail!(
            "unknown metric `{other}`; use entropy, loss, discernibility, aecs, height, precision or kl-divergence"
        ),
    })
}

/// `distinct:3`, `entropy:2.5`, `recursive:3:4` (c then ℓ).
fn parse_l_diversity(text: &str) -> Result<LDiversity> {
    let parts: Vec<&str> = text.split(':').map(str::trim).collect();
    let number = |i: usize| -> Result<f64> {
        parts
            .get(i)
            .and_then(|p| p.parse::<f64>().ok())
            .with_context(|| {
                format!(
                    "--l-diversity `{text}`: expected a number at part {}",
                    i + 1
                )
            })
    };
    Ok(match parts.first().copied() {
        Some("distinct") => LDiversity::Distinct {
            l: number(1)? as usize,
        },
        Some("entropy") => LDiversity::Entropy { l: number(1)? },
        Some("recursive") => LDiversity::Recursive {
            c: number(1)?,
            l: number(2)? as usize,
        },
        _ => bail!("--l-diversity `{text}`: use distinct:L, entropy:L or recursive:C:L"),
    })
}
