//! The `devenv` binary: parses arguments and hands over to the library, where everything can
//! be tested. Process concerns (exit codes, the error on stderr) stay here.

fn main() -> std::process::ExitCode {
    devenv::main()
}
