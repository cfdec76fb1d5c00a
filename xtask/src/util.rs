//! Small helpers: paths, PATH set-up, running commands, formatting durations.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub type Result<T> = std::result::Result<T, String>;

/// The repository root (the workspace that holds `xtask/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the repository root")
        .to_path_buf()
}

/// Where `npm install --prefix` puts binaryen (gitignored).
pub fn binaryen_prefix() -> PathBuf {
    root().join(".tools").join("binaryen")
}

/// Folder holding the `wasm-opt` launcher of npm's binaryen.
pub fn binaryen_bin() -> PathBuf {
    binaryen_prefix().join("node_modules").join(".bin")
}

/// `$CARGO_HOME/bin` (where `cargo install` puts trunk and wasm-bindgen).
pub fn cargo_bin() -> PathBuf {
    match env::var_os("CARGO_HOME") {
        Some(home) => PathBuf::from(home).join("bin"),
        None => home_dir().join(".cargo").join("bin"),
    }
}

fn home_dir() -> PathBuf {
    env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

/// Puts the local tool folders first on PATH (for this process and every child),
/// so that trunk finds npm's wasm-opt (never a system binaryen) and the
/// cargo-installed wasm-bindgen; and tells trunk not to look for updates.
pub fn init_env() {
    let first = [binaryen_bin(), cargo_bin()];
    let mut paths: Vec<PathBuf> = first.to_vec();
    if let Some(old) = env::var_os("PATH") {
        paths.extend(env::split_paths(&old).filter(|p| !first.contains(p)));
    }
    if let Ok(joined) = env::join_paths(paths) {
        env::set_var("PATH", joined);
    }
    env::set_var("TRUNK_SKIP_VERSION_CHECK", "true");
}

/// Finds an executable on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path: OsString = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A `trunk` command run from the repository root.
pub fn trunk() -> Command {
    let mut cmd = Command::new("trunk");
    cmd.current_dir(root());
    cmd
}

/// Renders a command line for logs.
pub fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains(char::is_whitespace) {
            s.push_str(&format!(" '{a}'"));
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    s
}

/// Runs a command with inherited stdio; Err unless it exits with status 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    println!("$ {}", show(cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("could not start `{}`: {e}", show(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", show(cmd)))
    }
}

/// Runs a command quietly and returns its stdout (plus stderr) when it succeeds.
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.stdin(Stdio::null()).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    Some(s)
}

/// `12.3 s`, or `4 min 05.2 s` past a minute.
pub fn secs(d: Duration) -> String {
    // Round to tenths first, so 239.96 s prints as "4 min 00.0 s", not "3 min 60.0 s".
    let tenths = (d.as_secs_f64() * 10.0).round() as u64;
    if tenths < 600 {
        format!("{}.{} s", tenths / 10, tenths % 10)
    } else {
        let (m, rest) = (tenths / 600, tenths % 600);
        format!("{m} min {:02}.{} s", rest / 10, rest % 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_before_splitting_minutes() {
        assert_eq!(secs(Duration::from_millis(239_960)), "4 min 00.0 s");
        assert_eq!(secs(Duration::from_millis(59_960)), "1 min 00.0 s");
        assert_eq!(secs(Duration::from_millis(1_240)), "1.2 s");
        assert_eq!(secs(Duration::from_millis(125_500)), "2 min 05.5 s");
    }

    #[test]
    fn formats_durations() {
        assert_eq!(secs(Duration::from_millis(12_340)), "12.3 s");
        assert_eq!(secs(Duration::from_millis(245_200)), "4 min 05.2 s");
    }

    #[test]
    fn root_has_workspace_manifest() {
        assert!(root().join("Cargo.toml").is_file());
        assert!(root().join("xtask").is_dir());
    }
}
