//! Shared helpers: running the binary, generating inputs, reading a store back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use kiban_metadata::Metadata;
use kiban_model::{ClinicalTable, IdentityRow, TableRow};
use kiban_store::{KeyFile, Store};

/// Path of the `kiban` binary under test.
pub fn kiban_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kiban"))
}

/// A `kiban` command with a clean environment for keys and logs.
pub fn kiban() -> Command {
    let mut cmd = Command::new(kiban_bin());
    cmd.env_remove("KIBAN_KEY_FILE").env("KIBAN_LOG", "warn");
    cmd
}

/// Runs `kiban` and fails the test with its output if it does not succeed.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("kiban binary runs");
    assert!(
        out.status.success(),
        "kiban failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Generates a population with `kiban synth`.
pub fn synth(persons: u64, seed: u64, out: &Path) {
    run_ok(
        kiban()
            .args([
                "synth",
                "--persons",
                &persons.to_string(),
                "--seed",
                &seed.to_string(),
                "--out",
            ])
            .arg(out),
    );
}

/// Every row of a store, table by table, with patient keys replaced by the provider patient id
/// they stand for (patient keys are keyed by a per-store secret, so two stores differ there),
/// sorted, as JSON lines. Two stores holding the same records give equal maps.
pub fn store_contents(data_dir: &Path, key_file: &Path) -> BTreeMap<String, Vec<String>> {
    let keys = KeyFile::load(key_file).expect("key file loads");
    let store = Store::open(data_dir, Arc::new(keys)).expect("store opens");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let meta = rt
        .block_on(Metadata::open_in_dir(data_dir))
        .expect("metadata opens");

    let mut identity: Vec<IdentityRow> = Vec::new();
    for seg in rt.block_on(meta.segments(IdentityRow::TABLE)).unwrap() {
        identity.extend(
            store
                .read_segment::<IdentityRow>(&seg.path)
                .expect("identity segment reads"),
        );
    }
    let mut patient_of = BTreeMap::new();
    for row in &identity {
        patient_of.insert(
            row.common.patient_key.clone(),
            format!("{}/{}", row.common.provider_id, row.provider_patient_id),
        );
    }
    let mut out = BTreeMap::new();
    let mut tables: Vec<&str> = ClinicalTable::ALL.iter().map(|t| t.name()).collect();
    tables.push(IdentityRow::TABLE);
    for table in tables {
        let mut lines = Vec::new();
        for seg in rt.block_on(meta.segments(table)).unwrap() {
            for batch in store
                .read_segment_batches(&seg.path)
                .expect("segment reads")
            {
                for i in 0..batch.num_rows() {
                    let mut cells = Vec::new();
                    for (c, field) in batch.schema().fields().iter().enumerate() {
                        let col = batch.column(c);
                        let cell = arrow_cell(col.as_ref(), i);
                        if field.name() == "patient_key" {
                            cells.push(
                                patient_of
                                    .get(&cell)
                                    .cloned()
                                    .unwrap_or_else(|| format!("UNRESOLVED:{cell}")),
                            );
                        } else {
                            cells.push(cell);
                        }
                    }
                    lines.push(cells.join("|"));
                }
            }
        }
        lines.sort();
        out.insert(table.to_string(), lines);
    }
    rt.block_on(meta.close());
    out
}

fn arrow_cell(array: &dyn arrow_array::Array, i: usize) -> String {
    use arrow_array::cast::AsArray;
    use arrow_array::types::*;
    use arrow_schema::DataType;
    if array.is_null(i) {
        return "∅".into();
    }
    match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().value(i).to_string(),
        DataType::Boolean => array.as_boolean().value(i).to_string(),
        DataType::Float64 => array.as_primitive::<Float64Type>().value(i).to_string(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(i).to_string(),
        DataType::Date32 => array.as_primitive::<Date32Type>().value(i).to_string(),
        DataType::Timestamp(_, _) => array
            .as_primitive::<TimestampMicrosecondType>()
            .value(i)
            .to_string(),
        other => panic!("unexpected column type {other}"),
    }
}

/// Every file under a directory, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}
