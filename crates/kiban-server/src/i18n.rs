//! Languages of the portal and every text shown on its pages, Japanese and English side by side.
//!
//! A page asks for a text with [`Text::get`]; adding a page means adding its texts to the
//! `texts!` table below, both languages on one line, so no text can exist in only one language.

use serde::Serialize;

/// Name of the cookie that remembers the chosen language.
pub const LANG_COOKIE: &str = "lang";

/// A language of the portal. Japanese is the default: the users are Japanese operator staff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lang {
    /// 日本語.
    #[default]
    Ja,
    /// English.
    En,
}

impl Lang {
    /// The BCP 47 code (`ja`, `en`), as used in `?lang=`, the cookie and `<html lang>`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ja => "ja",
            Lang::En => "en",
        }
    }

    /// Parses a code of `?lang=` or the cookie (`ja`, `en`, case-insensitive).
    pub fn from_code(code: &str) -> Option<Self> {
        match code.trim().to_ascii_lowercase().as_str() {
            "ja" => Some(Lang::Ja),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The other language, the target of the language toggle.
    pub fn other(self) -> Self {
        match self {
            Lang::Ja => Lang::En,
            Lang::En => Lang::Ja,
        }
    }

    /// The language's name in itself, shown on the toggle.
    pub fn native_name(self) -> &'static str {
        match self {
            Lang::Ja => "日本語",
            Lang::En => "English",
        }
    }

    /// Picks one of two strings given in both languages (provider names, model labels).
    pub fn pick<'a>(self, ja: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Ja => ja,
            Lang::En => en,
        }
    }

    /// The preferred supported language of an `Accept-Language` header, by quality value; `None`
    /// when it names neither Japanese nor English.
    pub fn from_accept_language(header: &str) -> Option<Self> {
        let mut best: Option<(f32, usize, Lang)> = None;
        for (position, entry) in header.split(',').enumerate() {
            let mut parts = entry.split(';');
            let tag = parts.next().unwrap_or_default().trim();
            let quality = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or_default();
            let Some(lang) = Lang::from_code(primary) else {
                continue;
            };
            if quality <= 0.0 {
                continue;
            }
            // Highest quality wins; among equals, the earlier entry.
            let better = match best {
                None => true,
                Some((q, p, _)) => quality > q || (quality == q && position < p),
            };
            if better {
                best = Some((quality, position, lang));
            }
        }
        best.map(|(_, _, lang)| lang)
    }
}

macro_rules! texts {
    ($($key:ident: $ja:literal, $en:literal;)+) => {
        /// A text shown on the portal, in both languages.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Text {
            $(
                #[doc = concat!($ja, " / ", $en)]
                $key,
            )+
        }

        impl Text {
            /// Every text, in declaration order.
            pub const ALL: &'static [Text] = &[$(Text::$key,)+];

            /// The text in `lang`.
            pub fn get(self, lang: Lang) -> &'static str {
                match self {
                    $(Text::$key => lang.pick($ja, $en),)+
                }
            }
        }
    };
}

texts! {
    AppSubtitle: "医療データ基盤", "medical data platform";
    AppTagline: "次世代医療基盤法に基づく認定作成事業者のデータ基盤",
        "Data platform of a certified creator under the Next-Generation Medical Infrastructure Act";
    MainNavigation: "メインメニュー", "Main navigation";
    SwitchLanguage: "言語を切り替える", "Switch language";
    DataDirectory: "データディレクトリ", "Data directory";

    NavDashboard: "ダッシュボード", "Dashboard";
    NavProviders: "事業者", "Providers";
    NavIntakes: "取得記録", "Intakes";
    NavQuarantine: "隔離", "Quarantine";

    DashboardTitle: "ダッシュボード", "Dashboard";
    ProvidersTitle: "医療情報取扱事業者", "Providers";
    IntakesTitle: "取得記録（法第33条）", "Intake log (acquisition records, Art. 33)";
    IntakeTitle: "取得記録の詳細", "Intake details";
    QuarantineTitle: "隔離データ（受入不可）", "Quarantine (rejected resources)";

    CountProviders: "医療情報取扱事業者", "Providers";
    CountPatientRecords: "患者レコード", "Patient records";
    CountClinicalRecords: "診療記録（合計）", "Clinical records (total)";
    CountIntakes: "取得件数", "Intakes";
    CountQuarantined: "隔離リソース", "Quarantined resources";

    LinkageNote: "患者レコードは事業者ごとの件数です。事業者をまたいだ同一人物の名寄せは、今後導入するリンケージ機能で行います。",
        "Patient records are counted per provider. Linking the same person across providers is the job of the linkage engine (coming soon).";
    IntakesNote: "取得記録は、医療情報の取得ごとに、事業者・取得元ファイル・日時・項目別件数を記録したものです（次世代医療基盤法第33条）。",
        "Each intake records one acquisition of medical information: provider, source file, time and item counts by category (Art. 33 of the Act).";
    QuarantineNote: "受入できなかったリソースの一覧です。元データは暗号化された隔離領域に保管され、この画面には表示しません。理由には項目と規則のみを記載し、値は記載しません。",
        "Resources that could not be accepted. The original content stays encrypted in the quarantine store and is not shown here. Reasons name the field and rule, never the value.";

    ProvidersHeading: "事業者別", "By provider";
    TablesHeading: "テーブル別件数", "Records per table";
    LatestIntakesHeading: "最近の取得", "Latest intakes";
    ItemCountsHeading: "項目別件数", "Items by category";
    ViewAll: "すべて表示", "View all";
    BackToIntakes: "取得記録の一覧へ", "Back to the intake log";
    ShowQuarantine: "隔離データを表示", "Show quarantined resources";
    NoData: "データはまだありません。", "No data yet.";

    ColumnId: "ID", "ID";
    ColumnName: "名称", "Name";
    ColumnNameJa: "名称（日本語）", "Name (Japanese)";
    ColumnNameEn: "名称（英語）", "Name (English)";
    ColumnKind: "種別", "Kind";
    ColumnProvider: "事業者", "Provider";
    ColumnIntakes: "取得回数", "Intakes";
    ColumnPatientRecords: "患者レコード", "Patient records";
    ColumnAccepted: "受入", "Accepted";
    ColumnDuplicates: "重複", "Duplicates";
    ColumnRejected: "隔離", "Rejected";
    ColumnTable: "テーブル", "Table";
    ColumnRows: "件数", "Rows";
    ColumnSegments: "セグメント数", "Segments";
    ColumnSize: "サイズ", "Size";
    ColumnSource: "取得元ファイル", "Source";
    ColumnStatus: "状態", "Status";
    ColumnStarted: "開始", "Started";
    ColumnFinished: "終了", "Finished";
    ColumnLines: "行数", "Lines";
    ColumnBytes: "バイト数", "Bytes";
    ColumnChunks: "コミット済みチャンク", "Chunks committed";
    ColumnSha256: "SHA-256", "SHA-256";
    ColumnItems: "項目別件数", "Items";
    ColumnCategory: "区分", "Category";
    ColumnCount: "件数", "Count";
    ColumnIntake: "取得記録", "Intake";
    ColumnLine: "行", "Line";
    ColumnEntry: "番号", "Entry";
    ColumnResourceType: "リソース種別", "Resource type";
    ColumnReason: "理由", "Reason";

    StatusRunning: "取込中", "Running";
    StatusCompleted: "完了", "Completed";
    NotFinished: "—", "—";
    Unknown: "不明", "unknown";

    FilterByProvider: "事業者で絞り込み", "Filter by provider";
    FilterAll: "すべて", "All";
    FilterApply: "表示", "Show";
    ListLimited: "表示件数の上限に達しました。古い記録は省略しています。",
        "The list reached its display limit; older records are not shown.";

    NotFoundTitle: "見つかりません", "Not found";
    IntakeNotFound: "指定された取得記録はありません。", "There is no intake with this id.";
    PageNotFound: "ページが見つかりません。", "This page does not exist.";
    ServerErrorTitle: "サーバーエラー", "Server error";
    ServerErrorMessage: "データを読み取れませんでした。時間をおいて再度お試しいただくか、管理者に連絡してください。",
        "The data could not be read. Please try again later or contact the administrator.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_exists_in_both_languages() {
        for text in Text::ALL {
            assert!(!text.get(Lang::Ja).is_empty(), "{text:?} ja");
            assert!(!text.get(Lang::En).is_empty(), "{text:?} en");
        }
        assert_eq!(Text::NavProviders.get(Lang::Ja), "事業者");
        assert_eq!(Text::NavProviders.get(Lang::En), "Providers");
    }

    #[test]
    fn codes_round_trip() {
        for lang in [Lang::Ja, Lang::En] {
            assert_eq!(Lang::from_code(lang.code()), Some(lang));
            assert_eq!(lang.other().other(), lang);
        }
        assert_eq!(Lang::from_code(" EN "), Some(Lang::En));
        assert_eq!(Lang::from_code("fr"), None);
        assert_eq!(Lang::default(), Lang::Ja);
    }

    #[test]
    fn accept_language_by_quality() {
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9"), Some(Lang::En));
        assert_eq!(Lang::from_accept_language("ja-JP"), Some(Lang::Ja));
        assert_eq!(
            Lang::from_accept_language("fr;q=1, en;q=0.5, ja;q=0.8"),
            Some(Lang::Ja)
        );
        assert_eq!(Lang::from_accept_language("en, ja"), Some(Lang::En));
        assert_eq!(
            Lang::from_accept_language("ja;q=0, en;q=0.1"),
            Some(Lang::En)
        );
        assert_eq!(Lang::from_accept_language("de, fr"), None);
        assert_eq!(Lang::from_accept_language(""), None);
    }
}
