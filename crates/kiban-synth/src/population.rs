//! The true population: households of persons with their life history (names, moves,
//! insurance, death) and clinical profile.

use crate::codes::{self, Allergen, Drug, RareDisease};
use crate::names;
use crate::places::{self, InsuranceKind, StreetAddress};
use chrono::{Datelike, Days, NaiveDate, NaiveDateTime, NaiveTime};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

/// Persons generated together as one unit (they may form households).
pub const BLOCK_SIZE: u64 = 4;

/// A family name in use from a date.
#[derive(Debug, Clone)]
pub struct NameSpell {
    /// First day of use.
    pub from: NaiveDate,
    /// Family name in kanji (as in the family register).
    pub family_kanji: String,
    /// Family name reading in katakana.
    pub family_kana: String,
}

/// A home address (and home phone) from a date.
#[derive(Debug, Clone)]
pub struct AddressSpell {
    /// Moving-in date.
    pub from: NaiveDate,
    /// The address.
    pub address: StreetAddress,
    /// Home phone at that address, if any.
    pub home_phone: Option<String>,
}

/// Health-insurance coverage from a date.
#[derive(Debug, Clone, PartialEq)]
pub struct InsuranceSpell {
    /// First day of coverage.
    pub from: NaiveDate,
    /// Kind of insurance.
    pub kind: InsuranceKind,
    /// 保険者番号.
    pub insurer: String,
    /// 記号 (empty for the late-stage elderly scheme).
    pub symbol: String,
    /// 番号.
    pub number: String,
    /// 枝番 (empty for the late-stage elderly scheme).
    pub branch: String,
}

impl InsuranceSpell {
    /// The JP-CLINS member id `保険者番号:記号:番号:枝番`.
    pub fn member_id(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.insurer, self.symbol, self.number, self.branch
        )
    }
}

/// Breast-cancer subtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreastSubtype {
    /// Hormone-receptor positive, HER2 negative.
    Luminal,
    /// HER2 positive.
    Her2,
    /// Triple negative.
    TripleNegative,
}

/// A health problem of the person.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Problem {
    /// 2型糖尿病; `insulin` when treated with insulin.
    Diabetes {
        /// Treated with insulin.
        insulin: bool,
    },
    /// 高血圧症.
    Hypertension,
    /// 脂質異常症, treated with this statin.
    Dyslipidemia {
        /// The statin prescribed.
        statin: Drug,
    },
    /// 高尿酸血症 (treated with allopurinol).
    Hyperuricemia,
    /// 慢性歯周炎.
    Periodontitis,
    /// う蝕.
    Caries,
    /// 乳癌 with its subtype; `premenopausal` decides tamoxifen vs letrozole.
    BreastCancer {
        /// Subtype.
        subtype: BreastSubtype,
        /// Premenopausal at diagnosis.
        premenopausal: bool,
    },
    /// 肺癌; `egfr` when EGFR-mutated.
    LungCancer {
        /// EGFR mutation positive.
        egfr: bool,
    },
    /// 慢性心不全.
    HeartFailure,
    /// B型慢性肝炎.
    HepatitisB,
    /// C型慢性肝炎.
    HepatitisC,
    /// HIV感染症.
    Hiv,
    /// A rare disease (index in [`codes::RARE_DISEASES`]).
    Rare(usize),
    /// Drug-induced liver injury after atorvastatin/other statin.
    LiverInjury,
    /// Drug eruption after allopurinol.
    DrugEruption,
    /// Cardiomyopathy after trastuzumab.
    Cardiotoxicity,
}

/// A problem with its diagnosis date.
#[derive(Debug, Clone, Copy)]
pub struct Diagnosis {
    /// The problem.
    pub problem: Problem,
    /// Date of diagnosis (onset as recorded).
    pub onset: NaiveDate,
}

/// One person of the true population.
#[derive(Debug, Clone)]
pub struct Person {
    /// 0-based index.
    pub index: u64,
    /// Stable id in the ground truth, `person-00000001`.
    pub id: String,
    /// Male (true) or female.
    pub male: bool,
    /// Date of birth.
    pub birth_date: NaiveDate,
    /// Given name in kanji.
    pub given_kanji: String,
    /// Given name reading.
    pub given_kana: String,
    /// Family names over time (marriage changes it).
    pub names: Vec<NameSpell>,
    /// Home addresses over time.
    pub addresses: Vec<AddressSpell>,
    /// Mobile phone, if any.
    pub mobile: Option<String>,
    /// Insurance coverage over time (within the observation window).
    pub insurance: Vec<InsuranceSpell>,
    /// Date and time of death, if the person died in the window.
    pub death: Option<NaiveDateTime>,
    /// Health problems.
    pub diagnoses: Vec<Diagnosis>,
    /// Allergies (drug allergens first flag true).
    pub allergies: Vec<(Allergen, bool)>,
    /// Latent metabolic risk (shifts lab values).
    pub metabolic_risk: f64,
    /// One of twins.
    pub twin: bool,
}

impl Person {
    /// Age in full years on a date.
    pub fn age_on(&self, date: NaiveDate) -> i32 {
        let mut age = date.year() - self.birth_date.year();
        if (date.month(), date.day()) < (self.birth_date.month(), self.birth_date.day()) {
            age -= 1;
        }
        age
    }

    /// The family name in use on a date.
    pub fn name_on(&self, date: NaiveDate) -> &NameSpell {
        spell_on(&self.names, date, |s| s.from)
    }

    /// The address on a date.
    pub fn address_on(&self, date: NaiveDate) -> &AddressSpell {
        spell_on(&self.addresses, date, |s| s.from)
    }

    /// The insurance on a date.
    pub fn insurance_on(&self, date: NaiveDate) -> Option<&InsuranceSpell> {
        (!self.insurance.is_empty()).then(|| spell_on(&self.insurance, date, |s| s.from))
    }

    /// The last day the person is alive in the window.
    pub fn last_day(&self, reference_date: NaiveDate) -> NaiveDate {
        self.death
            .map(|d| d.date())
            .unwrap_or(reference_date - Days::new(1))
    }

    /// Whether the person has a problem matching `f`.
    pub fn has(&self, f: impl Fn(&Problem) -> bool) -> bool {
        self.diagnoses.iter().any(|d| f(&d.problem))
    }

    /// The diagnosis matching `f`.
    pub fn diagnosis(&self, f: impl Fn(&Problem) -> bool) -> Option<&Diagnosis> {
        self.diagnoses.iter().find(|d| f(&d.problem))
    }
}

fn spell_on<T>(spells: &[T], date: NaiveDate, from: impl Fn(&T) -> NaiveDate) -> &T {
    spells
        .iter()
        .rev()
        .find(|s| from(s) <= date)
        .unwrap_or(&spells[0])
}

/// Uniform date in `[from, to]` (returns `from` when the range is empty).
pub fn date_between(rng: &mut ChaCha8Rng, from: NaiveDate, to: NaiveDate) -> NaiveDate {
    let days = (to - from).num_days();
    if days <= 0 {
        return from;
    }
    from + Days::new(rng.random_range(0..=days) as u64)
}

/// A daytime clock time for visits.
pub fn clinic_time(rng: &mut ChaCha8Rng) -> NaiveTime {
    NaiveTime::from_hms_opt(rng.random_range(8..18), rng.random_range(0..60), 0)
        .unwrap_or(NaiveTime::MIN)
}

fn add_years(date: NaiveDate, years: i32) -> NaiveDate {
    date.with_year(date.year() + years)
        .or_else(|| NaiveDate::from_ymd_opt(date.year() + years, 2, 28))
        .unwrap_or(date)
}

/// Age bands (5 years, last 100+) with the share of Japan's population (2025, ‰).
const AGE_PYRAMID: &[u32] = &[
    33, 39, 43, 45, 48, 50, 50, 55, 60, 72, 77, 68, 61, 61, 73, 65, 49, 34, 17, 6, 1,
];

fn age_from_pyramid(rng: &mut ChaCha8Rng, min_age: u32) -> u32 {
    let min_band = (min_age / 5) as usize;
    let total: u32 = AGE_PYRAMID[min_band..].iter().sum();
    let mut pick = rng.random_range(0..total);
    for (band, &w) in AGE_PYRAMID.iter().enumerate().skip(min_band) {
        if pick < w {
            let low = (band as u32 * 5).max(min_age);
            let high = band as u32 * 5 + 4;
            return rng.random_range(low..=high.max(low));
        }
        pick -= w;
    }
    min_age
}

fn birth_date_for_age(rng: &mut ChaCha8Rng, age: u32, reference: NaiveDate) -> NaiveDate {
    // Born between (reference - age - 1 years, reference - age years].
    let latest = add_years(reference, -(age as i32));
    let earliest = add_years(reference, -(age as i32) - 1) + Days::new(1);
    date_between(rng, earliest, latest)
}

/// Roles of household members, which decide shared insurance and branch numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Head,
    Spouse,
    Child(u32),
}

struct Member {
    male: bool,
    birth_date: NaiveDate,
    role: Role,
    twin: bool,
}

/// Context shared by the generation of one block.
pub struct World {
    /// Reference date (exclusive end of the data).
    pub reference_date: NaiveDate,
    /// First day of the observation window.
    pub window_start: NaiveDate,
}

impl World {
    /// The window for a reference date: the ten years before it.
    pub fn new(reference_date: NaiveDate) -> Self {
        World {
            reference_date,
            window_start: add_years(reference_date, -10),
        }
    }
}

/// Generates the persons `first_index .. first_index + count` (one block) from the block's RNG.
pub fn generate_block(
    world: &World,
    first_index: u64,
    count: u64,
    rng: &mut ChaCha8Rng,
) -> Vec<Person> {
    let partitions: &[(&[u64], u32)] = &[
        (&[1, 1, 1, 1], 20),
        (&[2, 1, 1], 25),
        (&[2, 2], 20),
        (&[3, 1], 20),
        (&[4], 15),
    ];
    let total: u32 = partitions.iter().map(|p| p.1).sum();
    let mut pick = rng.random_range(0..total);
    let mut sizes: &[u64] = partitions[0].0;
    for (p, w) in partitions {
        if pick < *w {
            sizes = p;
            break;
        }
        pick -= w;
    }
    let mut persons = Vec::with_capacity(count as usize);
    let mut next = first_index;
    let end = first_index + count;
    for &size in sizes {
        if next >= end {
            break;
        }
        let size = size.min(end - next);
        persons.extend(household(world, next, size, rng));
        next += size;
    }
    persons
}

fn household(world: &World, first_index: u64, size: u64, rng: &mut ChaCha8Rng) -> Vec<Person> {
    let reference = world.reference_date;
    // Members: ages and sexes.
    let mut members = Vec::with_capacity(size as usize);
    let head_male = size == 1 && rng.random_bool(0.45) || size > 1 && rng.random_bool(0.9);
    let head_age = match size {
        1 => age_from_pyramid(rng, 18),
        2 => age_from_pyramid(rng, 25),
        _ => rng.random_range(28..=62),
    };
    members.push(Member {
        male: head_male,
        birth_date: birth_date_for_age(rng, head_age, reference),
        role: Role::Head,
        twin: false,
    });
    if size >= 2 {
        let spouse_age = (head_age as i32 + rng.random_range(-6..=4)).clamp(20, 104) as u32;
        members.push(Member {
            male: !head_male,
            birth_date: birth_date_for_age(rng, spouse_age, reference),
            role: Role::Spouse,
            twin: false,
        });
    }
    let youngest_parent = members
        .iter()
        .map(|m| m.birth_date)
        .max()
        .unwrap_or(reference);
    let twins = size == 4 && rng.random_bool(0.03);
    for child in 0..size.saturating_sub(2) {
        let birth_date = if twins && child == 1 {
            members[2].birth_date
        } else {
            let earliest = add_years(youngest_parent, 22).max(add_years(reference, -26));
            date_between(rng, earliest, reference - Days::new(30))
        };
        members.push(Member {
            male: rng.random_bool(0.51),
            birth_date,
            role: Role::Child(child as u32 + 2),
            twin: twins,
        });
    }

    // Shared household history: surname, addresses (with moves), head's insurance career.
    let (family_kanji, family_kana) = names::surname(rng);
    let start_municipality = places::municipality_index(rng);
    let addresses = address_history(world, start_municipality, head_age, rng);
    let recent_marriage = size == 2 && head_age < 45 && rng.random_bool(0.3);
    let married_on = recent_marriage.then(|| {
        let earliest = world.window_start.max(add_years(youngest_parent, 22));
        date_between(rng, earliest, reference - Days::new(60))
    });

    let head_career = career(world, &members[0], &addresses, rng);
    let mut persons = Vec::with_capacity(size as usize);
    for (offset, member) in members.iter().enumerate() {
        let index = first_index + offset as u64;
        let (given_kanji, given_kana) =
            names::given_name(rng, member.male, member.birth_date.year());
        // Name history: the spouse of a recent marriage had a maiden name until marriage.
        let mut name_spells = Vec::new();
        let mut own_addresses = Vec::new();
        let mut own_insurance: Vec<InsuranceSpell>;
        let birth_or_start = member.birth_date.max(world.window_start);
        match (member.role, married_on) {
            (Role::Spouse, Some(married)) => {
                let (maiden_kanji, maiden_kana) = names::surname(rng);
                name_spells.push(NameSpell {
                    from: member.birth_date,
                    family_kanji: maiden_kanji,
                    family_kana: maiden_kana,
                });
                // 96 % of couples take the husband's name; the wife is the spouse here.
                name_spells.push(NameSpell {
                    from: married,
                    family_kanji: family_kanji.clone(),
                    family_kana: family_kana.clone(),
                });
                let before = places::municipality_index(rng);
                own_addresses.push(AddressSpell {
                    from: birth_or_start,
                    address: StreetAddress::draw(before, rng),
                    home_phone: None,
                });
                own_addresses.extend(addresses.iter().filter(|a| a.from >= married).cloned());
                let current = addresses
                    .iter()
                    .rev()
                    .find(|a| a.from <= married)
                    .unwrap_or(&addresses[0]);
                if !own_addresses.iter().any(|a| a.from == married) {
                    let mut moved_in = current.clone();
                    moved_in.from = married;
                    own_addresses.push(moved_in);
                    own_addresses.sort_by_key(|a| a.from);
                }
                // Before marriage: own job; after: dependent of the head (or keeps working).
                let own = career(world, member, &own_addresses, rng);
                let keeps_working = rng.random_bool(0.5);
                own_insurance = own.iter().filter(|s| s.from < married).cloned().collect();
                if keeps_working {
                    own_insurance.extend(own.iter().filter(|s| s.from >= married).cloned());
                    if own_insurance.is_empty() {
                        own_insurance = own;
                    }
                } else {
                    own_insurance.extend(dependent_of(
                        &head_career,
                        married,
                        "01",
                        &own_addresses,
                        rng,
                    ));
                }
            }
            _ => {
                name_spells.push(NameSpell {
                    from: member.birth_date,
                    family_kanji: family_kanji.clone(),
                    family_kana: family_kana.clone(),
                });
                own_addresses = addresses
                    .iter()
                    .map(|a| AddressSpell {
                        from: a.from.max(member.birth_date),
                        ..a.clone()
                    })
                    .collect();
                own_insurance = match member.role {
                    Role::Head => head_career.clone(),
                    Role::Spouse if rng.random_bool(0.45) => {
                        career(world, member, &own_addresses, rng)
                    }
                    Role::Spouse => {
                        dependent_of(&head_career, birth_or_start, "01", &own_addresses, rng)
                    }
                    Role::Child(branch) => {
                        let branch = format!("{branch:02}");
                        let independent = add_years(member.birth_date, 22);
                        let mut spells = dependent_of(
                            &head_career,
                            birth_or_start,
                            &branch,
                            &own_addresses,
                            rng,
                        );
                        if independent < reference {
                            spells.retain(|s| s.from < independent);
                            let job = employee_spell(independent, member, &own_addresses, rng);
                            spells.push(job);
                        }
                        spells
                    }
                };
            }
        }
        late_stage_elderly(world, member, &own_addresses, &mut own_insurance, rng);
        own_insurance.sort_by_key(|s| s.from);
        own_insurance.dedup_by(|b, a| a.member_id() == b.member_id());

        let age = {
            let mut a = reference.year() - member.birth_date.year();
            if (reference.month(), reference.day())
                < (member.birth_date.month(), member.birth_date.day())
            {
                a -= 1;
            }
            a
        };
        let mobile = (age >= 15 && rng.random_bool(if age >= 75 { 0.5 } else { 0.85 }))
            .then(|| places::mobile_phone(rng));
        let mut person = Person {
            index,
            id: format!("person-{:08}", index + 1),
            male: member.male,
            birth_date: member.birth_date,
            given_kanji,
            given_kana,
            names: name_spells,
            addresses: own_addresses,
            mobile,
            insurance: own_insurance,
            death: None,
            diagnoses: Vec::new(),
            allergies: Vec::new(),
            metabolic_risk: 0.0,
            twin: member.twin,
        };
        clinical_profile(world, &mut person, rng);
        death(world, &mut person, rng);
        persons.push(person);
    }
    persons
}

fn address_history(
    world: &World,
    municipality: usize,
    head_age: u32,
    rng: &mut ChaCha8Rng,
) -> Vec<AddressSpell> {
    let start = world.window_start;
    let mut current = municipality;
    let mut spells = vec![AddressSpell {
        from: start,
        address: StreetAddress::draw(current, rng),
        home_phone: rng
            .random_bool(0.6)
            .then(|| places::home_phone(current, rng)),
    }];
    let mut year_start = start;
    let mut age = head_age.saturating_sub(10);
    while year_start < world.reference_date {
        let rate = match age {
            0..35 => 0.12,
            35..60 => 0.05,
            _ => 0.02,
        };
        if rng.random_bool(rate) {
            let moved = date_between(rng, year_start, add_years(year_start, 1) - Days::new(1));
            if moved < world.reference_date {
                current = places::move_target(current, rng);
                spells.push(AddressSpell {
                    from: moved,
                    address: StreetAddress::draw(current, rng),
                    home_phone: rng
                        .random_bool(0.5)
                        .then(|| places::home_phone(current, rng)),
                });
            }
        }
        year_start = add_years(year_start, 1);
        age += 1;
    }
    spells
}

fn municipality_on(addresses: &[AddressSpell], date: NaiveDate) -> usize {
    spell_on(addresses, date, |a| a.from).address.municipality
}

fn employee_spell(
    from: NaiveDate,
    member: &Member,
    addresses: &[AddressSpell],
    rng: &mut ChaCha8Rng,
) -> InsuranceSpell {
    let municipality = municipality_on(addresses, from);
    let kind = match rng.random_range(0..100) {
        0..45 => InsuranceKind::KyokaiKenpo,
        45..85 => InsuranceKind::HealthInsuranceSociety,
        _ => InsuranceKind::MutualAid,
    };
    let _ = member;
    InsuranceSpell {
        from,
        kind,
        insurer: places::insurer_number(kind, municipality, rng),
        symbol: format!("{}", rng.random_range(1..100_000)),
        number: format!("{}", rng.random_range(1..10_000)),
        branch: "00".to_owned(),
    }
}

fn nhi_spell(
    from: NaiveDate,
    addresses: &[AddressSpell],
    branch: &str,
    rng: &mut ChaCha8Rng,
) -> InsuranceSpell {
    let municipality = municipality_on(addresses, from);
    InsuranceSpell {
        from,
        kind: InsuranceKind::NationalHealthInsurance,
        insurer: places::insurer_number(InsuranceKind::NationalHealthInsurance, municipality, rng),
        symbol: format!("{:02}", rng.random_range(1..100)),
        number: format!("{:07}", rng.random_range(1..10_000_000)),
        branch: branch.to_owned(),
    }
}

/// The insurance career of a working-age person (employee insurance with job changes,
/// retirement to national health insurance, new NHI card when moving municipality).
fn career(
    world: &World,
    member: &Member,
    addresses: &[AddressSpell],
    rng: &mut ChaCha8Rng,
) -> Vec<InsuranceSpell> {
    let start = member.birth_date.max(world.window_start);
    let age_at_start = {
        let d = start.year() - member.birth_date.year();
        d.max(0) as u32
    };
    let retirement_age = rng.random_range(60..=65);
    let retirement = add_years(member.birth_date, retirement_age);
    let mut employee = match age_at_start {
        0..60 => rng.random_bool(0.72),
        60..75 => rng.random_bool(0.3),
        _ => false,
    };
    let mut spells = vec![if employee {
        employee_spell(start, member, addresses, rng)
    } else {
        nhi_spell(start, addresses, "00", rng)
    }];
    let mut year = start;
    while year < world.reference_date {
        let next = add_years(year, 1);
        if employee && retirement >= year && retirement < next && retirement < world.reference_date
        {
            employee = false;
            spells.push(nhi_spell(retirement, addresses, "00", rng));
        } else if employee && rng.random_bool(0.04) {
            let changed = date_between(rng, year, next - Days::new(1));
            if changed < world.reference_date {
                spells.push(employee_spell(changed, member, addresses, rng));
            }
        }
        year = next;
    }
    // NHI is municipal: a move to another municipality brings a new card.
    let mut extra = Vec::new();
    for pair in addresses.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        if before.address.municipality == after.address.municipality {
            continue;
        }
        let on_nhi = spell_on(&spells, after.from, |s| s.from).kind
            == InsuranceKind::NationalHealthInsurance;
        if on_nhi && after.from > spells[0].from {
            extra.push(nhi_spell(after.from, addresses, "00", rng));
        }
    }
    spells.extend(extra);
    spells.sort_by_key(|s| s.from);
    spells
}

/// Coverage as a dependent (扶養) of the head from `from`: same card, own branch number.
/// Dependents cannot follow the head into the late-stage scheme: they get their own NHI.
fn dependent_of(
    head: &[InsuranceSpell],
    from: NaiveDate,
    branch: &str,
    addresses: &[AddressSpell],
    rng: &mut ChaCha8Rng,
) -> Vec<InsuranceSpell> {
    let mut spells = Vec::new();
    let first_index = head.iter().rposition(|s| s.from <= from).unwrap_or(0);
    for (i, spell) in head.iter().enumerate().skip(first_index) {
        let start = if i == first_index { from } else { spell.from };
        if spell.kind == InsuranceKind::LateStageElderly {
            spells.push(nhi_spell(start, addresses, branch, rng));
        } else {
            spells.push(InsuranceSpell {
                from: start,
                branch: branch.to_owned(),
                ..spell.clone()
            });
        }
    }
    spells
}

/// From the 75th birthday every person is covered individually by the late-stage scheme.
fn late_stage_elderly(
    world: &World,
    member: &Member,
    addresses: &[AddressSpell],
    spells: &mut Vec<InsuranceSpell>,
    rng: &mut ChaCha8Rng,
) {
    let turned_75 = add_years(member.birth_date, 75);
    if turned_75 >= world.reference_date {
        return;
    }
    let from = turned_75.max(world.window_start);
    spells.retain(|s| s.from < from);
    let municipality = municipality_on(addresses, from);
    spells.push(InsuranceSpell {
        from,
        kind: InsuranceKind::LateStageElderly,
        insurer: places::insurer_number(InsuranceKind::LateStageElderly, municipality, rng),
        symbol: String::new(),
        number: format!("{:08}", rng.random_range(1..100_000_000)),
        branch: String::new(),
    });
}

fn latent(rng: &mut ChaCha8Rng) -> f64 {
    // Sum of uniforms ≈ standard normal.
    (0..6).map(|_| rng.random::<f64>()).sum::<f64>() - 3.0
}

fn clinical_profile(world: &World, person: &mut Person, rng: &mut ChaCha8Rng) {
    let reference = world.reference_date;
    let age = person.age_on(reference);
    let male = person.male;
    let z = latent(rng) * 1.4;
    person.metabolic_risk = z;
    let risk = (0.8 * z).exp() / 1.38;
    // Diagnosis date: mostly before or during the window, never before age 20 (chronic).
    let adult_from = add_years(person.birth_date, 20).max(add_years(reference, -25));
    let onset = |rng: &mut ChaCha8Rng| date_between(rng, adult_from, reference - Days::new(90));
    let mut diagnoses = Vec::new();

    let p_dm = match age {
        ..30 => 0.002,
        30..40 => 0.01,
        40..50 => 0.04,
        50..60 => 0.09,
        60..70 => 0.15,
        _ => 0.18,
    } * if male { 1.0 } else { 0.55 };
    let diabetes = rng.random_bool((p_dm * risk).min(0.9));
    if diabetes {
        diagnoses.push(Diagnosis {
            problem: Problem::Diabetes {
                insulin: rng.random_bool(0.1),
            },
            onset: onset(rng),
        });
    }
    let p_ht = match age {
        ..30 => 0.005,
        30..40 => 0.05,
        40..50 => 0.15,
        50..60 => 0.3,
        60..70 => 0.45,
        _ => 0.6,
    } * if male { 1.0 } else { 0.8 }
        * if diabetes { 1.5 } else { 1.0 };
    if rng.random_bool((p_ht * risk.sqrt()).min(0.95)) {
        diagnoses.push(Diagnosis {
            problem: Problem::Hypertension,
            onset: onset(rng),
        });
    }
    let p_dl = match age {
        ..40 => 0.02,
        40..50 => 0.12,
        50..60 => 0.2,
        _ => 0.28,
    } * if !male && age >= 55 { 1.2 } else { 1.0 }
        * if diabetes { 1.4 } else { 1.0 };
    if rng.random_bool((p_dl * risk.sqrt()).min(0.95)) {
        let statin = match rng.random_range(0..100) {
            0..35 => codes::ATORVASTATIN,
            35..75 => codes::ROSUVASTATIN,
            _ => codes::PITAVASTATIN,
        };
        let d = Diagnosis {
            problem: Problem::Dyslipidemia { statin },
            onset: onset(rng),
        };
        // Transaminase rise > 3×ULN: about 1 % of atorvastatin users, 0.1 % of others.
        let p_dili = if statin.yj == codes::ATORVASTATIN.yj {
            0.01
        } else {
            0.001
        };
        if rng.random_bool(p_dili) {
            diagnoses.push(Diagnosis {
                problem: Problem::LiverInjury,
                onset: date_between(rng, d.onset + Days::new(30), d.onset + Days::new(180))
                    .min(reference - Days::new(10)),
            });
        }
        diagnoses.push(d);
    }
    if age >= 30 && rng.random_bool(if male { 0.06 } else { 0.01 }) {
        let d = Diagnosis {
            problem: Problem::Hyperuricemia,
            onset: onset(rng),
        };
        // Skin eruption after allopurinol: about 0.5 % of users.
        if rng.random_bool(0.005) {
            diagnoses.push(Diagnosis {
                problem: Problem::DrugEruption,
                onset: (d.onset + Days::new(rng.random_range(7..60)))
                    .min(reference - Days::new(10)),
            });
        }
        diagnoses.push(d);
    }
    if age >= 20 && rng.random_bool(0.45) {
        diagnoses.push(Diagnosis {
            problem: Problem::Periodontitis,
            onset: onset(rng),
        });
    }
    if rng.random_bool(0.3) {
        diagnoses.push(Diagnosis {
            problem: Problem::Caries,
            onset: date_between(
                rng,
                person.birth_date.max(add_years(reference, -3)),
                reference - Days::new(30),
            ),
        });
    }
    if !male && age >= 35 && rng.random_bool(0.012) {
        let subtype = match rng.random_range(0..100) {
            0..70 => BreastSubtype::Luminal,
            70..88 => BreastSubtype::Her2,
            _ => BreastSubtype::TripleNegative,
        };
        let diagnosed = date_between(
            rng,
            add_years(person.birth_date, 35).max(world.window_start),
            reference - Days::new(60),
        );
        let premenopausal = person.age_on(diagnosed) < 50;
        diagnoses.push(Diagnosis {
            problem: Problem::BreastCancer {
                subtype,
                premenopausal,
            },
            onset: diagnosed,
        });
        // Trastuzumab cardiotoxicity: about 3 % of treated HER2-positive patients.
        if subtype == BreastSubtype::Her2 && rng.random_bool(0.03) {
            diagnoses.push(Diagnosis {
                problem: Problem::Cardiotoxicity,
                onset: (diagnosed + Days::new(rng.random_range(90..300)))
                    .min(reference - Days::new(5)),
            });
        }
    }
    if age >= 50 && rng.random_bool(if male { 0.004 } else { 0.002 }) {
        diagnoses.push(Diagnosis {
            problem: Problem::LungCancer {
                egfr: rng.random_bool(if male { 0.3 } else { 0.5 }),
            },
            onset: date_between(
                rng,
                world.window_start.max(add_years(person.birth_date, 50)),
                reference - Days::new(60),
            ),
        });
    }
    let p_hf = match age {
        ..65 => 0.001,
        65..75 => 0.012,
        75..85 => 0.03,
        _ => 0.06,
    } * if diabetes { 1.5 } else { 1.0 };
    if rng.random_bool(p_hf) {
        diagnoses.push(Diagnosis {
            problem: Problem::HeartFailure,
            onset: date_between(
                rng,
                add_years(person.birth_date, 40).max(world.window_start),
                reference - Days::new(60),
            ),
        });
    }
    if age >= 30 && rng.random_bool(0.008) {
        diagnoses.push(Diagnosis {
            problem: Problem::HepatitisB,
            onset: onset(rng),
        });
    }
    if age >= 40 && rng.random_bool(if age >= 60 { 0.01 } else { 0.004 }) {
        diagnoses.push(Diagnosis {
            problem: Problem::HepatitisC,
            onset: onset(rng),
        });
    }
    if male && (20..65).contains(&age) && rng.random_bool(0.0003) {
        diagnoses.push(Diagnosis {
            problem: Problem::Hiv,
            onset: onset(rng),
        });
    }
    for (i, rare) in codes::RARE_DISEASES.iter().enumerate() {
        let RareDisease { per_10000, .. } = *rare;
        if rng.random_bool(per_10000 / 10_000.0) {
            diagnoses.push(Diagnosis {
                problem: Problem::Rare(i),
                onset: date_between(
                    rng,
                    person.birth_date.max(add_years(reference, -15)),
                    reference - Days::new(60),
                ),
            });
        }
    }
    diagnoses.retain(|d| d.onset >= person.birth_date);
    diagnoses.sort_by_key(|d| d.onset);
    person.diagnoses = diagnoses;

    for allergen in codes::DRUG_ALLERGENS {
        if rng.random_bool(allergen.prevalence) {
            person.allergies.push((*allergen, true));
        }
    }
    for allergen in codes::FOOD_ALLERGENS {
        // Food allergies are commoner in children.
        let factor = if age < 15 { 3.0 } else { 1.0 };
        if rng.random_bool((allergen.prevalence * factor).min(0.5)) {
            person.allergies.push((*allergen, false));
        }
    }
}

fn death(world: &World, person: &mut Person, rng: &mut ChaCha8Rng) {
    let mut hazard_factor = if person.male { 1.0 } else { 0.6 };
    for d in &person.diagnoses {
        hazard_factor *= match d.problem {
            Problem::LungCancer { .. } => 8.0,
            Problem::HeartFailure => 4.0,
            Problem::Rare(0) => 10.0,
            Problem::BreastCancer { .. } => 2.0,
            Problem::Diabetes { .. } => 1.4,
            _ => 1.0,
        };
    }
    let mut year = world.window_start.max(person.birth_date);
    while year < world.reference_date {
        let age = person.age_on(year).max(0) as f64;
        let q = (0.00005 * (0.085 * age).exp() * hazard_factor).min(0.5);
        if rng.random_bool(q) {
            let day = date_between(
                rng,
                year,
                (add_years(year, 1) - Days::new(1)).min(world.reference_date - Days::new(1)),
            );
            // Serious illness first: death not before the last diagnosis.
            let last_diagnosis = person.diagnoses.iter().map(|d| d.onset).max();
            if last_diagnosis.is_none_or(|d| d < day) {
                person.death = Some(day.and_time(clinic_time(rng)));
                return;
            }
        }
        year = add_years(year, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn persons(n_blocks: u64) -> Vec<Person> {
        let world = World::new(NaiveDate::from_ymd_opt(2026, 10, 1).unwrap());
        let mut all = Vec::new();
        for b in 0..n_blocks {
            let mut rng = ChaCha8Rng::seed_from_u64(b);
            all.extend(generate_block(&world, b * BLOCK_SIZE, BLOCK_SIZE, &mut rng));
        }
        all
    }

    #[test]
    fn blocks_fill_their_indices() {
        let ps = persons(50);
        assert_eq!(ps.len(), 200);
        for (i, p) in ps.iter().enumerate() {
            assert_eq!(p.index, i as u64);
            assert!(!p.insurance.is_empty(), "insurance for {}", p.id);
            assert!(!p.addresses.is_empty());
        }
    }

    #[test]
    fn the_elderly_move_to_the_late_stage_scheme() {
        let ps = persons(500);
        let reference = NaiveDate::from_ymd_opt(2026, 9, 30).unwrap();
        for p in &ps {
            let spell = p.insurance_on(reference).unwrap();
            if p.age_on(reference) >= 75 {
                assert_eq!(spell.kind, InsuranceKind::LateStageElderly);
                assert!(spell.insurer.starts_with("39"));
            } else {
                assert_ne!(spell.kind, InsuranceKind::LateStageElderly);
            }
        }
        assert!(ps.iter().any(|p| p.names.len() > 1), "some marriages");
        assert!(ps.iter().any(|p| p.addresses.len() > 1), "some moves");
        assert!(ps.iter().any(|p| p.death.is_some()), "some deaths");
    }
}
