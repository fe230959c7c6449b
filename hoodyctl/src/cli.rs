//! The `hoodyctl` command line (its clap definition also generates the man page and
//! completions).

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use clap::{Args, Parser, Subcommand, ValueEnum};
use futures::TryStreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::{Method, header};
use serde_json::{Value, json};

use super::access::{self, AuditArgs, RealmsCmd, TokensCmd};
use super::{Answer, Client, full, output};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Json,
    Table,
}

#[derive(Debug, Parser)]
#[command(
    name = "hoodyctl",
    version,
    about = "Client of hoodyd: containers, exec, logs, firewall, snapshots, images, realms, tokens, audit"
)]
pub struct Cli {
    /// Print the daemon's JSON envelope (default) or a table for people.
    #[arg(long, short = 'o', global = true, value_enum, default_value = "json")]
    pub output: Output,
    /// The daemon's socket (default $HOODY_SOCKET, else /run/hoody/hoodyd.sock).
    #[arg(long, global = true)]
    pub socket: Option<PathBuf>,
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
    /// Ask the daemon whether it is alive (and what autostart did at boot).
    Health,
    /// The host: stop every container before it goes down.
    #[command(subcommand)]
    System(SystemCmd),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff).
    #[command(hide = true)]
    Man,
}

#[derive(Debug, Subcommand)]
pub enum SystemCmd {
    /// Stop every container gracefully (SIGTERM, then kill after --timeout seconds), in
    /// parallel, then stop the daemon: what the host's shutdown runs. Their autostart marks stay.
    Shutdown {
        #[arg(long)]
        timeout: Option<u64>,
    },
}

/// A container, by id or name (`-c ID` or a positional argument).
#[derive(Debug, Args)]
pub struct Target {
    #[arg(short = 'c', long = "container", value_name = "ID")]
    pub container: Option<String>,
    #[arg(value_name = "ID", conflicts_with = "container")]
    pub id: Option<String>,
}

impl Target {
    fn get(&self) -> anyhow::Result<&str> {
        self.container.as_deref().or(self.id.as_deref()).ok_or_else(|| anyhow!("name the container: -c ID or ID"))
    }
}

#[derive(Debug, Subcommand)]
pub enum ContainersCmd {
    /// Create a container (and start it with --start).
    Create(Box<CreateArgs>),
    /// List containers.
    List,
    /// Show one container with its status, address, limits and usage.
    Get(Target),
    Start(Target),
    Stop {
        #[command(flatten)]
        target: Target,
        /// Seconds between SIGTERM and kill.
        #[arg(long)]
        timeout: Option<u64>,
    },
    Restart {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        timeout: Option<u64>,
    },
    /// Change limits (live), autostart, and the snapshot schedule and expiry.
    Set {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        limits: LimitArgs,
        #[arg(long)]
        autostart: Option<bool>,
        /// hourly, daily, weekly or "@every 15m" ("" to clear).
        #[arg(long)]
        schedule: Option<String>,
        /// How long scheduled snapshots are kept, e.g. 90d ("" to clear).
        #[arg(long)]
        expiry: Option<String>,
    },
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
    fn to_json(&self) -> Option<Value> {
        let mut m = serde_json::Map::new();
        if let Some(v) = &self.memory {
            m.insert("memory".into(), json!(v));
        }
        if let Some(v) = &self.swap {
            m.insert("swap".into(), json!(v));
        }
        if let Some(v) = self.cpus {
            m.insert("cpus".into(), json!(v));
        }
        if let Some(v) = self.pids {
            m.insert("pids".into(), json!(v));
        }
        if let Some(v) = &self.disk {
            m.insert("disk".into(), json!(v));
        }
        if let Some(v) = &self.snapshots_disk {
            m.insert("snapshots_disk".into(), json!(v));
        }
        if let Some(v) = self.inodes {
            m.insert("inodes".into(), json!(v));
        }
        (!m.is_empty()).then_some(Value::Object(m))
    }
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub image: String,
    /// Realm the container belongs to (repeatable).
    #[arg(long = "realm", value_name = "ID")]
    pub realms: Vec<String>,
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

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub target: Target,
    /// Allocate a terminal (interactive programs, Ctrl-C, window size).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// UID or UID:GID inside the container.
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long)]
    pub cwd: Option<String>,
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Run on without this client: prints the exec instance (its id), output kept with it.
    #[arg(short = 'd', long, conflicts_with = "tty")]
    pub detach: bool,
    /// Kill the command (its whole process tree) after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ExecsCmd {
    List(Target),
    /// One instance (a detached one with its output).
    Get {
        #[arg(short = 'c', long = "container", value_name = "ID")]
        container: String,
        exec_id: String,
    },
    /// Attach to a running exec's stream (another client's, or one whose client went away):
    /// output it wrote while nobody was attached comes first; the exit code is this one's.
    Attach {
        #[arg(short = 'c', long = "container", value_name = "ID")]
        container: String,
        exec_id: String,
    },
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
        #[arg(short = 'c', long = "container", value_name = "ID")]
        container: String,
        /// The snapshot's name.
        #[arg(long, alias = "name")]
        alias: String,
    },
    List(Target),
    /// Paths added, modified and deleted since a snapshot (or between two).
    Diff {
        #[arg(short = 'c', long = "container", value_name = "ID")]
        container: String,
        name: String,
        /// Compare with this snapshot instead of the live root.
        #[arg(long)]
        to: Option<String>,
    },
    /// Put the container back to a snapshot (a running one is stopped and started again).
    Restore {
        #[arg(short = 'c', long = "container", value_name = "ID")]
        container: String,
        #[arg(long)]
        name: String,
    },
    Delete {
        #[arg(short = 'c', long = "container", value_name = "ID")]
        container: String,
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum FirewallCmd {
    /// Policy and rules in order, with packet and byte counters.
    Show(Target),
    /// Egress back to deny-all, every rule removed (dns back to filtered).
    Reset(Target),
    /// Change the egress policy and/or what the container's resolver answers.
    Set {
        #[arg(short = 'c', long = "container", value_name = "ID")]
        container: String,
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
    #[command(subcommand)]
    Egress(EgressCmd),
    #[command(subcommand)]
    Ingress(IngressCmd),
}

#[derive(Debug, Subcommand)]
pub enum EgressCmd {
    /// Add an egress rule (matched in the order added, before the policy).
    Create {
        #[arg(short = 'c', long = "container", value_name = "ID")]
        container: String,
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
        #[arg(long)]
        description: Option<String>,
    },
    Delete {
        #[arg(short = 'c', long = "container", value_name = "ID")]
        container: String,
        rule_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum IngressCmd {
    /// Allow inbound connections from a source (everything else inbound is dropped).
    Create {
        #[arg(short = 'c', long = "container", value_name = "ID")]
        container: String,
        #[arg(long)]
        protocol: Option<String>,
        /// IPv4 address or CIDR allowed to connect.
        #[arg(long)]
        source: String,
        #[arg(long)]
        destination_port: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    Delete {
        #[arg(short = 'c', long = "container", value_name = "ID")]
        container: String,
        rule_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImagesCmd {
    /// Import a root file system from a tarball (.tar, .tar.gz, .tar.zst) or a directory.
    Import {
        name: String,
        path: PathBuf,
    },
    List,
    Get {
        name: String,
    },
    Delete {
        name: String,
    },
}

pub(crate) use hoody_api::client::enc;

pub(crate) fn print(out: Output, a: &Answer) -> anyhow::Result<i32> {
    if !a.status.is_success() {
        eprintln!("hoodyctl: {}", a.error_text());
        return Ok(1);
    }
    match out {
        Output::Json => println!("{}", String::from_utf8_lossy(&a.body).trim_end()),
        Output::Table => print!("{}", output::table(&a.json()?["data"])),
    }
    Ok(0)
}

/// Runs the command line; returns the process exit status.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    let client = Client::from_env(cli.socket.clone());
    let out = cli.output;
    match cli.cmd {
        Cmd::Health => print(out, &client.call(Method::GET, "/health", None).await?),
        Cmd::Containers(c) => containers(&client, out, c).await,
        Cmd::Exec(e) => exec(&client, e).await,
        Cmd::Execs(ExecsCmd::List(t)) => {
            let a = client.call(Method::GET, &format!("/containers/{}/execs", enc(t.get()?)), None).await?;
            print(out, &a)
        }
        Cmd::Execs(ExecsCmd::Get { container, exec_id }) => {
            let a = client.call(Method::GET, &format!("/containers/{}/execs/{}", enc(&container), enc(&exec_id)), None).await?;
            print(out, &a)
        }
        Cmd::Execs(ExecsCmd::Attach { container, exec_id }) => {
            let tty = match client.exec_instance(&container, &exec_id).await {
                Ok(v) => v.tty,
                Err(hoody_api::client::ClientError::Api { error, .. }) => {
                    eprintln!("hoodyctl: {}", error.text());
                    return Ok(1);
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
        Cmd::System(SystemCmd::Shutdown { timeout }) => {
            let q = timeout.map(|t| format!("?timeout={t}")).unwrap_or_default();
            print(out, &client.call(Method::POST, &format!("/system/shutdown{q}"), None).await?)
        }
        Cmd::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "hoodyctl", &mut std::io::stdout());
            Ok(0)
        }
        Cmd::Man => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()).context("writing the man page")?;
            Ok(0)
        }
    }
}

async fn snapshots(client: &Client, out: Output, cmd: SnapshotsCmd) -> anyhow::Result<i32> {
    let base = |c: &str| format!("/containers/{}/snapshots", enc(c));
    let a = match cmd {
        SnapshotsCmd::Create { container, alias } => client.call(Method::POST, &base(&container), Some(json!({ "alias": alias }))).await?,
        SnapshotsCmd::List(t) => client.call(Method::GET, &base(t.get()?), None).await?,
        SnapshotsCmd::Diff { container, name, to } => {
            let q = to.map(|t| format!("?to={}", enc(&t))).unwrap_or_default();
            let a = client.call(Method::GET, &format!("{}/{}/diff{q}", base(&container), enc(&name)), None).await?;
            if out == Output::Table && a.status.is_success() {
                print!("{}", output::diff(&a.json()?["data"]));
                return Ok(0);
            }
            a
        }
        SnapshotsCmd::Restore { container, name } => {
            client.call(Method::PATCH, &format!("{}/{}", base(&container), enc(&name)), None).await?
        }
        SnapshotsCmd::Delete { container, name } => {
            client.call(Method::DELETE, &format!("{}/{}", base(&container), enc(&name)), None).await?
        }
    };
    print(out, &a)
}

fn opt(body: &mut Value, key: &str, v: Option<String>) {
    if let Some(v) = v {
        body[key] = json!(v);
    }
}

async fn firewall(client: &Client, out: Output, cmd: FirewallCmd) -> anyhow::Result<i32> {
    let base = |c: &str| format!("/containers/{}/firewall", enc(c));
    let a = match cmd {
        FirewallCmd::Show(t) => client.call(Method::GET, &base(t.get()?), None).await?,
        FirewallCmd::Reset(t) => client.call(Method::POST, &format!("{}/reset", base(t.get()?)), None).await?,
        FirewallCmd::Events { target, kind } => {
            let q = kind.map(|k| format!("?kind={}", enc(&k))).unwrap_or_default();
            client.call(Method::GET, &format!("{}/events{q}", base(target.get()?)), None).await?
        }
        FirewallCmd::Set { container, policy, dns } => {
            let mut body = json!({});
            opt(&mut body, "policy", policy);
            opt(&mut body, "dns", dns);
            client.call(Method::PATCH, &base(&container), Some(body)).await?
        }
        FirewallCmd::Egress(EgressCmd::Create {
            container,
            action,
            protocol,
            destination,
            destination_fqdn,
            destination_port,
            description,
        }) => {
            let mut body = json!({ "action": action });
            opt(&mut body, "destination", destination);
            opt(&mut body, "destination_fqdn", destination_fqdn);
            opt(&mut body, "protocol", protocol);
            opt(&mut body, "destination_port", destination_port);
            opt(&mut body, "description", description);
            client.call(Method::POST, &format!("{}/egress", base(&container)), Some(body)).await?
        }
        FirewallCmd::Egress(EgressCmd::Delete { container, rule_id }) => {
            client.call(Method::DELETE, &format!("{}/egress/{}", base(&container), enc(&rule_id)), None).await?
        }
        FirewallCmd::Ingress(IngressCmd::Create { container, protocol, source, destination_port, description }) => {
            let mut body = json!({ "source": source });
            opt(&mut body, "protocol", protocol);
            opt(&mut body, "destination_port", destination_port);
            opt(&mut body, "description", description);
            client.call(Method::POST, &format!("{}/ingress", base(&container)), Some(body)).await?
        }
        FirewallCmd::Ingress(IngressCmd::Delete { container, rule_id }) => {
            client.call(Method::DELETE, &format!("{}/ingress/{}", base(&container), enc(&rule_id)), None).await?
        }
    };
    if out == Output::Table && a.status.is_success() {
        let v = a.json()?;
        if v["data"].get("egress").is_some() {
            print!("{}", output::firewall(&v["data"]));
            return Ok(0);
        }
    }
    print(out, &a)
}

async fn containers(client: &Client, out: Output, cmd: ContainersCmd) -> anyhow::Result<i32> {
    let a = match cmd {
        ContainersCmd::Create(c) => {
            let mut body = json!({ "name": c.name, "image": c.image });
            if !c.realms.is_empty() {
                body["realm_ids"] = json!(c.realms);
            }
            if let Some(p) = c.project_id {
                body["project_id"] = json!(p);
            }
            if let Some(l) = c.limits.to_json() {
                body["limits"] = l;
            }
            if let Some(e) = c.egress {
                body["egress"] = json!(e);
            }
            if c.autostart {
                body["autostart"] = json!(true);
            }
            if !c.env.is_empty() {
                body["env"] = json!(c.env);
            }
            if c.schedule.is_some() || c.expiry.is_some() {
                body["snapshots"] = json!({ "schedule": c.schedule, "expiry": c.expiry });
            }
            if !c.command.is_empty() {
                body["command"] = json!(c.command);
            }
            let path = if c.start { "/containers?start=true" } else { "/containers" };
            client.call(Method::POST, path, Some(body)).await?
        }
        ContainersCmd::List => client.call(Method::GET, "/containers", None).await?,
        ContainersCmd::Get(t) => client.call(Method::GET, &format!("/containers/{}", enc(t.get()?)), None).await?,
        ContainersCmd::Start(t) => client.call(Method::POST, &format!("/containers/{}/start", enc(t.get()?)), None).await?,
        ContainersCmd::Stop { target, timeout } => {
            let q = timeout.map(|t| format!("?timeout={t}")).unwrap_or_default();
            client.call(Method::POST, &format!("/containers/{}/stop{q}", enc(target.get()?)), None).await?
        }
        ContainersCmd::Restart { target, timeout } => {
            let q = timeout.map(|t| format!("?timeout={t}")).unwrap_or_default();
            client.call(Method::POST, &format!("/containers/{}/restart{q}", enc(target.get()?)), None).await?
        }
        ContainersCmd::Set { target, limits, autostart, schedule, expiry } => {
            let mut body = json!({});
            if let Some(l) = limits.to_json() {
                body["limits"] = l;
            }
            if let Some(a) = autostart {
                body["autostart"] = json!(a);
            }
            if schedule.is_some() || expiry.is_some() {
                let mut s = serde_json::Map::new();
                if let Some(v) = schedule {
                    s.insert("schedule".into(), json!(v));
                }
                if let Some(v) = expiry {
                    s.insert("expiry".into(), json!(v));
                }
                body["snapshots"] = Value::Object(s);
            }
            client.call(Method::PATCH, &format!("/containers/{}", enc(target.get()?)), Some(body)).await?
        }
        ContainersCmd::Delete { target, force } => {
            let q = if force { "?force=true" } else { "" };
            client.call(Method::DELETE, &format!("/containers/{}{q}", enc(target.get()?)), None).await?
        }
    };
    print(out, &a)
}

async fn exec(client: &Client, e: ExecArgs) -> anyhow::Result<i32> {
    let size = if e.tty { super::exec::window_size() } else { None };
    let mut env = e.env;
    if e.tty
        && let Ok(term) = std::env::var("TERM")
    {
        env.insert(0, format!("TERM={term}"));
    }
    let request = hoody_api::exec::ExecRequest {
        command: e.command,
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
    let target = e.target.get()?.to_owned();
    if e.detach {
        let a = client.call(Method::POST, &format!("/containers/{}/exec", enc(&target)), Some(serde_json::to_value(&request)?)).await?;
        return print(Output::Json, &a);
    }
    let (up, exec_id) = match client.exec_stream(&target, &request).await {
        Ok(x) => x,
        Err(hoody_api::client::ClientError::Api { error, .. }) => {
            eprintln!("hoodyctl: {}", error.text());
            return Ok(1);
        }
        Err(e) => return Err(e.into()),
    };
    let _raw = if e.tty { Some(super::exec::RawMode::enter()) } else { None };
    super::exec::run(client, up, e.tty, exec_id.map(|x| (target, x))).await
}

async fn logs(client: &Client, l: LogsArgs) -> anyhow::Result<i32> {
    let mut q = vec![];
    if l.follow {
        q.push("follow=true".to_string());
    }
    if let Some(n) = l.tail {
        q.push(format!("tail={n}"));
    }
    let qs = if q.is_empty() { String::new() } else { format!("?{}", q.join("&")) };
    let req =
        client.request_builder(Method::GET, &format!("/containers/{}/logs{qs}", enc(l.target.get()?))).body(full(bytes::Bytes::new()))?;
    let resp = client.send(req).await?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.into_body().collect().await?.to_bytes();
        eprintln!("hoodyctl: {}", Answer { status, body }.error_text());
        return Ok(1);
    }
    let mut body = resp.into_body();
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
    let a = match cmd {
        ImagesCmd::Import { name, path } => {
            let path = std::path::absolute(&path).with_context(|| format!("resolving {}", path.display()))?;
            let md = std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?;
            if md.is_dir() {
                client.call(Method::POST, "/images", Some(json!({ "name": name, "path": path }))).await?
            } else {
                let file = tokio::fs::File::open(&path).await.with_context(|| format!("opening {}", path.display()))?;
                let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).map_ok(Frame::data);
                let req = client
                    .request_builder(Method::POST, &format!("/images?name={}", enc(&name)))
                    .header(header::CONTENT_TYPE, "application/x-tar")
                    .header(header::CONTENT_LENGTH, md.len())
                    .body(BodyExt::boxed(StreamBody::new(stream)))?;
                let resp = client.send(req).await?;
                let status = resp.status();
                Answer { status, body: resp.into_body().collect().await?.to_bytes() }
            }
        }
        ImagesCmd::List => client.call(Method::GET, "/images", None).await?,
        ImagesCmd::Get { name } => client.call(Method::GET, &format!("/images/{}", enc(&name)), None).await?,
        ImagesCmd::Delete { name } => client.call(Method::DELETE, &format!("/images/{}", enc(&name)), None).await?,
    };
    print(out, &a)
}
