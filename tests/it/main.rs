//! kiban's integration tests: one test binary, one module per theme.
//!
//! They drive the real `kiban` binary (as a user would, from the README) and read the results
//! back through the library crates.

mod anonymize;
mod cli;
mod deidentify;
mod demo;
mod fhir_examples;
mod intake_load;
mod link;
mod optout_browser;
mod privacy;
mod resume;
mod support;
mod upload_kill;
