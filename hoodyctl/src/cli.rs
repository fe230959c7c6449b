//! The `hoodyctl` command line (its clap definition also generates the man page and
//! completions).

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use clap::{Args, Parser, Subcommand};
use clap_complete::ArgValueCandidates;
use futures::TryStreamExt;
use hoody_api::client::ClientError;
use hoody_api::common::{Port, Size};
use hoody_api::containers::{ContainerSource, CreateContainer, LimitsRequest, SnapshotPolicy, UpdateContainer};
use hoody_api::firewall::{EgressRule, Firewall, FirewallPatch, IngressRule};
use hoody_api::query::LogsQuery;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use super::Client;
use super::access::{self, AuditArgs, RealmsCmd, TokensCmd};
use super::complete;
use super::output::{self, Output, emit};

/// The exit statuses (`output::exit_status`), for `--help` and the man page.
const EXIT_STATUS: &str = "Exit status:
  0  done
  1  the daemon or the host failed (a 5xx answer, a broken audit chain, anything else)
  2  usage: the command line does not parse
  3  not found: no such container, snapshot, image, exec, rule or token (or one in another realm)
  4  conflict: the state forbids it now (already running, not running, name taken, in use)
  5  refused: bad or unacceptable input, not allowed, out of quota or storage (4xx other than 404 and 409, 507)
  6  the daemon is unreachable (not running, wrong socket, no permission)
exec (and execs attach) exit with the command's own status once it ran; before that, as above.";

#[derive(Debug, Parser)]
#[command(
    name = "hoodyctl",
    version,
    about = "Client of hoodyd: containers, exec, logs, firewall, snapshots, images, realms, tokens, audit",
    after_help = EXIT_STATUS
)]
pub struct Cli {
    /// Print the answer in the daemon's JSON envelope (the default) or a table for people
    /// ($HOODY_OUTPUT=table makes tables the default). Given explicitly as json, a refusal is
    /// also printed as the error envelope on stdout (the message is on stderr either way).
    #[arg(long, short = 'o', global = true, value_enum, env = "HOODY_OUTPUT")]
    pub output: Option<Output>,
    /// The daemon's socket (default $HOODY_SOCKET, else /run/hoody/hoodyd.sock).
    #[arg(long, global = true)]
    pub socket: Option<PathBuf>,
    /// Send KEY as the Idempotency-Key of the request if it changes something: running the
    /// same command again with the same key (a retry after a lost answer) prints the first
    /// answer and changes nothing more; the same key with another request is refused.
    #[arg(long, global = true, env = "HOODY_IDEMPOTENCY_KEY", value_name = "KEY")]
    pub idempotency_key: Option<String>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create, list, inspect, start, stop, restart and delete containers.
    #[command(subcommand)]
    Containers(ContainersCmd),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// Exec instances of a container: running and recently finished.
    #[command(subcommand)]
    Execs(ExecsCmd),
    /// Print a container's console output.
    Logs(LogsArgs),
    /// Import, list and delete images.
    #[command(subcommand)]
    Images(ImagesCmd),
    /// A container's egress firewall (deny-all unless opened) and ingress allow-list.
    #[command(subcommand)]
    Firewall(FirewallCmd),
    /// Snapshots of a container: create, list, diff, restore, delete.
    #[command(subcommand)]
    Snapshots(SnapshotsCmd),
    /// Realms: the tenants containers and tokens belong to.
    #[command(subcommand)]
    Realms(RealmsCmd),
    /// Realm-scoped tokens for callers other than administrators.
    #[command(subcommand)]
    Tokens(TokensCmd),
    /// The audit trail: list records, or --verify its hash chain.
    Audit(AuditArgs),
    /// Follow the event stream (like `incus monitor`): what changes, as it happens.
    Events(super::events::EventsArgs),
    /// Long work begun in the background: list, follow, cancel.
    #[command(subcommand)]
    Operations(super::operations::OperationsCmd),
    /// Ask the daemon whether it is alive (and what autostart did at boot).
    Health,
    /// The host: stop every container before it goes down.
    #[command(subcommand)]
    System(SystemCmd),
    /// Print static shell completions (bash, zsh, fish, elvish, powershell); `COMPLETE=bash
    /// hoodyctl` prints the dynamic ones, which complete names from the daemon.
    #[command(hide = true)]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one per subcommand into --dir.
    #[command(hide = true)]
    Man {
        /// Write hoodyctl.1 and a page for every subcommand (hoodyctl-containers-create.1, …)
        /// here.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SystemCmd {
    /// Stop every container gracefully (SIGTERM, then kill after --timeout seconds), in
    /// parallel, then stop the daemon: what the host's shutdown runs. Their autostart marks stay.
    Shutdown {
        /// Seconds between SIGTERM and kill (default: the daemon's --stop-timeout).
        #[arg(long)]
        timeout: Option<u64>,
    },
}

/// A container, by id or name (`-c ID` or a positional argument).
#[derive(Debug, Args)]
pub struct Target {
    /// The container, by id or name.
    #[arg(short = 'c', long = "container", value_name = "ID", add = ArgValueCandidates::new(complete::containers))]
    pub container: Option<String>,
    /// The container, by id or name (instead of -c).
    #[arg(value_name = "ID", conflicts_with = "container", add = ArgValueCandidates::new(complete::containers))]
    pub id: Option<String>,
}

impl Target {
    fn get(&self) -> anyhow::Result<&str> {
        self.container.as_deref().or(self.id.as_deref()).ok_or_else(|| anyhow!("name the container: -c ID or ID"))
    }
}

/// A container and one thing of it (a snapshot, an exec, a rule): `-c ID THING` or `ID THING`.
#[derive(Debug, Args)]
pub struct TargetThing {
    /// The container, by id or name.
    #[arg(short = 'c', long = "container", value_name = "ID", add = ArgValueCandidates::new(complete::containers))]
    pub container: Option<String>,
    /// The container (unless -c names it), then the snapshot, exec or rule.
    #[arg(value_name = "[ID] THING", num_args = 1..=2, required = true, add = ArgValueCandidates::new(complete::containers_and_snapshots))]
    pub args: Vec<String>,
}

impl TargetThing {
    /// (container, thing).
    fn get(&self) -> anyhow::Result<(&str, &str)> {
        match (&self.container, self.args.as_slice()) {
            (Some(c), [thing]) => Ok((c, thing)),
            (None, [c, thing]) => Ok((c, thing)),
            (Some(_), _) => Err(anyhow!("with -c ID, give only what to act on")),
            (None, _) => Err(anyhow!("name the container (-c ID, or ID first) and what to act on")),
        }
    }
}

#[derive(Debug, Args)]
pub struct ListContainers {
    /// Only containers in this state.
    #[arg(long, value_parser = ["created", "running", "stopped", "deleting"])]
    pub status: Option<String>,
    /// Only containers of this realm.
    #[arg(long)]
    pub realm: Option<String>,
    /// Only containers made from this image.
    #[arg(long)]
    pub image: Option<String>,
    #[command(flatten)]
    pub page: super::pages::PageArgs,
}

impl ListContainers {
    fn query(&self) -> anyhow::Result<hoody_api::query::ContainersQuery> {
        let status = match &self.status {
            Some(s) => Some(
                serde_json::from_value(serde_json::Value::String(s.clone()))
                    .map_err(|_| anyhow!("--status {s}: one of created, running, stopped, deleting"))?,
            ),
            None => None,
        };
        Ok(hoody_api::query::ContainersQuery {
            status,
            realm: self.realm.clone(),
            image: self.image.clone(),
            limit: self.page.limit,
            after: self.page.after.clone(),
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum ContainersCmd {
    /// Create a container (and start it with --start).
    Create(Box<CreateArgs>),
    /// List containers, oldest first: all, or those of a status, realm or image, a page at a
    /// time with --limit.
    List(ListContainers),
    /// Show one container with its status, address, limits and usage.
    Get(Target),
    /// Start a created or stopped container.
    Start(Target),
    /// Stop it: SIGTERM to its init, the kill after --timeout seconds.
    Stop {
        #[command(flatten)]
        target: Target,
        /// Seconds between SIGTERM and kill.
        #[arg(long)]
        timeout: Option<u64>,
    },
    /// Stop and start it again.
    Restart {
        #[command(flatten)]
        target: Target,
        /// Seconds between SIGTERM and kill.
        #[arg(long)]
        timeout: Option<u64>,
    },
    /// Change limits (live), autostart, and the snapshot schedule and expiry.
    Set {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        limits: LimitArgs,
        /// Start with the daemon at boot: true or false.
        #[arg(long)]
        autostart: Option<bool>,
        /// hourly, daily, weekly or "@every 15m" ("" to clear).
        #[arg(long)]
        schedule: Option<String>,
        /// How long scheduled snapshots are kept, e.g. 90d ("" to clear).
        #[arg(long)]
        expiry: Option<String>,
    },
    /// Delete it with its root file system, snapshots, cgroup, firewall and state.
    Delete {
        #[command(flatten)]
        target: Target,
        /// Delete even if running (kills it).
        #[arg(long, short)]
        force: bool,
    },
}

/// cgroup and disk limits, at create and changed live with `containers set`.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Memory limit, e.g. 512MiB (memory.max).
    #[arg(long)]
    pub memory: Option<String>,
    /// Swap allowed on top of --memory, e.g. 1GiB (memory.swap.max; 0 unless given; needs --memory).
    #[arg(long)]
    pub swap: Option<String>,
    /// CPU share, e.g. 0.5 or 2 (cpu.max).
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Process limit (pids.max).
    #[arg(long)]
    pub pids: Option<u64>,
    /// Disk the root may use beyond its image, e.g. 10GiB (btrfs qgroup / project quota).
    #[arg(long)]
    pub disk: Option<String>,
    /// Disk its snapshots may use (default: --disk).
    #[arg(long)]
    pub snapshots_disk: Option<String>,
    /// Inodes the root may use (overlay on ext4/xfs project quotas).
    #[arg(long)]
    pub inodes: Option<u64>,
}

impl LimitArgs {
    /// The `limits` object of a request, or None when no limit was given.
    fn to_request(&self) -> Option<LimitsRequest> {
        let size = |v: &Option<String>| v.clone().map(Size::Text);
        let l = LimitsRequest {
            memory: size(&self.memory),
            cpus: self.cpus,
            pids: self.pids,
            swap: size(&self.swap),
            disk: size(&self.disk),
            snapshots_disk: size(&self.snapshots_disk),
            inodes: self.inodes,
        };
        (l != LimitsRequest::default()).then_some(l)
    }
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Its name: 1-63 of a-z, 0-9 and -, unique in its realm.
    #[arg(long)]
    pub name: String,
    /// The image its root file system is cloned from (`images list`).
    #[arg(long, add = ArgValueCandidates::new(complete::images), required_unless_present = "from")]
    pub image: Option<String>,
    /// Fork a snapshot of another container: CONTAINER/SNAPSHOT. Its root is a clone of that
    /// snapshot (O(1) on btrfs, a copy on overlay); its limits, egress policy and rules,
    /// command and environment are the source's unless given here.
    #[arg(long, value_name = "CONTAINER/SNAPSHOT", conflicts_with = "image")]
    pub from: Option<SnapshotArg>,
    /// Realm the container belongs to (repeatable).
    #[arg(long = "realm", value_name = "ID")]
    pub realms: Vec<String>,
    /// A project id of the caller's own (kept with the container, not interpreted).
    #[arg(long = "project")]
    pub project_id: Option<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Egress policy: deny (default) or allow.
    #[arg(long)]
    pub egress: Option<String>,
    /// Start with the daemon at boot.
    #[arg(long)]
    pub autostart: bool,
    /// Scheduled snapshots: hourly, daily, weekly or "@every 15m".
    #[arg(long)]
    pub schedule: Option<String>,
    /// How long scheduled snapshots are kept, e.g. 90d.
    #[arg(long)]
    pub expiry: Option<String>,
    /// Start it right away.
    #[arg(long)]
    pub start: bool,
    /// Environment variable KEY=VALUE (repeatable).
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// The init command (default: the image's /sbin/init).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `exec [OPTS] (-c ID | ID) [--] COMMAND…`: with `-c`, every positional argument is the
/// command (`exec -c demo id`); without it the first one is the container.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The container (else the first positional argument).
    #[arg(short = 'c', long = "container", value_name = "ID", add = ArgValueCandidates::new(complete::containers))]
    pub container: Option<String>,
    /// Allocate a terminal (interactive programs, Ctrl-C, window size).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// UID or UID:GID inside the container.
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long)]
    pub cwd: Option<String>,
    /// Environment variable KEY=VALUE (repeatable).
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Run on without this client: prints the exec instance (its id), output kept with it.
    #[arg(short = 'd', long, conflicts_with = "tty")]
    pub detach: bool,
    /// Kill the command (its whole process tree) after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// [ID] then the command and its arguments (options after it are the command's).
    #[arg(value_name = "[ID] COMMAND", required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

impl ExecArgs {
    /// (container, command).
    fn target_and_command(&mut self) -> anyhow::Result<(String, Vec<String>)> {
        let mut args = std::mem::take(&mut self.args);
        let container = match self.container.take() {
            Some(c) => c,
            None if args.len() >= 2 => {
                let c = args.remove(0);
                // `exec ID -- CMD`: past the first positional argument clap keeps the `--`.
                if args.first().is_some_and(|a| a == "--") {
                    args.remove(0);
                }
                c
            }
            None => anyhow::bail!("name the container (-c ID, or ID first) and the command"),
        };
        if args.is_empty() {
            anyhow::bail!("no command given");
        }
        Ok((container, args))
    }
}

#[derive(Debug, Subcommand)]
pub enum ExecsCmd {
    /// The container's execs, newest first.
    List(Target),
    /// One instance (a detached one with its output): `execs get [-c] ID EXEC_ID`.
    Get(TargetThing),
    /// Attach to a running exec's stream (another client's, or one whose client went away):
    /// output it wrote while nobody was attached comes first; the exit code is this one's.
    /// `execs attach [-c] ID EXEC_ID`.
    Attach(TargetThing),
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub target: Target,
    /// Keep streaming new output until the container stops.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long)]
    pub tail: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotsCmd {
    /// Take a snapshot (a running container is frozen for the instant it takes).
    Create {
        #[command(flatten)]
        target: Target,
        /// The snapshot's name.
        #[arg(long, alias = "name")]
        alias: String,
    },
    /// The container's snapshots, oldest first (a page at a time with --limit).
    List {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        page: super::pages::PageArgs,
    },
    /// Paths added, modified and deleted since a snapshot (or between two):
    /// `snapshots diff [-c] ID NAME [--to OTHER]`.
    Diff {
        #[command(flatten)]
        on: TargetThing,
        /// Compare with this snapshot instead of the live root.
        #[arg(long)]
        to: Option<String>,
    },
    /// Put the container back to a snapshot (a running one is stopped and started again).
    Restore {
        #[command(flatten)]
        target: Target,
        /// The snapshot to restore.
        #[arg(long, add = ArgValueCandidates::new(complete::snapshots))]
        name: String,
        /// Print the operation at once and leave the restore running.
        #[arg(long = "async")]
        in_background: bool,
    },
    /// Delete a snapshot: `snapshots delete [-c] ID NAME`.
    Delete(TargetThing),
}

#[derive(Debug, Subcommand)]
pub enum FirewallCmd {
    /// Policy and rules in order, with packet and byte counters.
    Show(Target),
    /// Egress back to deny-all, every rule removed (dns back to filtered).
    Reset(Target),
    /// Change the egress policy and/or what the container's resolver answers.
    Set {
        #[command(flatten)]
        target: Target,
        /// deny or allow (after the last rule).
        #[arg(long)]
        policy: Option<String>,
        /// filtered (only names a rule by name allows), open (any name) or off (none).
        #[arg(long)]
        dns: Option<String>,
    },
    /// Recent denied egress attempts, refused DNS queries and connections opened by name.
    Events {
        #[command(flatten)]
        target: Target,
        /// Only events of this kind: denied, dns or allowed.
        #[arg(long)]
        kind: Option<String>,
    },
    /// Egress rules: what the container may reach (in order, before the policy).
    #[command(subcommand)]
    Egress(EgressCmd),
    /// The ingress allow-list: who may connect to the container.
    #[command(subcommand)]
    Ingress(IngressCmd),
}

#[derive(Debug, Subcommand)]
pub enum EgressCmd {
    /// Add an egress rule (matched in the order added, before the policy).
    Create {
        #[command(flatten)]
        target: Target,
        /// allow or deny.
        #[arg(long)]
        action: String,
        /// tcp, udp, icmp or any.
        #[arg(long)]
        protocol: Option<String>,
        /// IPv4 address or CIDR.
        #[arg(long, required_unless_present = "destination_fqdn", conflicts_with = "destination_fqdn")]
        destination: Option<String>,
        /// A host name (or *.example.com): opens what the container resolves it to, through
        /// hoodyd's resolver, for the answer's lifetime.
        #[arg(long)]
        destination_fqdn: Option<String>,
        /// A port or a range (8000-8100); tcp and udp only.
        #[arg(long)]
        destination_port: Option<String>,
        /// What the rule is for (shown with it).
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete an egress rule: `firewall egress delete [-c] ID RULE_ID`.
    Delete(TargetThing),
}

#[derive(Debug, Subcommand)]
pub enum IngressCmd {
    /// Allow inbound connections from a source (everything else inbound is dropped).
    Create {
        #[command(flatten)]
        target: Target,
        /// tcp, udp, icmp or any.
        #[arg(long)]
        protocol: Option<String>,
        /// IPv4 address or CIDR allowed to connect.
        #[arg(long)]
        source: String,
        /// The container's port or range it may connect to (tcp and udp only).
        #[arg(long)]
        destination_port: Option<String>,
        /// What the entry is for (shown with it).
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete an ingress entry: `firewall ingress delete [-c] ID RULE_ID`.
    Delete(TargetThing),
}

#[derive(Debug, Subcommand)]
pub enum ImagesCmd {
    /// Import a root file system from a tarball (.tar, .tar.gz, .tar.zst) or a directory.
    Import {
        /// The image's name.
        name: String,
        /// A tarball (uploaded), `-` for a tarball on standard input, or a directory (imported
        /// by the daemon from this host).
        path: PathBuf,
        /// Print the operation at once and leave the import running (on a terminal the import
        /// runs as an operation anyway, with a progress line).
        #[arg(long = "async")]
        in_background: bool,
    },
    /// Publish a snapshot of a container as an image: its whole tree as the container saw it.
    Publish {
        /// The image's name.
        name: String,
        /// The snapshot: CONTAINER/SNAPSHOT.
        #[arg(long, value_name = "CONTAINER/SNAPSHOT")]
        from: SnapshotArg,
    },
    /// Every image, by name (a page at a time with --limit).
    List(super::pages::PageArgs),
    /// One image.
    Get {
        /// The image's name.
        #[arg(add = ArgValueCandidates::new(complete::images))]
        name: String,
    },
    /// Delete an image no container uses.
    Delete {
        /// The image's name.
        #[arg(add = ArgValueCandidates::new(complete::images))]
        name: String,
    },
}

/// Runs the command line; returns the process exit status.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    let client = Client::from_env(cli.socket.clone()).with_idempotency_key(cli.idempotency_key.clone());
    output::envelope_on_error(cli.output == Some(Output::Json));
    let out = cli.output.unwrap_or(Output::Json);
    match cli.cmd {
        Cmd::Health => emit(out, client.health().await),
        Cmd::Containers(c) => containers(&client, out, c).await,
        Cmd::Exec(e) => exec(&client, e).await,
        Cmd::Execs(ExecsCmd::List(t)) => emit(out, client.execs(t.get()?).await),
        Cmd::Execs(ExecsCmd::Get(on)) => {
            let (container, exec_id) = on.get()?;
            emit(out, client.exec_instance(container, exec_id).await)
        }
        Cmd::Execs(ExecsCmd::Attach(on)) => {
            let (container, exec_id) = on.get()?;
            let (container, exec_id) = (container.to_owned(), exec_id.to_owned());
            let tty = match client.exec_instance(&container, &exec_id).await {
                Ok(v) => v.exec.tty,
                Err(hoody_api::client::ClientError::Api { status, error }) => {
                    return Ok(output::refused(status, &error));
                }
                Err(e) => return Err(e.into()),
            };
            let Some(up) = super::exec::reattach(&client, &container, &exec_id).await? else { anyhow::bail!("the daemon did not answer") };
            let _raw = if tty { Some(super::exec::RawMode::enter()) } else { None };
            super::exec::run(&client, up, tty, Some((container, exec_id))).await
        }
        Cmd::Logs(l) => logs(&client, l).await,
        Cmd::Images(i) => images(&client, out, i).await,
        Cmd::Firewall(f) => firewall(&client, out, f).await,
        Cmd::Snapshots(s) => snapshots(&client, out, s).await,
        Cmd::Realms(r) => access::realms(&client, out, r).await,
        Cmd::Tokens(t) => access::tokens(&client, out, t).await,
        Cmd::Audit(a) => access::audit(&client, out, a).await,
        Cmd::Events(a) => super::events::events(&client, out, a).await,
        Cmd::Operations(o) => super::operations::operations(&client, out, o).await,
        Cmd::System(SystemCmd::Shutdown { timeout }) => emit(out, client.shutdown(timeout).await),
        Cmd::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "hoodyctl", &mut std::io::stdout());
            Ok(0)
        }
        Cmd::Man { dir: None } => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()).context("writing the man page")?;
            Ok(0)
        }
        Cmd::Man { dir: Some(dir) } => {
            use clap::CommandFactory;
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), &dir).with_context(|| format!("writing the man pages into {}", dir.display()))?;
            Ok(0)
        }
    }
}

async fn snapshots(client: &Client, out: Output, cmd: SnapshotsCmd) -> anyhow::Result<i32> {
    match cmd {
        SnapshotsCmd::Create { target, alias } => emit(out, client.create_snapshot(target.get()?, &alias).await),
        SnapshotsCmd::List { target, page } => super::pages::emit_page(out, client.snapshots_page(target.get()?, &page.query()).await),
        SnapshotsCmd::Diff { on, to } => {
            let (container, name) = on.get()?;
            let d = client.diff(container, name, to.as_deref()).await;
            if let (Output::Table, Ok(d)) = (out, &d) {
                print!("{}", output::diff(&serde_json::to_value(d)?));
                return Ok(0);
            }
            emit(out, d)
        }
        SnapshotsCmd::Restore { target, name, in_background } => {
            let id = target.get()?;
            if !(in_background || super::operations::show_progress()) {
                return emit(out, client.restore_snapshot(id, &name).await);
            }
            match client.restore_snapshot_async(id, &name).await {
                Ok(op) if in_background => emit(out, Ok(op)),
                Ok(op) => super::operations::follow(client, out, op).await,
                Err(e) => emit(out, Err::<(), _>(e)),
            }
        }
        SnapshotsCmd::Delete(on) => {
            let (container, name) = on.get()?;
            emit(out, client.delete_snapshot(container, name).await)
        }
    }
}

/// Prints a firewall as a table (rules in their order) or as JSON.
fn emit_firewall(out: Output, r: Result<Firewall, ClientError>) -> anyhow::Result<i32> {
    if let (Output::Table, Ok(f)) = (out, &r) {
        print!("{}", output::firewall(&serde_json::to_value(f)?));
        return Ok(0);
    }
    emit(out, r)
}

async fn firewall(client: &Client, out: Output, cmd: FirewallCmd) -> anyhow::Result<i32> {
    match cmd {
        FirewallCmd::Show(t) => emit_firewall(out, client.firewall(t.get()?).await),
        FirewallCmd::Reset(t) => emit_firewall(out, client.reset_firewall(t.get()?).await),
        FirewallCmd::Events { target, kind } => emit(out, client.firewall_events(target.get()?, kind.as_deref()).await),
        FirewallCmd::Set { target, policy, dns } => {
            emit_firewall(out, client.patch_firewall(target.get()?, &FirewallPatch { policy, dns }).await)
        }
        FirewallCmd::Egress(EgressCmd::Create {
            target,
            action,
            protocol,
            destination,
            destination_fqdn,
            destination_port,
            description,
        }) => {
            let rule = EgressRule {
                action,
                protocol,
                destination,
                destination_fqdn,
                destination_port: destination_port.map(Port::Text),
                description,
            };
            emit(out, client.add_egress(target.get()?, &rule).await)
        }
        FirewallCmd::Egress(EgressCmd::Delete(on)) => {
            let (container, rule_id) = on.get()?;
            emit(out, client.delete_egress(container, rule_id).await)
        }
        FirewallCmd::Ingress(IngressCmd::Create { target, protocol, source, destination_port, description }) => {
            let rule = IngressRule { action: None, protocol, source, destination_port: destination_port.map(Port::Text), description };
            emit(out, client.add_ingress(target.get()?, &rule).await)
        }
        FirewallCmd::Ingress(IngressCmd::Delete(on)) => {
            let (container, rule_id) = on.get()?;
            emit(out, client.delete_ingress(container, rule_id).await)
        }
    }
}

/// `--from CONTAINER/SNAPSHOT`: a snapshot of a container (checked when the command line is
/// read, so a malformed one is a usage error).
#[derive(Clone, Debug)]
pub struct SnapshotArg {
    pub container: String,
    pub snapshot: String,
}

impl std::str::FromStr for SnapshotArg {
    type Err = String;
    fn from_str(from: &str) -> Result<Self, String> {
        match from.split_once('/') {
            Some((container, snapshot)) if !container.is_empty() && !snapshot.is_empty() && !snapshot.contains('/') => {
                Ok(SnapshotArg { container: container.to_owned(), snapshot: snapshot.to_owned() })
            }
            _ => Err(format!("CONTAINER/SNAPSHOT, e.g. app/ready (got {from:?})")),
        }
    }
}

async fn containers(client: &Client, out: Output, cmd: ContainersCmd) -> anyhow::Result<i32> {
    match cmd {
        ContainersCmd::Create(c) => {
            let c = *c;
            let req = CreateContainer {
                limits: c.limits.to_request(),
                name: c.name,
                image: c.image.unwrap_or_default(),
                source: c.from.map(|f| ContainerSource { container: Some(f.container), snapshot: Some(f.snapshot), image: None }),
                realm_ids: c.realms,
                project_id: c.project_id,
                egress: c.egress.as_deref().map(str::parse).transpose().map_err(|e: String| anyhow!("--egress: {e}"))?,
                autostart: c.autostart.then_some(true),
                command: (!c.command.is_empty()).then_some(c.command),
                env: (!c.env.is_empty()).then_some(c.env),
                snapshots: (c.schedule.is_some() || c.expiry.is_some())
                    .then_some(SnapshotPolicy { schedule: c.schedule, expiry: c.expiry }),
            };
            emit(out, client.create_container(&req, c.start).await)
        }
        ContainersCmd::List(l) => super::pages::emit_page(out, client.containers_page(&l.query()?).await),
        ContainersCmd::Get(t) => emit(out, client.container(t.get()?).await),
        ContainersCmd::Start(t) => emit(out, client.start(t.get()?).await),
        ContainersCmd::Stop { target, timeout } => emit(out, client.stop(target.get()?, timeout).await),
        ContainersCmd::Restart { target, timeout } => emit(out, client.restart(target.get()?, timeout).await),
        ContainersCmd::Set { target, limits, autostart, schedule, expiry } => {
            let req = UpdateContainer { limits: limits.to_request(), autostart, schedule, expiry, ..Default::default() };
            emit(out, client.update_container(target.get()?, &req).await)
        }
        ContainersCmd::Delete { target, force } => emit(out, client.delete_container(target.get()?, force).await),
    }
}

async fn exec(client: &Client, mut e: ExecArgs) -> anyhow::Result<i32> {
    let (target, command) = e.target_and_command()?;
    let size = if e.tty { super::exec::window_size() } else { None };
    let mut env = e.env;
    if e.tty
        && let Ok(term) = std::env::var("TERM")
    {
        env.insert(0, format!("TERM={term}"));
    }
    let request = hoody_api::exec::ExecRequest {
        command,
        tty: e.tty,
        env,
        cwd: e.cwd,
        user: e.user,
        rows: size.map(|s| s.0),
        cols: size.map(|s| s.1),
        detach: e.detach,
        timeout: e.timeout,
        ..Default::default()
    };
    if e.detach {
        return emit(Output::Json, client.exec_detached(&target, &request).await);
    }
    let (up, exec_id) = match client.exec_stream(&target, &request).await {
        Ok(x) => x,
        Err(hoody_api::client::ClientError::Api { status, error }) => {
            return Ok(output::refused(status, &error));
        }
        Err(e) => return Err(e.into()),
    };
    let _raw = if e.tty { Some(super::exec::RawMode::enter()) } else { None };
    super::exec::run(client, up, e.tty, exec_id.map(|x| (target, x))).await
}

async fn logs(client: &Client, l: LogsArgs) -> anyhow::Result<i32> {
    let mut body = match client.logs(l.target.get()?, &LogsQuery { follow: l.follow, tail: l.tail }).await {
        Ok(b) => b,
        Err(ClientError::Api { status, error }) => {
            return Ok(output::refused(status, &error));
        }
        Err(e) => return Err(e.into()),
    };
    use std::io::Write;
    while let Some(frame) = body.frame().await {
        if let Ok(d) = frame?.into_data() {
            let mut o = std::io::stdout().lock();
            o.write_all(&d)?;
            o.flush()?;
        }
    }
    Ok(0)
}

async fn images(client: &Client, out: Output, cmd: ImagesCmd) -> anyhow::Result<i32> {
    match cmd {
        ImagesCmd::Import { name, path, in_background } => {
            if path.as_os_str() == "-" {
                // Standard input: streamed as it comes, its length unknown.
                let stream = tokio_util::io::ReaderStream::with_capacity(tokio::io::stdin(), 256 * 1024).map_ok(Frame::data);
                return emit(out, client.import_image_tar(&name, BodyExt::boxed(StreamBody::new(stream)), None).await);
            }
            let path = std::path::absolute(&path).with_context(|| format!("resolving {}", path.display()))?;
            let md = std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?;
            let as_operation = in_background || super::operations::show_progress();
            // A pipe or a device (`/dev/stdin`) has no length to send.
            let len = md.is_file().then_some(md.len());
            let started = if md.is_dir() {
                if !as_operation {
                    return emit(out, client.import_image_path(&name, &path.to_string_lossy()).await);
                }
                client.import_image_path_async(&name, &path.to_string_lossy()).await
            } else {
                let file = tokio::fs::File::open(&path).await.with_context(|| format!("opening {}", path.display()))?;
                let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).map_ok(Frame::data);
                let body = BodyExt::boxed(StreamBody::new(stream));
                if !as_operation {
                    return emit(out, client.import_image_tar(&name, body, len).await);
                }
                client.import_image_tar_async(&name, body, len).await
            };
            match started {
                // The upload goes on on its own connection: --async waits for it to be sent.
                Ok(op) if in_background => {
                    let op = wait_sent(client, op).await?;
                    emit(out, Ok(op))
                }
                Ok(op) => super::operations::follow(client, out, op).await,
                Err(e) => emit(out, Err::<(), _>(e)),
            }
        }
        ImagesCmd::Publish { name, from } => emit(out, client.publish_snapshot(&name, &from.container, &from.snapshot).await),
        ImagesCmd::List(page) => super::pages::emit_page(out, client.images_page(&page.query()).await),
        ImagesCmd::Get { name } => emit(out, client.image(&name).await),
        ImagesCmd::Delete { name } => emit(out, client.delete_image(&name).await),
    }
}

/// An upload's operation once its body is all sent (the process must not exit before), or once
/// it ended: hoodyctl leaves, the import runs on.
async fn wait_sent(client: &Client, mut op: hoody_api::operations::Operation) -> anyhow::Result<hoody_api::operations::Operation> {
    while !op.status.is_done() && op.progress.total.is_some_and(|t| op.progress.bytes < t) {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        op = client.operation(&op.id).await?;
    }
    Ok(op)
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    fn exec(args: &[&str]) -> (String, Vec<String>) {
        let mut v = vec!["hoodyctl", "exec"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v).unwrap().cmd {
            Cmd::Exec(mut e) => e.target_and_command().unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn exec_takes_the_container_by_flag_or_first_and_the_command_as_it_is() {
        let want = |c: &str, cmd: &[&str]| (c.to_owned(), cmd.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(exec(&["-c", "demo", "id"]), want("demo", &["id"]));
        assert_eq!(exec(&["-c", "demo", "--", "sh", "-c", "echo hi"]), want("demo", &["sh", "-c", "echo hi"]));
        assert_eq!(exec(&["-c", "demo", "sh", "-c", "echo hi"]), want("demo", &["sh", "-c", "echo hi"]));
        assert_eq!(exec(&["demo", "--", "id", "-u"]), want("demo", &["id", "-u"]));
        assert_eq!(exec(&["demo", "ls", "-la", "/"]), want("demo", &["ls", "-la", "/"]));
        assert_eq!(exec(&["-t", "-u", "1000", "demo", "sh"]), want("demo", &["sh"]));
        let Cmd::Exec(mut e) = Cli::try_parse_from(["hoodyctl", "exec", "demo"]).unwrap().cmd else { panic!() };
        assert!(e.target_and_command().is_err(), "a container without a command");
    }

    #[test]
    fn the_container_is_a_flag_or_the_first_argument_everywhere() {
        for form in [&["snapshots", "diff", "-c", "demo", "clean"][..], &["snapshots", "diff", "demo", "clean"]] {
            let Cmd::Snapshots(SnapshotsCmd::Diff { on, .. }) =
                Cli::try_parse_from(std::iter::once("hoodyctl").chain(form.iter().copied())).unwrap().cmd
            else {
                panic!()
            };
            assert_eq!(on.get().unwrap(), ("demo", "clean"));
        }
        for form in [&["snapshots", "create", "--container", "demo", "--alias", "a"][..], &["snapshots", "create", "demo", "--alias", "a"]]
        {
            let Cmd::Snapshots(SnapshotsCmd::Create { target, alias }) =
                Cli::try_parse_from(std::iter::once("hoodyctl").chain(form.iter().copied())).unwrap().cmd
            else {
                panic!()
            };
            assert_eq!((target.get().unwrap(), alias.as_str()), ("demo", "a"));
        }
        let Cmd::Execs(ExecsCmd::Get(on)) = Cli::try_parse_from(["hoodyctl", "execs", "get", "-c", "demo", "e1", "extra"]).unwrap().cmd
        else {
            panic!()
        };
        assert!(on.get().is_err(), "-c and two more arguments");
    }

    /// Every page a man page refers to (`hoodyctl-containers(1)`) is written beside it.
    #[test]
    fn every_man_page_named_is_there() {
        use clap::CommandFactory;
        let dir = std::env::temp_dir().join(format!("hoodyctl-man-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        clap_mangen::generate_to(Cli::command(), &dir).unwrap();
        let pages: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(pages.len() > 40 && pages.contains(&"hoodyctl-snapshots-restore.1".to_string()), "{pages:?}");
        for p in &pages {
            let text = std::fs::read_to_string(dir.join(p)).unwrap();
            for (i, _) in text.match_indices("(1)") {
                let start = text[..i].rfind(|c: char| c.is_whitespace() || c == ',').map_or(0, |j| j + 1);
                let named = text[start..i].replace("\\-", "-");
                if named.starts_with("hoodyctl") {
                    assert!(pages.contains(&format!("{named}.1")), "{p} names {named}(1), which is not written");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Every subcommand and every argument says what it is in `--help`.
    #[test]
    fn everything_is_documented_in_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if ["help", "version"].contains(&id) {
                    continue;
                }
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                let p = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(p.clone());
                }
                walk(sub, &p, missing);
            }
        }
        let mut missing = vec![];
        walk(&Cli::command(), "hoodyctl", &mut missing);
        assert!(missing.is_empty(), "undocumented in --help:\n{}", missing.join("\n"));
    }
}
