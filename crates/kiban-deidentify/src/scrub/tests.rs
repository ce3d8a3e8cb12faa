use super::*;
use kiban_model::RowCommon;

fn identity(provider: &str, key: &str, kanji: &str, kana: &str) -> IdentityRow {
    IdentityRow {
        common: RowCommon {
            provider_id: provider.to_owned(),
            intake_id: "intake".to_owned(),
            patient_key: key.to_owned(),
            source_id: format!("Patient/{key}"),
        },
        provider_patient_id: "932138170".to_owned(),
        name_kanji: Some(kanji.to_owned()),
        name_kana: Some(kana.to_owned()),
        birth_date: NaiveDate::from_ymd_opt(1980, 1, 2),
        sex: "male".to_owned(),
        postal_code: Some("252-1622".to_owned()),
        address: Some("神奈川県相模原市中央区矢部2丁目23-4 メゾン矢部808号室".to_owned()),
        phone: Some("070-6856-7676".to_owned()),
        insurer_number: Some("01140086".to_owned()),
        insured_symbol: Some("21293".to_owned()),
        insured_number: Some("8984".to_owned()),
        insured_branch: Some("00".to_owned()),
    }
}

fn scrubber() -> FreeTextScrubber {
    let identities = vec![
        identity("h1", "k1", "上田 昭", "ウエダ アキラ"),
        identity("h1", "k2", "髙橋 美咲", "タカハシ ミサキ"),
        identity("h2", "k3", "石井 陽葵", "イシイ ヒマリ"),
    ];
    FreeTextScrubber::new(&identities, &PersonMap::new()).unwrap()
}

const SHIFT: DateRule = DateRule::Shift { days: 10 };

fn scrub_as(s: &FreeTextScrubber, key: &str, text: &str) -> (String, ScrubCounts) {
    let mut counts = ScrubCounts::default();
    let provider = if key == "k3" { "h2" } else { "h1" };
    let out = s.scrub(text, provider, key, SHIFT, &mut counts);
    (out, counts)
}

#[test]
fn own_names_in_every_written_form_are_removed() {
    let s = scrubber();
    for text in [
        "上田 昭 様を慢性心不全の精査加療目的にてご紹介いたします。",
        "上田　昭様を慢性心不全の精査加療目的にてご紹介いたします。",
        "上田昭 様を慢性心不全の精査加療目的にてご紹介いたします。",
    ] {
        let (out, counts) = scrub_as(&s, "k1", text);
        assert_eq!(
            out,
            "［氏名］様を慢性心不全の精査加療目的にてご紹介いたします。"
        );
        assert!(counts.names >= 1);
    }
    // Reading in parentheses, in half-width kana, in hiragana.
    let (out, _) = scrub_as(&s, "k1", "上田 昭 (ウエダ アキラ) 様");
    assert_eq!(out, "［氏名］様");
    let (out, _) = scrub_as(&s, "k1", "ﾌﾘｶﾞﾅ: ｳｴﾀﾞ ｱｷﾗ");
    assert!(!out.contains("ｳｴﾀﾞ") && !out.contains("ｱｷﾗ"), "{out}");
    let (out, _) = scrub_as(&s, "k1", "ふりがな うえだ あきら");
    assert!(!out.contains("うえだ") && !out.contains("あきら"), "{out}");
    // Old kanji form of the family name, and the given name alone.
    let (out, _) = scrub_as(&s, "k2", "高橋さんは美咲という名で呼ばれる。");
    assert!(!out.contains("高橋") && !out.contains("美咲"), "{out}");
    let (out, _) = scrub_as(&s, "k2", "髙橋美咲の母");
    assert_eq!(out, "［氏名］の母");
    // Full-width letters and digits of another identifier form.
    let (out, counts) = scrub_as(&s, "k1", "患者ＩＤ：９３２１３８１７０");
    assert_eq!(out, "患者ＩＤ：［ID］");
    assert_eq!(counts.ids, 1);
}

#[test]
fn full_and_family_names_of_others_are_removed_everywhere() {
    let s = scrubber();
    // The text of k1 mentions k3 (another provider's patient) by full name and by family name
    // inside a clinic's name.
    let (out, _) = scrub_as(&s, "k1", "石井陽葵さんと同居。紹介元: 石井内科クリニック");
    assert_eq!(out, "［氏名］さんと同居。紹介元: ［氏名］内科クリニック");
    // A reading of another person only in katakana: hiragana running text keeps its syllables.
    let (out, _) = scrub_as(&s, "k1", "食事はおいしいと話す。イシイ氏の件。");
    assert_eq!(out, "食事はおいしいと話す。［氏名］氏の件。");
}

#[test]
fn persons_before_honorifics_are_removed() {
    let s = scrubber();
    let cases = [
        ("紹介元の田中先生より", "紹介元の［氏名］先生より"),
        ("佐藤医師が診察した", "［氏名］医師が診察した"),
        ("長男の健太君が付き添い", "長男の［氏名］君が付き添い"),
        ("ゆいちゃんは元気", "［氏名］ちゃんは元気"),
        ("山本 直人 殿", "［氏名］殿"),
        ("ヤマモト ナオト様", "［氏名］様"),
        (
            "東京中央病院田中先生御侍史",
            "東京中央病院［氏名］先生御侍史",
        ),
        ("鈴木氏は来院せず", "［氏名］氏は来院せず"),
    ];
    for (text, expected) in cases {
        assert_eq!(scrub_as(&s, "k9", text).0, expected, "{text}");
    }
    // Words before honorifics that are not names stay.
    for text in [
        "患者様へのご説明",
        "ご家族様に説明した",
        "お母さんと来院",
        "皆様によろしく",
        "担当医師より説明",
        "主治医先生へ",
        "同様に加療した",
        "多様な症状",
        "氏名: 記載なし",
        "看護師さんに伝えた",
        "ヘルパーさんが訪問",
        "様子を見る",
    ] {
        assert_eq!(scrub_as(&s, "k9", text).0, text, "{text}");
    }
}

#[test]
fn contact_data_and_identifiers_are_removed() {
    let s = scrubber();
    let cases = [
        ("TEL 03-1234-5678 まで", "TEL ［電話番号］ まで"),
        ("携帯：090ｰ1234ｰ5678", "携帯：［電話番号］"),
        ("電話番号 (03)1234-5678", "電話番号 ［電話番号］"),
        ("連絡先 ０８０１２３４５６７８", "連絡先 ［電話番号］"),
        ("+81-3-1234-5678", "［電話番号］"),
        ("〒150-0001", "［郵便番号］"),
        ("〒 １５０－０００１ 渋谷", "［郵便番号］ 渋谷"),
        ("郵便 150-0001", "郵便 ［郵便番号］"),
        (
            "mail: taro.yamada@example.co.jp まで",
            "mail: ［メール］ まで",
        ),
        (
            "保険者番号 06131234 記号 12-34 番号 56",
            "保険者番号 ［ID］ 記号 ［ID］ 番号 ［ID］",
        ),
        ("カルテ番号: A-12", "カルテ番号: ［ID］"),
        ("受付 1234567890123", "受付 ［ID］"),
        ("カード 1234-5678-9012", "カード ［ID］"),
        ("MRN0012345 にて登録", "［ID］ にて登録"),
        ("HbA1c 7.2%、COVID-19 陰性", "HbA1c 7.2%、COVID-19 陰性"),
    ];
    for (text, expected) in cases {
        assert_eq!(scrub_as(&s, "k9", text).0, expected, "{text}");
    }
}

#[test]
fn addresses_are_removed_with_or_without_prefecture() {
    let s = scrubber();
    let cases = [
        (
            "住所: 東京都新宿区西新宿2丁目8-1 在住",
            "住所: ［住所］ 在住",
        ),
        ("大阪府大阪市北区梅田3-1-1に住む", "［住所］に住む"),
        ("埼玉県さいたま市浦和区高砂3丁目15番1号", "［住所］"),
        (
            "横浜市港北区綱島西3丁目21-9 レジデンス綱島西208号室に転居",
            "［住所］に転居",
        ),
        ("世田谷区桜ケ丘1-2-3", "［住所］"),
        ("東京都新宿区の病院", "［住所］の病院"),
    ];
    for (text, expected) in cases {
        assert_eq!(scrub_as(&s, "k9", text).0, expected, "{text}");
    }
    // A prefecture alone is a region, kept; so are numbers that are not street numbers.
    for text in [
        "東京都内の病院へ",
        "大阪府立病院",
        "1日3回 2-3日分",
        "第2-3病日",
        "2型糖尿病",
    ] {
        assert_eq!(scrub_as(&s, "k9", text).0, text, "{text}");
    }
    // The own address is removed even in a form no pattern reads.
    let (out, counts) = scrub_as(
        &s,
        "k1",
        "自宅 神奈川県相模原市中央区矢部2丁目23-4 メゾン矢部808号室",
    );
    assert_eq!(out, "自宅 ［住所］");
    assert_eq!(counts.addresses, 1);
}

#[test]
fn dates_are_shifted_or_generalized_and_birth_dates_removed() {
    let s = scrubber();
    let (out, counts) = scrub_as(
        &s,
        "k9",
        "2023年05月29日に入院、2023/06/16 退院。2022年11月頃より症状",
    );
    assert_eq!(
        out,
        "2023年06月08日に入院、2023/06/26 退院。2022年11月頃より症状"
    );
    assert_eq!(counts.dates_shifted, 3);
    // Era forms become Western dates.
    let (out, _) = scrub_as(&s, "k9", "令和5年4月1日に受診、R5.4.1");
    assert_eq!(out, "2023年4月11日に受診、2023年4月11日");
    // Anonymized: year and month only.
    let mut counts = ScrubCounts::default();
    let out = s.scrub(
        "2023年05月29日に入院、2023/06/16 退院",
        "h1",
        "k9",
        DateRule::YearMonth { days: -30 },
        &mut counts,
    );
    assert_eq!(out, "2023年04月に入院、2023/05 退院");
    assert_eq!(counts.dates_generalized, 2);
    // Birth dates in every form: by context, or as the person's own birth date.
    for text in [
        "生年月日: 昭和55年1月2日",
        "生年月日 S55.1.2",
        "1980/01/02生",
        "生年月日：1980年1月2日",
    ] {
        let (out, counts) = scrub_as(&s, "k9", text);
        assert!(out.contains("［生年月日］"), "{text} → {out}");
        assert_eq!(counts.birth_dates, 1);
    }
    let (out, _) = scrub_as(&s, "k1", "昭和五十五年一月二日の出生");
    assert_eq!(out, "［生年月日］の出生");
    // A month and day without a year cannot be shifted: removed.
    let (out, counts) = scrub_as(&s, "k9", "3月5日より発熱");
    assert_eq!(out, "［日付］より発熱");
    assert_eq!(counts.dates_removed, 1);
}

#[test]
fn clinical_words_drugs_and_values_stay() {
    let s = scrubber();
    for text in [
        "高血圧、糖尿病にてアムロジピン5mg 1日1回、メトホルミン500mg 1日2回",
        "ご紹介いたします。貴院での精査・加療をお願い申し上げます。",
        "身長 155.2 cm体重 56.6 kgBMI 23.5 kg/m2収縮期血圧 141 mmHg (H)HbA1c(NGSP) 5.5 %",
        "eGFR 49.8 mL/min/1.73m2 (L) γ-GT 20 U/L",
        "C: 要精密検査・医療機関受診",
        "慢性心不全にて保存的加療を行った。軽快し自宅退院。",
        "昭和の頃から喫煙。平成に入り禁煙。",
        "ロスバスタチン、ワルファリン、インスリン グラルギン",
    ] {
        let (out, counts) = scrub_as(&s, "k1", text);
        assert_eq!(out, text);
        assert_eq!(counts.total(), 0, "{text}");
        assert_eq!(counts.texts_changed, 0);
    }
}

#[test]
fn counts_hold_no_values_and_debug_no_names() {
    let s = scrubber();
    let (_, counts) = scrub_as(&s, "k1", "上田 昭 様 TEL 070-6856-7676");
    let json = serde_json::to_string(&counts).unwrap();
    assert!(!json.contains("上田") && !json.contains("7676"));
    assert_eq!((counts.names, counts.phones), (1, 1));
    let debug = format!("{s:?}");
    assert!(!debug.contains("上田") && !debug.contains("ウエダ"));
}

#[test]
fn eight_digit_dates_are_shifted_and_other_eight_digit_runs_stay_ids() {
    let s = scrubber();
    // Shifted by 10 days, in the same compact form.
    let (out, counts) = scrub_as(&s, "k1", "検査日 20240315 に実施");
    assert_eq!(out, "検査日 20240325 に実施");
    assert_eq!(counts.dates_shifted, 1);
    // The person's own birth date written compactly is removed as a birth date.
    let (out, _) = scrub_as(&s, "k1", "19800102 生まれ");
    assert!(!out.contains("19800102"), "{out}");
    assert!(out.contains("［生年月日］"), "{out}");
    // Not a valid date, or out of the year range: an id.
    for id in ["12345678", "20241399", "18990101"] {
        let (out, counts) = scrub_as(&s, "k1", &format!("番号 {id} 参照"));
        assert_eq!(out, "番号 ［ID］ 参照", "{id}");
        assert_eq!(counts.ids, 1);
    }
}

#[test]
fn romanized_names_from_the_kana_reading_are_removed_without_honorific() {
    let s = scrubber();
    for text in [
        "Referred by Akira Ueda for evaluation.",
        "Referred by UEDA Akira for evaluation.",
        "Referred by A. Ueda for evaluation.",
        "Referred by ueda akira for evaluation.",
    ] {
        // Any person's text: romanized full names are removed everywhere.
        let (out, counts) = scrub_as(&s, "k3", text);
        assert_eq!(out, "Referred by ［氏名］ for evaluation.", "{text}");
        assert_eq!(counts.names, 1);
    }
    let (out, _) = scrub_as(&s, "k1", "Misaki Takahashi, Himari Ishii");
    assert_eq!(out, "［氏名］, ［氏名］");
    // Words that only look alike are kept.
    let (out, _) = scrub_as(&s, "k1", "Akira Uedas; Ueda-san");
    assert!(out.contains("Akira Uedas"), "{out}");
}

#[test]
fn romanized_family_names_alone_are_removed_from_real_world_notes() {
    let s = scrubber();
    // The text's own person (上田 昭, ウエダ アキラ), as English notes write the family name.
    let cases = [
        (
            "Ueda-san was admitted for CHF exacerbation.",
            "［氏名］-san was admitted for CHF exacerbation.",
        ),
        (
            "Discussed the plan with Mr. Ueda and his wife.",
            "Discussed the plan with Mr. ［氏名］ and his wife.",
        ),
        ("UEDA 72M, HTN, DM2", "［氏名］ 72M, HTN, DM2"),
        ("Pt: Uyeda? no, Ueda.", "Pt: Uyeda? no, ［氏名］."),
    ];
    for (text, expected) in cases {
        let (out, counts) = scrub_as(&s, "k1", text);
        assert_eq!(out, expected, "{text}");
        assert_eq!(counts.names, 1, "{text}");
    }
    // Another person of the store, after a title or before an honorific (髙橋 → Takahashi).
    let (out, _) = scrub_as(
        &s,
        "k3",
        "Referred by Dr. Takahashi; Takahashi-sensei will follow up.",
    );
    assert_eq!(
        out,
        "Referred by Dr. ［氏名］; ［氏名］-sensei will follow up."
    );
    // Alone, another person's family name is not taken for a name.
    let (out, _) = scrub_as(&s, "k3", "Takahashi protocol");
    assert_eq!(out, "Takahashi protocol");
}

#[test]
fn english_words_that_are_family_names_are_left_alone() {
    let identities = vec![
        identity("h1", "k4", "伊達 政宗", "ダテ マサムネ"),
        identity("h1", "k5", "能勢 健二", "ノセ ケンジ"),
        identity("h1", "k6", "吾郷 博", "アゴウ ヒロシ"),
        identity("h1", "k7", "申 東浩", "シン トウコウ"),
    ];
    let s = FreeTextScrubber::new(&identities, &PersonMap::new()).unwrap();
    // Each text is its own person's: the family name is 伊達 (Date), 能勢 (Nose), 吾郷
    // (Ago), 申 (Shin).
    for (key, text) in [
        (
            "k4",
            "Date of admission: see the referral. Same date as the CT.",
        ),
        ("k5", "Epistaxis from the left nose; nose packing done."),
        ("k6", "Chest pain since three days ago, worse a week ago."),
        ("k7", "Bruise on the left shin. Shin splints ruled out."),
        ("k4", "Ordinary words stay: the patient came home at noon."),
    ] {
        let (out, counts) = scrub_as(&s, key, text);
        assert_eq!(out, text, "{key}");
        assert_eq!(counts.names, 0, "{key}");
    }
    // With a title or an honorific they are names.
    let (out, _) = scrub_as(&s, "k4", "Mr. Date and his son; Date-san agreed.");
    assert_eq!(out, "Mr. ［氏名］ and his son; ［氏名］-san agreed.");
    let (out, _) = scrub_as(&s, "k9", "Seen by Dr. Nose.");
    assert_eq!(out, "Seen by Dr. ［氏名］.");
}
