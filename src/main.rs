//! The `selectlab` command line; each subcommand lives in `selectlab::cli`.

fn main() -> std::process::ExitCode {
    selectlab::cli::main()
}
