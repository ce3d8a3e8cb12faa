//! Generates a synthetic population: `cargo run --release -p kiban-synth --example generate -- PERSONS OUT_DIR [SEED]`.

use kiban_synth::{SynthConfig, generate};
use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let persons: u64 = args.next().as_deref().unwrap_or("20000").parse()?;
    let out = PathBuf::from(args.next().unwrap_or_else(|| "synth-out".to_owned()));
    let seed: u64 = args.next().as_deref().unwrap_or("42").parse()?;
    let config = SynthConfig {
        persons,
        seed,
        ..SynthConfig::default()
    };
    let started = Instant::now();
    let summary = generate(&config, &out, &|done| {
        if done % 100_000 < 2_048 {
            eprintln!("{done} persons");
        }
    })?;
    println!("{summary:#?}");
    println!("elapsed: {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
