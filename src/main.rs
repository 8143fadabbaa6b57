use std::process::ExitCode;

use clap::Parser;

// The worker allocates and frees many small strings per message (templates,
// MIME, SQL rows); mimalloc does that markedly faster than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
