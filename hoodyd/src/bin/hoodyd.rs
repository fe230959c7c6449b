fn main() {
    // Helper sub-commands run single-threaded, before anything else starts.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    hoodyd::helper::dispatch(&args);
    let cli = hoodyd::config::CommandLine::parse(args);
    if cli.config.openapi {
        print!("{}", hoodyd::api::openapi::json());
        return;
    }
    let cfg = match hoodyd::config::Config::load(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hoodyd: {e:#}");
            std::process::exit(2);
        }
    };
    hoodyd::daemon::init_logging(cfg.log_format);
    if let Err(e) = hoodyd::daemon::main(cfg) {
        tracing::error!("{e:#}");
        eprintln!("hoodyd: {e:#}");
        std::process::exit(1);
    }
}
