//! `cargo xtask test`: installs what the end-to-end tests need when it is missing, then runs the
//! whole test suite (`cargo test --workspace --locked`).
//!
//! The end-to-end tests drive real client libraries against `actionkit serve`: Segment's Python
//! library, Segment's and RudderStack's Node libraries, and Segment's browser library in headless
//! Chromium. On a fresh machine none of them is there, and a test that cannot find its client
//! would only say "skipped". This task makes a fresh machine run every test:
//!
//! - **Chromium**: `$ACTIONKIT_CHROMIUM`, else `chromium` on the `PATH`, else Debian's `chromium`
//!   package installed with `apt-get` (as root). Never a browser download of a test tool's own.
//! - **Node.js and npm**: from the `PATH`, else Debian's `nodejs` and `npm` packages.
//! - **npm packages** of `crates/actionkit/tests/clients`: `npm ci` from the committed lockfile,
//!   again whenever the lockfile changes (a copy of the installed one is kept in `node_modules`).
//! - **Python client**: `segment-analytics-python`, pinned, in a virtual environment under
//!   `target/test-deps/python`.
//! - **NATS server** with JetStream, for the JetStream queue's tests: `$ACTIONKIT_NATS_SERVER`,
//!   else `nats-server` on the `PATH` or in `/usr/sbin`, else Debian's `nats-server` package.
//!
//! The tests are then told where everything is (`ACTIONKIT_CHROMIUM`, `ACTIONKIT_PYTHON`,
//! `ACTIONKIT_NATS_SERVER`) and
//! that a missing client is a failure, not a skip (`ACTIONKIT_REQUIRE_CLIENTS=1`).
//! The serve suites then run a second time with the queue on JetStream
//! (`ACTIONKIT_TEST_QUEUE=jetstream`, see [`JETSTREAM_SUITES`]), unless arguments were given.
//! `--deps-only` installs and stops; anything after `--` goes to `cargo test`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The Python packages of the end-to-end test with Segment's Python library, pinned.
pub const PYTHON_PACKAGES: &[&str] = &["segment-analytics-python==2.4.0"];

/// Where the Node.js clients and their lockfile live, relative to the repository root.
pub const NODE_CLIENTS_DIR: &str = "crates/actionkit/tests/clients";

/// What the task found or installed, handed to the tests as environment variables.
#[derive(Debug)]
pub struct TestDeps {
    /// The Chromium binary.
    pub chromium: PathBuf,
    /// The Python interpreter of the virtual environment holding the Python client.
    pub python: PathBuf,
    /// The NATS server binary.
    pub nats_server: PathBuf,
}

/// Installs what is missing, then runs `cargo test --workspace --locked` with `cargo_args`.
pub fn run(root: &Path, deps_only: bool, cargo_args: &[String]) -> anyhow::Result<()> {
    let deps = install(root)?;
    if deps_only {
        return Ok(());
    }
    println!(
        "== tests: cargo test --workspace --locked {}",
        cargo_args.join(" ")
    );
    let status = cargo_test(root, &deps)
        .args(["--workspace", "--locked"])
        .args(cargo_args)
        .status()
        .context("cannot run cargo test")?;
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    if cargo_args.is_empty() {
        run_on_jetstream(root, &deps)?;
    }
    Ok(())
}

/// `cargo test` in `root`, told where the test dependencies are and that a missing one is a
/// failure.
fn cargo_test(root: &Path, deps: &TestDeps) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .arg("test")
        .env("ACTIONKIT_CHROMIUM", &deps.chromium)
        .env("ACTIONKIT_PYTHON", &deps.python)
        .env("ACTIONKIT_NATS_SERVER", &deps.nats_server)
        .env("ACTIONKIT_REQUIRE_CLIENTS", "1");
    command
}

/// The serve test suites that run a second time with the queue on JetStream.
pub const JETSTREAM_SUITES: &[&str] = &[
    "console",
    "serve_bad_input",
    "serve_e2e",
    "serve_faults",
    "serve_bulk_faults",
    "serve_python",
    "serve_state",
];

/// Runs [`JETSTREAM_SUITES`] again with `ACTIONKIT_TEST_QUEUE=jetstream`: every `serve` they
/// start keeps its queue in a JetStream server of its own instead of an SQLite file.
fn run_on_jetstream(root: &Path, deps: &TestDeps) -> anyhow::Result<()> {
    println!(
        "== tests on the JetStream queue: {}",
        JETSTREAM_SUITES.join(", ")
    );
    let mut command = cargo_test(root, deps);
    command.args(["--locked", "-p", "actionkit"]);
    for suite in JETSTREAM_SUITES {
        command.args(["--test", suite]);
    }
    let status = command
        .env("ACTIONKIT_TEST_QUEUE", "jetstream")
        .status()
        .context("cannot run cargo test")?;
    if !status.success() {
        bail!("cargo test on the JetStream queue failed ({status})");
    }
    Ok(())
}

/// Finds or installs every dependency of the end-to-end tests.
pub fn install(root: &Path) -> anyhow::Result<TestDeps> {
    let chromium = chromium()?;
    println!(
        "== chromium: {} ({})",
        chromium.display(),
        version(&chromium)
    );
    node()?;
    node_clients(&root.join(NODE_CLIENTS_DIR))?;
    let python = python_client(&root.join("target/test-deps/python"))?;
    let nats_server = nats_server()?;
    println!(
        "== nats-server: {} ({})",
        nats_server.display(),
        version(&nats_server)
    );
    Ok(TestDeps {
        chromium,
        python,
        nats_server,
    })
}

/// The NATS server: `$ACTIONKIT_NATS_SERVER`, else on the `PATH` or in `/usr/sbin`, else
/// Debian's package.
fn nats_server() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("ACTIONKIT_NATS_SERVER").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!(
                "ACTIONKIT_NATS_SERVER is {}, which is not a file; unset it to use or install Debian's nats-server",
                path.display()
            );
        }
        return Ok(path);
    }
    let find = || {
        which("nats-server").or_else(|| {
            let sbin = PathBuf::from("/usr/sbin/nats-server");
            sbin.is_file().then_some(sbin)
        })
    };
    if let Some(path) = find() {
        return Ok(path);
    }
    apt_install(&["nats-server"], "the JetStream queue tests")?;
    find().context("nats-server is still not found after installing Debian's nats-server package")
}

/// The first line a program prints for `--version`, or why it printed nothing.
fn version(program: &Path) -> String {
    match Command::new(program).arg("--version").output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_owned(),
        Ok(out) => format!("--version exited with {}", out.status),
        Err(e) => format!("cannot run: {e}"),
    }
}

/// Looks `name` up on the `PATH`.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn chromium() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("ACTIONKIT_CHROMIUM").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!(
                "ACTIONKIT_CHROMIUM is {}, which is not a file; unset it to use or install Debian's chromium",
                path.display()
            );
        }
        return Ok(path);
    }
    let find = || which("chromium").or_else(|| which("chromium-browser"));
    if let Some(path) = find() {
        return Ok(path);
    }
    apt_install(&["chromium"], "the browser end-to-end tests")?;
    find().context("chromium is still not on the PATH after installing Debian's chromium package")
}

fn node() -> anyhow::Result<()> {
    if which("node").is_none() || which("npm").is_none() {
        apt_install(&["nodejs", "npm"], "the Node.js client tests")?;
    }
    let node = which("node").context("node is not on the PATH")?;
    println!("== node: {}", version(&node));
    Ok(())
}

/// Installs Debian packages with `apt-get`, which needs root; says what to do otherwise.
fn apt_install(packages: &[&str], purpose: &str) -> anyhow::Result<()> {
    let list = packages.join(" ");
    if which("apt-get").is_none() {
        bail!("{purpose} need {list}; install it with your package manager");
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false);
    if !is_root {
        bail!("{purpose} need {list}; run `sudo apt-get install -y {list}` and try again");
    }
    println!("== installing {list} with apt-get (for {purpose})");
    let update = Command::new("apt-get")
        .args(["update", "-qq"])
        .status()
        .context("cannot run apt-get update")?;
    if !update.success() {
        bail!("apt-get update failed ({update})");
    }
    // With the recommended packages (fonts among them), as the tests were run with.
    let install = Command::new("apt-get")
        .args(["install", "-y", "-qq"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("cannot run apt-get install")?;
    if !install.success() {
        bail!("apt-get install {list} failed ({install})");
    }
    Ok(())
}

/// Runs `npm ci` in `dir` unless its `node_modules` was installed from the same lockfile.
fn node_clients(dir: &Path) -> anyhow::Result<()> {
    let lock = dir.join("package-lock.json");
    let wanted = std::fs::read(&lock).with_context(|| format!("cannot read {}", lock.display()))?;
    let stamp = dir.join("node_modules/.actionkit-installed-lock.json");
    if std::fs::read(&stamp).is_ok_and(|installed| installed == wanted) {
        println!("== npm packages: up to date in {}", dir.display());
        return Ok(());
    }
    println!("== npm packages: npm ci in {}", dir.display());
    let status = Command::new("npm")
        .current_dir(dir)
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .status()
        .context("cannot run npm")?;
    if !status.success() {
        bail!("npm ci in {} failed ({status})", dir.display());
    }
    std::fs::write(&stamp, &wanted).with_context(|| format!("cannot write {}", stamp.display()))
}

/// Creates the virtual environment with the pinned Python client when it is missing or stale.
fn python_client(venv: &Path) -> anyhow::Result<PathBuf> {
    let python = venv.join("bin/python");
    let wanted = PYTHON_PACKAGES.join("\n");
    let stamp = venv.join("actionkit-installed.txt");
    if python.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        println!("== python client: up to date in {}", venv.display());
        return Ok(python);
    }
    println!(
        "== python client: {} into {}",
        PYTHON_PACKAGES.join(" "),
        venv.display()
    );
    let python3 = which("python3").context("python3 is not on the PATH")?;
    let status = Command::new(python3)
        .args(["-m", "venv"])
        .arg(venv)
        .status()
        .context("cannot run python3 -m venv")?;
    if !status.success() {
        bail!("python3 -m venv {} failed ({status})", venv.display());
    }
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(PYTHON_PACKAGES)
        .status()
        .context("cannot run pip")?;
    if !status.success() {
        bail!(
            "pip install {} failed ({status})",
            PYTHON_PACKAGES.join(" ")
        );
    }
    std::fs::write(&stamp, wanted).with_context(|| format!("cannot write {}", stamp.display()))?;
    Ok(python)
}
