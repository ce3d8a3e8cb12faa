//! The HTML report: one self-contained bilingual (Japanese / English) page with inline CSS and
//! hand-drawn SVG plots, no script and no external asset, so that it can be archived with the
//! release and opened offline.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use crate::anonymize::{Report, write_atomically};
use crate::error::Result;
use crate::privacy::LDiversity;
use crate::risk::UniquenessModel;

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:'Hiragino Sans','Noto Sans JP','Yu Gothic',sans-serif;\
margin:2em auto;max-width:960px;color:#222;line-height:1.5}\
h1{font-size:1.5em;border-bottom:2px solid #2b5797}h2{font-size:1.2em;margin-top:1.6em;color:#2b5797}\
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}\
th{background:#eef2f8;font-weight:normal}td.num{text-align:right;font-variant-numeric:tabular-nums}\
.ok{color:#1a7f37;font-weight:bold}.ng{color:#c62828;font-weight:bold}.note{color:#555;font-size:.9em}\
svg{background:#fafafa;border:1px solid #ddd}svg text{font-size:11px;fill:#333}";

/// A bar of a plot: label under the bar and its value.
struct Bar {
    label: String,
    value: f64,
}

/// Draws a bar chart as an inline SVG element; `title` is already escaped by the caller.
fn bar_chart(out: &mut String, title: &str, y_label: &str, bars: &[Bar], percent: bool) {
    let (width, height) = (880.0_f64, 260.0_f64);
    let (left, right, top, bottom) = (60.0, 10.0, 24.0, 48.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let max = bars.iter().map(|b| b.value).fold(0.0, f64::max);
    let scale = if max > 0.0 { plot_h / max } else { 0.0 };
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{title}\">"
    );
    let _ = write!(out, "<text x=\"{left}\" y=\"16\">{title}</text>");
    // Axes and the maximum on the y axis.
    let _ = write!(
        out,
        "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"#666\"/>\
         <line x1=\"{left}\" y1=\"{y0}\" x2=\"{}\" y2=\"{y0}\" stroke=\"#666\"/>",
        top + plot_h,
        left + plot_w,
        y0 = top + plot_h
    );
    let max_label = if percent {
        format!("{:.1}%", max * 100.0)
    } else {
        format!("{max}")
    };
    let _ = write!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>\
         <text x=\"12\" y=\"{}\" transform=\"rotate(-90 12 {})\" text-anchor=\"middle\">{}</text>",
        left - 4.0,
        top + 4.0,
        escape(&max_label),
        left - 4.0,
        top + plot_h,
        top + plot_h / 2.0,
        top + plot_h / 2.0,
        escape(y_label)
    );
    if bars.is_empty() {
        out.push_str("</svg>");
        return;
    }
    let slot = plot_w / bars.len() as f64;
    let bar_w = (slot * 0.8).max(1.0);
    for (i, bar) in bars.iter().enumerate() {
        let h = bar.value * scale;
        let x = left + i as f64 * slot + (slot - bar_w) / 2.0;
        let y = top + plot_h - h;
        let value = if percent {
            format!("{:.2}%", bar.value * 100.0)
        } else {
            format!("{}", bar.value)
        };
        let _ = write!(
            out,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar_w:.1}\" height=\"{h:.1}\" fill=\"#2b5797\">\
             <title>{}: {}</title></rect>",
            escape(&bar.label),
            escape(&value)
        );
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            x + bar_w / 2.0,
            top + plot_h + 14.0,
            escape(&bar.label)
        );
    }
    out.push_str("</svg>");
}

/// Class-size bins for the histogram plot: one bar per size when there are few sizes,
/// otherwise ranges growing roughly geometrically.
fn class_size_bars(report: &Report) -> Vec<Bar> {
    let histogram = &report.class_size_histogram;
    if histogram.len() <= 30 {
        return histogram
            .iter()
            .map(|b| Bar {
                label: b.size.to_string(),
                value: b.classes as f64,
            })
            .collect();
    }
    const EDGES: [usize; 13] = [1, 2, 3, 4, 5, 10, 20, 50, 100, 200, 500, 1000, 10_000];
    let mut bars = Vec::new();
    for (i, &low) in EDGES.iter().enumerate() {
        let high = EDGES.get(i + 1).copied();
        let classes: usize = histogram
            .iter()
            .filter(|b| b.size >= low && high.is_none_or(|h| b.size < h))
            .map(|b| b.classes)
            .sum();
        let label = match high {
            Some(h) if h == low + 1 => low.to_string(),
            Some(h) => format!("{low}–{}", h - 1),
            None => format!("{low}+"),
        };
        bars.push(Bar {
            label,
            value: classes as f64,
        });
    }
    // Drop empty bins at the large end only, so the axis stays ordered and compact.
    while bars.last().is_some_and(|b| b.value == 0.0) {
        bars.pop();
    }
    bars
}

fn risk_bars(report: &Report) -> Vec<Bar> {
    let released = (report.records - report.suppressed_records).max(1) as f64;
    report
        .risk
        .records_by_prosecutor_risk
        .iter()
        .map(|b| Bar {
            label: format!("≤{:.0}%", b.up_to * 100.0),
            value: b.records as f64 / released,
        })
        .collect()
}

fn verdict(holds: bool) -> &'static str {
    if holds {
        "<span class=\"ok\">✓ 充足 / holds</span>"
    } else {
        "<span class=\"ng\">✗ 不充足 / fails</span>"
    }
}

fn percent(x: f64) -> String {
    format!("{:.4}%", x * 100.0)
}

fn optional_percent(x: Option<f64>) -> String {
    x.map(percent)
        .unwrap_or_else(|| "推定不可 / not available".into())
}

fn row(out: &mut String, label: &str, value: &str) {
    let _ = write!(
        out,
        "<tr><th>{label}</th><td class=\"num\">{}</td></tr>",
        escape(value)
    );
}

/// Renders the report as a self-contained HTML page.
pub fn render_report_html(report: &Report) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"ja\"><head><meta charset=\"utf-8\">\
         <title>匿名加工レポート / Anonymization report</title><style>{STYLE}</style></head><body>\
         <h1>匿名加工レポート / Anonymization report</h1>"
    );

    out.push_str("<h2>概要 / Summary</h2><table>");
    let released = report.records - report.suppressed_records;
    row(
        &mut out,
        "入力レコード数 / Input records",
        &report.records.to_string(),
    );
    row(
        &mut out,
        "提供レコード数 / Released records",
        &released.to_string(),
    );
    row(
        &mut out,
        "削除レコード数 / Suppressed records",
        &format!(
            "{} ({})",
            report.suppressed_records,
            percent(report.suppressed_records as f64 / report.records.max(1) as f64)
        ),
    );
    row(
        &mut out,
        "同値クラス数 / Equivalence classes",
        &report.equivalence_classes.to_string(),
    );
    row(&mut out, "達成 k / Achieved k", &report.k.to_string());
    row(
        &mut out,
        "情報損失 / Information loss",
        &format!("{} ({})", report.information_loss, report.metric_name),
    );
    let search = match report.search {
        crate::search::SearchStrategy::Optimal => "最適 / optimal",
        crate::search::SearchStrategy::Heuristic => "ヒューリスティック / heuristic",
        crate::search::SearchStrategy::DifferentiallyPrivate => {
            "差分プライバシー (SafePub) / differentially private (SafePub)"
        }
    };
    row(&mut out, "探索 / Search", search);
    row(
        &mut out,
        "格子の大きさ / Lattice size",
        &format!(
            "{} (評価 / checked {})",
            report.lattice_size, report.nodes_checked
        ),
    );
    row(
        &mut out,
        "処理時間 / Elapsed",
        &format!("{:.1} ms", report.elapsed_ms),
    );
    out.push_str("</table>");

    out.push_str(
        "<h2>一般化レベル / Generalization levels</h2><table>\
         <tr><th>準識別子 / Quasi-identifier</th><th>レベル / Level</th></tr>",
    );
    for (name, level) in report.quasi_identifiers.iter().zip(&report.levels) {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{level}</td></tr>",
            escape(name)
        );
    }
    out.push_str("</table>");

    privacy_section(&mut out, report, released);
    differential_privacy_section(&mut out, report);
    local_recoding_section(&mut out, report);
    derived_section(&mut out, report);
    risk_section(&mut out, report);

    out.push_str("<h2>同値クラスの大きさ / Class-size histogram</h2>");
    bar_chart(
        &mut out,
        "クラスの大きさ別のクラス数 / Classes by class size",
        "クラス数 / classes",
        &class_size_bars(report),
        false,
    );
    out.push_str("<h2>レコードの検察官リスク分布 / Distribution of prosecutor risk</h2>");
    bar_chart(
        &mut out,
        "リスク別の提供レコードの割合 / Share of released records by prosecutor risk",
        "レコード / records",
        &risk_bars(report),
        true,
    );
    out.push_str(
        "<p class=\"note\">すべての数値は提供データ上で測定 / Every figure is measured on the \
         released data.</p></body></html>\n",
    );
    out
}

/// With (ε, δ)-differential privacy: the parameters, the derived k, the chosen generalization
/// and its SafePub score.
fn differential_privacy_section(out: &mut String, report: &Report) {
    let Some(dp) = &report.differential_privacy else {
        return;
    };
    out.push_str("<h2>差分プライバシー (SafePub) / Differential privacy (SafePub)</h2><table>");
    row(out, "ε (合計 / total)", &format!("{}", dp.epsilon));
    row(
        out,
        "ε<sub>anon</sub> (抽出と k-匿名化 / sampling and k-anonymization)",
        &format!("{:.6}", dp.epsilon_anonymization),
    );
    row(
        out,
        "ε<sub>search</sub> (一般化の選択 / choice of the generalization)",
        &format!("{}", dp.epsilon_search),
    );
    row(out, "δ", &format!("{:e}", dp.delta));
    row(
        out,
        "β = 1 − e<sup>−ε<sub>anon</sub></sup> (抽出確率 / sampling probability)",
        &format!("{:.6}", dp.beta),
    );
    row(
        out,
        "k (ε<sub>anon</sub>, δ, β から導出 / derived from ε<sub>anon</sub>, δ, β)",
        &dp.k.to_string(),
    );
    row(
        out,
        "抽出レコード / Sampled records",
        &format!("{} / {}", dp.sampled_records, dp.input_records),
    );
    let chosen: Vec<String> = report
        .quasi_identifiers
        .iter()
        .zip(&report.levels)
        .map(|(name, level)| format!("{name}={level}"))
        .collect();
    row(
        out,
        "選ばれた一般化 / Chosen generalization",
        &chosen.join(", "),
    );
    row(
        out,
        "スコア / Score (SafePub granularity ÷ sensitivity)",
        &format!("{:.6}", dp.score),
    );
    row(
        out,
        "感度 / Sensitivity (max(1, k − 1) · q)",
        &format!("{}", dp.score_sensitivity),
    );
    row(out, "探索ステップ / Search steps", &dp.steps.to_string());
    out.push_str(
        "</table><p class=\"note\">k は Li–Qardaji–Su の d(k, β, ε<sub>anon</sub>) ≤ δ を満たす最小値、\
         一般化は指数メカニズムで選択 / k is the smallest with d(k, β, ε<sub>anon</sub>) ≤ δ \
         (Li, Qardaji, Su 2012; SafePub §4); the generalization is drawn with the exponential \
         mechanism.</p>",
    );
}

/// With local recoding: how many records were recoded instead of suppressed, per iteration.
fn local_recoding_section(out: &mut String, report: &Report) {
    let Some(local) = &report.local_recoding else {
        return;
    };
    out.push_str("<h2>ローカル再符号化 / Local recoding</h2><table>");
    row(
        out,
        "大域最適解での削除 / Suppressed by the global optimum",
        &local.suppressed_by_global.to_string(),
    );
    row(
        out,
        "削除せず再符号化 / Recoded instead of suppressed",
        &local.records_recoded.to_string(),
    );
    row(
        out,
        "最終的な削除 / Suppressed in the release",
        &local.suppressed_after.to_string(),
    );
    row(out, "終了理由 / Stopped because", &local.stopped_because);
    out.push_str(
        "</table><table><tr><th>反復 / Iteration</th><th>レベル / Levels</th>\
         <th>再符号化 / Recoded</th><th>残り / Left</th></tr>",
    );
    for (i, step) in local.steps.iter().enumerate() {
        let _ = write!(
            out,
            "<tr><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td></tr>",
            i + 1,
            escape(&format!("{:?}", step.levels)),
            step.records_recoded,
            step.records_left
        );
    }
    let _ = write!(
        out,
        "</table><p class=\"note\">{}</p>",
        escape(&local.method)
    );
}

/// Columns derived before the anonymization (age at an event).
fn derived_section(out: &mut String, report: &Report) {
    if report.derived_ages.is_empty() {
        return;
    }
    out.push_str(
        "<h2>導出列 / Derived columns</h2><table><tr><th>列 / Column</th><th>規則 / Rule</th>\
         <th>上限まとめ / Top-coded</th><th>欠損 / Missing</th></tr>",
    );
    for derived in &report.derived_ages {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&derived.column),
            escape(&derived.rule),
            derived.top_coded_records,
            derived.missing_records
        );
    }
    out.push_str("</table>");
}

fn privacy_section(out: &mut String, report: &Report, released: usize) {
    let models = &report.privacy;
    out.push_str(
        "<h2>プライバシーモデル / Privacy models</h2><table><tr><th>モデル / Model</th>\
         <th>要求 / Required</th><th>達成 / Achieved</th><th>判定 / Verdict</th></tr>",
    );
    let mut model_row = |name: &str, required: String, achieved: String, holds: bool| {
        let _ = write!(
            out,
            "<tr><td>{name}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            escape(&required),
            escape(&achieved),
            verdict(holds)
        );
    };
    model_row(
        "k-匿名性 / k-anonymity",
        models.k.to_string(),
        report.k.to_string(),
        released == 0 || report.k >= models.k,
    );
    let budget = models.suppression_budget(report.records);
    model_row(
        "削除上限 / Suppression limit",
        format!("≤ {} ({})", budget, percent(models.max_suppression)),
        report.suppressed_records.to_string(),
        report.suppressed_records <= budget,
    );
    if let (Some(model), Some(achieved)) = (models.l_diversity, report.l) {
        let (name, required, holds) = match model {
            LDiversity::Distinct { l } => (
                "ℓ-多様性（distinct） / distinct ℓ-diversity",
                l.to_string(),
                achieved >= l as f64,
            ),
            LDiversity::Entropy { l } => (
                "ℓ-多様性（エントロピー） / entropy ℓ-diversity",
                l.to_string(),
                achieved >= l - 1e-9,
            ),
            // The report carries distinct ℓ only; the c condition is enforced per class by the
            // engine and not re-derivable from these figures.
            LDiversity::Recursive { c, l } => (
                "再帰的 (c,ℓ)-多様性 / recursive (c,ℓ)-diversity",
                format!("c = {c}, ℓ = {l}"),
                achieved >= l as f64,
            ),
        };
        model_row(
            name,
            required,
            format!("{achieved:.4}"),
            released == 0 || holds,
        );
    }
    if let (Some(required), Some(achieved)) = (models.t_closeness, report.t) {
        model_row(
            &format!(
                "t-近接性 / t-closeness ({} distance)",
                models.t_distance.name()
            ),
            format!("≤ {required}"),
            format!("{achieved:.6}"),
            achieved <= required + 1e-12,
        );
    }
    if let (Some(required), Some([low, high])) = (&models.delta_presence, report.delta_presence) {
        model_row(
            "δ-存在性 / δ-presence",
            format!("[{}, {}]", required.delta_min, required.delta_max),
            format!("[{low:.4}, {high:.4}]"),
            released == 0
                || (low >= required.delta_min - 1e-12 && high <= required.delta_max + 1e-12),
        );
    }
    if let Some(required) = models.k_map {
        let achieved = report.k_map.unwrap_or(0);
        model_row(
            "k-マップ / k-map",
            required.to_string(),
            achieved.to_string(),
            released == 0 || achieved >= required as u64,
        );
    }
    out.push_str("</table>");
    for m in &report.microaggregation {
        let _ = write!(
            out,
            "<p class=\"note\">ミクロアグリゲーション / Microaggregation: {} → {} \
             (平均二乗誤差 / mean squared error {:.4})</p>",
            escape(&m.column),
            match m.function {
                crate::anonymize::Aggregation::Mean => "平均 / mean",
                crate::anonymize::Aggregation::Median => "中央値 / median",
            },
            m.mean_squared_error
        );
    }
    if !report.sensitive.is_empty() {
        out.push_str(
            "<table><tr><th>機微属性 / Sensitive attribute</th><th>distinct ℓ</th>\
             <th>entropy ℓ</th><th>t</th></tr>",
        );
        for s in &report.sensitive {
            let _ = write!(
                out,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{:.4}</td>\
                 <td class=\"num\">{:.6}</td></tr>",
                escape(&s.column),
                s.distinct_l,
                s.entropy_l,
                s.t
            );
        }
        out.push_str("</table>");
    }
}

fn risk_section(out: &mut String, report: &Report) {
    let risk = &report.risk;
    out.push_str("<h2>再識別リスク / Re-identification risk</h2><table>");
    row(
        out,
        "検察官リスク（最大 / 平均） / Prosecutor risk (max / mean)",
        &format!(
            "{} / {}",
            percent(risk.prosecutor_max),
            percent(risk.prosecutor_mean)
        ),
    );
    row(
        out,
        "ジャーナリストリスク（最大 / 平均） / Journalist risk (max / mean)",
        &format!(
            "{} / {}",
            percent(risk.journalist_max),
            percent(risk.journalist_mean)
        ),
    );
    row(
        out,
        "マーケターリスク / Marketer risk",
        &percent(risk.marketer),
    );
    row(
        out,
        "リスクの高いレコード / Records at risk",
        &format!("{} (> {})", risk.records_at_risk, percent(risk.threshold)),
    );
    row(
        out,
        "標本一意 / Sample uniques",
        &percent(risk.sample_uniques),
    );
    let population = &risk.population_uniqueness;
    row(
        out,
        "抽出率 / Sampling fraction",
        &format!(
            "{} (母集団 / population {:.0})",
            percent(population.sampling_fraction),
            population.population_size
        ),
    );
    row(
        out,
        "母集団一意（Zayatz） / Population uniques (Zayatz)",
        &optional_percent(population.zayatz),
    );
    row(
        out,
        "母集団一意（Pitman） / Population uniques (Pitman)",
        &optional_percent(population.pitman),
    );
    row(
        out,
        "母集団一意（SNB） / Population uniques (SNB)",
        &optional_percent(population.snb),
    );
    let chosen = match population.dankar_model {
        Some(UniquenessModel::Pitman) => "Pitman",
        Some(UniquenessModel::Zayatz) => "Zayatz",
        Some(UniquenessModel::Snb) => "SNB",
        None => "標本一意なし / no sample uniques",
    };
    row(
        out,
        "母集団一意（Dankar） / Population uniques (Dankar)",
        &format!("{} [{chosen}]", optional_percent(population.dankar)),
    );
    out.push_str("</table>");
    let japanese = if risk.journalist_basis == crate::risk::JOURNALIST_WITHOUT_POPULATION {
        "母集団表の指定なし：ジャーナリストリスクは検察官リスクと同じ。"
    } else if risk.journalist_basis == crate::anonymize::JOURNALIST_WITH_POPULATION {
        "母集団表あり：記録のジャーナリストリスクは 1 / 公開クラスの母集団人数（クラスの大きさ以上）。"
    } else {
        ""
    };
    let _ = write!(
        out,
        "<p class=\"note\">ジャーナリストリスク / Journalist risk: {japanese}{}</p>",
        escape(&risk.journalist_basis)
    );
}

/// Writes the report as a self-contained bilingual HTML page to `path`, atomically (temporary
/// sibling file, then rename): on error nothing is left at `path`.
pub fn write_report_html(report: &Report, path: &Path) -> Result<()> {
    let page = render_report_html(report);
    write_atomically(path, |file| {
        let mut out = std::io::BufWriter::new(file);
        out.write_all(page.as_bytes())?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_characters() {
        assert_eq!(
            escape("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn bar_chart_draws_one_rect_per_bar_scaled_to_the_maximum() {
        let mut out = String::new();
        let bars = vec![
            Bar {
                label: "1".into(),
                value: 2.0,
            },
            Bar {
                label: "<2>".into(),
                value: 4.0,
            },
        ];
        bar_chart(&mut out, "t", "y", &bars, false);
        assert_eq!(out.matches("<rect").count(), 2);
        // The tallest bar fills the plot height (260 − 24 − 48).
        assert!(out.contains("height=\"188.0\""), "{out}");
        assert!(out.contains("height=\"94.0\""));
        assert!(out.contains("&lt;2&gt;") && !out.contains("<2>"));
    }
}
