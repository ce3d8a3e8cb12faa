//! Serves the portal over a temporary metadata store filled with a few sample providers and
//! intakes, to look at the pages: `cargo run -p kiban-server --example portal_demo [PORT]`.

use kiban_metadata::{ChunkCommit, Metadata, NewProvider, QuarantineEntry, SegmentRecord};
use kiban_model::{ClinicalTable, ProviderKind};
use kiban_server::{AppState, serve};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args()
        .nth(1)
        .map(|p| p.parse())
        .transpose()?
        .unwrap_or(8080);
    let dir = tempfile::tempdir()?;
    let meta = Metadata::open_in_dir(dir.path()).await?;
    let providers = [
        (
            "prov-001",
            "東都大学病院",
            Some("Toto University Hospital"),
            ProviderKind::UniversityHospital,
        ),
        (
            "prov-002",
            "みなと総合病院",
            Some("Minato General Hospital"),
            ProviderKind::GeneralHospital,
        ),
        (
            "prov-003",
            "さくら内科クリニック",
            None,
            ProviderKind::Clinic,
        ),
    ];
    for (id, name, name_en, kind) in providers {
        meta.upsert_provider(&NewProvider {
            id: id.into(),
            name: name.into(),
            name_en: name_en.map(Into::into),
            kind,
        })
        .await?;
    }
    for (n, provider) in ["prov-001", "prov-002"].into_iter().enumerate() {
        let scale = (n as i64 + 1) * 1000;
        let digest = format!("{:064x}", n + 1);
        let intake = meta
            .begin_intake(
                provider,
                &format!("2025-04/{provider}-bundle.ndjson"),
                &digest,
            )
            .await?;
        let mut segments = vec![SegmentRecord {
            path: format!("tables/identity/{provider}-0.parquet"),
            table_name: "identity".into(),
            rows: scale,
            bytes: scale * 180,
        }];
        for (i, table) in ClinicalTable::ALL.iter().enumerate() {
            segments.push(SegmentRecord {
                path: format!("tables/{}/{provider}-0.parquet", table.name()),
                table_name: table.name().into(),
                rows: scale * (i as i64 + 2),
                bytes: scale * (i as i64 + 2) * 95,
            });
        }
        meta.commit_chunk(
            &intake.id,
            &ChunkCommit {
                chunk_index: 0,
                lines_read: scale * 3,
                bytes_read: scale * 4096,
                resources_accepted: scale * 30,
                resources_duplicate: 12,
                segments,
                quarantine: vec![QuarantineEntry {
                    line: 42,
                    entry_index: 3,
                    resource_type: Some("Observation".into()),
                    reason: "Observation.valueQuantity.unit: not a UCUM unit".into(),
                    blob_path: format!("quarantine/{provider}-0.bin"),
                }],
                resource_versions: vec![],
                held_lines: Vec::new(),
                resources_held: 0,
                resources_refused: 0,
                item_counts: vec![
                    ("Condition".into(), scale * 4),
                    ("Observation".into(), scale * 9),
                    ("Patient".into(), scale),
                ],
            },
        )
        .await?;
        if n == 0 {
            meta.finish_intake(&intake.id).await?;
        }
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("kiban portal demo on http://127.0.0.1:{port}/ (Ctrl-C to stop)");
    let label = dir.path().display().to_string();
    serve(listener, AppState::new(meta, label), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
