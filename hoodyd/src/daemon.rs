//! Daemon start-up and shutdown.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::api::{self, AppState, DaemonInfo};
use crate::cgroup::CgroupOps;
use crate::cgroup::fs::CgroupFs;
use crate::cgroup::placement;
use crate::config::{Config, LogFormat};
use crate::idmap::IdPool;
use crate::runtime::{Runtime, RuntimeConfig};
use crate::store::Store;

pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOODY_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: journald and log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let b = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter).with_ansi(ansi);
    match format {
        LogFormat::Text => b.init(),
        LogFormat::Json => b.json().init(),
    }
}

/// Reads denied egress attempts from NFLOG on a dedicated thread (blocking netlink reads).
fn spawn_nflog_reader(fw: Arc<crate::firewall::Firewall>, group: u16, denied: tokio::sync::mpsc::Sender<(String, String)>) {
    let r = std::thread::Builder::new().name("hoodyd-nflog".into()).spawn(move || {
        let mut l = match hoody_net::nflog::NflogListener::bind(group) {
            Ok(l) => l,
            Err(e) => {
                warn!(group, error = %crate::errors::chain(&e).join(": "), "denied-egress events are unavailable");
                return;
            }
        };
        loop {
            match l.receive() {
                Ok(batch) => {
                    for mut d in batch {
                        let Some(owner) = fw.owner_of(d.source) else { continue };
                        d.container = owner;
                        let by_name = if d.allowed {
                            // The name that opened it: what the container learned the address by.
                            let l = fw.learned_of(d.source).into_iter().find(|l| l.addr == d.destination);
                            let Some(l) = l else { continue };
                            tracing::debug!(container = %d.container, name = %l.name, destination = %d.destination, "connection by name");
                            Some((l.name, l.rule_id))
                        } else {
                            tracing::debug!(container = %d.container, destination = %d.destination, port = d.destination_port, "egress denied");
                            let to = match d.destination_port {
                                Some(p) => format!("{}:{p}/{}", d.destination, d.protocol),
                                None => format!("{}/{}", d.destination, d.protocol),
                            };
                            // Bounded: past it, denials still reach firewall/events, not the stream.
                            let _ = denied.try_send((d.container.clone(), to));
                            None
                        };
                        fw.events.record(d, crate::time::now(), by_name);
                    }
                }
                Err(e) => {
                    warn!(error = %e, "nflog read failed");
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
            }
        }
    });
    if let Err(e) = r {
        warn!(error = %e, "could not start the nflog reader");
    }
}

/// Runs the daemon until SIGTERM or SIGINT. Containers keep running when it exits.
pub fn main(cfg: Config) -> anyhow::Result<()> {
    crate::helper::sys::set_child_subreaper().context("becoming a child subreaper")?;
    let rt =
        tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("hoodyd").build().context("starting the async runtime")?;
    rt.block_on(run(cfg))
}

async fn run(cfg: Config) -> anyhow::Result<()> {
    let _lock = lock_state_dir(&cfg)?;
    let store = Store::open(&cfg.state_dir.join("hoody.db"))?;
    let (auth, audit) = open_auth_and_audit(&cfg, &store)?;
    let keys = Arc::new(
        crate::api::idempotency::Keys::open(store.clone(), std::time::Duration::from_secs(24 * 3600))
            .context("opening the kept answers of idempotent requests")?,
    );
    let storage = open_storage(&cfg).await?;
    let (cgroups, cgroup_root) = open_cgroups(&cfg)?;
    info!(
        storage = %cfg.storage_dir().display(),
        driver = %storage.kind(),
        cgroup_root = %cgroup_root.display(),
        controllers = %cgroups.controllers().into_iter().collect::<Vec<_>>().join(","),
        test_hooks = crate::test_hooks::ENABLED,
        "hoodyd starting"
    );
    let info = DaemonInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        storage_driver: storage.kind().to_string(),
        storage_dir: cfg.storage_dir().display().to_string(),
        state_dir: cfg.state_dir.display().to_string(),
        cgroup_root: cgroup_root.display().to_string(),
        controllers: cgroups.controllers().into_iter().collect(),
    };
    let events_path = cfg.state_dir.join("events.db");
    let events = crate::events::EventLog::open(&events_path).with_context(|| format!("opening {}", events_path.display()))?;
    let (rt, firewall, subnet) = build_runtime(&cfg, store, storage, cgroups, events)?;
    let monitor = prepare_network(&cfg, subnet).await?;
    let t = Instant::now();
    let how = rt.reconcile_firewall().await.context("reconciling the firewall (table inet hoody)")?;
    info!(result = %format!("{how:?}").to_lowercase(), elapsed_ms = t.elapsed().as_millis() as u64, "firewall in place");
    // The containers' resolver answers before the daemon is ready (names resolve again as soon
    // as a restarted daemon is up). Without an upstream, containers resolve nothing.
    let _resolver = match crate::dns::Resolver::start(cfg.dns(), firewall.clone(), subnet).await {
        Ok(r) => Some(r),
        Err(e @ crate::dns::DnsError::NoUpstream(_)) => {
            warn!(error = %e, "containers resolve no names");
            None
        }
        Err(e) => return Err(e).context("starting the containers' resolver"),
    };
    reconcile(&rt, &cfg).await?;
    start_background_work(&rt, firewall, monitor, &cfg).await?;
    if let Some(name) = cfg.default_image()
        && let Err(e) = rt.ensure_default_image(name, &cfg.busybox).await
    {
        warn!(image = %name, error = %crate::errors::chain(&e).join(": "), "the default image could not be built");
    }
    let listener = bind_socket(&cfg)?;
    let boot = begin_autostart_at_boot(&rt, &cfg).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let slots = api::slots::Slots::new(cfg.connection_caps());
    let is_admin: api::server::IsAdmin = {
        let auth = auth.clone();
        Arc::new(move |peer| auth.is_administrator(peer))
    };
    let state = AppState {
        rt: rt.clone(),
        started: Instant::now(),
        info: Arc::new(info),
        auth,
        audit: audit.clone(),
        request_timeout: cfg.request_timeout(),
        parallel: cfg.parallel(),
        state_dir: cfg.state_dir.clone(),
        state_reserve: cfg.state_reserve(),
        shutdown: stop_tx.clone(),
        operations: crate::operations::Operations::new(rt.events().clone()),
        keys,
        slots: slots.clone(),
        metrics: Arc::default(),
    };
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (mut term, mut int) =
            (signal(SignalKind::terminate()).expect("SIGTERM handler"), signal(SignalKind::interrupt()).expect("SIGINT handler"));
        let which = tokio::select! { _ = term.recv() => "SIGTERM", _ = int.recv() => "SIGINT" };
        info!(signal = which, "shutting down; containers keep running");
        let _ = stop_tx.send(true);
    });
    info!(socket = %cfg.socket.display(), boot, "listening");
    rt.events().global(hoody_api::events::EventType::DaemonReady, Default::default());
    // Ready for systemd: state loaded, firewall reconciled, containers adopted, autostart begun.
    if let Err(e) = crate::notify::notify(&format!("READY=1\nSTATUS=serving on {}", cfg.socket.display())) {
        warn!(error = %e, "could not notify systemd");
    }
    let serve_cfg = api::server::ServeConfig {
        slots,
        is_admin,
        header_timeout: cfg.request_timeout(),
        shutdown_grace: std::time::Duration::from_secs(5),
    };
    api::server::serve(listener, api::router(state), serve_cfg, stop_rx).await;
    let _ = crate::notify::notify("STOPPING=1");
    let _ = std::fs::remove_file(&cfg.socket);
    let events = rt.events().clone();
    let _ = tokio::task::spawn_blocking(move || events.flush()).await;
    if let Err(e) = audit.flush().await {
        warn!(error = %e, "the audit log could not be synced");
    }
    info!("hoodyd stopped");
    Ok(())
}

/// The state directory (0700) and its lock: one daemon per state directory.
fn lock_state_dir(cfg: &Config) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&cfg.state_dir)
        .with_context(|| format!("creating {}", cfg.state_dir.display()))?;
    std::fs::set_permissions(&cfg.state_dir, std::fs::Permissions::from_mode(0o700))?;
    let lock_path = cfg.state_dir.join("hoodyd.lock");
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .with_context(|| format!("another hoodyd uses {} (lock {})", cfg.state_dir.display(), lock_path.display()))
}

/// Callers' identification (the token key, the admin group) and the audit log.
fn open_auth_and_audit(cfg: &Config, store: &Store) -> anyhow::Result<(Arc<crate::auth::Auth>, Arc<crate::audit::AuditLog>)> {
    let token_key_path = cfg.state_dir.join("token.key");
    let token_key = crate::auth::token::TokenKey::load_or_create(&token_key_path)
        .with_context(|| format!("loading the token key {}", token_key_path.display()))?;
    let audit_path = cfg.state_dir.join("audit.log");
    let audit = if crate::test_hooks::var("HOODY_BENCH_NO_AUDIT").is_some_and(|v| v == "1") {
        warn!("HOODY_BENCH_NO_AUDIT=1: requests are NOT audited (for measuring the audit's cost only)");
        Arc::new(crate::audit::AuditLog::discarding(&audit_path))
    } else {
        Arc::new(
            crate::audit::AuditLog::open_segmented(&audit_path, Some(cfg.audit()))
                .with_context(|| format!("opening the audit log {}", audit_path.display()))?,
        )
    };
    let admin_gid = match cfg.admin_group() {
        None => None,
        Some(g) => Some(crate::config::resolve_group(g).with_context(|| format!("admin group {g:?}"))?),
    };
    let auth = Arc::new(crate::auth::Auth::new(token_key, admin_gid, cfg.proc_root.clone(), store.clone()));
    Ok((auth, audit))
}

/// The storage pool, and whether it can enforce the default disk limits it is given.
async fn open_storage(cfg: &Config) -> anyhow::Result<Arc<dyn hoody_snapshot::StorageDriver>> {
    let (choice, dir, sys_root, quotas) = (cfg.storage_driver, cfg.storage_dir(), cfg.sys_root.clone(), cfg.disk_quotas());
    let storage: Arc<dyn hoody_snapshot::StorageDriver> =
        tokio::task::spawn_blocking(move || hoody_snapshot::open_driver(choice, &dir, &sys_root, quotas))
            .await?
            .with_context(|| format!("opening the storage pool at {}", cfg.storage_dir().display()))?
            .into();
    if cfg.default_disk().is_some() || cfg.default_inodes.is_some() {
        // A default that cannot be enforced would be a limit silently ignored.
        if let Err(why) = storage.quota_support() {
            anyhow::bail!(
                "--default-disk/--default-inodes: the storage directory {} cannot enforce them: {why}",
                cfg.storage_dir().display()
            );
        }
        if cfg.default_inodes.is_some() && !storage.limits_inodes() {
            anyhow::bail!("--default-inodes: the {} driver counts inodes as metadata bytes, bounded by --default-disk", storage.kind());
        }
    }
    Ok(storage)
}

/// The containers' cgroup root, with the daemon moved out of its subtree.
fn open_cgroups(cfg: &Config) -> anyhow::Result<(Arc<dyn CgroupOps>, std::path::PathBuf)> {
    let mount = placement::unified_mount(std::path::Path::new("/sys/fs/cgroup"));
    let own = placement::cgroup_of(&cfg.proc_root, "self", &mount);
    let cgroup_root = cfg.cgroup_root.clone().unwrap_or_else(|| placement::default_root(&mount));
    if let Some(own) = &own {
        placement::leave_subtree(&cgroup_root, own, &mount).context("moving the daemon out of its containers' cgroup subtree")?;
    }
    let cgroups: Arc<dyn CgroupOps> = Arc::new(CgroupFs::open(&cgroup_root).context("preparing the cgroup root")?);
    Ok((cgroups, cgroup_root))
}

/// The address pool, the firewall and the runtime over the store, storage and cgroups.
fn build_runtime(
    cfg: &Config,
    store: Store,
    storage: Arc<dyn hoody_snapshot::StorageDriver>,
    cgroups: Arc<dyn CgroupOps>,
    events: Arc<crate::events::EventLog>,
) -> anyhow::Result<(Arc<Runtime>, Arc<crate::firewall::Firewall>, hoody_net::addr::Ipv4Net)> {
    let subnet = cfg.subnet;
    let net_pool = hoody_net::addr::Pool::new(subnet).map_err(|e| anyhow::anyhow!("--subnet: {e}"))?;
    let table = hoody_net::policy::TableConfig {
        subnet,
        uplink: cfg.uplink.clone(),
        deny_action: match cfg.deny_action {
            crate::config::DenyActionArg::Reject => hoody_net::policy::DenyAction::Reject,
            crate::config::DenyActionArg::Drop => hoody_net::policy::DenyAction::Drop,
        },
        nflog_group: cfg.nflog_group,
        log_rate: 10,
        shards: cfg.firewall_shards,
    };
    let firewall = crate::firewall::Firewall::new(Arc::new(hoody_net::nft::kernel::NftFirewall::new()), table);
    let rt = Runtime::new(
        RuntimeConfig {
            helper: "/proc/self/exe".into(),
            state_dir: cfg.state_dir.clone(),
            proc_root: cfg.proc_root.clone(),
            stop_timeout: cfg.stop_timeout(),
            id_pool: IdPool::default(),
            default_egress: cfg.default_egress,
            net_pool,
            default_disk: cfg.default_disk(),
            default_inodes: cfg.default_inodes,
            log_max: cfg.log_max(),
            exec_reattach_grace: cfg.exec_reattach_grace(),
            clock: match crate::test_hooks::var("HOODY_CLOCK_FILE") {
                Some(p) => Arc::new(crate::schedule::FileClock::new(p.into())),
                None => Arc::new(crate::schedule::SystemClock),
            },
        },
        store,
        storage,
        cgroups,
        firewall.clone(),
        events,
    );
    Ok((rt, firewall, subnet))
}

/// Forwarding on, the fail-closed routing rule, and the subscription to nftables changes
/// (before the firewall is reconciled, so that a foreign change after it is always seen).
async fn prepare_network(cfg: &Config, subnet: hoody_net::addr::Ipv4Net) -> anyhow::Result<hoody_net::nft::monitor::TableMonitor> {
    // Routing for containers, then their firewall, before anything of theirs is touched.
    {
        use hoody_net::sysctl::SysctlOps;
        hoody_net::sysctl::ProcSys { root: cfg.proc_root.join("sys") }
            .set("net/ipv4/ip_forward", "1")
            .context("enabling IPv4 forwarding")?;
    }
    // Container traffic without the table's mark is not routed: fail closed should the table
    // ever be gone.
    tokio::task::spawn_blocking(move || {
        use hoody_net::failsafe::FailsafeOps;
        hoody_net::netlink::Rtnl::open()?.ensure(subnet, hoody_net::compile::CONTAINER_MARK)
    })
    .await?
    .context("installing the failsafe routing rule")?;
    // Subscribed before the reconciliation: a foreign change after it is always seen.
    let monitor = hoody_net::nft::monitor::TableMonitor::bind().context("subscribing to nftables changes")?;
    Ok(monitor)
}

/// The store against the kernel and the disk: containers adopted, half-done deletes, freezes,
/// restores and storage orphans finished, stale links removed, source filters in place.
async fn reconcile(rt: &Arc<Runtime>, cfg: &Config) -> anyhow::Result<()> {
    let report = rt.adopt().await.context("reconciling state with the kernel")?;
    info!(adopted = report.adopted.len(), vanished = report.vanished.len(), orphans = report.removed_orphans.len(), "state reconciled");
    // Deletes a crash or a failure left half-way are finished before anything is served.
    match rt.retry_deletes().await {
        Ok(0) => {}
        Ok(n) => warn!(containers = n, "some containers could not be deleted yet; retried later"),
        Err(e) => warn!(error = %crate::errors::chain(&e).join(": "), "could not retry pending deletes"),
    }
    rt.spawn_delete_retries(cfg.delete_retry());
    // What a crash left of the storage operations: freezes, restores, orphans (each logged).
    let thawed = rt.thaw_leftover_freezes(&report.adopted).await;
    let restores = rt.finish_interrupted_restores().await.context("finishing interrupted restores")?;
    let orphans = rt.reclaim_storage_orphans().await.context("reclaiming what interrupted storage operations left")?;
    info!(thawed = thawed.len(), restores = restores.len(), orphans = orphans.len(), "storage reconciled");
    if let Err(e) = rt.remove_stale_links().await {
        warn!(error = %crate::errors::chain(&e).join(": "), "could not check for stale interfaces");
    }
    if let Err(e) = rt.ensure_source_filters().await {
        warn!(error = %crate::errors::chain(&e).join(": "), "could not put the source filters on the host ends");
    }
    Ok(())
}

/// What runs beside the API: NFLOG, the orphan reaper, exec recovery, the table guard, the
/// snapshot scheduler.
async fn start_background_work(
    rt: &Arc<Runtime>,
    firewall: Arc<crate::firewall::Firewall>,
    monitor: hoody_net::nft::monitor::TableMonitor,
    cfg: &Config,
) -> anyhow::Result<()> {
    let (denied_tx, mut denied_rx) = tokio::sync::mpsc::channel::<(String, String)>(1024);
    spawn_nflog_reader(firewall, cfg.nflog_group, denied_tx);
    let events_rt = rt.clone();
    tokio::spawn(async move {
        while let Some((id, to)) = denied_rx.recv().await {
            let data = hoody_api::events::EventData { destination: Some(to), count: Some(1), ..Default::default() };
            events_rt.emit_for(hoody_api::events::EventType::FirewallDenied, &id, data).await;
        }
    });
    rt.spawn_orphan_reaper();
    // Execs whose shims outlived the last daemon; their clients get a grace to re-attach.
    let known = rt.container_ids().await?;
    let execs = rt.recover_execs(&known, cfg.exec_reattach_grace());
    info!(running = execs, "exec instances loaded");
    rt.start_exec_spares().await?;
    crate::runtime::table_guard::spawn(monitor, rt.clone(), cfg.proc_root.clone());
    let tick = crate::test_hooks::var("HOODY_SCHEDULER_TICK_MS")
        .and_then(|v| v.to_str().and_then(|v| v.parse().ok()))
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(30));
    rt.spawn_scheduler(tick);
    Ok(())
}

/// The API socket, group-owned by `--socket-group` where it exists.
fn bind_socket(cfg: &Config) -> anyhow::Result<tokio::net::UnixListener> {
    let gid = crate::config::resolve_group(&cfg.socket_group).ok();
    if gid.is_none() {
        warn!(group = %cfg.socket_group, "socket group not found; the socket is root-only");
    }
    api::server::bind(&cfg.socket, gid).with_context(|| format!("binding {}", cfg.socket.display()))
}

/// At boot (the first start since the machine booted), the containers marked autostart; a
/// restart of the daemon alone leaves stopped containers stopped. Returns whether this is a
/// boot.
async fn begin_autostart_at_boot(rt: &Arc<Runtime>, cfg: &Config) -> anyhow::Result<bool> {
    let boot = match crate::runtime::boot::boot_id(&cfg.proc_root, cfg.boot_id_file.as_deref()) {
        Some(id) => crate::runtime::boot::first_start_since_boot(&cfg.state_dir, &id).context("recording the boot id")?,
        None => {
            warn!("no boot id: autostart treats this start as a boot");
            true
        }
    };
    if boot {
        rt.begin_autostart(true, cfg.parallel()).await.context("beginning autostart")?;
    }
    Ok(boot)
}
