//! Checks the EM training sessions against a truth file: per session, the true share of
//! matches among its sampled pairs next to the share EM found, and, for the birth-date
//! session, how far the non-matches' (name, sex) levels are from the u the session assumes.
//! Levels and counts only, never values.
//!
//! `cargo run --release -p kiban-linkage --example link_training -- workdir`
//! (a folder holding `identity_records.csv` and `identity_truth.csv` from
//! `kiban synth --identity-csv`).

mod common;

use kiban_linkage::blocking::{TrainingRule, training_sample};
use kiban_linkage::evaluate::person_of_each_record;
use kiban_linkage::link::{LinkOptions, train_model};
use kiban_linkage::model::{FIELDS, Field, compare_records, estimate_u_within_cohorts, level_of};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (loaded, truth) = common::records_with_truth()?;
    let person: Vec<&str> = person_of_each_record(&loaded.record_ids, &truth);
    let records = &loaded.records;
    let pool = &loaded.pool;
    let linkable: Vec<u32> = loaded.linkable_indexes();
    let options = LinkOptions::default();
    let model = train_model(&loaded, &linkable, &options);
    for session in &model.sessions {
        println!(
            "{}: {:.3e} pairs, {} sampled, EM match share {:.5}, {} iterations",
            session.name,
            session.pairs,
            session.sampled_pairs,
            session.match_share,
            session.iterations
        );
    }
    for field in &model.fields {
        let levels = field.field.levels();
        println!("{} (trained by {:?})", field.field.name(), field.trained_by);
        for (l, name) in levels.iter().enumerate() {
            println!(
                "  {l:>2} {name:<55} m {:.5} u {:.3e}",
                field.m[l], field.u[l]
            );
        }
    }
    println!(
        "prior {:.3e}, expected matching pairs {:.3e}",
        model.match_prior, model.expected_matching_pairs
    );

    let cohort =
        estimate_u_within_cohorts(pool, records, &linkable, options.random_pairs, options.seed);
    let u_cohort = &cohort.u;
    for rule in [
        TrainingRule::BirthDate,
        TrainingRule::KanjiName,
        TrainingRule::InsuranceCard,
    ] {
        let sample = training_sample(
            records,
            &linkable,
            rule,
            options.max_block_size,
            options.training_pairs,
        );
        let name_levels = Field::Name.levels().len();
        let household_levels = Field::Household.levels().len();
        let mut joint = vec![[0u64; 2]; name_levels];
        let mut name_household = vec![vec![0u64; household_levels]; name_levels];
        let mut true_m: Vec<Vec<u64>> = FIELDS.iter().map(|f| vec![0; f.levels().len()]).collect();
        let (mut matches, mut non_matches) = (0u64, 0u64);
        for &(a, b) in &sample.pairs {
            let same = !person[a as usize].is_empty() && person[a as usize] == person[b as usize];
            let p = compare_records(pool, &records[a as usize], &records[b as usize]);
            if same {
                matches += 1;
                for (f, counts) in true_m.iter_mut().enumerate() {
                    if let Some(c) = counts.get_mut(usize::from(level_of(p, f))) {
                        *c += 1;
                    }
                }
                continue;
            }
            non_matches += 1;
            let (n, h) = (
                usize::from(level_of(p, Field::Name as usize)),
                usize::from(level_of(p, Field::Household as usize)),
            );
            if n < name_levels && h < household_levels {
                name_household[n][h] += 1;
            }
            let (n, s) = (
                usize::from(level_of(p, Field::Name as usize)),
                usize::from(level_of(p, Field::Sex as usize)),
            );
            if n < name_levels && s < 2 {
                joint[n][s] += 1;
            }
        }
        println!(
            "{}: true match share {:.5} ({matches} of {})",
            rule.name(),
            matches as f64 / (matches + non_matches).max(1) as f64,
            matches + non_matches
        );
        for (f, counts) in true_m.iter().enumerate() {
            let total: u64 = counts.iter().sum();
            let shares: Vec<String> = counts
                .iter()
                .map(|&c| format!("{:.4}", c as f64 / total.max(1) as f64))
                .collect();
            println!("  true m of {}: {}", FIELDS[f].name(), shares.join(" "));
        }
        if rule != TrainingRule::BirthDate {
            continue;
        }
        let household = Field::Household as usize;
        let total: u64 = name_household.iter().flatten().sum();
        let mut excess = 0.0;
        for (n, row) in name_household.iter().enumerate() {
            for (h, &count) in row.iter().enumerate() {
                let observed = count as f64 / total.max(1) as f64;
                let assumed = u_cohort[Field::Name as usize][n] * u_cohort[household][h];
                if observed > assumed && count >= 20 {
                    excess += (observed - assumed) * total as f64;
                    if observed > 1.5 * assumed {
                        println!(
                            "  name {n} household {h}: observed {observed:.3e} assumed {assumed:.3e}"
                        );
                    }
                }
            }
        }
        println!("  excess non-matches by (name, household): {excess:.0}");
        let total: u64 = joint.iter().flatten().sum();
        let (name, sex) = (Field::Name as usize, Field::Sex as usize);
        println!(
            "  non-matches by (name, sex): observed share vs the u EM assumes (sex given the name)"
        );
        let mut excess = 0.0;
        for (n, row) in joint.iter().enumerate() {
            for (s, &count) in row.iter().enumerate() {
                let observed = count as f64 / total.max(1) as f64;
                let assumed = u_cohort[name][n]
                    * cohort
                        .sex_given_name
                        .share(n as u8, s as u8)
                        .unwrap_or(u_cohort[sex][s]);
                if observed > assumed {
                    excess += (observed - assumed) * total as f64;
                }
                println!(
                    "  {n} {s} observed {observed:.3e} assumed {assumed:.3e} ratio {:.2}",
                    observed / assumed
                );
            }
        }
        println!(
            "  excess non-matches over the assumed u: {excess:.0} (matches {matches}); fields {:?}",
            FIELDS.map(|f| f.name())
        );
    }
    Ok(())
}
