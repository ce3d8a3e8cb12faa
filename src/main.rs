//! `kiban`: the command-line entry point. All behaviour lives in `kiban-cli`.

/// mimalloc instead of the system allocator: intake allocates and frees many small objects
/// (parsed FHIR elements, rows) from several threads at once, where glibc's allocator spent
/// about a fifth of the CPU time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    kiban_cli::main()
}
