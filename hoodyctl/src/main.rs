//! hoodyctl: the client of hoodyd's socket. Depends on the API's crate only, never on the
//! daemon's (no SQLite, no nftables).

mod access;
mod cli;
mod complete;
mod events;
mod exec;
mod operations;
mod output;
mod pages;
mod sys;

pub use hoody_api::client::{Answer, Client, full};

/// What to do about an error people often meet.
fn hint(e: &anyhow::Error) -> Option<String> {
    let connect = e.chain().find_map(|c| match c.downcast_ref::<hoody_api::client::ClientError>() {
        Some(hoody_api::client::ClientError::Connect { socket, source }) => Some((socket.clone(), source.kind())),
        _ => None,
    });
    match connect? {
        (socket, std::io::ErrorKind::PermissionDenied) => Some(format!(
            "{} is for root and the group `hoody`: join it (sudo usermod -aG hoody $USER, then log in again), or use a token",
            socket.display()
        )),
        _ => None,
    }
}

fn main() {
    use clap::{CommandFactory, Parser};
    // `COMPLETE=bash hoodyctl`: the shell's registration; then the shell's completion calls.
    clap_complete::CompleteEnv::with_factory(cli::Cli::command).bin("hoodyctl").completer("hoodyctl").complete();
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
            if let Some(hint) = hint(&e) {
                eprintln!("hoodyctl: {hint}");
            }
            let unreachable = e.chain().any(|c| matches!(c.downcast_ref(), Some(hoody_api::client::ClientError::Connect { .. })));
            if unreachable { output::EXIT_UNREACHABLE } else { output::EXIT_FAILED }
        }
    };
    // Exit at once: a pending read of stdin must not keep the process alive.
    std::process::exit(code)
}
