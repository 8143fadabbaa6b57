use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = aviso::cli::Cli::parse();
    aviso::cli::init_logging(&cli);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(aviso::cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", aviso::cli::one_line(&e));
            ExitCode::FAILURE
        }
    }
}
