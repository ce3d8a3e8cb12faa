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

    // ---- opt-out (提供停止) page for patients and the collection registers for staff ----
    OptOutTitle: "医療情報の提供停止（オプトアウト）のお申し出", "Refusing the provision of your medical information (opt-out)";
    OptOutSiteName: "医療情報の提供停止 受付窓口", "Opt-out desk for medical information";
    OptOutIntroWhat: "あなたが受診した医療機関等（医療情報取扱事業者）は、次世代医療基盤法に基づき、診療の記録（病名、処方、検査結果など）を、国の認定を受けた事業者（認定作成事業者）に提供しています。認定作成事業者は、個人を特定できないよう加工したうえで、医療の研究や新しい治療法の開発に役立てます。",
        "Under the Next-Generation Medical Infrastructure Act, the hospitals and clinics you visited (providers) give records of your care (diagnoses, prescriptions, test results, etc.) to an operator certified by the government. The operator processes them so that no person can be identified, and makes them available for medical research and the development of new treatments.";
    OptOutIntroWho: "このページは、その提供を受ける認定作成事業者が運営しています。お申し出いただいた方の医療情報は、以後、提供を受けません。すでに受け取っていて、まだ加工に使っていない情報も使いません。",
        "This page is run by the certified operator that receives the data. Once you refuse, your medical information is no longer received, and information already received but not yet processed is not used.";
    OptOutIntroNoDisadvantage: "提供を停止しても、診療や医療機関での扱いに不利益が生じることは一切ありません。お申し出はいつでもできます。",
        "Refusing has no disadvantage whatsoever for your care or how a hospital or clinic treats you. You can refuse at any time.";
    OptOutIntroWhatYouNeed: "お手元の通知（医療機関等から受け取った書面）をご用意ください。医療機関名、患者ID（診察券番号など）と「通知に記載のコード」が記載されています。",
        "Please have the notice you received from the hospital or clinic at hand. It shows the provider's name, your patient ID (e.g. the number on your patient card) and the code printed on the notice.";
    OptOutFormHeading: "提供停止を申し出る", "Refuse the provision";
    OptOutProvider: "医療機関等", "Hospital or clinic";
    OptOutProviderChoose: "選択してください", "Please choose";
    OptOutPatientId: "患者ID（診察券番号など）", "Patient ID (e.g. patient card number)";
    OptOutBirthDate: "患者の生年月日", "Patient's date of birth";
    OptOutNoticeCode: "通知に記載のコード", "Code printed on the notice";
    OptOutNoticeCodeHint: "例: ABCDE-12345（大文字・小文字、ハイフンの有無は問いません）", "e.g. ABCDE-12345 (case and hyphens do not matter)";
    OptOutWhoApplies: "お申し出になる方", "Who is applying";
    OptOutRequesterPatient: "本人", "The patient";
    OptOutRequesterBereaved: "遺族（患者が亡くなっている場合）", "A bereaved family member (the patient has died)";
    OptOutRequesterGuardian: "親権者・法定代理人（患者が16歳未満の場合）", "A parent or legal guardian (the patient is under 16)";
    OptOutConsent: "上記の内容を確認し、この患者の医療情報の提供停止を申し出ます。", "I have read the above and refuse the provision of this patient's medical information.";
    OptOutSubmit: "提供停止を申し出る", "Submit the refusal";
    OptOutNoProviders: "現在、受付できる医療機関等がありません。", "No hospital or clinic is registered yet.";
    OptOutCheckHeading: "受付番号で確認する", "Check by receipt number";
    OptOutCheckIntro: "お申し出の後に表示された受付番号で、受付状況を確認できます。", "You can check a refusal with the receipt number shown after you submitted it.";
    OptOutReceiptNumber: "受付番号", "Receipt number";
    OptOutCheckSubmit: "確認する", "Check";
    OptOutReceiptTitle: "提供停止を受け付けました", "Your refusal has been recorded";
    OptOutReceiptKeep: "受付番号を控えてください。この番号で受付状況をいつでも確認できます。", "Please keep the receipt number. You can check your refusal with it at any time.";
    OptOutReceiptAlready: "この患者の提供停止は以前に受け付けています。そのときの受付番号を表示しています。", "A refusal for this patient had already been recorded; its receipt number is shown.";
    OptOutReceiptCheckLink: "受付状況を確認する", "Check the status of this refusal";
    OptOutRefusedOn: "受付日", "Refused on";
    OptOutMismatchTitle: "確認できませんでした", "The details could not be confirmed";
    OptOutMismatch: "入力された内容が、医療機関等から届いている情報と一致しませんでした。通知をご確認のうえ、もう一度入力してください。解決しない場合は、通知に記載の窓口にお問い合わせください。",
        "The details you entered do not match what the hospital or clinic sent us. Please check the notice and try again. If this keeps happening, please contact the desk named on the notice.";
    OptOutGuardianOfAdult: "親権者・法定代理人によるお申し出は、患者が16歳未満の場合に限られます。16歳以上の方はご本人がお申し出ください。",
        "A parent or legal guardian can refuse only for a patient under 16. Patients aged 16 or over please apply themselves.";
    OptOutMissingFields: "未入力の項目があります。すべての項目を入力し、確認欄にチェックを入れてください。", "Some fields are empty. Please fill in every field and tick the confirmation box.";
    OptOutBadBirthDate: "生年月日を正しく入力してください。", "Please enter a valid date of birth.";
    OptOutTryAgain: "入力画面に戻る", "Back to the form";
    OptOutTooManyTitle: "しばらくお待ちください", "Please wait a while";
    OptOutTooMany: "確認できなかった入力が続いたため、一時的に受付を停止しています。10分ほど時間をおいてから、もう一度お試しください。",
        "Too many attempts could not be confirmed, so this form is paused for you. Please try again in about 10 minutes.";
    OptOutStatusTitle: "受付状況", "Refusal status";
    OptOutStatusFound: "この受付番号の提供停止は受け付けられています。", "The refusal with this receipt number is recorded.";
    OptOutStatusNotFound: "この受付番号の記録はありません。番号をご確認ください。", "There is no refusal with this receipt number. Please check the number.";
    OptOutRecordedAt: "記録日時", "Recorded at";
    OptOutRequester: "申出者", "Requester";
    OptOutChannel: "受付経路", "Channel";

    RequesterPatient: "本人", "Patient";
    RequesterBereaved: "遺族", "Bereaved family";
    RequesterGuardian: "親権者・法定代理人", "Guardian";
    RequesterProvider: "医療情報取扱事業者", "Provider";
    RequesterStaff: "当事業者の職員（電話受付）", "Operator staff (by phone)";
    ChannelWeb: "ウェブ", "Web";
    ChannelApi: "API", "API";
    ChannelCsv: "CSVファイル", "CSV file";
    ChannelPhone: "電話", "Phone";

    FormExpiredTitle: "フォームの有効期限切れ", "Form expired";
    FormExpired: "このフォームは送信できませんでした。ページを開き直してから、もう一度送信してください。", "This form could not be submitted. Please reopen the page and submit it again.";
    ReadOnlyTitle: "受付停止中", "Not available";
    ReadOnly: "このサーバーは読み取り専用で起動しているため（鍵なし）、提供停止の受付と台帳は利用できません。", "This server runs read-only (started without a key), so refusals and the registers are not available.";

    NavRefusals: "提供停止台帳", "Refusals";
    NavPhoneRefusal: "電話受付", "Phone refusal";
    NavEvents: "収集監査ログ", "Collection log";
    RegistersSignInNote: "職員用ページです（R-A2）。権限のある職員のみが閲覧でき、閲覧と操作は記録されます。", "Staff pages (R-A2): only staff whose roles permit it can open them, and what they do is logged.";
    RefusalsTitle: "提供停止台帳", "Refusal register";
    RefusalsNote: "患者の特定につながる情報は表示しません。受付番号で管理します。", "No data identifying a patient is shown; refusals are kept by receipt number.";
    RefusalsEmpty: "提供停止の記録はありません。", "No refusal has been recorded.";
    RecordedBy: "記録者", "Recorded by";
    EventsTitle: "収集監査ログ", "Collection audit log";
    EventsNote: "収集台帳への変更と確認の失敗をすべて記録しています。患者は鍵付きダイジェストでのみ表示されます。", "Every change to the collection registers and every failed check is logged. Patients appear only as keyed digests.";
    EventsEmpty: "記録はありません。", "Nothing has been logged.";
    EventAt: "日時", "Time";
    EventActor: "実行者", "Actor";
    EventAction: "操作", "Action";
    EventProvider: "事業者", "Provider";
    EventSubject: "対象（ダイジェスト）", "Subject (digest)";
    EventDetail: "詳細", "Detail";
    PhoneRefusalTitle: "電話による提供停止の受付", "Record a refusal received by phone";
    PhoneRefusalIntro: "電話で受けた提供停止を記録します。患者IDは医療機関等の患者IDを入力してください。受付番号を申出者にお伝えください。", "Records a refusal received by phone. Enter the provider's patient ID, then tell the caller the receipt number.";
    PhoneRefusedOn: "申出日", "Day of the refusal";
    PhoneSubmit: "記録する", "Record";
    PhoneRecordedTitle: "提供停止を記録しました", "Refusal recorded";
    PhoneDateInFuture: "申出日に未来の日付は指定できません。", "The day of the refusal cannot be in the future.";
    PhoneUnknownProvider: "医療機関等を選択してください。", "Please choose a provider.";

    // ---- provider portal (提供記録・隔離データ) ----
    ProviderSiteName: "データ提供者ポータル", "Provider portal";
    ProviderSignInTitle: "提供者のサインイン", "Provider sign-in";
    ProviderSignInIntro: "当事業者が発行した提供用トークン（kbn_ で始まる文字列）を貼り付けてサインインしてください。トークンはこのブラウザに保存されません。サインインは1時間有効です。",
        "Paste the intake token the operator issued to you (it starts with kbn_) to sign in. The token is not stored in this browser. A sign-in lasts one hour.";
    ProviderToken: "提供用トークン", "Intake token";
    ProviderSignInSubmit: "サインイン", "Sign in";
    ProviderSignInFailed: "トークンを確認できませんでした（誤り、または失効しています）。", "The token could not be verified (wrong or revoked).";
    ProviderNotFiled: "この事業者は現在データを提供できません（主務大臣への届出が有効ではありません）。", "This provider may not provide data at present: its filing with the minister is not in force.";
    ProviderSignOut: "サインアウト", "Sign out";
    ProviderSignedInAs: "サインイン中の事業者", "Signed in as";
    NavProviderIntakes: "提供記録", "Provision record";
    NavProviderQuarantine: "隔離データ", "Quarantine";
    ProviderIntakesTitle: "提供記録（法第32条）", "Provision record (Art. 32)";
    ProviderIntakesNote: "貴事業者から当事業者への医療情報の提供ごとの記録です。CSVは提供記録として保存できます。",
        "One record per provision of medical information from your organisation to the operator. The CSV can be kept as your provision record.";
    ProviderDownloadCsv: "提供記録をCSVでダウンロード", "Download the provision record (CSV)";
    ColumnReceivedAt: "受領日時", "Received at";
    ColumnHeld: "保留", "Held";
    ColumnRefused: "提供停止", "Refused (opt-out)";
    ColumnNotificationBasis: "通知の根拠", "Notification basis";
    ColumnFieldPath: "項目", "Field";
    ColumnOriginal: "元の内容", "Original";
    ProviderQuarantineTitle: "隔離データ（受入不可）", "Quarantined entries";
    ProviderQuarantineNote: "受け入れられなかったリソースと理由です。元の内容（JSON）をダウンロードし、修正して再送してください。元の内容は暗号化して保管しています。",
        "Resources that could not be taken, with the reason. Download the original content (JSON), fix it and send it again. Originals are kept encrypted.";
    ProviderDownloadOriginal: "ダウンロード", "Download";
    PagePrevious: "前へ", "Previous";
    PageNext: "次へ", "Next";
    PageOf: "件中", "entries in total";
    NotificationBasisHeading: "通知の根拠（オプトアウトの通知）", "Notification basis (opt-out notices)";
    NotificationBasisNote: "この取得でデータを受け入れた患者が、どの方法で、いつ通知を受けていたかの集計です。",
        "How and when the patients whose data this intake took had been notified.";
    ColumnMeans: "通知方法", "Means";
    ColumnPatients: "患者数", "Patients";
    ColumnEarliestNotice: "最も早い通知日", "Earliest notice";
    ColumnLatestNotice: "最も遅い通知日", "Latest notice";
    MeansLetter: "書面", "Letter";
    MeansEmail: "電子メール", "E-mail";
    MeansPoster: "掲示", "Poster";
    MeansWeb: "ウェブサイト", "Web site";

    // ---- staff sign-in (R-A2) and the clerical review of linkage ----
    NavStaffHome: "職員", "Staff";
    NavReview: "名寄せ確認", "Linkage review";
    StaffSignInTitle: "職員サインイン", "Staff sign-in";
    StaffSignInIntro: "ログイン名、パスワード、認証アプリに表示される6桁の確認コードを入力してください。",
        "Enter your login name, your password and the 6-digit code your authenticator app shows.";
    StaffLogin: "ログイン名", "Login name";
    StaffPassword: "パスワード", "Password";
    StaffTotpCode: "確認コード（6桁）", "Verification code (6 digits)";
    StaffSignInSubmit: "サインイン", "Sign in";
    StaffSignInFailed: "サインインできませんでした。入力内容を確認してください。失敗が続くと、しばらくの間サインインできなくなります。",
        "Sign-in failed. Check what you entered. After repeated failures, sign-in is blocked for a while.";
    StaffSignOut: "サインアウト", "Sign out";
    StaffHomeTitle: "職員ページ", "Staff";
    StaffSignedInAs: "サインイン中", "Signed in as";
    StaffRoles: "役割", "Roles";
    StaffPagesAllowed: "利用できるページ", "Pages you may open";
    StaffNoPages: "この役割で利用できる職員ページはまだありません。", "No staff page is open to these roles yet.";
    StaffForbiddenTitle: "権限がありません", "Not permitted";
    StaffForbidden: "この役割ではこのページを開けません。", "Your roles do not permit this page.";
    StaffUnavailable: "このサーバーは読み取り専用で起動しているため（マスター鍵なし）、職員のサインインと職員ページは利用できません。",
        "This server runs read-only (started without the master key), so staff sign-in and the staff pages are not available.";
    ReviewTitle: "名寄せの確認待ち", "Linkage pairs to review";
    ReviewNote: "名寄せで判定がつかなかった記録の組です。判定の最も不確かなもの（一致確率が50%に近いもの）から表示しています。",
        "Record pairs that linkage could not decide, most uncertain first (match probability nearest 50%).";
    ReviewEmpty: "確認待ちの組はありません。", "No pairs wait for review.";
    ReviewOpenCount: "確認待ちの組", "Pairs to review";
    ReviewPairColumn: "組", "Pair";
    ReviewProbability: "一致確率", "Match probability";
    ReviewRun: "名寄せ実行", "Linkage run";
    ReviewOpenLink: "確認する", "Review";
    ReviewDetailTitle: "記録の組の確認", "Review a record pair";
    ReviewDetailNote: "本人確認情報を表示しています。閲覧と判定はすべて記録されます。この画面を印刷・複写しないでください。",
        "Identity data is shown. Every view and decision is logged. Do not print or copy this page.";
    ReviewField: "項目", "Field";
    ReviewLeft: "記録A", "Record A";
    ReviewRight: "記録B", "Record B";
    ReviewComparison: "比較結果", "Comparison";
    ReviewWeight: "重み（ビット）", "Weight (bits)";
    ReviewEvidenceTitle: "項目ごとの比較", "Comparison by field";
    ReviewRecordMissing: "（識別情報が見つかりません）", "(identity record not found)";
    ReviewSamePerson: "同一人物", "Same person";
    ReviewDifferentPersons: "別人", "Different persons";
    ReviewNoteLabel: "メモ（任意。識別情報は書かないでください）", "Note (optional; do not write identity data)";
    ReviewDecision: "判定", "Decision";
    ReviewStatusOpen: "確認待ち", "Open";
    ReviewDecidedBy: "判定者", "Decided by";
    ReviewAlreadyDecided: "この組はすでに判定されています。", "This pair has already been decided.";
    ReviewNotFound: "この組は見つかりません。", "No such pair.";
    ReviewBack: "確認待ちの一覧へ", "Back to the pairs to review";
    FieldProvider: "提供元", "Provider";
    FieldNameKanji: "氏名（漢字）", "Name (kanji)";
    FieldNameKana: "氏名（カナ）", "Name (kana)";
    FieldBirthDate: "生年月日", "Birth date";
    FieldSex: "性別", "Sex";
    FieldPostalCode: "郵便番号", "Postal code";
    FieldAddress: "住所", "Address";
    FieldInsurerNumber: "保険者番号", "Insurer number";
    FieldInsuredSymbol: "被保険者証の記号", "Card symbol";
    FieldInsuredNumber: "被保険者証の番号", "Card number";
    FieldInsuredBranch: "枝番", "Card branch";
    FieldHousehold: "住所・保険証", "Address and insurance card";
    FieldAdjustments: "その他の補正 (氏名の頻度・世帯の転居・同姓同名の数・医療機関の組合せ・事前確率)", "Other adjustments (name frequency, household moves, namesakes, provider pair, prior)";
    FieldName: "氏名", "Name";
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
