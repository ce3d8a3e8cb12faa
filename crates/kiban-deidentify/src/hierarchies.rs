//! Generalization hierarchies of the person table's quasi-identifiers, in the form of ARX
//! hierarchy rows (`value;level1;...;*`), so that `kiban anonymize` can generalize the table
//! and the linkage attack ([`crate::generalizes`]) can read every generalized value.

use kiban_model::PREFECTURES;

/// The regional block of a prefecture (地方区分).
pub use kiban_model::regional_block as region_block;

/// Label of a value nobody knows (kept apart from every known value at every level).
const UNKNOWN: &str = "unknown";

/// How far the `visits` quasi-identifier of the person table may be generalized.
///
/// `visits` is the number of the person's encounter rows. When the release holds those
/// rows, anyone can count them per `person`: a generalized count in `persons.csv` would hide
/// nothing, and the k-anonymity claimed over it would not hold. So it is generalized only
/// when the release holds no encounter rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitsGeneralization {
    /// Not generalized: the hierarchy has the exact count only, so k-anonymity is reached by
    /// generalizing the other quasi-identifiers or suppressing rows. For releases holding
    /// the encounters table (`kiban deidentify` without `--without-encounters`).
    #[default]
    Exact,
    /// Exact → 1, 2-3, 4-7, 8-15, 16+ → 0-3, 4-15, 16+ → `*`. Sound only for a release
    /// without the encounters table (`kiban deidentify --without-encounters`, which also
    /// removes the references to encounters); other tables' service dates still let visits
    /// be estimated.
    Bands,
}

/// Hierarchy rows of a person-table column (`age`, `sex`, `region`, `visits`, `deceased`)
/// over the values present; `None` for other columns. Every row ends in `*`, except those of
/// `visits`, which is not generalized ([`VisitsGeneralization::Exact`]), and of `deceased`,
/// never generalized (the released deaths table shows it).
///
/// - age: exact → 5-year band → 10-year band → 20-year band (`80+` for 80 and over; a
///   top-coded `90+` stays `90+` until then) → `*`;
/// - sex: exact → `*`;
/// - region: prefecture → regional block → `*`, and `postal-NN` → `postal-N*` → `*`;
/// - visits: exact only, since the release's encounter rows can be counted;
/// - deceased (`yes`/`no`): exact only, since the release's death rows can be seen.
pub fn hierarchy_rows<'a>(
    column: &str,
    values: impl IntoIterator<Item = &'a str>,
) -> Option<Vec<Vec<String>>> {
    hierarchy_rows_with(column, values, VisitsGeneralization::Exact)
}

/// [`hierarchy_rows`], with `visits` generalized as `visits` says.
pub fn hierarchy_rows_with<'a>(
    column: &str,
    values: impl IntoIterator<Item = &'a str>,
    visits: VisitsGeneralization,
) -> Option<Vec<Vec<String>>> {
    let row_of: fn(&str) -> Vec<String> = match (column, visits) {
        ("age", _) => age_row,
        ("sex", _) => |v| vec![v.to_owned(), "*".to_owned()],
        ("region", _) => region_row,
        ("visits", VisitsGeneralization::Exact) => |v| vec![v.to_owned()],
        ("visits", VisitsGeneralization::Bands) => visits_row,
        // Whether a death row exists can be read from the released deaths table.
        ("deceased", _) => |v| vec![v.to_owned()],
        _ => return None,
    };
    let mut rows: Vec<Vec<String>> = values.into_iter().map(row_of).collect();
    rows.sort();
    rows.dedup();
    Some(rows)
}

fn unknown_row(value: &str, levels: usize) -> Vec<String> {
    let mut row = vec![value.to_owned()];
    row.extend(std::iter::repeat_n(UNKNOWN.to_owned(), levels - 1));
    row.push("*".to_owned());
    row
}

fn age_row(value: &str) -> Vec<String> {
    let top_coded = value
        .strip_suffix('+')
        .and_then(|v| v.trim().parse::<u32>().ok());
    if let Some(top) = top_coded {
        let label = value.to_owned();
        let twenty = if top >= 80 {
            "80+".to_owned()
        } else {
            label.clone()
        };
        return vec![
            value.to_owned(),
            label.clone(),
            label,
            twenty,
            "*".to_owned(),
        ];
    }
    let Ok(age) = value.trim().parse::<u32>() else {
        return unknown_row(value, 4);
    };
    let band = |width: u32| {
        let low = age / width * width;
        format!("{low}-{}", low + width - 1)
    };
    let twenty = if age >= 80 {
        "80+".to_owned()
    } else {
        band(20)
    };
    vec![value.to_owned(), band(5), band(10), twenty, "*".to_owned()]
}

fn region_row(value: &str) -> Vec<String> {
    if let Some(block) = PREFECTURES
        .contains(&value)
        .then(|| region_block(value))
        .flatten()
    {
        return vec![value.to_owned(), block.to_owned(), "*".to_owned()];
    }
    if let Some(digits) = value.strip_prefix("postal-")
        && let Some(first) = digits.chars().next()
    {
        return vec![value.to_owned(), format!("postal-{first}*"), "*".to_owned()];
    }
    unknown_row(value, 2)
}

fn visits_row(value: &str) -> Vec<String> {
    let Ok(visits) = value.trim().parse::<u64>() else {
        return unknown_row(value, 3);
    };
    let fine = match visits {
        0..=1 => format!("{visits}"),
        2..=3 => "2-3".to_owned(),
        4..=7 => "4-7".to_owned(),
        8..=15 => "8-15".to_owned(),
        _ => "16+".to_owned(),
    };
    let coarse = match visits {
        0..=3 => "0-3",
        4..=15 => "4-15",
        _ => "16+",
    };
    vec![value.to_owned(), fine, coarse.to_owned(), "*".to_owned()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generalizes;

    #[test]
    fn every_prefecture_has_a_block() {
        assert!(PREFECTURES.iter().all(|p| region_block(p).is_some()));
    }

    #[test]
    fn generalized_values_are_read_by_the_attack() {
        let ages = hierarchy_rows("age", ["37", "84", "90+", ""]).unwrap();
        for row in &ages {
            for label in &row[1..] {
                if row[0].is_empty() || label == UNKNOWN {
                    continue;
                }
                let known = row[0].trim_end_matches('+');
                assert!(generalizes(label, known), "{label} should cover {known}");
            }
        }
        assert!(!generalizes("35-39", "41"));
        assert!(generalizes("関東地方", "東京都"));
        assert!(!generalizes("関東地方", "大阪府"));
        assert!(generalizes("postal-1*", "postal-13"));
        let regions = hierarchy_rows("region", ["東京都", "postal-13", ""]).unwrap();
        assert!(
            regions
                .iter()
                .all(|r| r.last().map(String::as_str) == Some("*"))
        );
        // Visits are countable from the released encounter rows: never generalized by
        // default.
        let visits = hierarchy_rows("visits", ["1", "5", "40"]).unwrap();
        assert_eq!(visits, vec![vec!["1"], vec!["40"], vec!["5"]]);
        let visits =
            hierarchy_rows_with("visits", ["1", "5", "40"], VisitsGeneralization::Bands).unwrap();
        assert_eq!(visits[2], vec!["5", "4-7", "4-15", "*"]);
        assert!(generalizes("16+", "40"));
        assert!(hierarchy_rows("diagnoses", ["E11"]).is_none());
        let deceased = hierarchy_rows("deceased", ["yes", "no", "yes"]).unwrap();
        assert_eq!(deceased, vec![vec!["no"], vec!["yes"]]);
    }
}
