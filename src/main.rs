//! The `ballast` binary: parse arguments, run the library, exit with its code.

use clap::Parser;

fn main() {
    let cli = ballast::cli::Cli::parse();
    ballast::logging::init(cli.global.verbose, cli.global.quiet);
    let code = match tokio::runtime::Runtime::new() {
        Ok(runtime) => {
            let code = runtime.block_on(ballast::commands::run(cli));
            // A prompt thread may still be blocked reading the terminal: do not wait for it.
            runtime.shutdown_background();
            code
        }
        Err(e) => {
            ballast::report::stderr_line(&format!("ballast: cannot start the async runtime: {e}"));
            ballast::exit_code::NOT_RECOVERED
        }
    };
    std::process::exit(code);
}
