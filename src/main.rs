//! `kiban`: the command-line entry point. All behaviour lives in `kiban-cli`.

fn main() -> std::process::ExitCode {
    kiban_cli::main()
}
