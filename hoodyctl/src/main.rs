//! hoodyctl: the client of hoodyd's socket. Depends on the API's crate only, never on the
//! daemon's (no SQLite, no nftables).

mod access;
mod cli;
mod exec;
mod output;
mod sys;

pub use hoody_api::client::{Answer, Client, full};

fn main() {
    use clap::Parser;
    let cli = cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hoodyctl: {e}");
            std::process::exit(1);
        }
    };
    let code = match rt.block_on(cli::run(cli)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hoodyctl: {e:#}");
            1
        }
    };
    // Exit at once: a pending read of stdin must not keep the process alive.
    std::process::exit(code)
}
