//! What `cargo xtask ci` and `cargo xtask test` need besides cargo, set up on first use so the
//! README's commands work on a machine that has only cargo and `python3`:
//!
//! - **cargo-nextest**: when `cargo nextest --version` fails, `cargo install --locked
//!   cargo-nextest --version` [`NEXTEST_VERSION`] (once; an installed nextest of any version is
//!   used as it is).
//! - **Python with `tensorboard`** for the TensorBoard readback tests
//!   (`crates/capsnet-tensorboard/tests/python_readback.rs`, which run `$CAPSNET_PYTHON`): a
//!   virtual environment of our own, `target/xtask-venv`, made by `python3 -m venv` with
//!   [`TENSORBOARD`] installed by pip. It is created once and reused; the file
//!   `target/xtask-venv/xtask-requirements.txt` records the pin it was made with, so a change of
//!   [`TENSORBOARD`] (or a venv whose Python no longer imports `tensorboard`) re-creates it.
//!   A `CAPSNET_PYTHON` set by the user wins, and no venv is made.

use std::ffi::{OsStr, OsString};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, Result, bail};

/// The cargo-nextest release installed when none is found (MSRV 1.91; its lock file has no
/// yanked crates, unlike 0.9.143's).
pub const NEXTEST_VERSION: &str = "0.9.151";

/// The Python requirement of the TensorBoard readback tests (the version CI has always used).
pub const TENSORBOARD: &str = "tensorboard==2.21.0";

/// The tests' virtual environment, relative to the repository root.
pub const VENV_DIR: &str = "target/xtask-venv";

/// File inside the venv recording the requirement it was made with.
const MARKER: &str = "xtask-requirements.txt";

/// What the Debian/Ubuntu family calls the packages a venv needs.
const NO_PYTHON_HINT: &str = "install Python 3 with its venv module (Debian/Ubuntu: \
     `sudo apt install python3 python3-venv`; Fedora: `sudo dnf install python3`), or set \
     CAPSNET_PYTHON to a Python that has `tensorboard`";

/// The cargo that runs us (`$CARGO` under `cargo xtask`), else `cargo` from `PATH`.
pub fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Makes sure `cargo nextest` runs, installing [`NEXTEST_VERSION`] with `cargo` if it does not.
pub fn ensure_nextest(cargo: &OsStr) -> Result<()> {
    if nextest_runs(cargo) {
        return Ok(());
    }
    let args = nextest_install_args();
    eprintln!(
        "cargo-nextest is not installed: installing cargo-nextest {NEXTEST_VERSION} (once; it \
         compiles for a few minutes)\n$ cargo {}",
        args.join(" ")
    );
    let status = Command::new(cargo)
        .args(&args)
        .status()
        .with_context(|| format!("cannot run {}", cargo.to_string_lossy()))?;
    if !status.success() {
        bail!(
            "installing cargo-nextest failed ({status}); install it yourself \
             (https://nexte.st/docs/installation/) and run this again"
        );
    }
    if !nextest_runs(cargo) {
        bail!(
            "cargo-nextest {NEXTEST_VERSION} was installed but `cargo nextest` still does not \
             run: is cargo's bin folder ($CARGO_HOME/bin, usually ~/.cargo/bin) on PATH?"
        );
    }
    Ok(())
}

fn nextest_runs(cargo: &OsStr) -> bool {
    Command::new(cargo)
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// `cargo` arguments that install the pinned nextest, with its own lock file.
pub fn nextest_install_args() -> Vec<String> {
    [
        "install",
        "--locked",
        "cargo-nextest",
        "--version",
        NEXTEST_VERSION,
    ]
    .map(String::from)
    .to_vec()
}

/// The Python the tests should run: `$CAPSNET_PYTHON` if the user set it, else the venv under
/// `root` (made or repaired first).
pub fn test_python(root: &Path) -> Result<OsString> {
    if let Some(python) = std::env::var_os("CAPSNET_PYTHON").filter(|p| !p.is_empty()) {
        eprintln!(
            "python: using CAPSNET_PYTHON={} (unset it to use {VENV_DIR})",
            python.to_string_lossy()
        );
        return Ok(python);
    }
    Ok(ensure_venv("python3".as_ref(), &root.join(VENV_DIR), TENSORBOARD)?.into_os_string())
}

/// Whether a venv can be reused, judged from its marker file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VenvState {
    /// No venv (or no marker: never finished).
    Missing,
    /// Made for another requirement.
    Stale {
        /// The requirement it was made with.
        was: String,
    },
    /// Made for this requirement (still to be checked by running its Python).
    Current,
}

/// Decides from the marker's content (`None`: no marker) whether the venv matches `requirement`.
pub fn venv_state(marker: Option<&str>, requirement: &str) -> VenvState {
    match marker.map(str::trim) {
        None | Some("") => VenvState::Missing,
        Some(was) if was == requirement => VenvState::Current,
        Some(was) => VenvState::Stale { was: was.into() },
    }
}

/// The interpreter inside a venv.
pub fn venv_python(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

/// `python3` arguments that create the venv.
pub fn venv_create_args(venv: &Path) -> Vec<OsString> {
    vec!["-m".into(), "venv".into(), venv.into()]
}

/// Arguments for the venv's Python that install `requirement`.
pub fn pip_install_args(requirement: &str) -> Vec<String> {
    [
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--quiet",
        requirement,
    ]
    .map(String::from)
    .to_vec()
}

/// Returns the Python of the venv at `venv`, first creating it with `python3 -m venv` and
/// installing `requirement` (a `name==version` pin) unless its marker records that requirement
/// and its Python imports the package.
pub fn ensure_venv(python3: &OsStr, venv: &Path, requirement: &str) -> Result<PathBuf> {
    let python = venv_python(venv);
    let marker_path = venv.join(MARKER);
    let marker = std::fs::read_to_string(&marker_path).ok();
    let package = requirement
        .split(['=', '<', '>', '~', '!', '['])
        .next()
        .unwrap_or(requirement)
        .trim();
    let reason = match venv_state(marker.as_deref(), requirement) {
        VenvState::Current => {
            let imports = Command::new(&python)
                .args(["-c", &format!("import {package}")])
                .output()
                .is_ok_and(|out| out.status.success());
            if imports {
                return Ok(python);
            }
            format!("{} cannot import {package}", python.display())
        }
        VenvState::Stale { was } => format!("it was made for {was}"),
        VenvState::Missing => "it does not exist yet".to_string(),
    };
    eprintln!(
        "python: creating {} with {requirement} for the TensorBoard readback tests ({reason}; \
         once, reused afterwards)",
        venv.display()
    );
    if venv.exists() {
        std::fs::remove_dir_all(venv)
            .with_context(|| format!("cannot remove the old venv {}", venv.display()))?;
    }
    let out = match Command::new(python3).args(venv_create_args(venv)).output() {
        Ok(out) => out,
        Err(e) if e.kind() == ErrorKind::NotFound => bail!(
            "`{}` not found: the TensorBoard readback tests need Python 3; {NO_PYTHON_HINT}",
            python3.to_string_lossy()
        ),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot run {}", python3.to_string_lossy()));
        }
    };
    if !out.status.success() || !python.exists() {
        bail!(
            "`{} -m venv {}` failed ({}): {NO_PYTHON_HINT}\n{}",
            python3.to_string_lossy(),
            venv.display(),
            out.status,
            output_text(&out)
        );
    }
    let out = Command::new(&python)
        .args(pip_install_args(requirement))
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "`pip install {requirement}` into {} failed ({}); without network access, set \
             CAPSNET_PYTHON to a Python that has {package}\n{}",
            venv.display(),
            out.status,
            output_text(&out)
        );
    }
    std::fs::write(&marker_path, format!("{requirement}\n"))
        .with_context(|| format!("cannot write {}", marker_path.display()))?;
    Ok(python)
}

fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .trim()
    .to_string()
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        crate::scratch_dir(tag)
    }

    fn write_script(path: &Path, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, format!("#!/usr/bin/env bash\n{body}")).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A `python3` whose `-m venv DIR` makes `DIR/bin/python`, a fake that logs every call to
    /// `log` and "has" a package once `-m pip install` ran for it.
    fn fake_python3(dir: &Path, log: &Path) -> PathBuf {
        let python3 = dir.join("python3");
        let venv_python = format!(
            r#"#!/usr/bin/env bash
echo "python $*" >> '{log}'
here="$(dirname "$0")"
if [ "$1 $2" = "-m pip" ]; then touch "$here/installed"; exit 0; fi
if [ "$1" = "-c" ]; then [ -f "$here/installed" ]; exit $?; fi
exit 3
"#,
            log = log.display()
        );
        std::fs::write(dir.join("venv-python"), venv_python).unwrap();
        write_script(
            &python3,
            &format!(
                r#"echo "python3 $*" >> '{log}'
[ "$1 $2" = "-m venv" ] || exit 2
mkdir -p "$3/bin"
cp '{template}' "$3/bin/python"
chmod +x "$3/bin/python"
"#,
                log = log.display(),
                template = dir.join("venv-python").display()
            ),
        );
        python3
    }

    fn log_lines(log: &Path) -> Vec<String> {
        let lines = std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect();
        let _ = std::fs::remove_file(log);
        lines
    }

    #[test]
    fn marker_decides_whether_the_venv_is_current() {
        assert_eq!(venv_state(None, TENSORBOARD), VenvState::Missing);
        assert_eq!(venv_state(Some(" \n"), TENSORBOARD), VenvState::Missing);
        assert_eq!(
            venv_state(Some("tensorboard==2.21.0\n"), "tensorboard==2.21.0"),
            VenvState::Current
        );
        assert_eq!(
            venv_state(Some("tensorboard==2.20.0\n"), "tensorboard==2.21.0"),
            VenvState::Stale {
                was: "tensorboard==2.20.0".into()
            }
        );
    }

    #[test]
    fn commands_are_pinned() {
        assert_eq!(
            nextest_install_args(),
            [
                "install",
                "--locked",
                "cargo-nextest",
                "--version",
                NEXTEST_VERSION
            ]
        );
        assert_eq!(
            pip_install_args(TENSORBOARD),
            [
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--quiet",
                "tensorboard==2.21.0"
            ]
        );
        assert_eq!(
            venv_create_args(Path::new("/r/target/xtask-venv")),
            ["-m", "venv", "/r/target/xtask-venv"].map(OsString::from)
        );
        assert_eq!(
            venv_python(Path::new("/r/target/xtask-venv")),
            Path::new("/r/target/xtask-venv/bin/python")
        );
    }

    #[test]
    fn venv_is_made_once_reused_and_remade_on_a_new_pin_or_when_broken() {
        let dir = scratch("venv");
        let log = dir.join("log");
        let python3 = fake_python3(&dir, &log);
        let venv = dir.join("target/xtask-venv");
        let python = ensure_venv(python3.as_os_str(), &venv, "tensorboard==2.21.0").unwrap();
        assert_eq!(python, venv.join("bin/python"));
        let venv_arg = venv.display().to_string();
        assert_eq!(
            log_lines(&log),
            [
                format!("python3 -m venv {venv_arg}"),
                "python -m pip install --disable-pip-version-check --quiet tensorboard==2.21.0"
                    .to_string(),
            ]
        );
        assert_eq!(
            std::fs::read_to_string(venv.join(MARKER)).unwrap(),
            "tensorboard==2.21.0\n"
        );

        // Second run: only the import check.
        ensure_venv(python3.as_os_str(), &venv, "tensorboard==2.21.0").unwrap();
        assert_eq!(log_lines(&log), ["python -c import tensorboard"]);

        // A new pin re-creates it.
        ensure_venv(python3.as_os_str(), &venv, "tensorboard==2.22.0").unwrap();
        assert_eq!(
            log_lines(&log),
            [
                format!("python3 -m venv {venv_arg}"),
                "python -m pip install --disable-pip-version-check --quiet tensorboard==2.22.0"
                    .to_string(),
            ]
        );

        // A venv whose Python lost the package is re-created too.
        std::fs::remove_file(venv.join("bin/installed")).unwrap();
        ensure_venv(python3.as_os_str(), &venv, "tensorboard==2.22.0").unwrap();
        let lines = log_lines(&log);
        assert_eq!(lines[0], "python -c import tensorboard");
        assert_eq!(lines[1], format!("python3 -m venv {venv_arg}"));
        assert_eq!(lines.len(), 3, "{lines:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_python_or_venv_module_names_the_package_to_install() {
        let dir = scratch("nopython");
        let venv = dir.join("venv");
        let err = format!(
            "{:#}",
            ensure_venv(dir.join("no-such-python3").as_os_str(), &venv, TENSORBOARD).unwrap_err()
        );
        assert!(
            err.contains("not found") && err.contains("python3-venv"),
            "{err}"
        );

        // Debian's python3 without python3-venv: `-m venv` fails (ensurepip is missing).
        let python3 = dir.join("python3");
        write_script(
            &python3,
            "echo 'The virtual environment was not created successfully because ensurepip is \
             not available.' >&2\nexit 1\n",
        );
        let err = format!(
            "{:#}",
            ensure_venv(python3.as_os_str(), &venv, TENSORBOARD).unwrap_err()
        );
        assert!(
            err.contains("python3-venv") && err.contains("ensurepip is not available"),
            "{err}"
        );
        assert!(!venv.join(MARKER).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failed_pip_install_leaves_no_marker() {
        let dir = scratch("pipfails");
        let python3 = dir.join("python3");
        write_script(
            &python3,
            "mkdir -p \"$3/bin\"\nprintf '#!/usr/bin/env bash\\necho offline >&2\\nexit 1\\n' > \
             \"$3/bin/python\"\nchmod +x \"$3/bin/python\"\n",
        );
        let venv = dir.join("venv");
        let err = format!(
            "{:#}",
            ensure_venv(python3.as_os_str(), &venv, TENSORBOARD).unwrap_err()
        );
        assert!(
            err.contains("pip install tensorboard==2.21.0") && err.contains("offline"),
            "{err}"
        );
        assert!(!venv.join(MARKER).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn nextest_is_installed_only_when_missing() {
        let dir = scratch("nextest");
        let log = dir.join("log");
        let cargo = dir.join("cargo");
        // A cargo whose `nextest` subcommand exists once `install` ran.
        write_script(
            &cargo,
            &format!(
                r#"echo "cargo $*" >> '{log}'
if [ "$1" = install ]; then touch '{flag}'; exit 0; fi
if [ "$1" = nextest ]; then [ -f '{flag}' ]; exit $?; fi
exit 2
"#,
                log = log.display(),
                flag = dir.join("installed").display()
            ),
        );
        ensure_nextest(cargo.as_os_str()).unwrap();
        assert_eq!(
            log_lines(&log),
            [
                "cargo nextest --version".to_string(),
                format!("cargo install --locked cargo-nextest --version {NEXTEST_VERSION}"),
                "cargo nextest --version".to_string(),
            ]
        );
        ensure_nextest(cargo.as_os_str()).unwrap();
        assert_eq!(log_lines(&log), ["cargo nextest --version"]);

        // An install that leaves `cargo nextest` unusable is an error, not a loop.
        let broken = dir.join("cargo-broken");
        write_script(&broken, "[ \"$1\" = install ]\n");
        let err = format!("{:#}", ensure_nextest(broken.as_os_str()).unwrap_err());
        assert!(err.contains("PATH"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
