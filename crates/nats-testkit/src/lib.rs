//! Real `nats-server` processes with JetStream for tests: a single server, or a cluster of
//! three whose nodes can be killed and started again.
//!
//! The binary is `$ACTIONKIT_NATS_SERVER`, else `nats-server` on the `PATH` or in `/usr/sbin`
//! (Debian's package, which `cargo xtask test` installs). Without it a test fails in CI and
//! under `cargo xtask test` (`ACTIONKIT_REQUIRE_CLIENTS`), and is skipped elsewhere: the
//! starting functions return `None` after saying so.
//!
//! Each server runs under a small shell watchdog that reads its standard input: when the test
//! process ends, however it ends, the pipe closes and the watchdog kills the server, so no
//! server outlives the test run. Servers listen on free ports of 127.0.0.1 and keep their data
//! in a temporary directory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The `nats-server` binary, if one is installed.
pub fn binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ACTIONKIT_NATS_SERVER").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
}

/// The server binary, or `None` after saying the test is skipped; a missing server fails the
/// test in CI and under `cargo xtask test`.
pub fn binary_or_skip() -> Option<PathBuf> {
    let found = binary();
    if found.is_none() {
        let required = std::env::var_os("CI").is_some()
            || std::env::var_os("ACTIONKIT_REQUIRE_CLIENTS").is_some();
        assert!(
            !required,
            "nats-server is not installed; run `cargo xtask test`, which installs it"
        );
        eprintln!("skipped: nats-server is not installed; run `cargo xtask test`");
    }
    found
}

/// A free TCP port on 127.0.0.1 (bound, then let go).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// One `nats-server` under its watchdog.
struct Process {
    watchdog: Child,
    /// Closing it makes the watchdog kill the server.
    stdin: Option<ChildStdin>,
    /// The server's own process id, for `kill -9`.
    pid: u32,
}

impl Process {
    /// Starts `binary args…` under the watchdog.
    fn spawn(binary: &Path, args: &[String]) -> Process {
        let script = r#""$0" "$@" >/dev/null 2>&1 & pid=$!; echo "$pid"; read -r _; kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; exit 0"#;
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(binary)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the nats-server watchdog starts");
        let stdin = watchdog.stdin.take();
        let mut line = String::new();
        let stdout = watchdog
            .stdout
            .take()
            .expect("the watchdog's stdout is piped");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the watchdog prints the server's pid");
        let pid = line.trim().parse().expect("a process id");
        Process {
            watchdog,
            stdin,
            pid,
        }
    }

    /// Kills the server with SIGKILL, as a crash would, and waits for the watchdog.
    fn kill(mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.pid.to_string()])
            .status();
        self.stdin.take();
        let _ = self.watchdog.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stdin.take();
        let _ = self.watchdog.wait();
    }
}

/// Waits for the ports file a server started with `--ports_file_dir dir` writes; returns its
/// client URL.
fn client_url(dir: &Path) -> String {
    let started = Instant::now();
    loop {
        let ports = std::fs::read_dir(dir)
            .expect("the server's directory")
            .filter_map(Result::ok)
            .find(|entry| entry.file_name().to_string_lossy().ends_with(".ports"));
        if let Some(entry) = ports
            && let Ok(text) = std::fs::read_to_string(entry.path())
            && let Some(start) = text.find("nats://")
        {
            return text[start..].chars().take_while(|c| *c != '"').collect();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nats-server wrote no ports file in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A single JetStream server on a free port; stopped when dropped.
pub struct Server {
    process: Option<Process>,
    url: String,
    dir: tempfile::TempDir,
    binary: PathBuf,
}

impl Server {
    /// Starts a server, or says why the test is skipped (`None`).
    pub fn start() -> Option<Server> {
        let binary = binary_or_skip()?;
        let dir = tempfile::tempdir().expect("a temp dir");
        let args = vec![
            "-js".to_owned(),
            "-a".to_owned(),
            "127.0.0.1".to_owned(),
            "-p".to_owned(),
            "-1".to_owned(),
            "-sd".to_owned(),
            dir.path().join("js").display().to_string(),
            "--ports_file_dir".to_owned(),
            dir.path().display().to_string(),
        ];
        let process = Process::spawn(&binary, &args);
        let url = client_url(dir.path());
        Some(Server {
            process: Some(process),
            url,
            dir,
            binary,
        })
    }

    /// Kills the server with SIGKILL, as a crash would; its data stays.
    pub fn kill(&mut self) {
        if let Some(process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts the server again on the same port with its data (after [`Server::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        let port = self.url.rsplit(':').next().unwrap_or_default().to_owned();
        let args = vec![
            "-js".to_owned(),
            "-a".to_owned(),
            "127.0.0.1".to_owned(),
            "-p".to_owned(),
            port,
            "-sd".to_owned(),
            self.dir.path().join("js").display().to_string(),
        ];
        self.process = Some(Process::spawn(&self.binary, &args));
    }

    /// The server's process id while it runs (for CPU accounting).
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.pid)
    }

    /// The client URL, `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where the server keeps its data.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Keeps the server running until the test process ends (for helpers that hand out a URL
    /// and no handle).
    pub fn keep_until_exit(self) -> String {
        static KEPT: Mutex<Vec<Server>> = Mutex::new(Vec::new());
        let url = self.url.clone();
        KEPT.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(self);
        url
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.process.take();
    }
}

/// A cluster of JetStream servers on 127.0.0.1; each node can be killed and started again
/// with its data.
pub struct Cluster {
    binary: PathBuf,
    dir: tempfile::TempDir,
    ports: Vec<(u16, u16)>,
    nodes: Vec<Option<Process>>,
}

impl Cluster {
    /// Starts `size` nodes (3 for a cluster that survives one node), or says why the test is
    /// skipped (`None`).
    pub fn start(size: usize) -> Option<Cluster> {
        let binary = binary_or_skip()?;
        let ports: Vec<(u16, u16)> = (0..size).map(|_| (free_port(), free_port())).collect();
        let mut cluster = Cluster {
            binary,
            dir: tempfile::tempdir().expect("a temp dir"),
            ports,
            nodes: (0..size).map(|_| None).collect(),
        };
        for node in 0..size {
            cluster.start_node(node);
        }
        Some(cluster)
    }

    /// Starts node `node` (again) with its data directory.
    pub fn start_node(&mut self, node: usize) {
        let (client, route) = self.ports[node];
        let routes: Vec<String> = self
            .ports
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != node)
            .map(|(_, (_, route))| format!("nats://127.0.0.1:{route}"))
            .collect();
        let args = vec![
            "-js".to_owned(),
            "-a".to_owned(),
            "127.0.0.1".to_owned(),
            "-p".to_owned(),
            client.to_string(),
            "-n".to_owned(),
            format!("node-{node}"),
            "--cluster_name".to_owned(),
            "actionkit".to_owned(),
            "--cluster".to_owned(),
            format!("nats://127.0.0.1:{route}"),
            "--routes".to_owned(),
            routes.join(","),
            "-sd".to_owned(),
            self.dir
                .path()
                .join(format!("node-{node}"))
                .display()
                .to_string(),
        ];
        self.nodes[node] = Some(Process::spawn(&self.binary, &args));
    }

    /// Kills node `node` with SIGKILL, as a crash would.
    pub fn kill_node(&mut self, node: usize) {
        if let Some(process) = self.nodes[node].take() {
            process.kill();
        }
    }

    /// Whether node `node` runs.
    pub fn is_running(&self, node: usize) -> bool {
        self.nodes[node].is_some()
    }

    /// Every node's client URL.
    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|(client, _)| format!("nats://127.0.0.1:{client}"))
            .collect()
    }
}
