//! Japan's 47 prefectures (都道府県) and the eight regional blocks (地方区分): reference data
//! shared by linkage (address parsing) and de-identification (region roll-up).

/// The 47 prefectures, in JIS X 0401 order (index + 1 is the prefecture code).
pub const PREFECTURES: [&str; 47] = [
    "北海道",
    "青森県",
    "岩手県",
    "宮城県",
    "秋田県",
    "山形県",
    "福島県",
    "茨城県",
    "栃木県",
    "群馬県",
    "埼玉県",
    "千葉県",
    "東京都",
    "神奈川県",
    "新潟県",
    "富山県",
    "石川県",
    "福井県",
    "山梨県",
    "長野県",
    "岐阜県",
    "静岡県",
    "愛知県",
    "三重県",
    "滋賀県",
    "京都府",
    "大阪府",
    "兵庫県",
    "奈良県",
    "和歌山県",
    "鳥取県",
    "島根県",
    "岡山県",
    "広島県",
    "山口県",
    "徳島県",
    "香川県",
    "愛媛県",
    "高知県",
    "福岡県",
    "佐賀県",
    "長崎県",
    "熊本県",
    "大分県",
    "宮崎県",
    "鹿児島県",
    "沖縄県",
];

/// The eight regional blocks, each with the JIS codes (1-based, inclusive) of its
/// prefectures, which are contiguous in JIS order.
pub const REGIONAL_BLOCKS: [(&str, std::ops::RangeInclusive<usize>); 8] = [
    ("北海道地方", 1..=1),
    ("東北地方", 2..=7),
    ("関東地方", 8..=14),
    ("中部地方", 15..=23),
    ("近畿地方", 24..=30),
    ("中国地方", 31..=35),
    ("四国地方", 36..=39),
    ("九州・沖縄地方", 40..=47),
];

/// The JIS code (1..=47) of a prefecture name.
pub fn prefecture_code(prefecture: &str) -> Option<usize> {
    PREFECTURES
        .iter()
        .position(|p| *p == prefecture)
        .map(|i| i + 1)
}

/// The regional block of a prefecture.
///
/// ```
/// assert_eq!(kiban_model::regional_block("東京都"), Some("関東地方"));
/// assert_eq!(kiban_model::regional_block("沖縄県"), Some("九州・沖縄地方"));
/// assert_eq!(kiban_model::regional_block("東京"), None);
/// ```
pub fn regional_block(prefecture: &str) -> Option<&'static str> {
    let code = prefecture_code(prefecture)?;
    REGIONAL_BLOCKS
        .iter()
        .find(|(_, codes)| codes.contains(&code))
        .map(|(block, _)| *block)
}

/// The prefectures of a regional block (empty for an unknown block).
pub fn block_prefectures(block: &str) -> &'static [&'static str] {
    REGIONAL_BLOCKS
        .iter()
        .find(|(name, _)| *name == block)
        .map(|(_, codes)| &PREFECTURES[codes.start() - 1..*codes.end()])
        .unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_every_prefecture_once() {
        let mut covered = 0;
        for (i, (_, codes)) in REGIONAL_BLOCKS.iter().enumerate() {
            assert_eq!(*codes.start(), covered + 1, "block {i} leaves a gap");
            covered = *codes.end();
        }
        assert_eq!(covered, PREFECTURES.len());
        assert_eq!(
            block_prefectures("四国地方"),
            ["徳島県", "香川県", "愛媛県", "高知県"]
        );
        assert!(block_prefectures("関東").is_empty());
    }
}
