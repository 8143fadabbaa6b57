use std::process::ExitCode;

use clap::Parser;

// The worker allocates and frees many small strings per message (templates,
// MIME, SQL rows); mimalloc does that markedly faster than the system allocator.
// Its `override` feature gives it SQLite's allocations too (sqlx copies every
// column of every row): glibc's malloc was a tenth of the worker's instructions.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = aviso::cli::Cli::parse();
    aviso::cli::init_logging(&cli);
    if cli.is_batch_job() {
        aviso::cli::schedule_as_batch_job();
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = cli.runtime_threads() {
        runtime.worker_threads(threads);
    }
    let runtime = match runtime.enable_all().build() {
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
