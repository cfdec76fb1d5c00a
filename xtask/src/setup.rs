//! `cargo xtask setup`: installs what is missing, idempotently, without any
//! download from GitHub. Each tool is checked first, so a second run only
//! spends the seconds the checks take.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Instant, SystemTime};

use crate::util::{self, binaryen_bin, binaryen_prefix, root, secs, Result};

pub const TRUNK_VERSION: &str = "0.21.14";
/// npm `binaryen` major version; trunk calls it `version_132`.
pub const BINARYEN_VERSION: &str = "132";
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";
pub const APT_PACKAGES: &[&str] = &["chromium", "chromium-driver", "mesa-vulkan-drivers"];
pub const E2E_DIR: &str = "tests/e2e";

/// Outcome of one setup step.
enum Done {
    Already,
    Installed,
    Skipped(String),
}

pub fn run() -> Result<()> {
    setup(true)
}

/// Only what building the site needs (no browser, no test packages): for
/// `cargo xtask build` and `serve`, and the Pages workflow's machine.
pub fn build_tools() -> Result<()> {
    setup(false)
}

fn setup(for_tests: bool) -> Result<()> {
    let start = Instant::now();
    println!("== setup");
    let bindgen = wasm_bindgen_version()?;
    check_trunk_toml(&bindgen)?;

    step(&format!("rust target {WASM_TARGET}"), rust_target)?;
    if for_tests {
        step(
            "rustfmt and clippy (rustup components)",
            rust_lint_components,
        )?;
        step(&format!("apt: {}", APT_PACKAGES.join(" ")), apt_packages)?;
    }
    step(&format!("trunk {TRUNK_VERSION}"), trunk)?;
    step(&format!("wasm-bindgen-cli {bindgen}"), || {
        wasm_bindgen_cli(&bindgen)
    })?;
    step(
        &format!("wasm-opt (npm binaryen@{BINARYEN_VERSION})"),
        wasm_opt,
    )?;
    step("crates (cargo fetch)", cargo_fetch)?;
    if for_tests {
        step(&format!("node packages ({E2E_DIR})"), e2e_node_modules)?;
    }
    println!("== setup done in {}\n", secs(start.elapsed()));
    Ok(())
}

fn step(name: &str, f: impl FnOnce() -> Result<Done>) -> Result<()> {
    let start = Instant::now();
    match f() {
        Ok(Done::Already) => println!("  {name}: ok (already installed)"),
        Ok(Done::Installed) => println!("  {name}: installed in {}", secs(start.elapsed())),
        Ok(Done::Skipped(why)) => println!("  {name}: skipped ({why})"),
        Err(e) => return Err(format!("{name}: {e}")),
    }
    Ok(())
}

/// Prints what is about to be installed (the installer's own output follows).
fn installing(what: &str) {
    println!("  {what}: missing, installing...");
}

// ---------------------------------------------------------------- rust target

fn rust_target() -> Result<Done> {
    let installed = util::output(Command::new("rustup").args(["target", "list", "--installed"]))
        .ok_or("`rustup target list --installed` failed (is rustup installed?)")?;
    if installed.lines().any(|l| l.trim() == WASM_TARGET) {
        return Ok(Done::Already);
    }
    installing(WASM_TARGET);
    util::run(Command::new("rustup").args(["target", "add", WASM_TARGET]))?;
    Ok(Done::Installed)
}

/// `cargo xtask test` checks formatting and lints first; a minimal rustup profile lacks
/// both tools.
fn rust_lint_components() -> Result<Done> {
    let has = |tool: &str| util::output(Command::new("cargo").args([tool, "--version"])).is_some();
    if has("fmt") && has("clippy") {
        return Ok(Done::Already);
    }
    installing("rustfmt, clippy");
    util::run(Command::new("rustup").args(["component", "add", "rustfmt", "clippy"]))?;
    Ok(Done::Installed)
}

// ---------------------------------------------------------------- apt

fn dpkg_installed(pkg: &str) -> bool {
    util::output(Command::new("dpkg").args(["-s", pkg]))
        .map(|s| {
            s.lines()
                .any(|l| l.trim() == "Status: install ok installed")
        })
        .unwrap_or(false)
}

fn is_root() -> bool {
    util::output(Command::new("id").arg("-u"))
        .map(|s| s.trim() == "0")
        .unwrap_or(false)
}

fn apt_packages() -> Result<Done> {
    if util::which("dpkg").is_none() || util::which("apt-get").is_none() {
        let missing: Vec<&str> = ["chromium", "chromedriver"]
            .into_iter()
            .filter(|b| util::which(b).is_none())
            .collect();
        return if missing.is_empty() {
            Ok(Done::Skipped(
                "no apt; chromium and chromedriver found on PATH".into(),
            ))
        } else {
            Err(format!(
                "no apt-get on this machine: install {} yourself",
                missing.join(", ")
            ))
        };
    }
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(Done::Already);
    }
    installing(&missing.join(" "));
    let sudo = |args: &[&str]| {
        let mut cmd = if is_root() {
            Command::new(args[0])
        } else {
            let mut c = Command::new("sudo");
            c.arg(args[0]);
            c
        };
        cmd.args(&args[1..])
            .env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    util::run(&mut sudo(&["apt-get", "update"]))?;
    // With recommends (fonts-liberation, libgl1-mesa-dri): the set known to work.
    let mut install = vec!["apt-get", "install", "-y"];
    install.extend(&missing);
    util::run(&mut sudo(&install))?;
    Ok(Done::Installed)
}

// ---------------------------------------------------------------- cargo tools

/// Second word of `tool --version` (e.g. `trunk 0.21.14` -> `0.21.14`).
fn tool_version(tool: &str) -> Option<String> {
    let out = util::output(Command::new(tool).arg("--version"))?;
    out.split_whitespace().nth(1).map(str::to_owned)
}

fn trunk() -> Result<Done> {
    if tool_version("trunk").as_deref() == Some(TRUNK_VERSION) {
        return Ok(Done::Already);
    }
    installing(&format!("trunk {TRUNK_VERSION}"));
    util::run(Command::new("cargo").args([
        "install",
        "trunk",
        "--version",
        TRUNK_VERSION,
        "--locked",
        "--force",
    ]))?;
    match tool_version("trunk") {
        Some(v) if v == TRUNK_VERSION => Ok(Done::Installed),
        other => Err(format!(
            "installed, but `trunk --version` says {other:?} (is {} on PATH?)",
            util::cargo_bin().display()
        )),
    }
}

fn wasm_bindgen_cli(version: &str) -> Result<Done> {
    let ok = |tool| tool_version(tool).as_deref() == Some(version);
    if ok("wasm-bindgen") && ok("wasm-bindgen-test-runner") {
        return Ok(Done::Already);
    }
    installing(&format!("wasm-bindgen-cli {version}"));
    // Not --locked: wasm-bindgen-cli's own lock file pins crates that no
    // longer build with current toolchains.
    util::run(Command::new("cargo").args([
        "install",
        "wasm-bindgen-cli",
        "--version",
        &format!("={version}"),
        "--force",
    ]))?;
    if ok("wasm-bindgen") && ok("wasm-bindgen-test-runner") {
        Ok(Done::Installed)
    } else {
        Err(format!(
            "installed, but `wasm-bindgen --version` says {:?}",
            tool_version("wasm-bindgen")
        ))
    }
}

/// The one wasm-bindgen version in Cargo.lock (wasm-bindgen-cli must match it exactly).
pub fn wasm_bindgen_version() -> Result<String> {
    let lock = fs::read_to_string(root().join("Cargo.lock"))
        .map_err(|e| format!("cannot read Cargo.lock: {e}"))?;
    let versions = lock_versions(&lock, "wasm-bindgen");
    match versions.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err("Cargo.lock has no wasm-bindgen package".into()),
        many => Err(format!(
            "Cargo.lock has several wasm-bindgen versions {many:?}; \
             wasm-bindgen-cli can match only one"
        )),
    }
}

/// Versions of package `name` in a Cargo.lock text.
pub fn lock_versions(lock: &str, name: &str) -> Vec<String> {
    let want = format!("name = \"{name}\"");
    let mut out = Vec::new();
    for block in lock.split("[[package]]") {
        let mut lines = block.lines().map(str::trim);
        if !lines.clone().any(|l| l == want) {
            continue;
        }
        if let Some(v) = lines.find_map(|l| {
            l.strip_prefix("version = \"")
                .and_then(|r| r.strip_suffix('"'))
        }) {
            if !out.iter().any(|o| o == v) {
                out.push(v.to_owned());
            }
        }
    }
    out
}

/// Trunk.toml pins the versions trunk accepts; keep them in step with Cargo.lock.
fn check_trunk_toml(bindgen: &str) -> Result<()> {
    let text = fs::read_to_string(root().join("Trunk.toml"))
        .map_err(|e| format!("cannot read Trunk.toml: {e}"))?;
    let value = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
        })
    };
    let expect = [
        ("wasm_bindgen", bindgen.to_owned()),
        ("wasm_opt", format!("version_{BINARYEN_VERSION}")),
    ];
    for (key, want) in expect {
        match value(key) {
            Some(v) if v == want => {}
            got => {
                let got = got.map_or("missing".to_owned(), |v| format!("\"{v}\""));
                return Err(format!(
                    "Trunk.toml [tools] {key} is {got} but must be \"{want}\" \
                     (Cargo.lock / xtask pin); trunk runs offline and would not find it"
                ));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- npm

fn npm() -> Result<Command> {
    if util::which("npm").is_none() {
        return Err("npm not found: install node and npm (e.g. apt-get install nodejs npm)".into());
    }
    let mut cmd = Command::new("npm");
    cmd.args(["--no-audit", "--no-fund", "--loglevel=error"])
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
    Ok(cmd)
}

fn wasm_opt_ok() -> bool {
    // trunk reads the third word of `wasm-opt --version` ("wasm-opt version 132 (...)").
    util::output(Command::new(binaryen_bin().join("wasm-opt")).arg("--version"))
        .map(|s| s.split_whitespace().nth(2) == Some(BINARYEN_VERSION))
        .unwrap_or(false)
}

fn wasm_opt() -> Result<Done> {
    if wasm_opt_ok() {
        return Ok(Done::Already);
    }
    installing(&format!("binaryen@{BINARYEN_VERSION} into .tools/binaryen"));
    let prefix = binaryen_prefix();
    fs::create_dir_all(&prefix).map_err(|e| format!("{}: {e}", prefix.display()))?;
    util::run(
        npm()?
            .arg("install")
            .arg("--prefix")
            .arg(&prefix)
            .arg(format!("binaryen@{BINARYEN_VERSION}")),
    )?;
    if wasm_opt_ok() {
        Ok(Done::Installed)
    } else {
        Err(
            "installed, but `.tools/binaryen/node_modules/.bin/wasm-opt --version` \
             does not report version 132"
                .into(),
        )
    }
}

/// playwright-core needs node 20 or newer (Debian 12's own nodejs is 18).
const NODE_MAJOR_MIN: u32 = 20;

fn e2e_node_modules() -> Result<Done> {
    let dir = root().join(E2E_DIR);
    if !dir.join("package.json").is_file() {
        return Ok(Done::Skipped(format!("no {E2E_DIR}/package.json")));
    }
    let node = util::output(Command::new("node").arg("--version"))
        .ok_or("node not found: install node (20 or newer) and npm")?;
    let major: u32 = node
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < NODE_MAJOR_MIN {
        return Err(format!(
            "node {} is too old: the e2e tests (playwright-core) need node {NODE_MAJOR_MIN} or newer",
            node.trim()
        ));
    }
    let lock = dir.join("package-lock.json");
    // npm writes node_modules/.package-lock.json after every install.
    let marker = dir.join("node_modules").join(".package-lock.json");
    let fresh = match (
        mtime(&marker),
        mtime(&lock),
        mtime(&dir.join("package.json")),
    ) {
        (Some(m), Some(l), Some(p)) => m >= l && m >= p,
        _ => false,
    };
    if fresh {
        return Ok(Done::Already);
    }
    installing("node packages");
    let verb = if lock.is_file() { "ci" } else { "install" };
    util::run(npm()?.arg(verb).current_dir(&dir))?;
    Ok(Done::Installed)
}

fn mtime(p: &Path) -> Option<SystemTime> {
    p.metadata().and_then(|m| m.modified()).ok()
}

// ---------------------------------------------------------------- crates

/// trunk builds with `cargo build --offline` (Trunk.toml `offline = true`), so
/// every crate must be in the local registry cache first.
fn cargo_fetch() -> Result<Done> {
    let fetch = |offline: bool| {
        let mut cmd = Command::new("cargo");
        cmd.arg("fetch").current_dir(root());
        if offline {
            cmd.arg("--offline");
        }
        cmd
    };
    if util::output(&mut fetch(true)).is_some() {
        return Ok(Done::Already);
    }
    installing("crates");
    util::run(&mut fetch(false))?;
    Ok(Done::Installed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_wasm_bindgen_in_lock() {
        let lock = r#"
[[package]]
name = "wasm-bindgen-futures"
version = "0.4.80"

[[package]]
name = "wasm-bindgen"
version = "0.2.130"
source = "registry+https://github.com/rust-lang/crates.io-index"
"#;
        assert_eq!(lock_versions(lock, "wasm-bindgen"), vec!["0.2.130"]);
        assert_eq!(lock_versions(lock, "wasm-bindgen-futures"), vec!["0.4.80"]);
        assert!(lock_versions(lock, "trunk").is_empty());
    }

    #[test]
    fn workspace_lock_pins_one_wasm_bindgen() {
        let v = wasm_bindgen_version().unwrap();
        assert!(v.starts_with("0.2."), "{v}");
    }
}
