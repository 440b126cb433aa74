//! `cargo xtask bench-compare`: our `capsnet bench` against the PyTorch reference
//! (`scripts/reference/capsnet_torch.py`, the same network) on this machine, in one invocation.
//!
//! Builds the workspace the way the tests do (`cargo build --release --workspace --all-targets`),
//! checks that both implementations report the same layer table (`info --json`), runs both
//! benchmarks with the same batch size, steps and thread count, prints a table and writes
//! `results/bench/<machine>-b<batch>.json` (both raw results, ratios, versions, exact commands,
//! machine, load average) and a `.md` rendering of it next to it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

const USAGE: &str = "usage: cargo xtask bench-compare [--batch-size 32] [--steps 10] [--warmup 2]
       [--threads N (default: all cores)] [--python python3] [--out results/bench]
       [--experiment experiments/mnist.toml] [--no-build]
       [--backend flex] [--binary PATH (a capsnet built elsewhere, e.g. with --features tch; implies --no-build)]

Runs `capsnet bench` (RAYON_NUM_THREADS=N) and the PyTorch reference
(scripts/reference/capsnet_torch.py, torch.set_num_threads(N)) one after the other on this
machine and writes results/bench/<machine>-b<batch>.{json,md}. Take timings on an idle machine.";

/// The burn version the workspace pins (`Cargo.toml`).
const BURN_VERSION: &str = "0.22.1";

/// Above this 1-minute load average at the start, timings are flagged as taken on a busy machine.
const QUIET_LOAD: f64 = 0.5;

const INSTALL_HINT: &str = "install PyTorch into a virtual environment and point --python at it:
    python3 -m venv /work/venv-torch
    /work/venv-torch/bin/pip install torch numpy
    cargo xtask bench-compare --python /work/venv-torch/bin/python
(PyPI's Linux torch wheel is the CUDA build, several GB with its nvidia wheels; it runs on the CPU
too. See scripts/reference/README.md.)";

#[derive(Debug)]
struct Args {
    batch_size: usize,
    steps: usize,
    warmup: usize,
    threads: usize,
    python: String,
    out: PathBuf,
    experiment: String,
    build: bool,
    backend: String,
    binary: Option<PathBuf>,
}

impl Args {
    fn parse(args: &[String]) -> Result<Option<Self>> {
        let mut out = Args {
            batch_size: 32,
            steps: 10,
            warmup: 2,
            threads: available_threads(),
            python: "python3".into(),
            out: PathBuf::from("results/bench"),
            experiment: "experiments/mnist.toml".into(),
            build: true,
            backend: "flex".into(),
            binary: None,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .with_context(|| format!("{name} needs a value\n{USAGE}"))
            };
            let positive = |name: &str, v: String| -> Result<usize> {
                match v.parse::<usize>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => bail!("{name} takes a positive number, got `{v}`"),
                }
            };
            match arg.as_str() {
                "--batch-size" => out.batch_size = positive(arg, value(arg)?)?,
                "--steps" => out.steps = positive(arg, value(arg)?)?,
                "--warmup" => {
                    let v = value(arg)?;
                    out.warmup = v
                        .parse()
                        .with_context(|| format!("--warmup takes a number, got `{v}`"))?;
                }
                "--threads" => out.threads = positive(arg, value(arg)?)?,
                "--python" => out.python = value(arg)?,
                "--out" => out.out = PathBuf::from(value(arg)?),
                "--experiment" => out.experiment = value(arg)?,
                "--no-build" => out.build = false,
                "--backend" => out.backend = value(arg)?,
                "--binary" => {
                    out.binary = Some(PathBuf::from(value(arg)?));
                    out.build = false;
                }
                "--help" | "-h" => {
                    println!("{USAGE}");
                    return Ok(None);
                }
                other => bail!("unknown argument `{other}`\n{USAGE}"),
            }
        }
        Ok(Some(out))
    }
}

/// Entry point of `cargo xtask bench-compare` (arguments after the task name).
pub fn run(args: &[String]) -> Result<()> {
    let Some(args) = Args::parse(args)? else {
        return Ok(());
    };
    let root = workspace_root()?;
    let machine = machine();

    // Fail before the (possibly long) build when the reference cannot run.
    let script = root.join("scripts/reference/capsnet_torch.py");
    if !script.is_file() {
        bail!("{} is missing", script.display());
    }
    let (torch_version, python_version) = torch_versions(&args.python)?;
    eprintln!(
        "PyTorch {torch_version} (Python {python_version}, {})",
        args.python
    );

    let build_cmd = [
        "cargo",
        "build",
        "--release",
        "--workspace",
        "--all-targets",
    ];
    if args.build {
        eprintln!("$ {}", build_cmd.join(" "));
        let status = Command::new(build_cmd[0])
            .args(&build_cmd[1..])
            .current_dir(&root)
            .status()
            .context("cannot start cargo")?;
        if !status.success() {
            bail!("`{}` failed with {status}", build_cmd.join(" "));
        }
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root.join(t) })
        .unwrap_or_else(|| root.join("target"));
    let binary = match &args.binary {
        Some(b) if b.is_absolute() => b.clone(),
        Some(b) => root.join(b),
        None => target.join("release/capsnet"),
    };
    if !binary.is_file() {
        bail!(
            "{} does not exist (run without --no-build, or `{}`)",
            binary.display(),
            build_cmd.join(" ")
        );
    }
    let binary_shown = binary
        .strip_prefix(&root)
        .unwrap_or(&binary)
        .display()
        .to_string();
    let rustc = command_line("rustc", &["-V"]).unwrap_or_else(|| "unknown".into());
    let threads = args.threads.to_string();

    // Same network on both sides: the layer tables (shapes and parameters) must agree.
    let ours_info = run_json(
        Command::new(&binary)
            .args(["info", &args.experiment, "--json"])
            .current_dir(&root),
        "capsnet info",
    )?;
    let ref_info = run_json(
        Command::new(&args.python)
            .arg(&script)
            .args(["info", "--json"])
            .current_dir(&root),
        "capsnet_torch.py info",
    )?;
    if ours_info["layers"] != ref_info["layers"] || ours_info["params"] != ref_info["params"] {
        bail!(
            "the PyTorch reference is not the network of {}:\ncapsnet: {}\npytorch: {}",
            args.experiment,
            ours_info["layers"],
            ref_info["layers"]
        );
    }

    // The load when timing starts (after the build, which loads the machine itself).
    let load_start = load_average();
    let started = utc_timestamp();
    if let Some(&[one, ..]) = load_start.as_deref()
        && one > QUIET_LOAD
    {
        eprintln!(
            "warning: load average {one:.2} before timing (> {QUIET_LOAD}): timings will be noisy"
        );
    }

    let bench_args = [
        "--batch-size".to_string(),
        args.batch_size.to_string(),
        "--steps".into(),
        args.steps.to_string(),
        "--warmup".into(),
        args.warmup.to_string(),
    ];
    let ours_cmd = format!(
        "RAYON_NUM_THREADS={threads} OMP_NUM_THREADS={threads} {binary_shown} bench {} {} --backend {}",
        args.experiment,
        bench_args.join(" "),
        args.backend
    );
    eprintln!("$ {ours_cmd}");
    let ours = run_json(
        Command::new(&binary)
            .args(["bench", &args.experiment])
            .args(&bench_args)
            .args(["--backend", &args.backend])
            .env("RAYON_NUM_THREADS", &threads)
            .env("OMP_NUM_THREADS", &threads)
            .current_dir(&root),
        "capsnet bench",
    )?;

    let script_shown = "scripts/reference/capsnet_torch.py";
    let ref_cmd = format!(
        "OMP_NUM_THREADS={threads} {} {script_shown} bench {} --threads {threads} --device cpu",
        args.python,
        bench_args.join(" ")
    );
    eprintln!("$ {ref_cmd}");
    let reference = run_json(
        Command::new(&args.python)
            .arg(&script)
            .arg("bench")
            .args(&bench_args)
            .args(["--threads", &threads, "--device", "cpu"])
            .env("OMP_NUM_THREADS", &threads)
            .current_dir(&root),
        "capsnet_torch.py bench",
    )?;
    let load_end = load_average();

    let ratio = |key: &str| -> Result<f64> {
        let a = ours[key]
            .as_f64()
            .with_context(|| format!("capsnet bench output has no `{key}`"))?;
        let b = reference[key]
            .as_f64()
            .with_context(|| format!("reference output has no `{key}`"))?;
        Ok(a / b)
    };
    let ratios = json!({
        "train_images_per_sec": ratio("train_images_per_sec")?,
        "inference_images_per_sec": ratio("inference_images_per_sec")?,
    });

    let report = json!({
        "what": "capsnet bench vs the PyTorch reference (scripts/reference/capsnet_torch.py), same machine, one invocation",
        "date_utc": started,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "warmup": args.warmup,
        "threads": args.threads,
        "machine": machine,
        "load_average_start": load_start,
        "load_average_end": load_end,
        "versions": {
            "rustc": rustc,
            "burn": BURN_VERSION,
            "torch": torch_version,
            "python": python_version,
            "capsnet_git_revision": ours.get("git_revision").cloned().unwrap_or(Value::Null),
        },
        "commands": {
            "build": if args.build { Value::from(build_cmd.join(" ")) } else { Value::Null },
            "capsnet": ours_cmd,
            "pytorch": ref_cmd,
        },
        "model_check": {
            "layers_match": true,
            "params": ours_info["params"],
        },
        "ratios_capsnet_over_pytorch": ratios,
        "capsnet": ours,
        "pytorch": reference,
    });

    let md = render_markdown(&report);
    println!("\n{}", table(&report));
    let out_dir = if args.out.is_absolute() {
        args.out.clone()
    } else {
        root.join(&args.out)
    };
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let mut stem = format!("{}-b{}", machine_slug(&machine), args.batch_size);
    if args.backend != "flex" {
        stem.push_str(&format!("-{}", args.backend));
    }
    if Some(args.threads) != machine["cores"].as_u64().map(|c| c as usize) {
        stem.push_str(&format!("-t{}", args.threads));
    }
    let json_path = out_dir.join(format!("{stem}.json"));
    let md_path = out_dir.join(format!("{stem}.md"));
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    std::fs::write(&md_path, md).with_context(|| format!("cannot write {}", md_path.display()))?;
    eprintln!("wrote {} and {}", json_path.display(), md_path.display());
    Ok(())
}

/// The workspace root: `xtask/..` when built as xtask, else the nearest ancestor of the current
/// directory holding `xtask/` and `Cargo.toml`.
fn workspace_root() -> Result<PathBuf> {
    let is_root = |p: &Path| p.join("Cargo.toml").is_file() && p.join("xtask").is_dir();
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if let Some(parent) = manifest.parent().filter(|p| is_root(p)) {
        return Ok(parent.to_path_buf());
    }
    let cwd = std::env::current_dir().context("no current directory")?;
    cwd.ancestors()
        .find(|p| is_root(p))
        .map(Path::to_path_buf)
        .context("cannot find the workspace root (a folder with Cargo.toml and xtask/)")
}

/// Torch and Python versions of `python`, or an error saying how to install them.
fn torch_versions(python: &str) -> Result<(String, String)> {
    let output = Command::new(python)
        .args([
            "-c",
            "import sys, torch; print(torch.__version__); print(sys.version.split()[0])",
        ])
        .output();
    let output = match output {
        Ok(o) => o,
        Err(err) => bail!("cannot start `{python}` ({err}); {INSTALL_HINT}"),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or("").trim();
        bail!("`{python}` cannot import torch ({last}); {INSTALL_HINT}");
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut lines = stdout.lines();
    let torch = lines.next().unwrap_or("unknown").trim().to_string();
    let py = lines.next().unwrap_or("unknown").trim().to_string();
    Ok((torch, py))
}

/// Runs `cmd` (stderr passed through) and parses its stdout as one JSON value.
fn run_json(cmd: &mut Command, what: &str) -> Result<Value> {
    let output = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start {what}"))?;
    if !output.status.success() {
        bail!("{what} failed with {}", output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim())
        .with_context(|| format!("{what} did not print one JSON object:\n{stdout}"))
}

/// First line of a command's stdout, if it runs.
fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn available_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// `[1 min, 5 min, 15 min]` from /proc/loadavg.
fn load_average() -> Option<Vec<f64>> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let loads: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .filter_map(|v| v.parse().ok())
        .collect();
    (loads.len() == 3).then_some(loads)
}

/// Hostname, CPU model and core counts (from /proc/cpuinfo where available).
fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let logical = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .or_else(|| command_line("hostname", &[]))
        .unwrap_or_else(|| "unknown".into());
    let os = command_line("uname", &["-sr"]).unwrap_or_else(|| std::env::consts::OS.into())
        + " "
        + std::env::consts::ARCH;
    json!({
        "hostname": hostname,
        "cpu": cpu,
        "cores": available_threads(),
        "logical_cpus_in_cpuinfo": if logical > 0 { Value::from(logical) } else { Value::Null },
        "os": os,
    })
}

/// `hostname-cpu-model`, lower case, `[a-z0-9-]` only.
fn machine_slug(machine: &Value) -> String {
    let raw = format!(
        "{}-{}",
        machine["hostname"].as_str().unwrap_or("unknown"),
        machine["cpu"].as_str().unwrap_or("unknown")
    );
    let mut slug = String::new();
    for ch in raw.to_lowercase().chars() {
        if ch.is_ascii_alphanumeric() {
            slug.push(ch);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    slug.trim_end_matches('-').to_string()
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_timestamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// `8215568` → `8,215,568`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// The comparison rows: (label, capsnet, pytorch, ratio).
fn rows(report: &Value) -> Vec<(&'static str, String, String, String)> {
    let (ours, theirs) = (&report["capsnet"], &report["pytorch"]);
    let ratios = &report["ratios_capsnet_over_pytorch"];
    vec![
        (
            "train images/s",
            format!("{:.1}", num(&ours["train_images_per_sec"])),
            format!("{:.1}", num(&theirs["train_images_per_sec"])),
            format!("{:.2}×", num(&ratios["train_images_per_sec"])),
        ),
        (
            "train ms/step (median)",
            format!("{:.0}", num(&ours["train_ms_per_step_median"])),
            format!("{:.0}", num(&theirs["train_ms_per_step_median"])),
            String::new(),
        ),
        (
            "inference images/s",
            format!("{:.1}", num(&ours["inference_images_per_sec"])),
            format!("{:.1}", num(&theirs["inference_images_per_sec"])),
            format!("{:.2}×", num(&ratios["inference_images_per_sec"])),
        ),
    ]
}

fn loads(v: &Value) -> String {
    match v.as_array() {
        Some(l) => l
            .iter()
            .map(|x| format!("{:.2}", num(x)))
            .collect::<Vec<_>>()
            .join(", "),
        None => "unknown".into(),
    }
}

fn headers(report: &Value) -> (String, String) {
    (
        format!(
            "capsnet ({})",
            report["capsnet"]["backend"].as_str().unwrap_or("?")
        ),
        format!(
            "PyTorch {}",
            report["versions"]["torch"].as_str().unwrap_or("?")
        ),
    )
}

/// Plain-text table for the terminal.
fn table(report: &Value) -> String {
    let (ours, theirs) = headers(report);
    let mut out = format!(
        "batch {}, {} threads, {} timed steps — {}\n",
        report["batch_size"],
        report["threads"],
        report["steps"],
        report["machine"]["cpu"].as_str().unwrap_or("?")
    );
    out += &format!(
        "{:<24} {:>18} {:>18} {:>18}\n",
        "", ours, theirs, "capsnet / PyTorch"
    );
    for (label, a, b, r) in rows(report) {
        out += &format!("{label:<24} {a:>18} {b:>18} {r:>18}\n");
    }
    out += &format!(
        "load average when timing started: {}",
        loads(&report["load_average_start"])
    );
    out
}

/// The `.md` rendering of a report.
fn render_markdown(report: &Value) -> String {
    let (ours, theirs) = headers(report);
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        other => other.to_string(),
    };
    let m = &report["machine"];
    let v = &report["versions"];
    let c = &report["commands"];
    let mut md = format!(
        "# CapsNet throughput: capsnet vs the PyTorch reference, batch {}\n\n\
         Generated by `cargo xtask bench-compare` (do not edit by hand): both implementations of \
         the paper's MNIST CapsNet ({} parameters, layer tables checked equal) on random inputs, \
         one after the other on the same machine, {} threads each, {} warm-up + {} timed steps. \
         A training step is forward, loss, backward, Adam step and reading the loss back; \
         inference is a forward pass without autodiff, decoder masked by the longest capsule.\n\n",
        report["batch_size"],
        thousands(report["model_check"]["params"].as_u64().unwrap_or(0)),
        report["threads"],
        report["warmup"],
        report["steps"],
    );
    md += &format!("| | {ours} | {theirs} | capsnet / PyTorch |\n|---|---:|---:|---:|\n");
    for (label, a, b, r) in rows(report) {
        md += &format!("| {label} | {a} | {b} | {r} |\n");
    }
    md += &format!(
        "\n- date (UTC): {}\n- machine: {} ({}, {} cores, {})\n\
         - load average (1, 5, 15 min): {} when timing started, {} at the end\n\
         - versions: {}, burn {}, PyTorch {} (Python {}), capsnet revision {}\n\
         - commands:\n",
        s(&report["date_utc"]),
        s(&m["cpu"]),
        s(&m["hostname"]),
        s(&m["cores"]),
        s(&m["os"]),
        loads(&report["load_average_start"]),
        loads(&report["load_average_end"]),
        s(&v["rustc"]),
        s(&v["burn"]),
        s(&v["torch"]),
        s(&v["python"]),
        s(&v["capsnet_git_revision"]),
    );
    for key in ["build", "capsnet", "pytorch"] {
        if let Some(cmd) = c[key].as_str() {
            md += &format!("  - `{cmd}`\n");
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_defaults_and_values() {
        let a = Args::parse(&[]).unwrap().unwrap();
        assert_eq!((a.batch_size, a.steps, a.warmup), (32, 10, 2));
        assert_eq!(a.threads, available_threads());
        assert!(a.build);
        let args: Vec<String> = [
            "--batch-size",
            "64",
            "--threads",
            "2",
            "--python",
            "py",
            "--no-build",
        ]
        .map(String::from)
        .to_vec();
        let a = Args::parse(&args).unwrap().unwrap();
        assert_eq!((a.batch_size, a.threads, a.python.as_str()), (64, 2, "py"));
        assert!(!a.build);
        assert!(Args::parse(&["--steps".into(), "0".into()]).is_err());
        assert!(Args::parse(&["--bogus".into()]).is_err());
        assert_eq!(a.backend, "flex");
        let a = Args::parse(&["--backend", "tch", "--binary", "/x/capsnet"].map(String::from))
            .unwrap()
            .unwrap();
        assert_eq!(a.backend, "tch");
        assert_eq!(a.binary.as_deref(), Some(Path::new("/x/capsnet")));
        assert!(!a.build, "--binary implies --no-build");
    }

    #[test]
    fn slug_is_filename_safe() {
        let m = json!({"hostname": "vm", "cpu": "AMD EPYC 7B13 64-Core Processor"});
        assert_eq!(machine_slug(&m), "vm-amd-epyc-7b13-64-core-processor");
    }

    #[test]
    fn timestamp_format() {
        let t = utc_timestamp();
        assert_eq!(t.len(), 20);
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }

    #[test]
    fn markdown_has_the_numbers() {
        let report = json!({
            "batch_size": 32, "threads": 2, "steps": 10, "warmup": 2,
            "machine": {"cpu": "X", "hostname": "h", "cores": 2, "os": "Linux"},
            "load_average_start": [0.1, 0.2, 0.3], "load_average_end": [0.5, 0.2, 0.3],
            "versions": {"rustc": "rustc 1.95", "burn": "0.22.1", "torch": "2.11.0", "python": "3.11"},
            "commands": {"build": null, "capsnet": "a", "pytorch": "b"},
            "model_check": {"params": 8215568},
            "ratios_capsnet_over_pytorch": {"train_images_per_sec": 0.5, "inference_images_per_sec": 2.0},
            "capsnet": {"backend": "flex", "train_images_per_sec": 10.0, "train_ms_per_step_median": 3200.0, "inference_images_per_sec": 100.0},
            "pytorch": {"train_images_per_sec": 20.0, "train_ms_per_step_median": 1600.0, "inference_images_per_sec": 50.0},
        });
        let md = render_markdown(&report);
        assert!(
            md.contains("| train images/s | 10.0 | 20.0 | 0.50× |"),
            "{md}"
        );
        assert!(
            md.contains("| inference images/s | 100.0 | 50.0 | 2.00× |"),
            "{md}"
        );
        assert!(md.contains("0.10, 0.20, 0.30 when timing started"), "{md}");
        assert!(!md.contains("`null`"));
        assert!(md.contains("8,215,568 parameters"), "{md}");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert!(table(&report).contains("capsnet (flex)"));
    }
}
