//! Japanese names with readings, and the ways providers spell them differently.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

/// Surnames with their katakana reading and a relative frequency (common ones first, then rare).
pub const SURNAMES: &[(&str, &str, u32)] = &[
    ("佐藤", "サトウ", 180),
    ("鈴木", "スズキ", 170),
    ("高橋", "タカハシ", 140),
    ("田中", "タナカ", 130),
    ("伊藤", "イトウ", 110),
    ("渡辺", "ワタナベ", 110),
    ("山本", "ヤマモト", 105),
    ("中村", "ナカムラ", 105),
    ("小林", "コバヤシ", 100),
    ("加藤", "カトウ", 90),
    ("吉田", "ヨシダ", 85),
    ("山田", "ヤマダ", 80),
    ("佐々木", "ササキ", 70),
    ("山口", "ヤマグチ", 65),
    ("松本", "マツモト", 63),
    ("井上", "イノウエ", 60),
    ("木村", "キムラ", 58),
    ("林", "ハヤシ", 55),
    ("斎藤", "サイトウ", 55),
    ("斉藤", "サイトウ", 30),
    ("清水", "シミズ", 52),
    ("山崎", "ヤマザキ", 50),
    ("森", "モリ", 48),
    ("池田", "イケダ", 45),
    ("橋本", "ハシモト", 45),
    ("阿部", "アベ", 45),
    ("石川", "イシカワ", 42),
    ("山下", "ヤマシタ", 40),
    ("中島", "ナカジマ", 30),
    ("中島", "ナカシマ", 10),
    ("石井", "イシイ", 38),
    ("小川", "オガワ", 38),
    ("前田", "マエダ", 37),
    ("岡田", "オカダ", 37),
    ("長谷川", "ハセガワ", 36),
    ("藤田", "フジタ", 36),
    ("後藤", "ゴトウ", 35),
    ("近藤", "コンドウ", 35),
    ("村上", "ムラカミ", 34),
    ("遠藤", "エンドウ", 33),
    ("青木", "アオキ", 32),
    ("坂本", "サカモト", 31),
    ("福田", "フクダ", 30),
    ("太田", "オオタ", 30),
    ("西村", "ニシムラ", 29),
    ("藤井", "フジイ", 29),
    ("岡本", "オカモト", 28),
    ("松田", "マツダ", 28),
    ("中川", "ナカガワ", 27),
    ("原田", "ハラダ", 26),
    ("小野", "オノ", 26),
    ("田村", "タムラ", 26),
    ("竹内", "タケウチ", 25),
    ("金子", "カネコ", 25),
    ("和田", "ワダ", 24),
    ("中山", "ナカヤマ", 24),
    ("石田", "イシダ", 23),
    ("上田", "ウエダ", 23),
    ("森田", "モリタ", 22),
    ("柴田", "シバタ", 21),
    ("酒井", "サカイ", 21),
    ("工藤", "クドウ", 20),
    ("横山", "ヨコヤマ", 20),
    ("宮崎", "ミヤザキ", 20),
    ("宮本", "ミヤモト", 19),
    ("内田", "ウチダ", 19),
    ("高木", "タカギ", 19),
    ("安藤", "アンドウ", 18),
    ("谷口", "タニグチ", 18),
    ("大野", "オオノ", 18),
    ("高田", "タカダ", 16),
    ("藤原", "フジワラ", 16),
    ("河野", "コウノ", 12),
    ("河野", "カワノ", 5),
    ("小島", "コジマ", 15),
    ("武田", "タケダ", 15),
    ("千葉", "チバ", 14),
    ("岩崎", "イワサキ", 14),
    ("桜井", "サクライ", 13),
    ("菊地", "キクチ", 13),
    ("渡部", "ワタナベ", 8),
    ("渡部", "ワタベ", 5),
    ("浜田", "ハマダ", 12),
    ("田辺", "タナベ", 11),
    ("野沢", "ノザワ", 8),
    ("広瀬", "ヒロセ", 9),
    ("五十嵐", "イガラシ", 8),
    ("東海林", "ショウジ", 2),
    ("勅使河原", "テシガワラ", 1),
    ("小鳥遊", "タカナシ", 1),
    ("御手洗", "ミタライ", 1),
    ("百目鬼", "ドウメキ", 1),
    ("薬師寺", "ヤクシジ", 1),
    ("一寸木", "チョッキ", 1),
    ("長宗我部", "チョウソガベ", 1),
];

/// Variant (異体字) spellings: the common character and its variants found in family registers.
pub const KANJI_VARIANTS: &[(char, &[char])] = &[
    ('高', &['髙']),
    ('崎', &['﨑']),
    ('斎', &['齋', '齊']),
    ('辺', &['邊', '邉']),
    ('桜', &['櫻']),
    ('浜', &['濱']),
    ('沢', &['澤']),
    ('広', &['廣']),
];

/// Given names (kanji, reading) by sex and birth cohort.
const MALE_BEFORE_1950: &[(&str, &str)] = &[
    ("清", "キヨシ"),
    ("茂", "シゲル"),
    ("博", "ヒロシ"),
    ("実", "ミノル"),
    ("勇", "イサム"),
    ("進", "ススム"),
    ("正", "タダシ"),
    ("昭", "アキラ"),
    ("勝", "マサル"),
    ("武", "タケシ"),
];
const MALE_1950_1979: &[(&str, &str)] = &[
    ("誠", "マコト"),
    ("浩", "ヒロシ"),
    ("修", "オサム"),
    ("隆", "タカシ"),
    ("健一", "ケンイチ"),
    ("哲也", "テツヤ"),
    ("直樹", "ナオキ"),
    ("秀樹", "ヒデキ"),
    ("和也", "カズヤ"),
    ("大輔", "ダイスケ"),
];
const MALE_1980_1999: &[(&str, &str)] = &[
    ("翔太", "ショウタ"),
    ("拓也", "タクヤ"),
    ("健太", "ケンタ"),
    ("大樹", "ダイキ"),
    ("達也", "タツヤ"),
    ("翔", "ショウ"),
    ("亮", "リョウ"),
    ("直人", "ナオト"),
    ("翼", "ツバサ"),
    ("雄太", "ユウタ"),
];
const MALE_FROM_2000: &[(&str, &str)] = &[
    ("蓮", "レン"),
    ("湊", "ミナト"),
    ("陽翔", "ハルト"),
    ("悠真", "ユウマ"),
    ("大翔", "ヒロト"),
    ("蒼", "アオイ"),
    ("樹", "イツキ"),
    ("律", "リツ"),
    ("颯", "ハヤテ"),
    ("陽太", "ヨウタ"),
];
const FEMALE_BEFORE_1950: &[(&str, &str)] = &[
    ("和子", "カズコ"),
    ("幸子", "サチコ"),
    ("節子", "セツコ"),
    ("文子", "フミコ"),
    ("信子", "ノブコ"),
    ("京子", "キョウコ"),
    ("美代子", "ミヨコ"),
    ("久子", "ヒサコ"),
    ("トメ", "トメ"),
    ("キヨ", "キヨ"),
];
const FEMALE_1950_1979: &[(&str, &str)] = &[
    ("恵子", "ケイコ"),
    ("裕子", "ユウコ"),
    ("由美子", "ユミコ"),
    ("久美子", "クミコ"),
    ("真由美", "マユミ"),
    ("明美", "アケミ"),
    ("直美", "ナオミ"),
    ("陽子", "ヨウコ"),
    ("純子", "ジュンコ"),
    ("智子", "トモコ"),
];
const FEMALE_1980_1999: &[(&str, &str)] = &[
    ("愛", "アイ"),
    ("彩", "アヤ"),
    ("美穂", "ミホ"),
    ("麻衣", "マイ"),
    ("舞", "マイ"),
    ("沙織", "サオリ"),
    ("絵美", "エミ"),
    ("優子", "ユウコ"),
    ("千尋", "チヒロ"),
    ("未来", "ミク"),
];
const FEMALE_FROM_2000: &[(&str, &str)] = &[
    ("陽葵", "ヒマリ"),
    ("結菜", "ユイナ"),
    ("芽依", "メイ"),
    ("葵", "アオイ"),
    ("凛", "リン"),
    ("紬", "ツムギ"),
    ("結愛", "ユア"),
    ("咲良", "サクラ"),
    ("美咲", "ミサキ"),
    ("莉子", "リコ"),
];

/// A surname drawn by frequency, as (kanji, kana); the kanji may carry a register variant.
pub fn surname(rng: &mut ChaCha8Rng) -> (String, String) {
    let total: u32 = SURNAMES.iter().map(|s| s.2).sum();
    let mut pick = rng.random_range(0..total);
    let mut chosen = SURNAMES[0];
    for s in SURNAMES {
        if pick < s.2 {
            chosen = *s;
            break;
        }
        pick -= s.2;
    }
    let mut kanji = chosen.0.to_owned();
    // About one family in ten whose name has a variant-prone character is registered with it.
    if rng.random_bool(0.12) {
        kanji = apply_variant(&kanji, rng);
    }
    (kanji, chosen.1.to_owned())
}

/// A given name for the sex (`true` = male) and birth year, as (kanji, kana).
pub fn given_name(rng: &mut ChaCha8Rng, male: bool, birth_year: i32) -> (String, String) {
    let table = match (male, birth_year) {
        (true, ..1950) => MALE_BEFORE_1950,
        (true, 1950..1980) => MALE_1950_1979,
        (true, 1980..2000) => MALE_1980_1999,
        (true, _) => MALE_FROM_2000,
        (false, ..1950) => FEMALE_BEFORE_1950,
        (false, 1950..1980) => FEMALE_1950_1979,
        (false, 1980..2000) => FEMALE_1980_1999,
        (false, _) => FEMALE_FROM_2000,
    };
    let (k, r) = table[rng.random_range(0..table.len())];
    (k.to_owned(), r.to_owned())
}

/// Replaces variant-prone characters by one of their register variants.
pub fn apply_variant(kanji: &str, rng: &mut ChaCha8Rng) -> String {
    kanji
        .chars()
        .map(
            |c| match KANJI_VARIANTS.iter().find(|(base, _)| *base == c) {
                Some((_, variants)) => variants[rng.random_range(0..variants.len())],
                None => c,
            },
        )
        .collect()
}

/// Replaces register variants by their common character (what systems without 外字 store).
pub fn normalize_variants(kanji: &str) -> String {
    kanji
        .chars()
        .map(|c| {
            KANJI_VARIANTS
                .iter()
                .find(|(_, variants)| variants.contains(&c))
                .map_or(c, |(base, _)| *base)
        })
        .collect()
}

/// Converts katakana to hiragana.
pub fn to_hiragana(kana: &str) -> String {
    kana.chars()
        .map(|c| match c {
            'ァ'..='ヶ' => char::from_u32(c as u32 - 0x60).unwrap_or(c),
            other => other,
        })
        .collect()
}

/// Converts full-width katakana (and digits, space) to their half-width forms.
pub fn to_half_width_kana(kana: &str) -> String {
    let mut out = String::with_capacity(kana.len());
    for c in kana.chars() {
        let (base, mark) = decompose_voiced(c);
        match half_width_katakana(base) {
            Some(h) => {
                out.push(h);
                if let Some(m) = mark {
                    out.push(m);
                }
            }
            None => out.push(match c {
                '　' => ' ',
                '０'..='９' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
                'ー' => 'ｰ',
                other => other,
            }),
        }
    }
    out
}

/// Converts ASCII digits (and `-`, `:`) to full width.
pub fn to_full_width_digits(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '0'..='9' => char::from_u32(c as u32 + 0xFEE0).unwrap_or(c),
            '-' => '－',
            ':' => '：',
            other => other,
        })
        .collect()
}

fn decompose_voiced(c: char) -> (char, Option<char>) {
    const DAKUTEN: &str = "ガギグゲゴザジズゼゾダヂヅデドバビブベボ";
    const HANDAKUTEN: &str = "パピプペポ";
    if DAKUTEN.contains(c) {
        (char::from_u32(c as u32 - 1).unwrap_or(c), Some('ﾞ'))
    } else if HANDAKUTEN.contains(c) {
        (char::from_u32(c as u32 - 2).unwrap_or(c), Some('ﾟ'))
    } else if c == 'ヴ' {
        ('ウ', Some('ﾞ'))
    } else {
        (c, None)
    }
}

fn half_width_katakana(c: char) -> Option<char> {
    const FULL: &str = "ァアィイゥウェエォオカキクケコサシスセソタチッツテトナニヌネノハヒフヘホマミムメモャヤュユョヨラリルレロワヲンー";
    const HALF: &str = "ｧｱｨｲｩｳｪｴｫｵｶｷｸｹｺｻｼｽｾｿﾀﾁｯﾂﾃﾄﾅﾆﾇﾈﾉﾊﾋﾌﾍﾎﾏﾐﾑﾒﾓｬﾔｭﾕｮﾖﾗﾘﾙﾚﾛﾜｦﾝｰ";
    FULL.chars()
        .position(|f| f == c)
        .and_then(|i| HALF.chars().nth(i))
}

/// A plausible typing error in a kana reading: a confusable character or a dropped long mark.
pub fn kana_typo(kana: &str, rng: &mut ChaCha8Rng) -> String {
    const CONFUSABLE: &[(char, char)] = &[
        ('シ', 'ツ'),
        ('ツ', 'シ'),
        ('ソ', 'ン'),
        ('ン', 'ソ'),
        ('ウ', 'ワ'),
        ('ヨ', 'ョ'),
        ('ッ', 'ツ'),
        ('ユ', 'ュ'),
        ('ジ', 'ヂ'),
        ('ズ', 'ヅ'),
        ('オ', 'ヲ'),
    ];
    let chars: Vec<char> = kana.chars().collect();
    let candidates: Vec<usize> = chars
        .iter()
        .enumerate()
        .filter(|(_, c)| CONFUSABLE.iter().any(|(a, _)| a == *c))
        .map(|(i, _)| i)
        .collect();
    if candidates.is_empty() {
        // Swap two adjacent characters instead.
        if chars.len() < 2 {
            return kana.to_owned();
        }
        let i = rng.random_range(0..chars.len() - 1);
        let mut swapped = chars.clone();
        swapped.swap(i, i + 1);
        return swapped.into_iter().collect();
    }
    let i = candidates[rng.random_range(0..candidates.len())];
    let mut out = chars.clone();
    if let Some((_, b)) = CONFUSABLE.iter().find(|(a, _)| *a == chars[i]) {
        out[i] = *b;
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn kana_conversions() {
        assert_eq!(to_hiragana("タカハシ ハナコ"), "たかはし はなこ");
        assert_eq!(to_half_width_kana("ガッコウ　パン"), "ｶﾞｯｺｳ ﾊﾟﾝ");
        assert_eq!(to_full_width_digits("06130012:1"), "０６１３００１２：１");
        assert_eq!(normalize_variants("髙橋"), "高橋");
        assert_eq!(normalize_variants("渡邉"), "渡辺");
    }

    #[test]
    fn typos_change_the_reading() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_ne!(kana_typo("スズキ", &mut rng), "スズキ");
        assert_ne!(kana_typo("サイトウ", &mut rng), "サイトウ");
    }
}
