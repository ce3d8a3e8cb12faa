//! The ICD-10 classification (WHO, 2019 edition) as needed by the ICD-10 hierarchy builder:
//! the 22 chapters and, within each, its blocks (the ranges of 3-character categories listed
//! at the start of every chapter of Volume 1, e.g. `E10-E14` Diabetes mellitus).
//!
//! Blocks are the finest ones of the tabular list (`C00-C14`, not the enclosing `C00-C97`), so
//! that category → block → chapter nests. A category between two blocks (`C27`, `A90` after
//! the 2019 revision, ICD-10-CM extensions such as `D49`) belongs to no block.

/// One chapter: Roman numeral, first and last category, and its blocks in code order.
pub(crate) struct Chapter {
    /// Roman numeral (`IV`).
    pub numeral: &'static str,
    /// First category of the chapter (`E00`).
    pub first: &'static str,
    /// Last category of the chapter (`E90`).
    pub last: &'static str,
    /// Blocks as (first category, last category).
    pub blocks: &'static [(&'static str, &'static str)],
}

/// The chapters of ICD-10 (WHO 2019) with their blocks, in chapter order.
pub(crate) const CHAPTERS: [Chapter; 22] = [
    Chapter {
        numeral: "I",
        first: "A00",
        last: "B99",
        blocks: &[
            ("A00", "A09"),
            ("A15", "A19"),
            ("A20", "A28"),
            ("A30", "A49"),
            ("A50", "A64"),
            ("A65", "A69"),
            ("A70", "A74"),
            ("A75", "A79"),
            ("A80", "A89"),
            ("A92", "A99"),
            ("B00", "B09"),
            ("B15", "B19"),
            ("B20", "B24"),
            ("B25", "B34"),
            ("B35", "B49"),
            ("B50", "B64"),
            ("B65", "B83"),
            ("B85", "B89"),
            ("B90", "B94"),
            ("B95", "B98"),
            ("B99", "B99"),
        ],
    },
    Chapter {
        numeral: "II",
        first: "C00",
        last: "D48",
        blocks: &[
            ("C00", "C14"),
            ("C15", "C26"),
            ("C30", "C39"),
            ("C40", "C41"),
            ("C43", "C44"),
            ("C45", "C49"),
            ("C50", "C50"),
            ("C51", "C58"),
            ("C60", "C63"),
            ("C64", "C68"),
            ("C69", "C72"),
            ("C73", "C75"),
            ("C76", "C80"),
            ("C81", "C96"),
            ("C97", "C97"),
            ("D00", "D09"),
            ("D10", "D36"),
            ("D37", "D48"),
        ],
    },
    Chapter {
        numeral: "III",
        first: "D50",
        last: "D89",
        blocks: &[
            ("D50", "D53"),
            ("D55", "D59"),
            ("D60", "D64"),
            ("D65", "D69"),
            ("D70", "D77"),
            ("D80", "D89"),
        ],
    },
    Chapter {
        numeral: "IV",
        first: "E00",
        last: "E90",
        blocks: &[
            ("E00", "E07"),
            ("E10", "E14"),
            ("E15", "E16"),
            ("E20", "E35"),
            ("E40", "E46"),
            ("E50", "E64"),
            ("E65", "E68"),
            ("E70", "E90"),
        ],
    },
    Chapter {
        numeral: "V",
        first: "F00",
        last: "F99",
        blocks: &[
            ("F00", "F09"),
            ("F10", "F19"),
            ("F20", "F29"),
            ("F30", "F39"),
            ("F40", "F48"),
            ("F50", "F59"),
            ("F60", "F69"),
            ("F70", "F79"),
            ("F80", "F89"),
            ("F90", "F98"),
            ("F99", "F99"),
        ],
    },
    Chapter {
        numeral: "VI",
        first: "G00",
        last: "G99",
        blocks: &[
            ("G00", "G09"),
            ("G10", "G14"),
            ("G20", "G26"),
            ("G30", "G32"),
            ("G35", "G37"),
            ("G40", "G47"),
            ("G50", "G59"),
            ("G60", "G64"),
            ("G70", "G73"),
            ("G80", "G83"),
            ("G90", "G99"),
        ],
    },
    Chapter {
        numeral: "VII",
        first: "H00",
        last: "H59",
        blocks: &[
            ("H00", "H06"),
            ("H10", "H13"),
            ("H15", "H22"),
            ("H25", "H28"),
            ("H30", "H36"),
            ("H40", "H42"),
            ("H43", "H45"),
            ("H46", "H48"),
            ("H49", "H52"),
            ("H53", "H54"),
            ("H55", "H59"),
        ],
    },
    Chapter {
        numeral: "VIII",
        first: "H60",
        last: "H95",
        blocks: &[
            ("H60", "H62"),
            ("H65", "H75"),
            ("H80", "H83"),
            ("H90", "H95"),
        ],
    },
    Chapter {
        numeral: "IX",
        first: "I00",
        last: "I99",
        blocks: &[
            ("I00", "I02"),
            ("I05", "I09"),
            ("I10", "I15"),
            ("I20", "I25"),
            ("I26", "I28"),
            ("I30", "I52"),
            ("I60", "I69"),
            ("I70", "I79"),
            ("I80", "I89"),
            ("I95", "I99"),
        ],
    },
    Chapter {
        numeral: "X",
        first: "J00",
        last: "J99",
        blocks: &[
            ("J00", "J06"),
            ("J09", "J18"),
            ("J20", "J22"),
            ("J30", "J39"),
            ("J40", "J47"),
            ("J60", "J70"),
            ("J80", "J84"),
            ("J85", "J86"),
            ("J90", "J94"),
            ("J95", "J99"),
        ],
    },
    Chapter {
        numeral: "XI",
        first: "K00",
        last: "K93",
        blocks: &[
            ("K00", "K14"),
            ("K20", "K31"),
            ("K35", "K38"),
            ("K40", "K46"),
            ("K50", "K52"),
            ("K55", "K64"),
            ("K65", "K67"),
            ("K70", "K77"),
            ("K80", "K87"),
            ("K90", "K93"),
        ],
    },
    Chapter {
        numeral: "XII",
        first: "L00",
        last: "L99",
        blocks: &[
            ("L00", "L08"),
            ("L10", "L14"),
            ("L20", "L30"),
            ("L40", "L45"),
            ("L50", "L54"),
            ("L55", "L59"),
            ("L60", "L75"),
            ("L80", "L99"),
        ],
    },
    Chapter {
        numeral: "XIII",
        first: "M00",
        last: "M99",
        blocks: &[
            ("M00", "M03"),
            ("M05", "M14"),
            ("M15", "M19"),
            ("M20", "M25"),
            ("M30", "M36"),
            ("M40", "M43"),
            ("M45", "M49"),
            ("M50", "M54"),
            ("M60", "M63"),
            ("M65", "M68"),
            ("M70", "M79"),
            ("M80", "M85"),
            ("M86", "M90"),
            ("M91", "M94"),
            ("M95", "M99"),
        ],
    },
    Chapter {
        numeral: "XIV",
        first: "N00",
        last: "N99",
        blocks: &[
            ("N00", "N08"),
            ("N10", "N16"),
            ("N17", "N19"),
            ("N20", "N23"),
            ("N25", "N29"),
            ("N30", "N39"),
            ("N40", "N51"),
            ("N60", "N64"),
            ("N70", "N77"),
            ("N80", "N98"),
            ("N99", "N99"),
        ],
    },
    Chapter {
        numeral: "XV",
        first: "O00",
        last: "O99",
        blocks: &[
            ("O00", "O08"),
            ("O10", "O16"),
            ("O20", "O29"),
            ("O30", "O48"),
            ("O60", "O75"),
            ("O80", "O84"),
            ("O85", "O92"),
            ("O94", "O99"),
        ],
    },
    Chapter {
        numeral: "XVI",
        first: "P00",
        last: "P96",
        blocks: &[
            ("P00", "P04"),
            ("P05", "P08"),
            ("P10", "P15"),
            ("P20", "P29"),
            ("P35", "P39"),
            ("P50", "P61"),
            ("P70", "P74"),
            ("P75", "P78"),
            ("P80", "P83"),
            ("P90", "P96"),
        ],
    },
    Chapter {
        numeral: "XVII",
        first: "Q00",
        last: "Q99",
        blocks: &[
            ("Q00", "Q07"),
            ("Q10", "Q18"),
            ("Q20", "Q28"),
            ("Q30", "Q34"),
            ("Q35", "Q37"),
            ("Q38", "Q45"),
            ("Q50", "Q56"),
            ("Q60", "Q64"),
            ("Q65", "Q79"),
            ("Q80", "Q89"),
            ("Q90", "Q99"),
        ],
    },
    Chapter {
        numeral: "XVIII",
        first: "R00",
        last: "R99",
        blocks: &[
            ("R00", "R09"),
            ("R10", "R19"),
            ("R20", "R23"),
            ("R25", "R29"),
            ("R30", "R39"),
            ("R40", "R46"),
            ("R47", "R49"),
            ("R50", "R69"),
            ("R70", "R79"),
            ("R80", "R82"),
            ("R83", "R89"),
            ("R90", "R94"),
            ("R95", "R99"),
        ],
    },
    Chapter {
        numeral: "XIX",
        first: "S00",
        last: "T98",
        blocks: &[
            ("S00", "S09"),
            ("S10", "S19"),
            ("S20", "S29"),
            ("S30", "S39"),
            ("S40", "S49"),
            ("S50", "S59"),
            ("S60", "S69"),
            ("S70", "S79"),
            ("S80", "S89"),
            ("S90", "S99"),
            ("T00", "T07"),
            ("T08", "T14"),
            ("T15", "T19"),
            ("T20", "T25"),
            ("T26", "T28"),
            ("T29", "T32"),
            ("T33", "T35"),
            ("T36", "T50"),
            ("T51", "T65"),
            ("T66", "T78"),
            ("T79", "T79"),
            ("T80", "T88"),
            ("T90", "T98"),
        ],
    },
    Chapter {
        numeral: "XX",
        first: "V01",
        last: "Y98",
        blocks: &[
            ("V01", "V09"),
            ("V10", "V19"),
            ("V20", "V29"),
            ("V30", "V39"),
            ("V40", "V49"),
            ("V50", "V59"),
            ("V60", "V69"),
            ("V70", "V79"),
            ("V80", "V89"),
            ("V90", "V94"),
            ("V95", "V97"),
            ("V98", "V99"),
            ("W00", "W19"),
            ("W20", "W49"),
            ("W50", "W64"),
            ("W65", "W74"),
            ("W75", "W84"),
            ("W85", "W99"),
            ("X00", "X09"),
            ("X10", "X19"),
            ("X20", "X29"),
            ("X30", "X39"),
            ("X40", "X49"),
            ("X50", "X57"),
            ("X58", "X59"),
            ("X60", "X84"),
            ("X85", "Y09"),
            ("Y10", "Y34"),
            ("Y35", "Y36"),
            ("Y40", "Y59"),
            ("Y60", "Y69"),
            ("Y70", "Y82"),
            ("Y83", "Y84"),
            ("Y85", "Y89"),
            ("Y90", "Y98"),
        ],
    },
    Chapter {
        numeral: "XXI",
        first: "Z00",
        last: "Z99",
        blocks: &[
            ("Z00", "Z13"),
            ("Z20", "Z29"),
            ("Z30", "Z39"),
            ("Z40", "Z54"),
            ("Z55", "Z65"),
            ("Z70", "Z76"),
            ("Z80", "Z99"),
        ],
    },
    Chapter {
        numeral: "XXII",
        first: "U00",
        last: "U85",
        blocks: &[("U00", "U49"), ("U82", "U85")],
    },
];

/// Where a 3-character category sits in the classification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placement {
    /// Block label, `E10-E14` (a one-category block is `C50-C50`, as in the WHO browser).
    pub block: String,
    /// Chapter label, `IV E00-E90`.
    pub chapter: String,
}

/// The 3-character category of an ICD-10 code (`E11.9`, `E119`, `e11` → `E11`), when it has
/// the form letter + two digits.
pub(crate) fn category(code: &str) -> Option<String> {
    let mut chars = code.trim().chars();
    let letter = chars.next()?.to_ascii_uppercase();
    let tens = chars.next()?;
    let units = chars.next()?;
    (letter.is_ascii_uppercase() && tens.is_ascii_digit() && units.is_ascii_digit())
        .then(|| format!("{letter}{tens}{units}"))
}

/// The chapter label (`IV E00-E90`) of a 3-character category inside a chapter's range.
pub(crate) fn chapter(category: &str) -> Option<String> {
    CHAPTERS
        .iter()
        .find(|c| c.first <= category && category <= c.last)
        .map(|c| format!("{} {}-{}", c.numeral, c.first, c.last))
}

/// The block and chapter of a 3-character category (`E11`), or `None` when no block of
/// ICD-10 (WHO 2019) contains it.
pub(crate) fn place(category: &str) -> Option<Placement> {
    // Categories compare as strings: one capital letter and two digits each.
    CHAPTERS.iter().find_map(|chapter| {
        chapter
            .blocks
            .iter()
            .find(|(first, last)| *first <= category && category <= *last)
            .map(|(first, last)| Placement {
                block: format!("{first}-{last}"),
                chapter: format!("{} {}-{}", chapter.numeral, chapter.first, chapter.last),
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_ordered_disjoint_and_inside_their_chapter() {
        for chapter in &CHAPTERS {
            assert_eq!(chapter.blocks[0].0, chapter.first, "{}", chapter.numeral);
            assert_eq!(
                chapter.blocks[chapter.blocks.len() - 1].1,
                chapter.last,
                "{}",
                chapter.numeral
            );
            for (first, last) in chapter.blocks {
                assert!(first <= last, "{first}-{last}");
                assert!(category(first).as_deref() == Some(*first));
                assert!(category(last).as_deref() == Some(*last));
            }
            for pair in chapter.blocks.windows(2) {
                assert!(pair[0].1 < pair[1].0, "{:?} then {:?}", pair[0], pair[1]);
            }
        }
        // Chapters do not overlap either (U comes last in numbering, not in code order).
        let mut ranges: Vec<(&str, &str)> = CHAPTERS.iter().map(|c| (c.first, c.last)).collect();
        ranges.sort_unstable();
        for pair in ranges.windows(2) {
            assert!(pair[0].1 < pair[1].0, "{:?} then {:?}", pair[0], pair[1]);
        }
        let blocks: usize = CHAPTERS.iter().map(|c| c.blocks.len()).sum();
        assert_eq!(blocks, 263);
    }

    #[test]
    fn places_categories_at_block_boundaries() {
        let at = |c: &str| place(c).map(|p| (p.block, p.chapter));
        let placed = |block: &str, chapter: &str| Some((block.to_string(), chapter.to_string()));
        assert_eq!(at("E10"), placed("E10-E14", "IV E00-E90"));
        assert_eq!(at("E14"), placed("E10-E14", "IV E00-E90"));
        assert_eq!(at("E15"), placed("E15-E16", "IV E00-E90"));
        assert_eq!(at("E90"), placed("E70-E90", "IV E00-E90"));
        assert_eq!(at("C50"), placed("C50-C50", "II C00-D48"));
        assert_eq!(at("D48"), placed("D37-D48", "II C00-D48"));
        assert_eq!(at("D50"), placed("D50-D53", "III D50-D89"));
        assert_eq!(at("H59"), placed("H55-H59", "VII H00-H59"));
        assert_eq!(at("H60"), placed("H60-H62", "VIII H60-H95"));
        assert_eq!(at("T79"), placed("T79-T79", "XIX S00-T98"));
        assert_eq!(at("X85"), placed("X85-Y09", "XX V01-Y98"));
        assert_eq!(at("Y09"), placed("X85-Y09", "XX V01-Y98"));
        assert_eq!(at("U07"), placed("U00-U49", "XXII U00-U85"));
        assert_eq!(at("U82"), placed("U82-U85", "XXII U00-U85"));
        assert_eq!(chapter("C27").as_deref(), Some("II C00-D48"));
        assert_eq!(chapter("D49"), None);
        for gap in [
            "A10", "A90", "C27", "D49", "D90", "E91", "H96", "K94", "U50", "U99",
        ] {
            assert_eq!(at(gap), None, "{gap}");
        }
    }
}
