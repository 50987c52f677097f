//! `condwrite`: see `condwrite --help` and the README.

fn main() -> std::process::ExitCode {
    condwrite::cli::main()
}
