//! What each provider records about a person: visits, identity as registered, clinical
//! resources, documents; written as FHIR R4 (JP Core) Bundles.

use crate::codes::{self, Disease, Drug, LabTest};
use crate::names;
use crate::population::{
    BreastSubtype, Diagnosis, Person, Problem, World, clinic_time, date_between,
};
use crate::providers::{KanaStyle, Provider, uuid};
use chrono::{Datelike, Days, NaiveDate, NaiveTime};
use kiban_fhir::profiles;
use kiban_fhir::resources::{
    ALLERGY_CLINICAL_SYSTEM, ALLERGY_VERIFICATION_SYSTEM, CONDITION_CLINICAL_SYSTEM,
    CONDITION_VERIFICATION_SYSTEM, DISEASE_POSTFIX_MODIFIER_EXTENSION_URL,
    OBSERVATION_CATEGORY_SYSTEM, OBSERVATION_INTERPRETATION_SYSTEM,
};
use kiban_fhir::{
    Address, AllergyIntolerance, AllergyReaction, Bundle, BundleEntry, CodeableConcept, Coding,
    Composition, CompositionSection, Condition, ContactPoint, DispenseRequest, Dosage, DoseAndRate,
    Encounter, EncounterHospitalization, Extension, HumanName, Identifier, MedicationDispense,
    MedicationRequest, Meta, NameRepresentation, Narrative, Observation, Organization, Patient,
    Period, Practitioner, Procedure, Quantity, Reference, ReferenceRange, Resource, Timing,
};
use kiban_model::{CodeSystem, ProviderKind};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use std::borrow::Cow;

/// Resource types counted in the summary, in output order.
pub const RESOURCE_TYPES: &[&str] = &[
    "Patient",
    "Encounter",
    "Condition",
    "MedicationRequest",
    "MedicationDispense",
    "Observation",
    "AllergyIntolerance",
    "Procedure",
    "Composition",
    "Organization",
    "Practitioner",
];

/// Counts of resources by type (indexed like [`RESOURCE_TYPES`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceCounts(pub [u64; 11]);

impl ResourceCounts {
    fn add(&mut self, resource_type: &str) {
        if let Some(i) = RESOURCE_TYPES.iter().position(|t| *t == resource_type) {
            self.0[i] += 1;
        }
    }

    /// Adds another count.
    pub fn merge(&mut self, other: &ResourceCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += b;
        }
    }
}

/// Everything one provider writes about one patient record.
#[derive(Debug, Clone)]
pub struct RecordOutput {
    /// Provider index.
    pub provider: usize,
    /// Provider patient id.
    pub patient_id: String,
    /// NDJSON lines (each a Bundle, newline-terminated).
    pub bundles: Vec<u8>,
    /// Number of Bundles in `bundles`.
    pub bundle_count: u64,
    /// `notified_on,means` of the opt-out notification.
    pub notification: (NaiveDate, &'static str),
    /// `refused_on,by` if the patient (or family) refused.
    pub refusal: Option<(NaiveDate, &'static str)>,
    /// Resources written.
    pub counts: ResourceCounts,
    /// The identity as the provider recorded it (also inside the Patient of `bundles`).
    pub identity: RecordedIdentity,
}

/// Shared, read-only context of the generation.
pub struct Context<'a> {
    /// Window and reference date.
    pub world: &'a World,
    /// The providers.
    pub providers: &'a [Provider],
}

impl Context<'_> {
    fn of_kind(&self, kind: ProviderKind) -> Vec<usize> {
        let found: Vec<usize> = self
            .providers
            .iter()
            .filter(|p| p.kind == kind)
            .map(|p| p.index)
            .collect();
        found
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Care {
    Primary,
    Hospital,
    University,
    Dental,
    Checkup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VisitKind {
    Routine,
    Acute,
    Admission { terminal: bool },
    Onset(usize),
    Referral { diagnosis: usize, to: usize },
    Checkup,
    Dental,
}

#[derive(Debug, Clone, Copy)]
struct Visit {
    date: NaiveDate,
    end: Option<NaiveDate>,
    kind: VisitKind,
}

struct Plan {
    provider: usize,
    care: Care,
    first: NaiveDate,
    last: NaiveDate,
    /// Indices into `person.diagnoses` managed here.
    managed: Vec<usize>,
    /// Comorbidities listed (conditions only).
    listed: Vec<usize>,
    visits: Vec<Visit>,
    knows_death: bool,
}

fn is_metabolic(p: &Problem) -> bool {
    matches!(
        p,
        Problem::Diabetes { .. }
            | Problem::Hypertension
            | Problem::Dyslipidemia { .. }
            | Problem::Hyperuricemia
            | Problem::LiverInjury
            | Problem::DrugEruption
    )
}

fn is_serious(p: &Problem) -> bool {
    matches!(
        p,
        Problem::BreastCancer { .. }
            | Problem::LungCancer { .. }
            | Problem::HeartFailure
            | Problem::HepatitisB
            | Problem::HepatitisC
            | Problem::Hiv
            | Problem::Rare(_)
            | Problem::Cardiotoxicity
    )
}

fn pick(rng: &mut ChaCha8Rng, options: &[usize]) -> Option<usize> {
    (!options.is_empty()).then(|| options[rng.random_range(0..options.len())])
}

fn to_checkup_city(person: &Person, date: NaiveDate) -> bool {
    person
        .address_on(date)
        .address
        .municipality()
        .city
        .starts_with(crate::places::CHECKUP_CITY)
}

/// Plans which providers the person visits, when, and for what.
fn plan_visits(ctx: &Context<'_>, person: &Person, rng: &mut ChaCha8Rng) -> Vec<Plan> {
    let world = ctx.world;
    let alive_from = person.birth_date.max(world.window_start);
    // A person born on the reference date is seen on that day only (without the floor the
    // window ended the day before birth and date ranges were reversed: a panic at ~7M persons).
    let alive_to = person.last_day(world.reference_date).max(alive_from);
    let age = person.age_on(alive_to);
    let clinics = ctx.of_kind(ProviderKind::Clinic);
    let generals = ctx.of_kind(ProviderKind::GeneralHospital);
    let universities = ctx.of_kind(ProviderKind::UniversityHospital);
    let dentals = ctx.of_kind(ProviderKind::DentalClinic);
    let municipalities = ctx.of_kind(ProviderKind::Municipality);
    let all: Vec<usize> = (0..ctx.providers.len()).collect();

    let metabolic = person.has(is_metabolic);
    let serious: Vec<usize> = (0..person.diagnoses.len())
        .filter(|&i| is_serious(&person.diagnoses[i].problem))
        .collect();
    let has_cancer =
        person.has(|p| matches!(p, Problem::BreastCancer { .. } | Problem::LungCancer { .. }));
    let has_rare = person.has(|p| matches!(p, Problem::Rare(_) | Problem::Hiv));
    let has_hf = person.has(|p| matches!(p, Problem::HeartFailure));
    let has_hep = person.has(|p| matches!(p, Problem::HepatitisB | Problem::HepatitisC));

    let mut primary = rng.random_bool(if metabolic {
        0.9
    } else if !(10..70).contains(&age) {
        0.6
    } else {
        0.45
    });
    let general = rng.random_bool(if has_cancer || has_hf || has_hep {
        0.75
    } else {
        0.12
    });
    let university = rng.random_bool(if has_rare {
        0.95
    } else if has_cancer {
        if general { 0.5 } else { 1.0 }
    } else if has_hep {
        0.3
    } else if has_hf {
        0.2
    } else {
        0.03
    });
    let dental = age >= 3
        && rng.random_bool(if person.has(|p| matches!(p, Problem::Periodontitis)) {
            0.35
        } else {
            0.2
        });

    let mut plans: Vec<Plan> = Vec::new();
    let new_plan = |provider: Option<usize>, care: Care| {
        provider.map(|provider| Plan {
            provider,
            care,
            first: alive_from,
            last: alive_to,
            managed: Vec::new(),
            listed: Vec::new(),
            visits: Vec::new(),
            knows_death: false,
        })
    };
    let general_plan = if general {
        new_plan(pick(rng, &generals), Care::Hospital)
    } else {
        None
    };
    let university_plan = if university {
        new_plan(pick(rng, &universities), Care::University)
    } else {
        None
    };
    if !serious.is_empty() && general_plan.is_none() && university_plan.is_none() {
        primary = true;
    }
    let primary_plan = if primary {
        new_plan(
            pick(rng, &clinics).or_else(|| pick(rng, &all)),
            Care::Primary,
        )
    } else {
        None
    };
    let dental_plan = if dental {
        new_plan(pick(rng, &dentals), Care::Dental)
    } else {
        None
    };
    let checkup_plan = new_plan(pick(rng, &municipalities), Care::Checkup);
    for plan in [primary_plan, general_plan, university_plan, dental_plan] {
        plans.extend(plan);
    }

    // Assign each diagnosis to the plan that manages it.
    let position = |plans: &[Plan], care: Care| plans.iter().position(|p| p.care == care);
    for (i, d) in person.diagnoses.iter().enumerate() {
        let preferences: &[Care] = match d.problem {
            Problem::BreastCancer { .. } | Problem::LungCancer { .. } | Problem::Cardiotoxicity => {
                &[Care::University, Care::Hospital, Care::Primary]
            }
            Problem::Rare(_) | Problem::Hiv => &[Care::University, Care::Hospital, Care::Primary],
            Problem::HeartFailure | Problem::HepatitisB | Problem::HepatitisC => {
                &[Care::Hospital, Care::University, Care::Primary]
            }
            Problem::Periodontitis | Problem::Caries => &[Care::Dental],
            _ => &[Care::Primary, Care::Hospital, Care::University],
        };
        if let Some(target) = preferences.iter().find_map(|c| position(&plans, *c)) {
            plans[target].managed.push(i);
        }
        // Hospitals list chronic comorbidities (without managing them).
        if is_metabolic(&d.problem)
            && !matches!(d.problem, Problem::LiverInjury | Problem::DrugEruption)
        {
            for plan in plans.iter_mut() {
                if matches!(plan.care, Care::Hospital | Care::University)
                    && !plan.managed.contains(&i)
                {
                    plan.listed.push(i);
                }
            }
        }
    }

    // Periods: start a little before the first managed diagnosis (or anywhere), run to the
    // end of life in the window or stop earlier.
    for plan in plans.iter_mut() {
        let earliest_onset = plan
            .managed
            .iter()
            .map(|&i| person.diagnoses[i].onset)
            .min();
        plan.first = match earliest_onset {
            Some(onset) => (onset - Days::new(rng.random_range(0..45))).clamp(alive_from, alive_to),
            None => date_between(rng, alive_from, alive_to),
        };
        plan.last = if !plan.managed.is_empty() && rng.random_bool(0.7) {
            alive_to
        } else {
            date_between(rng, plan.first, alive_to)
        };
    }
    // Managed diagnoses must fall inside the period; drop those that come after it ends.
    for plan in plans.iter_mut() {
        let last = plan.last;
        plan.managed.retain(|&i| person.diagnoses[i].onset <= last);
    }

    // Visits.
    for plan in plans.iter_mut() {
        let chronic = !plan.managed.is_empty();
        let n = match plan.care {
            Care::Primary if chronic => rng.random_range(2..=8),
            Care::Primary => rng.random_range(1..=2),
            Care::Hospital | Care::University if chronic => rng.random_range(2..=6),
            Care::Hospital | Care::University => rng.random_range(1..=2),
            Care::Dental => rng.random_range(1..=4),
            Care::Checkup => 0,
        };
        for _ in 0..n {
            let date = date_between(rng, plan.first, plan.last);
            let kind = match plan.care {
                Care::Dental => VisitKind::Dental,
                Care::Primary if !chronic || rng.random_bool(0.15) => VisitKind::Acute,
                Care::Hospital | Care::University if !chronic && rng.random_bool(0.1) => {
                    VisitKind::Admission { terminal: false }
                }
                _ => VisitKind::Routine,
            };
            plan.visits.push(Visit {
                date,
                end: None,
                kind,
            });
        }
        for &i in &plan.managed {
            let onset = person.diagnoses[i].onset;
            if onset >= plan.first {
                plan.visits.push(Visit {
                    date: onset,
                    end: None,
                    kind: VisitKind::Onset(i),
                });
            }
            // Cancer surgery and heart-failure exacerbations mean admissions.
            let admitted = match person.diagnoses[i].problem {
                Problem::BreastCancer { .. } | Problem::LungCancer { .. } => rng.random_bool(0.6),
                Problem::HeartFailure => rng.random_bool(0.5),
                _ => false,
            };
            if admitted && matches!(plan.care, Care::Hospital | Care::University) {
                let start = (onset + Days::new(rng.random_range(7..40))).min(plan.last);
                plan.visits.push(Visit {
                    date: start,
                    end: Some((start + Days::new(rng.random_range(4..18))).min(alive_to)),
                    kind: VisitKind::Admission { terminal: false },
                });
            }
        }
    }

    // Referral letters: the primary clinic (or general hospital) refers serious cases onward.
    let primary_index = plans.iter().position(|p| p.care == Care::Primary);
    let general_index = plans.iter().position(|p| p.care == Care::Hospital);
    for target in 0..plans.len() {
        if !matches!(plans[target].care, Care::Hospital | Care::University) {
            continue;
        }
        let sender = match plans[target].care {
            Care::University => general_index.or(primary_index),
            _ => primary_index,
        };
        let Some(sender) = sender else { continue };
        let referable: Vec<usize> = plans[target]
            .managed
            .iter()
            .copied()
            .filter(|&i| {
                matches!(
                    person.diagnoses[i].problem,
                    Problem::BreastCancer { .. }
                        | Problem::LungCancer { .. }
                        | Problem::HeartFailure
                        | Problem::Rare(_)
                        | Problem::HepatitisC
                )
            })
            .collect();
        for i in referable {
            let onset = person.diagnoses[i].onset;
            let date = onset - Days::new(rng.random_range(3..21));
            if date >= alive_from && rng.random_bool(0.8) {
                let to = plans[target].provider;
                let plan = &mut plans[sender];
                plan.first = plan.first.min(date);
                plan.last = plan.last.max(date);
                plan.visits.push(Visit {
                    date,
                    end: None,
                    kind: VisitKind::Referral { diagnosis: i, to },
                });
            }
        }
    }

    // Death: a terminal admission at the hospital managing the most serious problem.
    if let Some(death) = person.death {
        let death_date = death.date();
        let hospital = plans
            .iter()
            .position(|p| {
                matches!(p.care, Care::Hospital | Care::University) && !p.managed.is_empty()
            })
            .or_else(|| {
                plans
                    .iter()
                    .position(|p| matches!(p.care, Care::Hospital | Care::University))
            });
        if let Some(h) = hospital
            && rng.random_bool(0.8)
        {
            let plan = &mut plans[h];
            let start = (death_date - Days::new(rng.random_range(2..30))).max(plan.first);
            plan.last = death_date;
            plan.knows_death = true;
            plan.visits.push(Visit {
                date: start,
                end: Some(death_date),
                kind: VisitKind::Admission { terminal: true },
            });
        }
        for plan in plans.iter_mut() {
            if plan.care == Care::Primary && rng.random_bool(0.3) {
                plan.knows_death = true;
            }
        }
    }

    // Health checkups by the municipality for residents aged 40 and over.
    if let Some(mut plan) = checkup_plan {
        let mut year = world.window_start;
        while year < world.reference_date {
            let date = date_between(rng, year, year + Days::new(330));
            if date >= alive_from
                && date <= alive_to
                && person.age_on(date) >= 40
                && to_checkup_city(person, date)
                && rng.random_bool(0.45)
            {
                plan.visits.push(Visit {
                    date,
                    end: None,
                    kind: VisitKind::Checkup,
                });
            }
            year = year
                .with_year(year.year() + 1)
                .unwrap_or(year + Days::new(365));
        }
        // Keep the most recent two checkups to bound the output.
        plan.visits.sort_by_key(|v| v.date);
        let excess = plan.visits.len().saturating_sub(2);
        plan.visits.drain(..excess);
        if let (Some(first), Some(last)) = (plan.visits.first(), plan.visits.last()) {
            plan.first = first.date;
            plan.last = last.date;
            plan.knows_death = person.death.is_some();
            plans.push(plan);
        }
    }

    for plan in plans.iter_mut() {
        for v in plan.visits.iter_mut() {
            v.date = v.date.clamp(plan.first, plan.last);
            if let Some(end) = v.end {
                v.end = Some(end.max(v.date));
            }
        }
        plan.visits.sort_by_key(|v| v.date);
        if let (Some(first), Some(last)) = (plan.visits.first(), plan.visits.last()) {
            plan.first = plan.first.min(first.date);
            plan.last = plan.last.max(last.end.unwrap_or(last.date));
        }
    }
    plans.retain(|p| !p.visits.is_empty());
    if plans.is_empty() {
        // Everyone visits somewhere at least once.
        let provider = pick(rng, &clinics).or_else(|| pick(rng, &all)).unwrap_or(0);
        let date = date_between(rng, alive_from, alive_to);
        plans.push(Plan {
            provider,
            care: Care::Primary,
            first: date,
            last: date,
            managed: Vec::new(),
            listed: Vec::new(),
            visits: vec![Visit {
                date,
                end: None,
                kind: VisitKind::Acute,
            }],
            knows_death: false,
        });
    }
    plans
}

fn date_time(date: NaiveDate, time: NaiveTime) -> String {
    format!(
        "{}T{}+09:00",
        date.format("%Y-%m-%d"),
        time.format("%H:%M:%S")
    )
}

fn cc_system(system: &str, code: &str, display: &str) -> CodeableConcept<'static> {
    CodeableConcept::simple(system, code, display)
}

fn disease_concept(d: &Disease, suspected: bool) -> CodeableConcept<'static> {
    let text = if suspected {
        format!("{}の疑い", d.name)
    } else {
        d.name.to_owned()
    };
    CodeableConcept::from_codings(
        vec![
            Coding::new(CodeSystem::MedisDisease, d.medis, d.name),
            Coding::new(CodeSystem::Icd10, d.icd10, ""),
        ],
        Some(&text),
    )
}

fn problem_disease(problem: &Problem) -> Disease {
    match problem {
        Problem::Diabetes { .. } => codes::TYPE2_DIABETES,
        Problem::Hypertension => codes::HYPERTENSION,
        Problem::Dyslipidemia { .. } => codes::DYSLIPIDEMIA,
        Problem::Hyperuricemia => codes::HYPERURICEMIA,
        Problem::Periodontitis => codes::PERIODONTITIS,
        Problem::Caries => codes::DENTAL_CARIES,
        Problem::BreastCancer { .. } => codes::BREAST_CANCER,
        Problem::LungCancer { .. } => codes::LUNG_CANCER,
        Problem::HeartFailure => codes::HEART_FAILURE,
        Problem::HepatitisB => codes::HEPATITIS_B,
        Problem::HepatitisC => codes::HEPATITIS_C,
        Problem::Hiv => codes::HIV_INFECTION,
        Problem::Rare(i) => codes::RARE_DISEASES[*i].disease,
        Problem::LiverInjury => codes::DRUG_INDUCED_LIVER_INJURY,
        Problem::DrugEruption => codes::DRUG_ERUPTION,
        Problem::Cardiotoxicity => codes::DRUG_CARDIOMYOPATHY,
    }
}

/// Drugs for a problem on a date, given the person's history (switches after adverse events).
fn regimen(person: &Person, d: &Diagnosis, date: NaiveDate) -> Vec<Drug> {
    let after = |f: fn(&Problem) -> bool| person.diagnosis(f).is_some_and(|x| x.onset <= date);
    let variant = person.index % 7;
    match d.problem {
        Problem::Diabetes { insulin } => {
            let mut drugs = vec![codes::METFORMIN];
            if variant < 4 {
                drugs.push(if variant.is_multiple_of(2) {
                    codes::SITAGLIPTIN
                } else {
                    codes::LINAGLIPTIN
                });
            }
            if variant >= 5 {
                drugs.push(codes::EMPAGLIFLOZIN);
            }
            if insulin {
                drugs.push(codes::INSULIN_GLARGINE);
            }
            drugs
        }
        Problem::Hypertension => {
            let mut drugs = vec![codes::AMLODIPINE];
            if variant.is_multiple_of(2) {
                drugs.push(if variant < 4 {
                    codes::OLMESARTAN
                } else {
                    codes::TELMISARTAN
                });
            }
            drugs
        }
        Problem::Dyslipidemia { statin } => {
            let injury = person.diagnosis(|p| matches!(p, Problem::LiverInjury));
            match injury {
                // Statin stopped at the liver injury, another one restarted three months later.
                Some(x) if x.onset <= date && date < x.onset + Days::new(90) => Vec::new(),
                Some(x) if x.onset <= date => vec![codes::PITAVASTATIN],
                _ => vec![statin],
            }
        }
        Problem::Hyperuricemia => {
            if after(|p| matches!(p, Problem::DrugEruption)) {
                vec![codes::FEBUXOSTAT]
            } else {
                vec![codes::ALLOPURINOL]
            }
        }
        Problem::BreastCancer {
            subtype,
            premenopausal,
        } => match subtype {
            BreastSubtype::Luminal => vec![if premenopausal {
                codes::TAMOXIFEN
            } else {
                codes::LETROZOLE
            }],
            BreastSubtype::Her2 => {
                if after(|p| matches!(p, Problem::Cardiotoxicity)) {
                    vec![codes::PACLITAXEL]
                } else {
                    vec![codes::TRASTUZUMAB, codes::PERTUZUMAB, codes::PACLITAXEL]
                }
            }
            BreastSubtype::TripleNegative => vec![codes::PACLITAXEL],
        },
        Problem::LungCancer { egfr } => {
            if egfr {
                vec![codes::OSIMERTINIB]
            } else {
                vec![codes::PEMBROLIZUMAB, codes::CARBOPLATIN]
            }
        }
        Problem::HeartFailure => {
            let mut drugs = vec![codes::FUROSEMIDE, codes::CARVEDILOL];
            if variant < 4 {
                drugs.push(codes::SACUBITRIL_VALSARTAN);
            }
            if variant >= 4 {
                drugs.push(codes::SPIRONOLACTONE);
            }
            drugs
        }
        Problem::HepatitisB => vec![codes::ENTECAVIR],
        // A 12-week course.
        Problem::HepatitisC if date < d.onset + Days::new(84) => {
            vec![codes::SOFOSBUVIR_VELPATASVIR]
        }
        Problem::Hiv => vec![codes::BICTEGRAVIR_COMBINATION],
        Problem::Rare(i) => codes::RARE_DISEASES[i].drug.into_iter().collect(),
        _ => Vec::new(),
    }
}

fn labs_for(problem: &Problem) -> &'static [LabTest] {
    match problem {
        Problem::Diabetes { .. } => &[codes::HBA1C, codes::GLUCOSE, codes::CREATININE, codes::EGFR],
        Problem::Hypertension => &[codes::CREATININE, codes::EGFR],
        Problem::Dyslipidemia { .. } => &[
            codes::LDL,
            codes::HDL,
            codes::TRIGLYCERIDE,
            codes::AST,
            codes::ALT,
        ],
        Problem::Hyperuricemia => &[codes::URIC_ACID, codes::CREATININE],
        Problem::HeartFailure | Problem::Cardiotoxicity => {
            &[codes::BNP, codes::CREATININE, codes::EGFR]
        }
        Problem::HepatitisB | Problem::HepatitisC | Problem::LiverInjury => {
            &[codes::AST, codes::ALT, codes::GGT]
        }
        Problem::BreastCancer { .. } | Problem::LungCancer { .. } => {
            &[codes::HEMOGLOBIN, codes::AST, codes::ALT, codes::CREATININE]
        }
        _ => &[],
    }
}

fn noise(rng: &mut ChaCha8Rng, scale: f64) -> f64 {
    (rng.random::<f64>() + rng.random::<f64>() - 1.0) * scale
}

/// A plausible result of `test` for the person on `date`.
fn lab_value(person: &Person, test: &LabTest, date: NaiveDate, rng: &mut ChaCha8Rng) -> f64 {
    let z = person.metabolic_risk;
    let age = person.age_on(date).max(0) as f64;
    let since = |f: fn(&Problem) -> bool| {
        person
            .diagnosis(f)
            .filter(|d| d.onset <= date)
            .map(|d| (date - d.onset).num_days())
    };
    let male = person.male;
    let value = match test.jlac10 {
        j if j == codes::HBA1C.jlac10 => match since(|p| matches!(p, Problem::Diabetes { .. })) {
            Some(days) => 7.8 + 0.3 * z - if days > 120 { 0.6 } else { 0.0 } + noise(rng, 0.5),
            None => 5.4 + 0.15 * z + noise(rng, 0.2),
        },
        j if j == codes::GLUCOSE.jlac10 => {
            let a1c = lab_value(person, &codes::HBA1C, date, rng);
            (28.7 * a1c - 46.7) * 0.85 + noise(rng, 8.0)
        }
        j if j == codes::LDL.jlac10 => {
            let base = 115.0 + 12.0 * z + noise(rng, 12.0);
            match person.diagnosis(|p| matches!(p, Problem::Dyslipidemia { .. })) {
                Some(d) if d.onset + Days::new(60) <= date => (base + 40.0) * 0.68,
                Some(d) if d.onset <= date => base + 45.0,
                _ => base,
            }
        }
        j if j == codes::HDL.jlac10 => (if male { 52.0 } else { 63.0 }) - 4.0 * z + noise(rng, 6.0),
        j if j == codes::TRIGLYCERIDE.jlac10 => (100.0 + 30.0 * z + noise(rng, 30.0)).max(35.0),
        j if j == codes::AST.jlac10 || j == codes::ALT.jlac10 || j == codes::GGT.jlac10 => {
            let base = if j == codes::AST.jlac10 {
                21.0
            } else if j == codes::ALT.jlac10 {
                if male { 22.0 } else { 16.0 }
            } else if male {
                35.0
            } else {
                20.0
            } + 3.0 * z
                + noise(rng, 5.0);
            let injury = since(|p| matches!(p, Problem::LiverInjury));
            if injury.is_some_and(|days| days < 21) {
                base * (8.0 + noise(rng, 3.0))
            } else if since(|p| matches!(p, Problem::HepatitisB | Problem::HepatitisC)).is_some() {
                base * (2.4 + noise(rng, 0.8))
            } else {
                base
            }
        }
        j if j == codes::CREATININE.jlac10 => {
            let mut cr = if male { 0.85 } else { 0.62 } + 0.008 * (age - 40.0).max(0.0);
            if since(|p| matches!(p, Problem::HeartFailure)).is_some() {
                cr += 0.25;
            }
            if since(|p| matches!(p, Problem::Diabetes { .. })).is_some_and(|d| d > 1500) {
                cr += 0.2;
            }
            cr + noise(rng, 0.08)
        }
        j if j == codes::EGFR.jlac10 => {
            let cr = lab_value(person, &codes::CREATININE, date, rng).max(0.2);
            let egfr = 194.0 * cr.powf(-1.094) * age.max(18.0).powf(-0.287);
            if male { egfr } else { egfr * 0.739 }
        }
        j if j == codes::URIC_ACID.jlac10 => match since(|p| matches!(p, Problem::Hyperuricemia)) {
            Some(days) if days > 60 => 6.2 + noise(rng, 0.6),
            Some(_) => 8.4 + noise(rng, 0.8),
            None => (if male { 5.8 } else { 4.4 }) + 0.4 * z + noise(rng, 0.6),
        },
        j if j == codes::BNP.jlac10 => {
            if since(|p| matches!(p, Problem::HeartFailure | Problem::Cardiotoxicity)).is_some() {
                180.0 + 300.0 * rng.random::<f64>()
            } else {
                8.0 + 8.0 * rng.random::<f64>()
            }
        }
        j if j == codes::HEMOGLOBIN.jlac10 => {
            let base = if male { 14.6 } else { 12.9 };
            let cancer =
                since(|p| matches!(p, Problem::BreastCancer { .. } | Problem::LungCancer { .. }));
            base - if cancer.is_some() { 1.4 } else { 0.0 } + noise(rng, 0.8)
        }
        j if j == codes::SYSTOLIC_BP.jlac10 => {
            let treated = since(|p| matches!(p, Problem::Hypertension)).is_some();
            let base = 116.0 + 0.45 * (age - 40.0).max(0.0) + 4.0 * z;
            (if treated {
                base.max(128.0) + 6.0
            } else {
                base.min(138.0)
            }) + noise(rng, 8.0)
        }
        j if j == codes::DIASTOLIC_BP.jlac10 => {
            0.6 * lab_value(person, &codes::SYSTOLIC_BP, date, rng) + 4.0 + noise(rng, 4.0)
        }
        j if j == codes::HEIGHT.jlac10 => {
            let h = if male { 171.5 } else { 158.3 };
            let shrink = 0.08 * (age - 50.0).max(0.0);
            // Stable per person: derive the offset from the index, not the visit.
            let offset = ((person.index % 17) as f64 - 8.0) * 0.7;
            h - shrink + offset
        }
        j if j == codes::WEIGHT.jlac10 => {
            let h = lab_value(person, &codes::HEIGHT, date, rng) / 100.0;
            lab_value(person, &codes::BMI, date, rng) * h * h
        }
        j if j == codes::BMI.jlac10 => 22.6 + 1.8 * z + ((person.index % 5) as f64 - 2.0) * 0.4,
        _ => 0.0,
    };
    let factor = 10f64.powi(test.decimals as i32);
    (value.max(0.0) * factor).round() / factor
}

/// Accumulates the entries of one Bundle.
struct EntryList {
    entries: Vec<BundleEntry<'static>>,
    counts: ResourceCounts,
    transaction: bool,
}

impl EntryList {
    fn new(transaction: bool) -> Self {
        EntryList {
            entries: Vec::new(),
            counts: ResourceCounts::default(),
            transaction,
        }
    }

    /// Adds a resource whose `id` is `id`; returns its `urn:uuid:` full URL.
    fn add(&mut self, id: &str, resource: Resource<'static>) -> String {
        let full_url = format!("urn:uuid:{id}");
        self.counts.add(resource.resource_type());
        self.entries.push(if self.transaction {
            BundleEntry::post(full_url.clone(), resource)
        } else {
            BundleEntry::document(full_url.clone(), resource)
        });
        full_url
    }
}

/// The identity as this provider recorded it (variants, kana style, typos and all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedIdentity {
    /// Family name in kanji.
    pub family_kanji: String,
    /// Given name in kanji.
    pub given_kanji: String,
    /// Family and given names in kana, in the provider's kana style; `None` when not recorded.
    pub kana: Option<(String, String)>,
    /// Whether the person is male (`gender` of the Patient).
    pub male: bool,
    /// Date of birth as recorded (a few carry typing errors).
    pub birth_date: NaiveDate,
    /// Postal code as recorded (with or without the hyphen).
    pub postal_code: String,
    /// The address text as recorded.
    pub address: String,
    /// The insurance card of the last visit, when recorded: (保険者番号, 記号, 番号, 枝番).
    pub card: Option<(String, String, String, String)>,
}

fn kana_in_style(kana: &str, style: KanaStyle) -> String {
    match style {
        KanaStyle::FullKatakana => kana.to_owned(),
        KanaStyle::HalfKatakana => names::to_half_width_kana(kana),
        KanaStyle::Hiragana => names::to_hiragana(kana),
    }
}

#[allow(clippy::too_many_arguments)]
fn patient_resource(
    person: &Person,
    provider: &Provider,
    patient_id: &str,
    patient_uuid: &str,
    first: NaiveDate,
    last: NaiveDate,
    knows_death: bool,
    rng: &mut ChaCha8Rng,
) -> (Patient<'static>, RecordedIdentity) {
    // Identity is captured at registration and refreshed at visits by some providers.
    let refreshed = rng.random_bool(provider.updates_identity);
    let name_date = if refreshed { last } else { first };
    let address_date = if refreshed && rng.random_bool(0.8) {
        last
    } else {
        first
    };
    let spell = person.name_on(name_date);
    let mut family_kanji = spell.family_kanji.clone();
    let mut given_kanji = person.given_kanji.clone();
    if !provider.stores_variants {
        family_kanji = names::normalize_variants(&family_kanji);
        given_kanji = names::normalize_variants(&given_kanji);
    } else if rng.random_bool(0.01) {
        family_kanji = names::apply_variant(&family_kanji, rng);
    }
    let mut family_kana = spell.family_kana.clone();
    let mut given_kana = person.given_kana.clone();
    if rng.random_bool(0.01) {
        if rng.random_bool(0.5) {
            family_kana = names::kana_typo(&family_kana, rng);
        } else {
            given_kana = names::kana_typo(&given_kana, rng);
        }
    }
    let kana = (!rng.random_bool(provider.missing_kana_rate)).then(|| {
        (
            kana_in_style(&family_kana, provider.kana_style),
            kana_in_style(&given_kana, provider.kana_style),
        )
    });
    let mut birth_date = person.birth_date;
    if rng.random_bool(0.003) {
        // A typing error in the date of birth: a day off, or day and month swapped.
        birth_date = if birth_date.day() <= 12 && birth_date.day() != birth_date.month() {
            NaiveDate::from_ymd_opt(birth_date.year(), birth_date.day(), birth_date.month())
                .unwrap_or(birth_date)
        } else {
            birth_date.succ_opt().unwrap_or(birth_date)
        };
    }

    let mut names = vec![HumanName::with_representation(
        NameRepresentation::Ideographic,
        &family_kanji,
        &given_kanji,
    )];
    if let Some((family, given)) = &kana {
        names.push(HumanName::with_representation(
            NameRepresentation::Syllabic,
            family,
            given,
        ));
    }

    let address_spell = person.address_on(address_date);
    let address = &address_spell.address;
    let m = address.municipality();
    let recorded_postal_code = if provider.postal_without_hyphen {
        address.postal_code.replace('-', "")
    } else {
        address.postal_code.clone()
    };
    let mut line = vec![address.line.clone()];
    line.extend(address.building.clone());
    let fhir_address = Address {
        use_: Some(Cow::Borrowed("home")),
        text: Some(Cow::Owned(address.text())),
        line: line.into_iter().map(Cow::Owned).collect(),
        city: Some(Cow::Owned(m.city.to_owned())),
        state: Some(Cow::Owned(m.prefecture.to_owned())),
        postal_code: Some(Cow::Owned(recorded_postal_code.clone())),
        country: Some(Cow::Borrowed("JP")),
        ..Default::default()
    };
    let mut telecom = Vec::new();
    if let Some(phone) = &address_spell.home_phone {
        telecom.push(ContactPoint {
            system: Some(Cow::Borrowed("phone")),
            value: Some(Cow::Owned(phone.clone())),
            use_: Some(Cow::Borrowed("home")),
            ..Default::default()
        });
    }
    if let Some(mobile) = &person.mobile
        && rng.random_bool(0.8)
    {
        telecom.push(ContactPoint {
            system: Some(Cow::Borrowed("phone")),
            value: Some(Cow::Owned(mobile.clone())),
            use_: Some(Cow::Borrowed("mobile")),
            ..Default::default()
        });
    }

    let mut identifier = vec![Identifier::new(&provider.patient_id_system, patient_id)];
    let mut recorded_card = None;
    // Insurance is checked at every visit, so it is the card of the last visit; a few lack it.
    if let Some(card) = person.insurance_on(last)
        && !rng.random_bool(0.02)
    {
        recorded_card = Some((
            card.insurer.clone(),
            card.symbol.clone(),
            card.number.clone(),
            card.branch.clone(),
        ));
        let member_id = card.member_id();
        let value = if provider.full_width_member_id {
            names::to_full_width_digits(&member_id)
        } else {
            member_id
        };
        identifier.push(Identifier::new(CodeSystem::InsuranceMemberId.url(), &value));
    }

    let deceased = person
        .death
        .filter(|_| knows_death)
        .map(|d| date_time(d.date(), d.time()));
    let patient = Patient {
        id: Some(Cow::Owned(patient_uuid.to_owned())),
        meta: Some(Meta::profile(profiles::JP_PATIENT)),
        identifier,
        active: Some(true),
        name: names,
        telecom,
        gender: Some(Cow::Owned(
            if person.male { "male" } else { "female" }.to_owned(),
        )),
        birth_date: Some(Cow::Owned(birth_date.format("%Y-%m-%d").to_string())),
        deceased_date_time: (deceased).map(Cow::Owned),
        address: vec![fhir_address],
        ..Default::default()
    };
    (
        patient,
        RecordedIdentity {
            family_kanji,
            given_kanji,
            kana,
            male: person.male,
            birth_date,
            postal_code: recorded_postal_code,
            address: address.text(),
            card: recorded_card,
        },
    )
}

fn department(care: Care, problem: Option<&Problem>) -> (&'static str, &'static str) {
    let by_code = |code: &str| {
        codes::DEPARTMENTS
            .iter()
            .copied()
            .find(|(c, _)| *c == code)
            .unwrap_or(codes::DEPARTMENTS[0])
    };
    match (care, problem) {
        (Care::Dental, _) => by_code("40"),
        (_, Some(Problem::BreastCancer { .. })) => by_code("27"),
        (_, Some(Problem::LungCancer { .. })) => by_code("03"),
        (_, Some(Problem::HeartFailure | Problem::Cardiotoxicity)) => by_code("04"),
        (_, Some(Problem::HepatitisB | Problem::HepatitisC | Problem::LiverInjury)) => {
            by_code("06")
        }
        (_, Some(Problem::Rare(_))) => by_code("07"),
        _ => by_code("01"),
    }
}

fn encounter_resource(
    id: &str,
    patient_ref: &str,
    provider: &Provider,
    visit: &Visit,
    care: Care,
    main_problem: Option<&Problem>,
    start_time: NaiveTime,
) -> Encounter<'static> {
    let (class_code, class_display) = match visit.kind {
        VisitKind::Admission { .. } => ("IMP", "inpatient encounter"),
        _ => ("AMB", "ambulatory"),
    };
    let (dept_code, dept_name) = department(care, main_problem);
    let start = date_time(visit.date, start_time);
    let end = match visit.end {
        // Discharge at 11:00, but never before the admission itself (same-day stays).
        Some(end) => {
            let discharge = end.and_time(NaiveTime::from_hms_opt(11, 0, 0).unwrap_or(start_time));
            let earliest = visit.date.and_time(start_time) + chrono::Duration::minutes(30);
            let at = discharge.max(earliest);
            date_time(at.date(), at.time())
        }
        None => date_time(
            visit.date,
            (start_time + chrono::Duration::minutes(30)).max(start_time),
        ),
    };
    let hospitalization = match visit.kind {
        VisitKind::Admission { terminal } => Some(EncounterHospitalization {
            discharge_disposition: Some(if terminal {
                cc_system(
                    "http://terminology.hl7.org/CodeSystem/discharge-disposition",
                    "exp",
                    "Expired",
                )
            } else {
                cc_system(
                    "http://terminology.hl7.org/CodeSystem/discharge-disposition",
                    "home",
                    "Home",
                )
            }),
            ..Default::default()
        }),
        _ => None,
    };
    let service_type = if care == Care::Checkup {
        CodeableConcept {
            text: Some(Cow::Borrowed("健康診査")),
            ..Default::default()
        }
    } else {
        CodeableConcept::from_coding(Coding::new(CodeSystem::Department, dept_code, dept_name))
    };
    Encounter {
        id: Some(Cow::Owned(id.to_owned())),
        meta: Some(Meta::profile(profiles::JP_ENCOUNTER)),
        status: Some(Cow::Borrowed("finished")),
        class_: Some(Coding::with_system(
            "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            class_code,
            class_display,
        )),
        service_type: Some(service_type),
        subject: Some(Reference::to(patient_ref)),
        period: Some(Period::new(&start, Some(&end))),
        hospitalization,
        service_provider: Some(Reference {
            display: Some(Cow::Owned(provider.name.clone())),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[allow(clippy::too_many_arguments)]
fn condition_resource(
    id: &str,
    patient_ref: &str,
    encounter_ref: &str,
    disease: &Disease,
    onset: NaiveDate,
    recorded: NaiveDate,
    suspected: bool,
    abated: Option<NaiveDate>,
) -> Condition<'static> {
    let mut extension = Vec::new();
    if suspected {
        extension.push(Extension::codeable_concept(
            DISEASE_POSTFIX_MODIFIER_EXTENSION_URL,
            CodeableConcept::from_coding(Coding::new(
                CodeSystem::MedisModifier,
                codes::SUSPECTED_MODIFIER,
                "の疑い",
            )),
        ));
    }
    Condition {
        id: Some(Cow::Owned(id.to_owned())),
        meta: Some(Meta::profile(profiles::JP_CONDITION)),
        extension,
        clinical_status: Some(cc_system(
            CONDITION_CLINICAL_SYSTEM,
            if abated.is_some() {
                "resolved"
            } else {
                "active"
            },
            "",
        )),
        verification_status: Some(cc_system(
            CONDITION_VERIFICATION_SYSTEM,
            if suspected {
                "provisional"
            } else {
                "confirmed"
            },
            "",
        )),
        category: vec![cc_system(
            "http://terminology.hl7.org/CodeSystem/condition-category",
            "encounter-diagnosis",
            "Encounter Diagnosis",
        )],
        code: Some(disease_concept(disease, suspected)),
        subject: Some(Reference::to(patient_ref)),
        encounter: Some(Reference::to(encounter_ref)),
        onset_date_time: Some(Cow::Owned(onset.format("%Y-%m-%d").to_string())),
        abatement_date_time: (abated.map(|d| d.format("%Y-%m-%d").to_string())).map(Cow::Owned),
        recorded_date: Some(Cow::Owned(recorded.format("%Y-%m-%d").to_string())),
        ..Default::default()
    }
}

fn medication_request(
    id: &str,
    patient_ref: &str,
    encounter_ref: &str,
    drug: &Drug,
    authored: &str,
    days: u32,
) -> MedicationRequest<'static> {
    let daily = if drug.times_per_day == 0 {
        drug.dose
    } else {
        drug.dose * f64::from(drug.times_per_day)
    };
    let total = if drug.times_per_day == 0 {
        drug.dose
    } else {
        daily * f64::from(days)
    };
    MedicationRequest {
        id: Some(Cow::Owned(id.to_owned())),
        meta: Some(Meta::profile(profiles::JP_MEDICATION_REQUEST)),
        status: Some(Cow::Borrowed("completed")),
        intent: Some(Cow::Borrowed("order")),
        medication_codeable_concept: Some(CodeableConcept::from_codings(
            vec![Coding::new(CodeSystem::Yj, drug.yj, drug.name)],
            Some(drug.name),
        )),
        subject: Some(Reference::to(patient_ref)),
        encounter: Some(Reference::to(encounter_ref)),
        authored_on: Some(Cow::Owned(authored.to_owned())),
        dosage_instruction: vec![Dosage {
            text: Some(Cow::Owned(drug.usage.1.to_owned())),
            timing: Some(Timing {
                code: Some(CodeableConcept::from_coding(Coding::new(
                    CodeSystem::JamiDosage,
                    drug.usage.0,
                    drug.usage.1,
                ))),
                ..Default::default()
            }),
            route: Some(cc_system(
                "http://terminology.hl7.org/CodeSystem/v2-0162",
                drug.route.0,
                drug.route.1,
            )),
            dose_and_rate: vec![DoseAndRate {
                dose_quantity: Some(Quantity::ucum(drug.dose, drug.unit, drug.unit_code)),
                ..Default::default()
            }],
            ..Default::default()
        }],
        dispense_request: Some(DispenseRequest {
            quantity: Some(Quantity::ucum(total, drug.unit, drug.unit_code)),
            expected_supply_duration: (drug.times_per_day > 0)
                .then(|| Quantity::ucum(f64::from(days), "日", "d")),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn interpretation(value: f64, range: (Option<f64>, Option<f64>)) -> (&'static str, &'static str) {
    match range {
        (Some(low), _) if value < low => ("L", "Low"),
        (_, Some(high)) if value > high => ("H", "High"),
        _ => ("N", "Normal"),
    }
}

fn lab_observation(
    id: &str,
    patient_ref: &str,
    encounter_ref: &str,
    test: &LabTest,
    value: f64,
    male: bool,
    effective: &str,
) -> Observation<'static> {
    let range = if male { test.male } else { test.female };
    let vital = test.jlac10.starts_with('9');
    let mut reference_range = Vec::new();
    if range.0.is_some() || range.1.is_some() {
        reference_range.push(ReferenceRange {
            low: range.0.map(|v| Quantity::ucum(v, test.unit, test.ucum)),
            high: range.1.map(|v| Quantity::ucum(v, test.unit, test.ucum)),
            ..Default::default()
        });
    }
    let interpretation = if reference_range.is_empty() {
        Vec::new()
    } else {
        let (code, display) = interpretation(value, range);
        vec![cc_system(OBSERVATION_INTERPRETATION_SYSTEM, code, display)]
    };
    Observation {
        id: Some(Cow::Owned(id.to_owned())),
        meta: Some(Meta::profile(profiles::JP_OBSERVATION_LAB_RESULT)),
        status: Some(Cow::Borrowed("final")),
        category: vec![if vital {
            cc_system(OBSERVATION_CATEGORY_SYSTEM, "vital-signs", "Vital Signs")
        } else {
            cc_system(OBSERVATION_CATEGORY_SYSTEM, "laboratory", "Laboratory")
        }],
        code: Some(CodeableConcept::from_codings(
            vec![Coding::new(CodeSystem::Jlac10, test.jlac10, test.name)],
            Some(test.name),
        )),
        subject: Some(Reference::to(patient_ref)),
        encounter: Some(Reference::to(encounter_ref)),
        effective_date_time: Some(Cow::Owned(effective.to_owned())),
        value_quantity: Some(Quantity::ucum(value, test.unit, test.ucum)),
        interpretation,
        reference_range,
        ..Default::default()
    }
}

#[allow(clippy::too_many_arguments)]
fn qualitative_observation(
    id: &str,
    patient_ref: &str,
    encounter_ref: &str,
    code: Coding<'static>,
    name: &str,
    positive: bool,
    effective: &str,
) -> Observation<'static> {
    let (code_value, display, text) = if positive {
        ("POS", "Positive", "陽性(+)")
    } else {
        ("NEG", "Negative", "陰性(-)")
    };
    let result = CodeableConcept::from_codings(
        vec![Coding::with_system(
            OBSERVATION_INTERPRETATION_SYSTEM,
            code_value,
            display,
        )],
        Some(text),
    );
    Observation {
        id: Some(Cow::Owned(id.to_owned())),
        meta: Some(Meta::profile(profiles::JP_OBSERVATION_LAB_RESULT)),
        status: Some(Cow::Borrowed("final")),
        category: vec![cc_system(
            OBSERVATION_CATEGORY_SYSTEM,
            "laboratory",
            "Laboratory",
        )],
        code: Some(CodeableConcept::from_codings(vec![code], Some(name))),
        subject: Some(Reference::to(patient_ref)),
        encounter: Some(Reference::to(encounter_ref)),
        effective_date_time: Some(Cow::Owned(effective.to_owned())),
        value_codeable_concept: Some(result.clone()),
        interpretation: vec![CodeableConcept {
            text: None,
            ..result
        }],
        ..Default::default()
    }
}

fn procedure_resource(
    id: &str,
    patient_ref: &str,
    encounter_ref: &str,
    procedure: &codes::ProcedureCode,
    performed: &str,
) -> Procedure<'static> {
    Procedure {
        id: Some(Cow::Owned(id.to_owned())),
        meta: Some(Meta::profile(profiles::JP_PROCEDURE)),
        status: Some(Cow::Borrowed("completed")),
        code: Some(CodeableConcept::from_codings(
            vec![Coding::new(
                CodeSystem::ProcedureReceipt,
                procedure.code,
                procedure.name,
            )],
            Some(procedure.name),
        )),
        subject: Some(Reference::to(patient_ref)),
        encounter: Some(Reference::to(encounter_ref)),
        performed_date_time: Some(Cow::Owned(performed.to_owned())),
        ..Default::default()
    }
}

fn allergy_resource(
    id: &str,
    patient_ref: &str,
    allergen: &codes::Allergen,
    drug: bool,
    recorded: NaiveDate,
) -> AllergyIntolerance<'static> {
    AllergyIntolerance {
        id: Some(Cow::Owned(id.to_owned())),
        meta: Some(Meta::profile(profiles::JP_ALLERGY_INTOLERANCE)),
        clinical_status: Some(cc_system(ALLERGY_CLINICAL_SYSTEM, "active", "Active")),
        verification_status: Some(cc_system(
            ALLERGY_VERIFICATION_SYSTEM,
            "confirmed",
            "Confirmed",
        )),
        type_: Some(Cow::Borrowed("allergy")),
        category: vec![Cow::Owned(
            if drug { "medication" } else { "food" }.to_owned(),
        )],
        criticality: Some(Cow::Owned(
            if allergen.manifestation == "アナフィラキシー" {
                "high"
            } else {
                "low"
            }
            .to_owned(),
        )),
        code: Some(CodeableConcept::from_codings(
            vec![Coding::with_system(
                allergen.system,
                allergen.code,
                allergen.name,
            )],
            Some(allergen.name),
        )),
        patient: Some(Reference::to(patient_ref)),
        recorded_date: Some(Cow::Owned(recorded.format("%Y-%m-%d").to_string())),
        reaction: vec![AllergyReaction {
            manifestation: vec![CodeableConcept {
                text: Some(Cow::Owned(allergen.manifestation.to_owned())),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Content of one patient record before serialization.
struct RecordContent {
    transaction: EntryList,
    documents: Vec<EntryList>,
    identity: RecordedIdentity,
}

/// A document to write once the record's resources exist.
struct DocumentPlan {
    kind: codes::DocKind,
    date: NaiveDate,
    encounter: Option<(String, Resource<'static>)>,
    entries: Vec<(String, Resource<'static>)>,
    sections: Vec<(String, String)>,
}

fn syphilis_positive(person: &Person) -> bool {
    // About 0.5 % carry antibodies from a past infection; stable per person.
    (person.index.wrapping_mul(2_654_435_761) >> 7).is_multiple_of(200)
}

#[allow(clippy::too_many_lines)]
fn build_record(
    ctx: &Context<'_>,
    person: &Person,
    plan: &Plan,
    visits: &[Visit],
    patient_id: &str,
    rng: &mut ChaCha8Rng,
) -> RecordContent {
    let provider = &ctx.providers[plan.provider];
    let first = visits.first().map_or(plan.first, |v| v.date);
    let last = visits.last().map_or(plan.last, |v| v.end.unwrap_or(v.date));
    let patient_uuid = uuid(rng);
    let (patient, identity) = patient_resource(
        person,
        provider,
        patient_id,
        &patient_uuid,
        first,
        last,
        plan.knows_death,
        rng,
    );
    let patient_resource = Resource::from(patient);
    let mut tx = EntryList::new(true);
    let patient_ref = tx.add(&patient_uuid, patient_resource.clone());
    let mut documents: Vec<DocumentPlan> = Vec::new();
    // Conditions already recorded at this provider: diagnosis index → (full URL, resource).
    let mut recorded: Vec<(usize, String, Resource<'static>)> = Vec::new();
    let display_name = format!("{} {}", identity.family_kanji, identity.given_kanji);

    // Every encounter of the record, so a document can carry the encounters its resources cite.
    let mut encounters: Vec<(String, Resource<'static>)> = Vec::new();
    let managed: Vec<usize> = plan.managed.clone();
    let mut allergies_recorded = plan.care == Care::Checkup;

    let last_visit = visits.len().saturating_sub(1);
    for (visit_number, visit) in visits.iter().enumerate() {
        let time = clinic_time(rng);
        let effective = date_time(visit.date, time);
        let active: Vec<usize> = managed
            .iter()
            .copied()
            .filter(|&i| person.diagnoses[i].onset <= visit.date)
            .collect();
        let main_problem = match visit.kind {
            VisitKind::Onset(i) | VisitKind::Referral { diagnosis: i, .. } => {
                Some(person.diagnoses[i].problem)
            }
            _ => active
                .iter()
                .rev()
                .map(|&i| person.diagnoses[i].problem)
                .find(is_serious)
                .or_else(|| active.first().map(|&i| person.diagnoses[i].problem)),
        };
        let encounter_uuid = uuid(rng);
        let encounter = encounter_resource(
            &encounter_uuid,
            &patient_ref,
            provider,
            visit,
            plan.care,
            main_problem.as_ref(),
            time,
        );
        let encounter_resource = Resource::from(encounter);
        let encounter_ref = tx.add(&encounter_uuid, encounter_resource.clone());
        encounters.push((encounter_ref.clone(), encounter_resource.clone()));

        // Conditions: first record of each managed diagnosis, plus listed comorbidities.
        let mut visit_conditions: Vec<(String, Resource<'static>)> = Vec::new();
        for &i in active.iter().chain(plan.listed.iter()) {
            let d = &person.diagnoses[i];
            if d.onset > visit.date || recorded.iter().any(|(j, _, _)| *j == i) {
                continue;
            }
            let id = uuid(rng);
            let condition = condition_resource(
                &id,
                &patient_ref,
                &encounter_ref,
                &problem_disease(&d.problem),
                d.onset,
                visit.date,
                false,
                None,
            );
            let resource = Resource::from(condition);
            let url = tx.add(&id, resource.clone());
            recorded.push((i, url.clone(), resource.clone()));
            visit_conditions.push((url, resource));
        }

        match visit.kind {
            VisitKind::Acute => {
                let disease =
                    codes::ACUTE_DISEASES[rng.random_range(0..codes::ACUTE_DISEASES.len())];
                let id = uuid(rng);
                let abated = visit.date + Days::new(rng.random_range(5..15));
                let abated = (abated < ctx.world.reference_date).then_some(abated);
                let condition = condition_resource(
                    &id,
                    &patient_ref,
                    &encounter_ref,
                    &disease,
                    visit.date,
                    visit.date,
                    false,
                    abated,
                );
                tx.add(&id, Resource::from(condition));
                let drugs: &[Drug] = match disease.icd10 {
                    "J06.9" | "J20.9" => &[codes::ACETAMINOPHEN, codes::CARBOCISTEINE],
                    "N30.0" => &[codes::AMOXICILLIN],
                    "M54.5" => &[codes::LOXOPROFEN],
                    _ => &[],
                };
                for drug in drugs {
                    let id = uuid(rng);
                    tx.add(
                        &id,
                        Resource::from(medication_request(
                            &id,
                            &patient_ref,
                            &encounter_ref,
                            drug,
                            &effective,
                            5,
                        )),
                    );
                }
            }
            VisitKind::Referral { diagnosis, to } => {
                let d = &person.diagnoses[diagnosis];
                let disease = problem_disease(&d.problem);
                let suspected = !matches!(d.problem, Problem::HeartFailure | Problem::HepatitisC);
                let id = uuid(rng);
                let condition = condition_resource(
                    &id,
                    &patient_ref,
                    &encounter_ref,
                    &disease,
                    visit.date,
                    visit.date,
                    suspected,
                    None,
                );
                let resource = Resource::from(condition);
                let url = tx.add(&id, resource.clone());
                let to_name = ctx.providers[to].name.clone();
                let reason = if suspected {
                    format!("{}の疑い", disease.name)
                } else {
                    disease.name.to_owned()
                };
                documents.push(DocumentPlan {
                    kind: codes::DocKind::Referral,
                    date: visit.date,
                    encounter: Some((encounter_ref.clone(), encounter_resource.clone())),
                    entries: vec![(url.clone(), resource)],
                    sections: vec![
                        ("紹介先".to_owned(), format!("{to_name} 御中")),
                        (
                            "紹介目的".to_owned(),
                            format!("{display_name} 様を{reason}の精査加療目的にてご紹介いたします。"),
                        ),
                        (
                            "現病歴".to_owned(),
                            format!(
                                "{}頃より症状を自覚され当院受診。精査の結果、{reason}と考えます。貴院での精査・加療をお願い申し上げます。",
                                visit.date.format("%Y年%m月")
                            ),
                        ),
                    ],
                });
            }
            VisitKind::Checkup => {
                let tests = [
                    codes::HEIGHT,
                    codes::WEIGHT,
                    codes::BMI,
                    codes::SYSTOLIC_BP,
                    codes::DIASTOLIC_BP,
                    codes::HBA1C,
                    codes::GLUCOSE,
                    codes::LDL,
                    codes::HDL,
                    codes::TRIGLYCERIDE,
                    codes::AST,
                    codes::ALT,
                    codes::GGT,
                    codes::CREATININE,
                    codes::EGFR,
                ];
                let mut entries = Vec::new();
                let mut findings = Vec::new();
                for test in &tests {
                    let value = lab_value(person, test, visit.date, rng);
                    let id = uuid(rng);
                    let obs = lab_observation(
                        &id,
                        &patient_ref,
                        &encounter_ref,
                        test,
                        value,
                        person.male,
                        &effective,
                    );
                    let flag = obs
                        .interpretation
                        .first()
                        .and_then(|c| c.coding.first())
                        .and_then(|c| c.code.as_deref())
                        .filter(|c| *c != "N")
                        .map(|c| format!(" ({c})"))
                        .unwrap_or_default();
                    findings.push(format!("{} {} {}{}", test.name, value, test.unit, flag));
                    let resource = Resource::from(obs);
                    let url = tx.add(&id, resource.clone());
                    entries.push((url, resource));
                }
                let abnormal = findings.iter().filter(|f| f.ends_with(')')).count();
                // The report goes out for the latest checkup of the record.
                let verdict = match abnormal {
                    0 => "A: 異常なし",
                    1..=2 => "B: 軽度異常あり(生活習慣の改善を)",
                    _ => "C: 要精密検査・医療機関受診",
                };
                if visit_number == last_visit {
                    documents.push(DocumentPlan {
                        kind: codes::DocKind::Checkup,
                        date: visit.date,
                        encounter: Some((encounter_ref.clone(), encounter_resource.clone())),
                        entries,
                        sections: vec![
                            (
                                "受診者".to_owned(),
                                format!(
                                    "{display_name} 様 ({}受診)",
                                    visit.date.format("%Y年%m月%d日")
                                ),
                            ),
                            ("検査結果".to_owned(), findings.join("\n")),
                            ("総合判定".to_owned(), verdict.to_owned()),
                        ],
                    });
                }
            }
            VisitKind::Dental => {
                let perio = person.has(|p| matches!(p, Problem::Periodontitis));
                let procs: &[&codes::ProcedureCode] = if perio {
                    &[&codes::PERIODONTAL_EXAM, &codes::SCALING]
                } else {
                    &[&codes::CARIES_TREATMENT]
                };
                for p in procs {
                    let id = uuid(rng);
                    tx.add(
                        &id,
                        Resource::from(procedure_resource(
                            &id,
                            &patient_ref,
                            &encounter_ref,
                            p,
                            &effective,
                        )),
                    );
                }
            }
            _ => {}
        }

        // Prescriptions for the active problems (and their adverse-event follow-ups).
        if !matches!(
            visit.kind,
            VisitKind::Checkup | VisitKind::Dental | VisitKind::Acute
        ) {
            let days = if matches!(plan.care, Care::Primary) {
                28
            } else {
                56
            };
            let in_house = !matches!(plan.care, Care::Primary) || rng.random_bool(0.3);
            let mut prescribed: Vec<&str> = Vec::new();
            for &i in &active {
                for drug in regimen(person, &person.diagnoses[i], visit.date) {
                    if prescribed.contains(&drug.yj) {
                        continue;
                    }
                    prescribed.push(drug.yj);
                    let id = uuid(rng);
                    let mr = medication_request(
                        &id,
                        &patient_ref,
                        &encounter_ref,
                        &drug,
                        &effective,
                        days,
                    );
                    let mr_url = tx.add(&id, Resource::from(mr));
                    if in_house && rng.random_bool(0.5) {
                        let dispense_id = uuid(rng);
                        let md = MedicationDispense {
                            id: Some(Cow::Owned(dispense_id.clone())),
                            meta: Some(Meta::profile(profiles::JP_MEDICATION_DISPENSE)),
                            status: Some(Cow::Borrowed("completed")),
                            medication_codeable_concept: Some(CodeableConcept::from_codings(
                                vec![Coding::new(CodeSystem::Yj, drug.yj, drug.name)],
                                Some(drug.name),
                            )),
                            subject: Some(Reference::to(&patient_ref)),
                            context: Some(Reference::to(&encounter_ref)),
                            authorizing_prescription: vec![Reference::to(&mr_url)],
                            quantity: Some(Quantity::ucum(
                                if drug.times_per_day == 0 {
                                    drug.dose
                                } else {
                                    drug.dose * f64::from(drug.times_per_day * days)
                                },
                                drug.unit,
                                drug.unit_code,
                            )),
                            days_supply: (drug.times_per_day > 0)
                                .then(|| Quantity::ucum(f64::from(days), "日", "d")),
                            when_handed_over: Some(Cow::Owned(effective.clone())),
                            ..Default::default()
                        };
                        tx.add(&dispense_id, Resource::from(md));
                    }
                }
            }
        }

        // Laboratory tests for the active problems.
        let lab_visit = match visit.kind {
            VisitKind::Onset(_) | VisitKind::Admission { .. } => true,
            VisitKind::Routine => !matches!(plan.care, Care::Primary) || rng.random_bool(0.5),
            _ => false,
        };
        if lab_visit {
            let mut done: Vec<&str> = Vec::new();
            for &i in &active {
                for test in labs_for(&person.diagnoses[i].problem) {
                    if done.contains(&test.jlac10) {
                        continue;
                    }
                    done.push(test.jlac10);
                    let value = lab_value(person, test, visit.date, rng);
                    let id = uuid(rng);
                    tx.add(
                        &id,
                        Resource::from(lab_observation(
                            &id,
                            &patient_ref,
                            &encounter_ref,
                            test,
                            value,
                            person.male,
                            &effective,
                        )),
                    );
                }
            }
        }

        if let VisitKind::Onset(i) = visit.kind {
            let d = &person.diagnoses[i];
            match d.problem {
                Problem::BreastCancer { subtype, .. } => {
                    let status = match subtype {
                        BreastSubtype::Luminal => [true, true, false],
                        BreastSubtype::Her2 => [rng.random_bool(0.5), rng.random_bool(0.4), true],
                        BreastSubtype::TripleNegative => [false, false, false],
                    };
                    for ((code, name), positive) in codes::BREAST_RECEPTORS.iter().zip(status) {
                        let id = uuid(rng);
                        let obs = qualitative_observation(
                            &id,
                            &patient_ref,
                            &encounter_ref,
                            Coding::with_system(codes::LOINC, code, name),
                            name,
                            positive,
                            &effective,
                        );
                        tx.add(&id, Resource::from(obs));
                    }
                }
                Problem::HeartFailure | Problem::Cardiotoxicity => {
                    let id = uuid(rng);
                    tx.add(
                        &id,
                        Resource::from(procedure_resource(
                            &id,
                            &patient_ref,
                            &encounter_ref,
                            &codes::ECHOCARDIOGRAPHY,
                            &effective,
                        )),
                    );
                }
                Problem::DrugEruption => {
                    let id = uuid(rng);
                    let allergen = codes::Allergen {
                        system: "http://capstandard.jp/iyaku.info/CodeSystem/YJ-code",
                        code: codes::ALLOPURINOL.yj,
                        name: codes::ALLOPURINOL.name,
                        prevalence: 0.0,
                        manifestation: "薬疹",
                    };
                    tx.add(
                        &id,
                        Resource::from(allergy_resource(
                            &id,
                            &patient_ref,
                            &allergen,
                            true,
                            visit.date,
                        )),
                    );
                }
                _ => {}
            }
        }

        if let VisitKind::Admission { terminal } = visit.kind {
            // Infection screening on admission.
            let hbv = person.has(|p| matches!(p, Problem::HepatitisB));
            let hcv = person.has(|p| matches!(p, Problem::HepatitisC));
            let hiv = person.has(|p| matches!(p, Problem::Hiv));
            let syphilis = syphilis_positive(person);
            for (marker, positive) in [
                (codes::HBS_ANTIGEN, hbv),
                (codes::HCV_ANTIBODY, hcv),
                (codes::SYPHILIS_TP, syphilis),
                (codes::HIV_ANTIBODY, hiv),
            ] {
                let id = uuid(rng);
                let obs = qualitative_observation(
                    &id,
                    &patient_ref,
                    &encounter_ref,
                    Coding::new(CodeSystem::Jlac10, marker.jlac10, marker.name),
                    marker.name,
                    positive,
                    &effective,
                );
                tx.add(&id, Resource::from(obs));
            }
            let mut course = String::new();
            let cancer = active.iter().copied().find(|&i| {
                matches!(
                    person.diagnoses[i].problem,
                    Problem::BreastCancer { .. } | Problem::LungCancer { .. }
                )
            });
            if let Some(i) = cancer
                && !terminal
            {
                let surgery = match person.diagnoses[i].problem {
                    Problem::BreastCancer { .. } => &codes::BREAST_SURGERY,
                    _ => &codes::LUNG_SURGERY,
                };
                let id = uuid(rng);
                let performed = date_time(
                    visit.date + Days::new(1),
                    NaiveTime::from_hms_opt(9, 30, 0).unwrap_or(time),
                );
                tx.add(
                    &id,
                    Resource::from(procedure_resource(
                        &id,
                        &patient_ref,
                        &encounter_ref,
                        surgery,
                        &performed,
                    )),
                );
                course = format!("入院翌日に{}を施行。術後経過は良好。", surgery.name);
            }
            let mut entries: Vec<(String, Resource<'static>)> = recorded
                .iter()
                .filter(|(i, _, _)| active.contains(i))
                .map(|(_, url, r)| (url.clone(), r.clone()))
                .collect();
            entries.extend(visit_conditions.iter().cloned());
            entries.dedup_by(|a, b| a.0 == b.0);
            let diagnoses_text: Vec<&str> = active
                .iter()
                .map(|&i| problem_disease(&person.diagnoses[i].problem).name)
                .collect();
            let end = visit.end.unwrap_or(visit.date);
            let outcome = if terminal {
                format!("{}、永眠された。", end.format("%Y年%m月%d日"))
            } else {
                "軽快し自宅退院。外来にて経過観察予定。".to_owned()
            };
            let documents_so_far = documents
                .iter()
                .filter(|d| d.kind == codes::DocKind::Discharge)
                .count();
            if documents_so_far < 2 {
                documents.push(DocumentPlan {
                    kind: codes::DocKind::Discharge,
                    date: end,
                    encounter: Some((encounter_ref.clone(), encounter_resource.clone())),
                    entries,
                    sections: vec![
                        (
                            "入院理由".to_owned(),
                            format!(
                                "{display_name} 様、{}に入院。",
                                visit.date.format("%Y年%m月%d日")
                            ),
                        ),
                        (
                            "入院時診断".to_owned(),
                            if diagnoses_text.is_empty() {
                                "精査目的".to_owned()
                            } else {
                                diagnoses_text.join("、")
                            },
                        ),
                        (
                            "入院経過".to_owned(),
                            if course.is_empty() {
                                "保存的加療を行った。".to_owned()
                            } else {
                                course
                            },
                        ),
                        ("退院時状況".to_owned(), outcome),
                    ],
                });
            }
        }

        // Allergies are asked at the first visit; not every provider records them.
        if !allergies_recorded {
            allergies_recorded = true;
            for (allergen, drug) in &person.allergies {
                if rng.random_bool(0.6) {
                    let id = uuid(rng);
                    tx.add(
                        &id,
                        Resource::from(allergy_resource(
                            &id,
                            &patient_ref,
                            allergen,
                            *drug,
                            visit.date,
                        )),
                    );
                }
            }
        }
    }

    let documents = documents
        .into_iter()
        .map(|doc| {
            let doc = with_cited_encounters(doc, &encounters);
            document_entries(
                provider,
                &patient_ref,
                &patient_resource,
                &display_name,
                &identity,
                doc,
                rng,
            )
        })
        .collect();
    RecordContent {
        transaction: tx,
        documents,
        identity,
    }
}

fn organization_resource(provider: &Provider) -> Organization<'static> {
    Organization {
        id: Some(Cow::Owned(provider.organization_uuid.clone())),
        meta: Some(Meta::profile(profiles::JP_ORGANIZATION)),
        identifier: vec![Identifier::new(
            "http://jpfhir.jp/fhir/core/IdSystem/insurance-medical-institution-no",
            &provider.facility_number,
        )],
        name: Some(Cow::Owned(provider.name.clone())),
        ..Default::default()
    }
}

/// Adds to a document the earlier encounters its conditions cite.
///
/// A document holds every resource it references (bdl-7). Resources are carried unchanged,
/// exactly as in the transaction, so the same id never reaches intake with two contents.
fn with_cited_encounters(
    mut doc: DocumentPlan,
    encounters: &[(String, Resource<'static>)],
) -> DocumentPlan {
    let mut carried: Vec<String> = doc.encounter.iter().map(|(url, _)| url.clone()).collect();
    let mut cited_encounters = Vec::new();
    for (_, resource) in &doc.entries {
        if let Resource::Condition(c) = resource
            && let Some(cited) = c.encounter.as_ref().and_then(|e| e.reference.as_ref())
            && !carried.iter().any(|url| url == cited)
            && let Some((url, encounter)) = encounters.iter().find(|(u, _)| u == cited)
        {
            carried.push(url.clone());
            cited_encounters.push((url.clone(), encounter.clone()));
        }
    }
    doc.entries.extend(cited_encounters);
    doc
}

fn document_entries(
    provider: &Provider,
    patient_ref: &str,
    patient: &Resource<'static>,
    display_name: &str,
    identity: &RecordedIdentity,
    doc: DocumentPlan,
    rng: &mut ChaCha8Rng,
) -> EntryList {
    let mut list = EntryList::new(false);
    let composition_id = uuid(rng);
    let (physician_id, physician_family, physician_given) =
        &provider.physicians[rng.random_range(0..provider.physicians.len())];
    let organization_ref = format!("urn:uuid:{}", provider.organization_uuid);
    let practitioner_ref = format!("urn:uuid:{physician_id}");
    let (type_code, title, profile) = match doc.kind {
        codes::DocKind::Referral => (
            codes::LOINC_REFERRAL,
            "診療情報提供書",
            profiles::JP_COMPOSITION_EREFERRAL,
        ),
        codes::DocKind::Discharge => (
            codes::LOINC_DISCHARGE,
            "退院時サマリー",
            profiles::JP_COMPOSITION_EDISCHARGE_SUMMARY,
        ),
        codes::DocKind::Checkup => (
            codes::LOINC_CHECKUP,
            "健康診断結果報告書",
            profiles::JP_COMPOSITION_ECHECKUP,
        ),
    };
    let date = date_time(
        doc.date,
        NaiveTime::from_hms_opt(17, 0, 0).unwrap_or(NaiveTime::MIN),
    );
    let entry_refs: Vec<Reference<'static>> = doc
        .entries
        .iter()
        .map(|(url, _)| Reference::to(url))
        .collect();
    let mut sections: Vec<CompositionSection> = doc
        .sections
        .iter()
        .map(|(title, text)| CompositionSection {
            title: Some(Cow::Owned(title.clone())),
            text: Some(Narrative::from_text(text)),
            ..Default::default()
        })
        .collect();
    if !entry_refs.is_empty() {
        let title = match doc.kind {
            codes::DocKind::Checkup => "検査結果一覧",
            _ => "傷病名",
        };
        sections.push(CompositionSection {
            title: Some(Cow::Owned(title.to_owned())),
            text: Some(Narrative::from_text(&format!(
                "{title} ({}件)",
                entry_refs.len()
            ))),
            entry: entry_refs,
            ..Default::default()
        });
    }
    let author_name = match &identity.kana {
        // Letters mention the patient's name; the reading sometimes appears as ふりがな.
        Some((family, given)) if doc.kind == codes::DocKind::Referral => {
            format!("{display_name} ({family} {given}) 様")
        }
        _ => format!("{display_name} 様"),
    };
    sections.insert(
        0,
        CompositionSection {
            title: Some(Cow::Borrowed("患者情報")),
            text: Some(Narrative::from_text(&author_name)),
            ..Default::default()
        },
    );
    let composition = Composition {
        id: Some(Cow::Owned(composition_id.clone())),
        meta: Some(Meta::profile(profile)),
        status: Some(Cow::Borrowed("final")),
        type_: Some(CodeableConcept::from_codings(
            vec![Coding::with_system(codes::LOINC, type_code.0, type_code.1)],
            Some(title),
        )),
        subject: Some(Reference::to(patient_ref)),
        encounter: doc.encounter.as_ref().map(|(url, _)| Reference::to(url)),
        date: Some(Cow::Owned(date.clone())),
        author: vec![
            Reference::to(&practitioner_ref),
            Reference::to(&organization_ref),
        ],
        title: Some(Cow::Owned(title.to_owned())),
        custodian: Some(Reference::to(&organization_ref)),
        section: sections,
        ..Default::default()
    };
    list.add(&composition_id, Resource::from(composition));
    let patient_id = patient_ref.trim_start_matches("urn:uuid:");
    list.add(patient_id, patient.clone());
    list.add(
        &provider.organization_uuid,
        Resource::from(organization_resource(provider)),
    );
    let practitioner = Practitioner {
        id: Some(Cow::Owned(physician_id.clone())),
        meta: Some(Meta::profile(profiles::JP_PRACTITIONER)),
        name: vec![HumanName::with_representation(
            NameRepresentation::Ideographic,
            physician_family,
            physician_given,
        )],
        ..Default::default()
    };
    list.add(physician_id, Resource::from(practitioner));
    if let Some((url, resource)) = doc.encounter {
        list.add(url.trim_start_matches("urn:uuid:"), resource);
    }
    for (url, resource) in doc.entries {
        list.add(url.trim_start_matches("urn:uuid:"), resource);
    }
    list
}

fn serialize_bundle(
    list: EntryList,
    kind: &str,
    identifier: Option<(String, String, String)>,
    out: &mut Vec<u8>,
) -> ResourceCounts {
    let (identifier, timestamp, profile) = match identifier {
        Some((id, timestamp, profile)) => (
            Some(Identifier::new(
                "urn:ietf:rfc:3986",
                &format!("urn:uuid:{id}"),
            )),
            Some(timestamp),
            Some(Meta::profile(&profile)),
        ),
        None => (None, None, None),
    };
    let bundle = Bundle {
        meta: profile,
        identifier,
        type_: Some(Cow::Owned(kind.to_owned())),
        timestamp: timestamp.map(Cow::Owned),
        entry: list.entries,
        ..Default::default()
    };
    // Writing to a Vec cannot fail.
    let _ = Resource::from(bundle).write_json(&mut *out);
    out.push(b'\n');
    list.counts
}

fn notification(
    ctx: &Context<'_>,
    provider: &Provider,
    first: NaiveDate,
    rng: &mut ChaCha8Rng,
) -> (NaiveDate, &'static str) {
    let latest = ctx.world.reference_date - Days::new(1);
    if first >= provider.joined_on {
        // New patients are told at their first visit, mostly by letter.
        let means = match rng.random_range(0..10) {
            0..7 => "letter",
            7..9 => "email",
            _ => "web",
        };
        (first.min(latest), means)
    } else {
        // Existing patients are told when the provider joins: letters, posters, web.
        let date = (provider.joined_on + Days::new(rng.random_range(0..60))).min(latest);
        let means = match rng.random_range(0..10) {
            0..4 => "letter",
            4..7 => "poster",
            7..9 => "web",
            _ => "email",
        };
        (date, means)
    }
}

/// Generates every record the providers hold about one person.
pub fn person_records(
    ctx: &Context<'_>,
    person: &Person,
    rng: &mut ChaCha8Rng,
) -> Vec<RecordOutput> {
    let plans = plan_visits(ctx, person, rng);
    let mut outputs = Vec::with_capacity(plans.len() + 1);
    for plan in &plans {
        let provider = &ctx.providers[plan.provider];
        // A few patients are registered twice at the same provider (a second card).
        let split =
            (plan.visits.len() >= 2 && plan.care != Care::Checkup && rng.random_bool(0.003))
                .then(|| rng.random_range(1..plan.visits.len()));
        let parts: Vec<(&[Visit], u64)> = match split {
            Some(at) => vec![(&plan.visits[..at], 0), (&plan.visits[at..], 1)],
            None => vec![(&plan.visits[..], 0)],
        };
        for (visits, serial) in parts {
            let patient_id = provider.patient_id(person.index, serial);
            let content = build_record(ctx, person, plan, visits, &patient_id, rng);
            let mut bytes = Vec::with_capacity(16 * 1024);
            let mut counts = serialize_bundle(content.transaction, "transaction", None, &mut bytes);
            let mut bundle_count = 1;
            for doc in content.documents {
                let composition_date = doc
                    .entries
                    .first()
                    .and_then(|e| match &e.resource {
                        Some(Resource::Composition(c)) => c.date.as_deref().map(str::to_owned),
                        _ => None,
                    })
                    .unwrap_or_default();
                let profile = doc
                    .entries
                    .first()
                    .and_then(|e| match &e.resource {
                        Some(Resource::Composition(c)) => {
                            c.meta.as_ref().and_then(|m| m.profile.first().cloned())
                        }
                        _ => None,
                    })
                    .unwrap_or_default();
                let bundle_profile = match &*profile {
                    profiles::JP_COMPOSITION_EREFERRAL => profiles::JP_BUNDLE_EREFERRAL,
                    profiles::JP_COMPOSITION_EDISCHARGE_SUMMARY => {
                        profiles::JP_BUNDLE_EDISCHARGE_SUMMARY
                    }
                    _ => profiles::JP_BUNDLE_ECHECKUP,
                };
                let doc_counts = serialize_bundle(
                    doc,
                    "document",
                    Some((uuid(rng), composition_date, bundle_profile.to_owned())),
                    &mut bytes,
                );
                counts.merge(&doc_counts);
                bundle_count += 1;
            }
            let first = visits.first().map_or(plan.first, |v| v.date);
            let notified = notification(ctx, provider, first, rng);
            let refusal = rng.random_bool(0.005).then(|| {
                let from = notified.0 + Days::new(1);
                let latest = ctx.world.reference_date - Days::new(1);
                let refused_on = date_between(rng, from.min(latest), latest);
                let by = match person.death {
                    Some(d) if d.date() < refused_on => "bereaved_family",
                    _ if person.age_on(refused_on) < 18 => "guardian",
                    _ => "patient",
                };
                (refused_on, by)
            });
            outputs.push(RecordOutput {
                provider: plan.provider,
                patient_id,
                bundles: bytes,
                bundle_count,
                notification: notified,
                refusal,
                counts,
                identity: content.identity,
            });
        }
    }
    outputs
}
