//! Long work: `hoodyctl operations list|get|cancel`, and following an operation to its end —
//! what `images import` and `snapshots restore` do on a terminal, with a progress line on
//! stderr, before printing the answer the synchronous request would have given.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use clap::Subcommand;
use hoody_api::client::ClientError;
use hoody_api::operations::{Operation, OperationResult, OperationStatus};

use super::Client;
use super::output::{self, Output, emit};

#[derive(Debug, Subcommand)]
pub enum OperationsCmd {
    /// Every operation you may see (finished ones are kept an hour).
    List,
    /// One operation: status, progress, and once done its result or error.
    Get {
        /// The operation's id.
        id: String,
    },
    /// Cancel a running image import (a restore cannot be cancelled).
    Cancel {
        /// The operation's id.
        id: String,
    },
    /// Wait for an operation to end; print its result (or its error, with the exit status the
    /// synchronous request would have had).
    Wait {
        /// The operation's id.
        id: String,
    },
}

pub async fn operations(client: &Client, out: Output, cmd: OperationsCmd) -> anyhow::Result<i32> {
    match cmd {
        OperationsCmd::List => emit(out, client.operations().await),
        OperationsCmd::Get { id } => emit(out, client.operation(&id).await),
        OperationsCmd::Cancel { id } => emit(out, client.cancel_operation(&id).await),
        OperationsCmd::Wait { id } => match client.operation(&id).await {
            Ok(op) => follow(client, out, op).await,
            Err(e) => emit(out, Err::<(), _>(e)),
        },
    }
}

/// Whether long work should run as an operation with a progress line: on a terminal.
pub fn show_progress() -> bool {
    std::io::stderr().is_terminal()
}

/// Follows `op` until it ends (a progress line on stderr when it is a terminal), then prints
/// its result as the synchronous answer, or its error with that answer's exit status.
pub async fn follow(client: &Client, out: Output, mut op: Operation) -> anyhow::Result<i32> {
    let tty = show_progress();
    while !op.status.is_done() {
        if tty {
            eprint!("\r\x1b[2K{}", line(&op));
            let _ = std::io::stderr().flush();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        op = match client.operation(&op.id).await {
            Ok(o) => o,
            Err(e @ ClientError::Api { .. }) => return emit(out, Err::<(), _>(e)),
            Err(e) => return Err(e.into()),
        };
    }
    if tty {
        eprint!("\r\x1b[2K");
    }
    match (op.status, op.result, op.error) {
        (OperationStatus::Succeeded, Some(OperationResult::Imported(i)), _) => emit(out, Ok(i)),
        (OperationStatus::Succeeded, Some(OperationResult::Restored(r)), _) => emit(out, Ok(r)),
        (_, _, Some(error)) => {
            let status =
                op.error_status.and_then(|s| hyper::StatusCode::from_u16(s).ok()).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
            Ok(output::refused(status, &error))
        }
        (status, _, _) => anyhow::bail!("operation {} ended {status:?} without a result", op.id),
    }
}

/// `importing debian  [########............]  41%  120.0 MiB / 290.0 MiB`.
fn line(op: &Operation) -> String {
    let what = match op.kind {
        hoody_api::operations::OperationKind::ImageImport => "importing",
        hoody_api::operations::OperationKind::SnapshotRestore => "restoring",
    };
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    match op.progress.total.filter(|t| *t > 0) {
        Some(total) => {
            let frac = (op.progress.bytes as f64 / total as f64).clamp(0.0, 1.0);
            let filled = (frac * 20.0).round() as usize;
            format!(
                "{what} {}  [{}{}]  {:>3.0}%  {:.1} MiB / {:.1} MiB",
                op.target,
                "#".repeat(filled),
                ".".repeat(20 - filled),
                frac * 100.0,
                mib(op.progress.bytes),
                mib(total)
            )
        }
        None if op.progress.bytes > 0 => format!("{what} {}  {:.1} MiB", op.target, mib(op.progress.bytes)),
        None => format!("{what} {} …", op.target),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoody_api::operations::{OperationKind, Progress};

    #[test]
    fn the_progress_line_says_how_far() {
        let mut op = Operation {
            id: "x".into(),
            kind: OperationKind::ImageImport,
            status: OperationStatus::Running,
            container: None,
            target: "debian".into(),
            created_at: String::new(),
            finished_at: None,
            progress: Progress { bytes: 5 << 20, total: Some(10 << 20) },
            result: None,
            error: None,
            error_status: None,
        };
        assert_eq!(line(&op), "importing debian  [##########..........]   50%  5.0 MiB / 10.0 MiB");
        op.progress.total = None;
        assert_eq!(line(&op), "importing debian  5.0 MiB");
    }
}
