//! `hoodyctl realms`, `tokens` and `audit`: who may do what, and what was done.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use hoody_api::audit::{read_head, verify};
use hoody_api::client::ClientError;
use hoody_api::query::AuditQuery;
use hoody_api::realms::{CreateRealm, CreateToken};
use serde_json::json;

use super::Client;
use super::output::{Output, emit};

#[derive(Debug, Subcommand)]
pub enum RealmsCmd {
    /// List realms (a token sees its own).
    List,
    /// Create a realm (administrators).
    Create {
        /// What the realm is for.
        #[arg(long, default_value = "")]
        description: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokensCmd {
    /// Create a token; its secret is printed once, never again.
    Create {
        /// Realm the token may act in (repeatable, at least one).
        #[arg(long = "realm", value_name = "ID", required = true)]
        realms: Vec<String>,
        /// containers:read, containers:write, exec, firewall:write, snapshots:write (repeatable;
        /// none = all).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// What the token is for.
        #[arg(long, default_value = "")]
        description: String,
        /// When the token stops working (RFC 3339).
        #[arg(long, conflicts_with = "expires_in")]
        expires_at: Option<String>,
        /// How long the token works, from now (e.g. 12h, 30d).
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// List tokens (never their secrets), oldest first: all, or a realm's; a page at a time
    /// with --limit.
    List {
        /// Only tokens of this realm.
        #[arg(long)]
        realm: Option<String>,
        #[command(flatten)]
        page: super::pages::PageArgs,
    },
    /// Revoke a token: its next request is refused.
    Delete {
        /// The token's id.
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Check the hash chain and name the first broken record.
    #[arg(long)]
    pub verify: bool,
    /// With --verify: check this log file directly instead of asking the daemon.
    #[arg(long, requires = "verify", value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Records since an RFC 3339 time or a span back from now (15m, 2h, 7d).
    #[arg(long)]
    pub since: Option<String>,
    /// Records about one container (id or name).
    #[arg(long, short = 'c')]
    pub container: Option<String>,
    /// At most this many records (the first ones; with --newest the latest).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Newest first: the latest --limit records.
    #[arg(long)]
    pub newest: bool,
}

pub async fn realms(client: &Client, out: Output, cmd: RealmsCmd) -> anyhow::Result<i32> {
    match cmd {
        RealmsCmd::List => emit(out, client.realms().await),
        RealmsCmd::Create { description } => emit(out, client.create_realm(&CreateRealm { description }).await),
    }
}

pub async fn tokens(client: &Client, out: Output, cmd: TokensCmd) -> anyhow::Result<i32> {
    match cmd {
        TokensCmd::Create { realms, scopes, description, expires_at, expires_in } => {
            let expires_at = match expires_in {
                Some(span) => {
                    let d = humantime::parse_duration(&span).with_context(|| format!("--expires-in {span:?}"))?;
                    Some(humantime::format_rfc3339_seconds(std::time::SystemTime::now() + d).to_string())
                }
                None => expires_at,
            };
            emit(out, client.create_token(&CreateToken { realm_ids: realms, scopes, description, expires_at }).await)
        }
        TokensCmd::List { realm, page } => {
            let q = hoody_api::query::TokensQuery { realm, limit: page.limit, after: page.after };
            super::pages::emit_page(out, client.tokens_page(&q).await)
        }
        TokensCmd::Delete { id } => emit(out, client.delete_token(&id).await),
    }
}

/// Prints a verification report; exit status 1 when the chain is broken.
fn report(out: Output, r: &verify::Report) -> anyhow::Result<i32> {
    match out {
        Output::Json => println!("{}", json!({ "data": r })),
        Output::Table => {
            let cut = r
                .retention_cut_before
                .map(|s| format!("; history starts at record {s} (earlier segments removed by retention)"))
                .unwrap_or_default();
            println!("{} records in {} segment(s), chain {}{cut}", r.records, r.segments, if r.ok { "intact" } else { "BROKEN" })
        }
    }
    if let Some(b) = &r.first_broken {
        let seq = b.seq.map(|s| format!(" (record {s})")).unwrap_or_default();
        let seg = b.segment.as_ref().map(|s| format!(" of {s}")).unwrap_or_default();
        eprintln!("hoodyctl: the audit log is broken at line {}{seg}{seq}: {}", b.line, b.reason);
        return Ok(1);
    }
    Ok(0)
}

pub async fn audit(client: &Client, out: Output, a: AuditArgs) -> anyhow::Result<i32> {
    if a.verify {
        let r: verify::Report = match &a.file {
            Some(path) => {
                // The current segment and the sealed ones beside it, as the daemon checks them.
                std::fs::metadata(path).with_context(|| format!("opening {}", path.display()))?;
                let segs = hoody_api::audit::segments::all(path);
                verify::verify_segments(&segs, read_head(&path.with_extension("head")))
                    .with_context(|| format!("reading {}", path.display()))?
            }
            None => match client.audit_verify().await {
                Ok(r) => r,
                Err(e @ ClientError::Api { .. }) => return emit(out, Err::<(), _>(e)),
                Err(e) => return Err(e.into()),
            },
        };
        return report(out, &r);
    }
    let order = a.newest.then_some(hoody_api::query::Order::Desc);
    let q = AuditQuery { since: a.since, container: a.container, limit: a.limit, order, ..Default::default() };
    emit(out, client.audit(&q).await)
}
