//! Municipalities with postal prefixes and phone area codes; insurer numbers with check digits.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

/// A municipality where persons live.
#[derive(Debug, Clone, Copy)]
pub struct Municipality {
    /// Prefecture (都道府県).
    pub prefecture: &'static str,
    /// JIS prefecture number (01..47).
    pub prefecture_code: u32,
    /// City / ward (市区町村).
    pub city: &'static str,
    /// First three digits of the postal codes of the municipality.
    pub postal_prefix: &'static str,
    /// Range of the 4th-5th postal digits in use.
    pub postal_range: (u32, u32),
    /// Telephone area code.
    pub area_code: &'static str,
    /// Town names (町名) of the municipality.
    pub towns: &'static [&'static str],
    /// Relative share of the synthetic population living here.
    pub weight: u32,
    /// Three-digit municipal part of its national health insurance insurer number.
    pub nhi_code: u32,
}

macro_rules! muni {
    ($pref:literal, $pc:literal, $city:literal, $postal:literal, $range:expr, $area:literal, $towns:expr, $w:literal, $nhi:literal) => {
        Municipality {
            prefecture: $pref,
            prefecture_code: $pc,
            city: $city,
            postal_prefix: $postal,
            postal_range: $range,
            area_code: $area,
            towns: $towns,
            weight: $w,
            nhi_code: $nhi,
        }
    };
}

/// The city whose municipal office sends health checkups: its wards are the entries of
/// [`MUNICIPALITIES`] whose `city` starts with it.
pub const CHECKUP_CITY: &str = "横浜市";

/// Municipalities (real names and postal prefixes), weighted toward the Kanto region where the
/// synthetic providers are.
pub const MUNICIPALITIES: &[Municipality] = &[
    muni!(
        "神奈川県",
        14,
        "横浜市港北区",
        "222",
        (1, 37),
        "045",
        &["日吉", "綱島西", "大倉山", "菊名", "新横浜"],
        90,
        100
    ),
    muni!(
        "神奈川県",
        14,
        "横浜市青葉区",
        "225",
        (1, 25),
        "045",
        &["あざみ野", "青葉台", "美しが丘", "藤が丘"],
        70,
        100
    ),
    muni!(
        "神奈川県",
        14,
        "横浜市中区",
        "231",
        (1, 68),
        "045",
        &["山下町", "本町", "元町", "石川町"],
        40,
        100
    ),
    muni!(
        "神奈川県",
        14,
        "横浜市戸塚区",
        "244",
        (1, 5),
        "045",
        &["戸塚町", "上倉田町", "吉田町"],
        60,
        100
    ),
    muni!(
        "神奈川県",
        14,
        "川崎市中原区",
        "211",
        (1, 68),
        "044",
        &["小杉町", "新丸子町", "木月", "武蔵小杉"],
        60,
        131
    ),
    muni!(
        "神奈川県",
        14,
        "相模原市中央区",
        "252",
        (2, 39),
        "042",
        &["相模原", "淵野辺", "矢部"],
        35,
        150
    ),
    muni!(
        "東京都",
        13,
        "新宿区",
        "160",
        (1, 23),
        "03",
        &["西新宿", "高田馬場", "大久保", "四谷"],
        45,
        104
    ),
    muni!(
        "東京都",
        13,
        "世田谷区",
        "154",
        (1, 24),
        "03",
        &["三軒茶屋", "太子堂", "下馬", "池尻"],
        60,
        112
    ),
    muni!(
        "東京都",
        13,
        "練馬区",
        "176",
        (1, 23),
        "03",
        &["豊玉北", "練馬", "春日町", "桜台"],
        50,
        120
    ),
    muni!(
        "東京都",
        13,
        "八王子市",
        "192",
        (1, 98),
        "042",
        &["旭町", "明神町", "子安町", "元本郷町"],
        35,
        201
    ),
    muni!(
        "東京都",
        13,
        "町田市",
        "194",
        (1, 45),
        "042",
        &["原町田", "森野", "中町"],
        30,
        209
    ),
    muni!(
        "埼玉県",
        11,
        "さいたま市浦和区",
        "330",
        (53, 75),
        "048",
        &["高砂", "常盤", "岸町", "仲町"],
        35,
        100
    ),
    muni!(
        "埼玉県",
        11,
        "川口市",
        "332",
        (1, 35),
        "048",
        &["栄町", "本町", "幸町"],
        30,
        203
    ),
    muni!(
        "千葉県",
        12,
        "千葉市中央区",
        "260",
        (1, 45),
        "043",
        &["中央", "富士見", "新町", "本千葉町"],
        30,
        100
    ),
    muni!(
        "千葉県",
        12,
        "船橋市",
        "273",
        (1, 48),
        "047",
        &["本町", "湊町", "宮本"],
        30,
        204
    ),
    muni!(
        "大阪府",
        27,
        "大阪市北区",
        "530",
        (1, 57),
        "06",
        &["梅田", "天神橋", "中之島", "曽根崎"],
        20,
        100
    ),
    muni!(
        "大阪府",
        27,
        "堺市堺区",
        "590",
        (1, 98),
        "072",
        &["南瓦町", "大町東", "中瓦町"],
        10,
        140
    ),
    muni!(
        "愛知県",
        23,
        "名古屋市中区",
        "460",
        (1, 26),
        "052",
        &["栄", "錦", "丸の内", "大須"],
        15,
        100
    ),
    muni!(
        "福岡県",
        40,
        "福岡市博多区",
        "812",
        (1, 44),
        "092",
        &["博多駅前", "中洲", "祇園町"],
        10,
        130
    ),
    muni!(
        "北海道",
        1,
        "札幌市中央区",
        "060",
        (1, 42),
        "011",
        &["北一条西", "大通西", "南三条西"],
        10,
        100
    ),
    muni!(
        "宮城県",
        4,
        "仙台市青葉区",
        "980",
        (1, 23),
        "022",
        &["一番町", "中央", "国分町"],
        8,
        100
    ),
    muni!(
        "広島県",
        34,
        "広島市中区",
        "730",
        (1, 51),
        "082",
        &["紙屋町", "大手町", "八丁堀"],
        6,
        100
    ),
    muni!(
        "京都府",
        26,
        "京都市左京区",
        "606",
        (1, 89),
        "075",
        &["吉田本町", "田中里ノ前町", "北白川"],
        6,
        100
    ),
    muni!(
        "兵庫県",
        28,
        "神戸市中央区",
        "650",
        (1, 46),
        "078",
        &["三宮町", "元町通", "北長狭通"],
        6,
        100
    ),
    muni!(
        "静岡県",
        22,
        "静岡市葵区",
        "420",
        (1, 88),
        "054",
        &["追手町", "紺屋町", "呉服町"],
        6,
        100
    ),
    muni!(
        "新潟県",
        15,
        "新潟市中央区",
        "951",
        (1, 88),
        "025",
        &["古町通", "西堀通", "学校町通"],
        4,
        100
    ),
    muni!(
        "長野県",
        20,
        "松本市",
        "390",
        (1, 87),
        "0263",
        &["中央", "大手", "城東"],
        4,
        202
    ),
    muni!(
        "茨城県",
        8,
        "つくば市",
        "305",
        (1, 48),
        "029",
        &["吾妻", "竹園", "天久保"],
        5,
        220
    ),
    muni!(
        "熊本県",
        43,
        "熊本市中央区",
        "860",
        (1, 88),
        "096",
        &["手取本町", "上通町", "新市街"],
        4,
        100
    ),
    muni!(
        "沖縄県",
        47,
        "那覇市",
        "900",
        (1, 38),
        "098",
        &["久茂地", "松山", "泉崎"],
        4,
        201
    ),
];

/// Draws a municipality index by population weight.
pub fn municipality_index(rng: &mut ChaCha8Rng) -> usize {
    let total: u32 = MUNICIPALITIES.iter().map(|m| m.weight).sum();
    let mut pick = rng.random_range(0..total);
    for (i, m) in MUNICIPALITIES.iter().enumerate() {
        if pick < m.weight {
            return i;
        }
        pick -= m.weight;
    }
    0
}

/// Draws a municipality in the same prefecture as `current` (for moves), or anywhere.
pub fn move_target(current: usize, rng: &mut ChaCha8Rng) -> usize {
    let prefecture = MUNICIPALITIES[current].prefecture;
    if rng.random_bool(0.7) {
        let same: Vec<usize> = (0..MUNICIPALITIES.len())
            .filter(|&i| MUNICIPALITIES[i].prefecture == prefecture)
            .collect();
        same[rng.random_range(0..same.len())]
    } else {
        municipality_index(rng)
    }
}

/// A street address in a municipality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreetAddress {
    /// Index in [`MUNICIPALITIES`].
    pub municipality: usize,
    /// Postal code `NNN-NNNN`.
    pub postal_code: String,
    /// Town and 丁目-番-号, e.g. `日吉2丁目8-15`.
    pub line: String,
    /// Building and room, sometimes.
    pub building: Option<String>,
}

impl StreetAddress {
    /// Draws a street address in a municipality.
    pub fn draw(municipality: usize, rng: &mut ChaCha8Rng) -> Self {
        let m = &MUNICIPALITIES[municipality];
        let town_index = rng.random_range(0..m.towns.len());
        let town = m.towns[town_index];
        // Postal codes are per town: derive the last digits from the town so they match.
        let (lo, hi) = m.postal_range;
        let middle = lo + (town_index as u32 * 7) % (hi - lo + 1);
        let postal_code = format!(
            "{}-{:02}{:02}",
            m.postal_prefix,
            middle,
            town_index * 11 % 100
        );
        let chome = rng.random_range(1..=5);
        let ban = rng.random_range(1..=30);
        let go = rng.random_range(1..=25);
        let line = format!("{town}{chome}丁目{ban}-{go}");
        let building = rng.random_bool(0.35).then(|| {
            const BUILDINGS: &[&str] =
                &["コーポ", "ハイツ", "メゾン", "レジデンス", "グランドハイツ"];
            let b = BUILDINGS[rng.random_range(0..BUILDINGS.len())];
            format!(
                "{b}{}{}号室",
                m.towns[town_index],
                rng.random_range(1..=12) * 100 + rng.random_range(1..=9)
            )
        });
        StreetAddress {
            municipality,
            postal_code,
            line,
            building,
        }
    }

    /// The municipality.
    pub fn municipality(&self) -> &'static Municipality {
        &MUNICIPALITIES[self.municipality]
    }

    /// The full text as written on a form.
    pub fn text(&self) -> String {
        let m = self.municipality();
        match &self.building {
            Some(b) => format!("{}{}{} {}", m.prefecture, m.city, self.line, b),
            None => format!("{}{}{}", m.prefecture, m.city, self.line),
        }
    }
}

/// A home (fixed-line) phone number in the municipality's area code.
pub fn home_phone(municipality: usize, rng: &mut ChaCha8Rng) -> String {
    let area = MUNICIPALITIES[municipality].area_code;
    // Area code + local exchange always total 10 digits.
    let local_len = 10 - area.len() - 4;
    let exchange: u32 =
        rng.random_range(10u32.pow(local_len as u32 - 1)..10u32.pow(local_len as u32));
    format!("{area}-{exchange}-{:04}", rng.random_range(0..10000))
}

/// A mobile phone number (090/080/070).
pub fn mobile_phone(rng: &mut ChaCha8Rng) -> String {
    const PREFIXES: &[&str] = &["090", "080", "070"];
    format!(
        "{}-{:04}-{:04}",
        PREFIXES[rng.random_range(0..PREFIXES.len())],
        rng.random_range(1000..10000),
        rng.random_range(0..10000)
    )
}

/// The check digit of an insurer number: weights 2,1 alternating from the right over the
/// preceding digits, digit sums of the products, check = (10 - sum % 10) % 10.
pub fn insurer_check_digit(digits: &str) -> u32 {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            let product = if i % 2 == 0 { d * 2 } else { d };
            product / 10 + product % 10
        })
        .sum();
    (10 - sum % 10) % 10
}

/// Appends the check digit.
pub fn with_check_digit(body: &str) -> String {
    format!("{body}{}", insurer_check_digit(body))
}

/// Kind of public health insurance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsuranceKind {
    /// 協会けんぽ (法別番号 01).
    KyokaiKenpo,
    /// 組合健保 (法別番号 06).
    HealthInsuranceSociety,
    /// 共済組合 (法別番号 31-34).
    MutualAid,
    /// 国民健康保険 (6-digit insurer number).
    NationalHealthInsurance,
    /// 後期高齢者医療制度 (法別番号 39), from age 75.
    LateStageElderly,
}

/// An 8- or 6-digit insurer number (保険者番号) with a valid check digit.
pub fn insurer_number(kind: InsuranceKind, municipality: usize, rng: &mut ChaCha8Rng) -> String {
    let m = &MUNICIPALITIES[municipality];
    match kind {
        InsuranceKind::KyokaiKenpo => with_check_digit(&format!(
            "01{:02}{:03}",
            m.prefecture_code,
            rng.random_range(1..20)
        )),
        InsuranceKind::HealthInsuranceSociety => with_check_digit(&format!(
            "06{:02}{:03}",
            m.prefecture_code,
            rng.random_range(1..999)
        )),
        InsuranceKind::MutualAid => with_check_digit(&format!(
            "{}{:02}{:03}",
            rng.random_range(31..35),
            m.prefecture_code,
            rng.random_range(1..300)
        )),
        InsuranceKind::NationalHealthInsurance => {
            with_check_digit(&format!("{:02}{:03}", m.prefecture_code, m.nhi_code))
        }
        InsuranceKind::LateStageElderly => {
            with_check_digit(&format!("39{:02}{:03}", m.prefecture_code, 1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn check_digit_follows_the_weights() {
        // 0613001: from the right 1*2=2, 0*1, 0*2, 3*1=3, 1*2=2, 6*1=6, 0*2 → 13 → check 7.
        assert_eq!(insurer_check_digit("0613001"), 7);
        // 1*2=2, 4*1=4, 1*2=2 ... "13120": 0*2,2*1,1*2,3*1,1*2 = 0+2+2+3+2 = 9 → 1.
        assert_eq!(insurer_check_digit("13120"), 1);
        // Products ≥ 10 contribute their digit sum: "9" → 18 → 9 → check 1.
        assert_eq!(insurer_check_digit("9"), 1);
    }

    #[test]
    fn numbers_have_the_right_shape() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..100 {
            let m = municipality_index(&mut rng);
            let n = insurer_number(InsuranceKind::KyokaiKenpo, m, &mut rng);
            assert_eq!(n.len(), 8);
            assert_eq!(insurer_check_digit(&n[..7]).to_string(), &n[7..]);
            let nhi = insurer_number(InsuranceKind::NationalHealthInsurance, m, &mut rng);
            assert_eq!(nhi.len(), 6);
            assert!(insurer_number(InsuranceKind::LateStageElderly, m, &mut rng).starts_with("39"));
            let phone = home_phone(m, &mut rng);
            assert_eq!(phone.chars().filter(char::is_ascii_digit).count(), 10);
            let a = StreetAddress::draw(m, &mut rng);
            assert_eq!(a.postal_code.len(), 8);
        }
    }
}
