//! `kiban anonymize`: a release of a table under k-anonymity (and ℓ-diversity, t-closeness)
//! with the generalization that loses the least information, from a TOML job file or from
//! command-line options.

use anyhow::{Context, Result, bail};
use kiban_anonymize::{JobConfig, LDiversity, Metric, PrivacyModels};

use crate::AnonymizeArgs;

/// Runs `kiban anonymize`.
pub fn run(args: AnonymizeArgs) -> Result<()> {
    let job = job_of(&args)?;
    let report = kiban_anonymize::run(&job).context("anonymization")?;
    println!(
        "anonymize: {} records -> {} ({} suppressed), levels {:?} for [{}], k = {}, {} classes",
        report.records,
        job.output.display(),
        report.suppressed_records,
        report.levels,
        report.quasi_identifiers.join(", "),
        report.k,
        report.equivalence_classes,
    );
    println!(
        "  information loss ({}): {}; prosecutor risk max {:.4}, mean {:.4}; {} records at risk above {}",
        report.metric_name,
        report.information_loss,
        report.risk.prosecutor_max,
        report.risk.prosecutor_mean,
        report.risk.records_at_risk,
        report.risk.threshold
    );
    let uniqueness = &report.risk.population_uniqueness;
    println!(
        "  marketer risk {:.4}; sample uniques {:.4}; population uniques (Dankar) {}",
        report.risk.marketer,
        report.risk.sample_uniques,
        uniqueness
            .dankar
            .map_or_else(|| "not estimable".to_owned(), |u| format!("{u:.6}"))
    );
    for path in [&job.report, &job.report_html].into_iter().flatten() {
        println!("  report: {}", path.display());
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
    privacy.t_closeness = args.t_closeness;
    let mut job = JobConfig::new(input, out, args.qi.clone(), privacy);
    job.separator = args.sep;
    job.sensitive = args.sensitive.clone();
    job.identifying = args.identifying.clone();
    job.hierarchy_dir = args.hierarchies.clone();
    job.report = args.report.clone();
    job.report_html = args.report_html.clone();
    job.sampling_fraction = args.sampling_fraction;
    job.metric = parse_metric(&args.metric)?;
    job.drop_suppressed = args.drop_suppressed;
    Ok(job)
}

fn parse_metric(name: &str) -> Result<Metric> {
    Ok(match name.trim().to_ascii_lowercase().as_str() {
        "entropy" | "nu-entropy" | "non-uniform-entropy" => Metric::Entropy,
        "loss" => Metric::Loss,
        "discernibility" => Metric::Discernibility,
        "aecs" => Metric::Aecs,
        "height" => Metric::Height,
        "precision" => Metric::Precision,
        other => bail!(
            "unknown metric `{other}`; use entropy, loss, discernibility, aecs, height or precision"
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
