use clap::Parser;

fn main() {
    let cli = hoodyd::client::cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hoodyctl: {e}");
            std::process::exit(1);
        }
    };
    let code = match rt.block_on(hoodyd::client::cli::run(cli)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hoodyctl: {e:#}");
            1
        }
    };
    // Exit at once: a pending read of stdin must not keep the process alive.
    std::process::exit(code)
}
