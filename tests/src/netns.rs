//! Network namespaces made by a test, and running code inside one on a dedicated thread
//! (a network namespace is per thread, so the rest of the test process stays where it was).

use std::process::Command;

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    pub fn new(name: &str) -> NetNs {
        crate::run("ip", &["netns", "add", name]);
        crate::run("ip", &["-n", name, "link", "set", "lo", "up"]);
        NetNs { name: name.to_owned() }
    }

    /// Runs `f` on a new thread that has entered this namespace, and returns its result.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let fd = std::fs::File::open(&path).expect("open netns");
            nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("thread in netns panicked")
    }

    /// Runs a command inside the namespace (through `ip netns exec`).
    pub fn exec(&self, cmd: &[&str]) -> std::process::Output {
        Command::new("ip").args(["netns", "exec", &self.name]).args(cmd).output().expect("ip netns exec")
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}
