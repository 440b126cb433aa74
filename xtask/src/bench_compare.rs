//! `cargo xtask bench-compare`: our `capsnet bench` against the PyTorch reference
//! (`scripts/reference/capsnet_torch.py`, the same network) on this machine, in one invocation.
//!
//! `--network capsnet` (default) compares the paper's CapsNet (`experiments/mnist.toml`),
//! `--network efficient-capsnet` Efficient-CapsNet (`experiments/efficient_capsnet.toml`); the
//! reference script gets the same `--network`.
//!
//! Builds the workspace the way the tests do (`cargo build --release --workspace --all-targets`),
//! checks that both implementations report the same layer table (`info --json`), runs both
//! benchmarks with the same batch size, steps and thread count, prints a table and writes
//! `results/bench/<machine>-b<batch>.json` (`<machine>-b<batch>-efficient-capsnet.json` for
//! Efficient-CapsNet; both raw results, ratios, network, versions, exact commands, machine, load
//! average) and a `.md` rendering of it next to it.
//!
//! The machine's speed drifts, so the pair runs `--rounds` times (default 3), alternating which
//! of the two goes first; the reported figures are medians over the rounds and the ratios are
//! ratios of those medians, with every round's raw results, ratios and their range kept as well.
//! With `--rounds 1` the report has exactly the fields of a single run (no `rounds`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

/// The networks the reference script implements (`--network`) and the experiment each compares
/// against by default. The first is the default network.
const NETWORKS: [(&str, &str); 2] = [
    ("capsnet", "experiments/mnist.toml"),
    ("efficient-capsnet", "experiments/efficient_capsnet.toml"),
];

/// The network of a report (`capsnet` for records written before `--network` existed).
fn report_network(report: &Value) -> &str {
    report["network"].as_str().unwrap_or(NETWORKS[0].0)
}

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

/// capsnet vs the PyTorch reference (scripts/reference) on this machine.
///
/// Runs `capsnet bench` (RAYON_NUM_THREADS=N) and the PyTorch reference
/// (scripts/reference/capsnet_torch.py --network <network>, torch.set_num_threads(N)) one after
/// the other on this machine, --rounds times, alternating which goes first (capsnet in rounds 1,
/// 3, ..., PyTorch in rounds 2, 4, ...), and writes results/bench/<machine>-b<batch>.{json,md}:
/// the median over rounds of each side's figures, the ratios of those medians, and every round's
/// raw results and ratios with their min/max. --rounds 1 runs each once, capsnet first. Take
/// timings on an idle machine.
///
/// --network capsnet (default) is the paper's CapsNet, experiment experiments/mnist.toml;
/// --network efficient-capsnet is Efficient-CapsNet, experiment
/// experiments/efficient_capsnet.toml, and adds -efficient-capsnet to the file names
/// (<machine>-b<batch>-efficient-capsnet.{json,md}). --experiment overrides the experiment; its
/// network must still be the reference's.
#[derive(Debug, clap::Args)]
pub struct BenchCompareArgs {
    /// The network, on both sides: capsnet or efficient-capsnet.
    #[arg(long, value_name = "NAME", default_value = NETWORKS[0].0, value_parser = parse_network)]
    network: String,
    /// Images per step, on both sides.
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = positive)]
    batch_size: usize,
    /// Timed steps.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = positive)]
    steps: usize,
    /// Untimed steps first.
    #[arg(long, value_name = "N", default_value_t = 2)]
    warmup: usize,
    /// How many times to run the pair.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = positive)]
    rounds: usize,
    /// Threads on each side (default: all cores).
    #[arg(long, value_name = "N", value_parser = positive)]
    threads: Option<usize>,
    /// The Python with PyTorch.
    #[arg(long, value_name = "PATH", default_value = "python3")]
    python: String,
    /// Where the records go.
    #[arg(long, value_name = "DIR", default_value = "results/bench")]
    out: PathBuf,
    /// The experiment capsnet benchmarks (default: the network's).
    #[arg(long, value_name = "PATH")]
    experiment: Option<String>,
    /// Use the capsnet already built instead of building the workspace.
    #[arg(long)]
    no_build: bool,
    /// capsnet's backend.
    #[arg(long, value_name = "NAME", default_value = "flex")]
    backend: String,
    /// A capsnet built elsewhere (e.g. with --features tch); implies --no-build.
    #[arg(long, value_name = "PATH")]
    binary: Option<PathBuf>,
}

/// `--network`: one of [`NETWORKS`].
fn parse_network(text: &str) -> Result<String> {
    if !NETWORKS.iter().any(|(n, _)| *n == text) {
        let names: Vec<&str> = NETWORKS.iter().map(|(n, _)| *n).collect();
        bail!("--network takes {}, got `{text}`", names.join(" or "));
    }
    Ok(text.to_string())
}

/// A whole number of at least 1.
fn positive(text: &str) -> Result<usize> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => bail!("takes a positive number, got `{text}`"),
    }
}

impl BenchCompareArgs {
    /// The settings of the comparison: defaults that depend on other arguments filled in.
    pub fn validate(self) -> Result<Args> {
        let experiment = match self.experiment {
            Some(e) => e,
            None => NETWORKS
                .iter()
                .find(|(n, _)| *n == self.network)
                .map(|(_, e)| e.to_string())
                .context("the network was checked")?,
        };
        Ok(Args {
            batch_size: self.batch_size,
            steps: self.steps,
            warmup: self.warmup,
            rounds: self.rounds,
            threads: self.threads.unwrap_or_else(available_threads),
            python: self.python,
            out: self.out,
            network: self.network,
            experiment,
            build: !self.no_build && self.binary.is_none(),
            backend: self.backend,
            binary: self.binary,
        })
    }
}

/// The settings of one `cargo xtask bench-compare`.
#[derive(Debug)]
pub struct Args {
    batch_size: usize,
    steps: usize,
    warmup: usize,
    rounds: usize,
    threads: usize,
    python: String,
    out: PathBuf,
    /// `--network`: one of [`NETWORKS`].
    network: String,
    /// `--experiment`, or the network's default experiment.
    experiment: String,
    build: bool,
    backend: String,
    binary: Option<PathBuf>,
}

/// Entry point of `cargo xtask bench-compare`.
pub fn run(args: Args) -> Result<()> {
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
            .args(["info", "--json", "--network", &args.network])
            .current_dir(&root),
        "capsnet_torch.py info",
    )?;
    if ours_info["layers"] != ref_info["layers"] || ours_info["params"] != ref_info["params"] {
        bail!(
            "the PyTorch reference (--network {}) is not the network of {}:\ncapsnet: {}\npytorch: {}",
            args.network,
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
    let script_shown = "scripts/reference/capsnet_torch.py";
    let ref_cmd = format!(
        "OMP_NUM_THREADS={threads} {} {script_shown} bench --network {} {} --threads {threads} --device cpu",
        args.python,
        args.network,
        bench_args.join(" ")
    );
    let run_ours = || {
        eprintln!("$ {ours_cmd}");
        run_json(
            Command::new(&binary)
                .args(["bench", &args.experiment])
                .args(&bench_args)
                .args(["--backend", &args.backend])
                .env("RAYON_NUM_THREADS", &threads)
                .env("OMP_NUM_THREADS", &threads)
                .current_dir(&root),
            "capsnet bench",
        )
    };
    let run_reference = || {
        eprintln!("$ {ref_cmd}");
        run_json(
            Command::new(&args.python)
                .arg(&script)
                .args(["bench", "--network", &args.network])
                .args(&bench_args)
                .args(["--threads", &threads, "--device", "cpu"])
                .env("OMP_NUM_THREADS", &threads)
                .current_dir(&root),
            "capsnet_torch.py bench",
        )
    };

    let mut rounds = Vec::with_capacity(args.rounds);
    for round in 0..args.rounds {
        let order = round_order(round);
        let mut entry = json!({
            "round": round + 1,
            "order": order.map(Side::key),
            "date_utc": utc_timestamp(),
            "load_average_start": load_average(),
        });
        if args.rounds > 1 {
            eprintln!(
                "round {}/{}: {} first",
                round + 1,
                args.rounds,
                order[0].label()
            );
        }
        for side in order {
            entry[side.key()] = match side {
                Side::Capsnet => run_ours()?,
                Side::Pytorch => run_reference()?,
            };
        }
        rounds.push(entry);
    }
    let load_end = load_average();
    let results = combine_rounds(rounds)?;

    let mut report = json!({
        "what": "capsnet bench vs the PyTorch reference (scripts/reference/capsnet_torch.py), same machine, one invocation",
        "date_utc": started,
        "network": args.network,
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
            "capsnet_git_revision": results
                .get("capsnet")
                .and_then(|c| c.get("git_revision"))
                .cloned()
                .unwrap_or(Value::Null),
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
    });
    report
        .as_object_mut()
        .expect("the report is an object")
        .extend(results);

    let md = render_markdown(&report);
    println!("\n{}", table(&report));
    let out_dir = if args.out.is_absolute() {
        args.out.clone()
    } else {
        root.join(&args.out)
    };
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let stem = record_stem(&machine, &args);
    let json_path = out_dir.join(format!("{stem}.json"));
    let md_path = out_dir.join(format!("{stem}.md"));
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    std::fs::write(&md_path, md).with_context(|| format!("cannot write {}", md_path.display()))?;
    eprintln!("wrote {} and {}", json_path.display(), md_path.display());
    Ok(())
}

/// The file name of the record without its extension:
/// `<machine>-b<batch>[-<network>][-<backend>][-t<threads>]`, the network only when it is not
/// `capsnet`, the backend only when it is not `flex`, the threads only when they are not all cores.
fn record_stem(machine: &Value, args: &Args) -> String {
    let mut stem = format!("{}-b{}", machine_slug(machine), args.batch_size);
    if args.network != NETWORKS[0].0 {
        stem.push_str(&format!("-{}", args.network));
    }
    if args.backend != "flex" {
        stem.push_str(&format!("-{}", args.backend));
    }
    if Some(args.threads) != machine["cores"].as_u64().map(|c| c as usize) {
        stem.push_str(&format!("-t{}", args.threads));
    }
    stem
}

/// One of the two implementations being compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Capsnet,
    Pytorch,
}

impl Side {
    /// Its key in the report (`capsnet`, `pytorch`).
    fn key(self) -> &'static str {
        match self {
            Side::Capsnet => "capsnet",
            Side::Pytorch => "pytorch",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Side::Capsnet => "capsnet",
            Side::Pytorch => "PyTorch",
        }
    }
}

/// Which implementation runs first in round `round` (0-based): capsnet in even rounds, PyTorch in
/// odd ones, so that neither side always gets the machine first.
fn round_order(round: usize) -> [Side; 2] {
    if round.is_multiple_of(2) {
        [Side::Capsnet, Side::Pytorch]
    } else {
        [Side::Pytorch, Side::Capsnet]
    }
}

/// The throughputs compared as ratios capsnet / PyTorch.
const RATIO_KEYS: [&str; 2] = ["train_images_per_sec", "inference_images_per_sec"];

/// The median (mean of the middle two for an even count); `None` for no values.
fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// `ratios_capsnet_over_pytorch` of one pair of bench results (or of their medians).
fn ratios(ours: &Value, reference: &Value) -> Result<Value> {
    let mut out = Map::new();
    for key in RATIO_KEYS {
        let a = ours[key]
            .as_f64()
            .with_context(|| format!("capsnet bench output has no `{key}`"))?;
        let b = reference[key]
            .as_f64()
            .with_context(|| format!("reference output has no `{key}`"))?;
        out.insert(key.into(), Value::from(a / b));
    }
    Ok(Value::Object(out))
}

/// One side's bench results over several rounds as one result: each top-level numeric field
/// that differs between rounds becomes its median over the rounds (throughputs, step times,
/// GFLOP/s, peak memory); everything else (equal numbers, strings, nested objects) is taken from
/// the first round.
fn median_result(results: &[&Value]) -> Value {
    let Some(Value::Object(first)) = results.first() else {
        return Value::Null;
    };
    let mut out = first.clone();
    for (key, value) in out.iter_mut() {
        if !value.is_number() {
            continue;
        }
        let values: Option<Vec<f64>> = results.iter().map(|r| r[key.as_str()].as_f64()).collect();
        let Some(values) = values else { continue };
        if values.iter().any(|v| *v != values[0])
            && let Some(m) = median(&values)
        {
            *value = Value::from(m);
        }
    }
    Value::Object(out)
}

/// The report's result fields from the rounds (objects with `capsnet` and `pytorch` raw
/// results): `capsnet`, `pytorch` and `ratios_capsnet_over_pytorch`. One round gives its raw
/// results and their ratios, exactly as a single run. Several give the median results
/// (`median_result`), the ratios of those medians, `rounds` (each with its own ratios),
/// `ratios_capsnet_over_pytorch_range` (min and max of the per-round ratios) and `aggregation`.
fn combine_rounds(mut rounds: Vec<Value>) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    if rounds.is_empty() {
        bail!("no rounds to combine");
    }
    if rounds.len() == 1 {
        let round = &rounds[0];
        out.insert(
            "ratios_capsnet_over_pytorch".into(),
            ratios(&round["capsnet"], &round["pytorch"])?,
        );
        out.insert("capsnet".into(), round["capsnet"].clone());
        out.insert("pytorch".into(), round["pytorch"].clone());
        return Ok(out);
    }
    for round in &mut rounds {
        let r = ratios(&round["capsnet"], &round["pytorch"])?;
        round["ratios_capsnet_over_pytorch"] = r;
    }
    let side = |key: &str| median_result(&rounds.iter().map(|r| &r[key]).collect::<Vec<_>>());
    let (ours, reference) = (side("capsnet"), side("pytorch"));
    out.insert(
        "ratios_capsnet_over_pytorch".into(),
        ratios(&ours, &reference)?,
    );
    let mut range = Map::new();
    for key in RATIO_KEYS {
        let per_round: Vec<f64> = rounds
            .iter()
            .map(|r| num(&r["ratios_capsnet_over_pytorch"][key]))
            .collect();
        let min = per_round.iter().copied().fold(f64::INFINITY, f64::min);
        let max = per_round.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        range.insert(key.into(), json!({"min": min, "max": max}));
    }
    out.insert(
        "ratios_capsnet_over_pytorch_range".into(),
        Value::Object(range),
    );
    out.insert(
        "aggregation".into(),
        Value::from(format!(
            "capsnet, pytorch: median over the {} rounds of each numeric field that differs \
             between rounds (other fields from round 1); ratios_capsnet_over_pytorch: ratios of \
             those medians; ratios_capsnet_over_pytorch_range: min and max of the per-round ratios",
            rounds.len()
        )),
    );
    out.insert("capsnet".into(), ours);
    out.insert("pytorch".into(), reference);
    out.insert("rounds".into(), Value::Array(rounds));
    Ok(out)
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
        "vector_isa": capsnet_common::cpu::vector_isa_from_cpuinfo(&cpuinfo),
    })
}

/// The machine's vector ISA, with the GEMM kernels flex ran and PyTorch's CPU capability as
/// each side reported them (older records: what they have).
fn isa_line(report: &Value) -> String {
    let isa = &report["machine"]["vector_isa"];
    let mut line = match (isa["widest"].as_str(), isa["features"].as_array()) {
        (Some(widest), Some(features)) => {
            let features: Vec<&str> = features.iter().filter_map(Value::as_str).collect();
            format!("{widest} ({})", features.join(", "))
        }
        _ => "not recorded".into(),
    };
    // The side's (median) result, else its result in any round.
    let first = |side: &str, key: &str| -> Option<String> {
        let rounds = report["rounds"].as_array().into_iter().flatten();
        std::iter::once(&report[side])
            .chain(rounds.map(|r| &r[side]))
            .find_map(|r| r["machine"][key].as_str().map(str::to_string))
    };
    if let Some(gemm) = first("capsnet", "flex_gemm") {
        line += &format!("; capsnet (flex): {gemm}");
    }
    if let Some(cap) = first("pytorch", "torch_cpu_capability") {
        line += &format!("; PyTorch CPU capability: {cap}");
    }
    line
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

/// Now as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_timestamp() -> String {
    capsnet_common::format_utc_rfc3339(capsnet_common::unix_now())
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

/// The rounds of a report of several rounds; `None` for a single run (no `rounds`).
fn report_rounds(report: &Value) -> Option<&[Value]> {
    report["rounds"]
        .as_array()
        .map(Vec::as_slice)
        .filter(|r| r.len() > 1)
}

const ROUND_HEADER: [&str; 8] = [
    "round",
    "first",
    "capsnet train img/s",
    "capsnet inference img/s",
    "PyTorch train img/s",
    "PyTorch inference img/s",
    "train ratio",
    "inference ratio",
];

/// One row per round, in the columns of `ROUND_HEADER`.
fn round_rows(rounds: &[Value]) -> Vec<[String; 8]> {
    let first = |round: &Value| match round["order"][0].as_str() {
        Some("capsnet") => Side::Capsnet.label().to_string(),
        Some("pytorch") => Side::Pytorch.label().to_string(),
        Some(other) => other.to_string(),
        None => "?".into(),
    };
    rounds
        .iter()
        .map(|round| {
            let (ours, theirs) = (&round["capsnet"], &round["pytorch"]);
            let r = &round["ratios_capsnet_over_pytorch"];
            [
                round["round"].to_string(),
                first(round),
                format!("{:.1}", num(&ours["train_images_per_sec"])),
                format!("{:.1}", num(&ours["inference_images_per_sec"])),
                format!("{:.1}", num(&theirs["train_images_per_sec"])),
                format!("{:.1}", num(&theirs["inference_images_per_sec"])),
                format!("{:.2}×", num(&r["train_images_per_sec"])),
                format!("{:.2}×", num(&r["inference_images_per_sec"])),
            ]
        })
        .collect()
}

/// `training 0.45×–0.52×, inference 0.55×–0.60×`: the range of the per-round ratios.
fn ratio_range(report: &Value) -> String {
    let range = &report["ratios_capsnet_over_pytorch_range"];
    let one = |key: &str| {
        format!(
            "{:.2}×–{:.2}×",
            num(&range[key]["min"]),
            num(&range[key]["max"])
        )
    };
    format!(
        "training {}, inference {}",
        one("train_images_per_sec"),
        one("inference_images_per_sec")
    )
}

/// Plain-text table for the terminal.
fn table(report: &Value) -> String {
    let (ours, theirs) = headers(report);
    let rounds = report_rounds(report);
    let mut out = format!(
        "{}, batch {}, {} threads, {} timed steps{} — {}\n",
        report_network(report),
        report["batch_size"],
        report["threads"],
        report["steps"],
        rounds
            .map(|r| format!(", median of {} rounds", r.len()))
            .unwrap_or_default(),
        report["machine"]["cpu"].as_str().unwrap_or("?")
    );
    out += &format!(
        "{:<24} {:>18} {:>18} {:>18}\n",
        "", ours, theirs, "capsnet / PyTorch"
    );
    for (label, a, b, r) in rows(report) {
        out += &format!("{label:<24} {a:>18} {b:>18} {r:>18}\n");
    }
    if let Some(rounds) = rounds {
        let line = |cells: &[String]| {
            let mut l = format!("{:>5}  {:<7}", cells[0], cells[1]);
            for (cell, header) in cells[2..].iter().zip(&ROUND_HEADER[2..]) {
                l += &format!("  {cell:>w$}", w = header.chars().count());
            }
            l + "\n"
        };
        out += "\nper round:\n";
        out += &line(&ROUND_HEADER.map(String::from));
        for row in round_rows(rounds) {
            out += &line(&row);
        }
        out += &format!(
            "capsnet / PyTorch over the {} rounds: {}\n",
            rounds.len(),
            ratio_range(report)
        );
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
    let rounds = report_rounds(report);
    let how = match rounds {
        None => "one after the other on the same machine".to_string(),
        Some(r) => format!(
            "one after the other on the same machine in {} rounds, alternating which goes first",
            r.len()
        ),
    };
    let (title, network, batch_norm) = match report_network(report) {
        "efficient-capsnet" => (
            "Efficient-CapsNet".to_string(),
            "Efficient-CapsNet's MNIST network (Mazzia et al. 2021; `--network efficient-capsnet`)"
                .to_string(),
            " Batch norm uses batch statistics in training and running statistics in inference.",
        ),
        "capsnet" => ("CapsNet".into(), "the paper's MNIST CapsNet".into(), ""),
        other => (other.to_string(), format!("the `{other}` network"), ""),
    };
    let mut md = format!(
        "# {title} throughput: capsnet vs the PyTorch reference, batch {}\n\n\
         Generated by `cargo xtask bench-compare` (do not edit by hand): both implementations of \
         {network} ({} parameters, layer tables checked equal) on random inputs, \
         {how}, {} threads each, {} warm-up + {} timed steps. \
         A training step is forward, loss, backward, Adam step and reading the loss back; \
         inference is a forward pass without autodiff, decoder masked by the longest \
         capsule.{batch_norm}\n\n",
        report["batch_size"],
        capsnet_common::group_thousands(report["model_check"]["params"].as_u64().unwrap_or(0)),
        report["threads"],
        report["warmup"],
        report["steps"],
    );
    if let Some(r) = rounds {
        md += &format!(
            "Medians over the {} rounds; the ratios are those of the medians.\n\n",
            r.len()
        );
    }
    md += &format!("| | {ours} | {theirs} | capsnet / PyTorch |\n|---|---:|---:|---:|\n");
    for (label, a, b, r) in rows(report) {
        md += &format!("| {label} | {a} | {b} | {r} |\n");
    }
    if let Some(rounds) = rounds {
        md += &format!(
            "\nPer round:\n\n| {} |\n|---:|---|---:|---:|---:|---:|---:|---:|\n",
            ROUND_HEADER.join(" | ")
        );
        for row in round_rows(rounds) {
            md += &format!("| {} |\n", row.join(" | "));
        }
        md += &format!(
            "\ncapsnet / PyTorch over the {} rounds: {}.\n",
            rounds.len(),
            ratio_range(report)
        );
    }
    md += &format!(
        "\n- date (UTC): {}\n- machine: {} ({}, {} cores, {})\n- vector ISA: {}\n\
         - load average (1, 5, 15 min): {} when timing started, {} at the end\n\
         - versions: {}, burn {}, PyTorch {} (Python {}), capsnet revision {}\n\
         - commands:\n",
        s(&report["date_utc"]),
        s(&m["cpu"]),
        s(&m["hostname"]),
        s(&m["cores"]),
        s(&m["os"]),
        isa_line(report),
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
    use std::time::{SystemTime, UNIX_EPOCH};

    /// `cargo xtask bench-compare ARGS` through the command line parser.
    fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<Args> {
        let argv = std::iter::once("bench-compare").chain(args.iter().map(AsRef::as_ref));
        match crate::parse_task(argv)? {
            crate::Task::BenchCompare(args) => args.validate(),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn args_defaults_and_values() {
        let a = parse_args::<&str>(&[]).unwrap();
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
        let a = parse_args(&args).unwrap();
        assert_eq!((a.batch_size, a.threads, a.python.as_str()), (64, 2, "py"));
        assert!(!a.build);
        assert!(parse_args(&["--steps", "0"]).is_err());
        assert_eq!(parse_args::<&str>(&[]).unwrap().rounds, 3);
        let a = parse_args(&["--rounds", "1"]).unwrap();
        assert_eq!(a.rounds, 1);
        assert!(parse_args(&["--rounds", "0"]).is_err());
        assert!(parse_args(&["--rounds", "x"]).is_err());
        assert!(parse_args(&["--bogus"]).is_err());
        assert_eq!(a.backend, "flex");
        let a = parse_args(&["--backend", "tch", "--binary", "/x/capsnet"]).unwrap();
        assert_eq!(a.backend, "tch");
        assert_eq!(a.binary.as_deref(), Some(Path::new("/x/capsnet")));
        assert!(!a.build, "--binary implies --no-build");
    }

    #[test]
    fn network_sets_the_default_experiment() {
        let parse = |args: &[&str]| parse_args(args);
        let a = parse(&[]).unwrap();
        assert_eq!(
            (a.network.as_str(), a.experiment.as_str()),
            ("capsnet", "experiments/mnist.toml")
        );
        let a = parse(&["--network", "efficient-capsnet"]).unwrap();
        assert_eq!(
            (a.network.as_str(), a.experiment.as_str()),
            ("efficient-capsnet", "experiments/efficient_capsnet.toml")
        );
        // An explicit --experiment wins, before or after --network.
        for args in [
            ["--experiment", "x.toml", "--network", "efficient-capsnet"],
            ["--network", "efficient-capsnet", "--experiment", "x.toml"],
        ] {
            let a = parse(&args).unwrap();
            assert_eq!(
                (a.network.as_str(), a.experiment.as_str()),
                ("efficient-capsnet", "x.toml")
            );
        }
        let a = parse(&["--experiment", "y.toml"]).unwrap();
        assert_eq!(
            (a.network.as_str(), a.experiment.as_str()),
            ("capsnet", "y.toml")
        );
        let err = parse(&["--network", "resnet"]).unwrap_err().to_string();
        assert!(err.contains("capsnet or efficient-capsnet"), "{err}");
        assert!(parse(&["--network"]).is_err());
    }

    #[test]
    fn record_names_keep_capsnet_and_add_other_networks() {
        let m = json!({"hostname": "vm", "cpu": "AMD EPYC", "cores": 2});
        let parse = |args: &[&str]| {
            // All 2 cores unless the case says otherwise (a later --threads wins).
            let mut a: Vec<String> = ["--threads", "2"].map(String::from).to_vec();
            a.extend(args.iter().map(|s| s.to_string()));
            parse_args(&a).unwrap()
        };
        assert_eq!(record_stem(&m, &parse(&[])), "vm-amd-epyc-b32");
        assert_eq!(
            record_stem(&m, &parse(&["--network", "capsnet", "--backend", "tch"])),
            "vm-amd-epyc-b32-tch"
        );
        assert_eq!(
            record_stem(
                &m,
                &parse(&["--network", "efficient-capsnet", "--batch-size", "16"])
            ),
            "vm-amd-epyc-b16-efficient-capsnet"
        );
        assert_eq!(
            record_stem(
                &m,
                &parse(&[
                    "--network",
                    "efficient-capsnet",
                    "--backend",
                    "tch",
                    "--threads",
                    "1"
                ])
            ),
            "vm-amd-epyc-b32-efficient-capsnet-tch-t1"
        );
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
        let mut report = report_fixture();
        report.as_object_mut().unwrap().extend(
            json!({
                "ratios_capsnet_over_pytorch": {"train_images_per_sec": 0.5, "inference_images_per_sec": 2.0},
                "capsnet": {"backend": "flex", "train_images_per_sec": 10.0, "train_ms_per_step_median": 3200.0, "inference_images_per_sec": 100.0},
                "pytorch": {"train_images_per_sec": 20.0, "train_ms_per_step_median": 1600.0, "inference_images_per_sec": 50.0},
            })
            .as_object()
            .unwrap()
            .clone(),
        );
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
        assert!(
            md.starts_with("# CapsNet throughput") && md.contains("the paper's MNIST CapsNet"),
            "a report without `network` is CapsNet's: {md}"
        );
        assert!(!md.contains("Batch norm"), "{md}");
        assert_eq!(capsnet_common::group_thousands(999), "999");
        assert_eq!(capsnet_common::group_thousands(1000), "1,000");
        assert!(table(&report).contains("capsnet (flex)"));
        assert!(table(&report).starts_with("capsnet, batch 32"));

        report["network"] = json!("efficient-capsnet");
        report["model_check"]["params"] = json!(1_573_168);
        let md = render_markdown(&report);
        assert!(
            md.starts_with(
                "# Efficient-CapsNet throughput: capsnet vs the PyTorch reference, batch 32"
            ),
            "{md}"
        );
        assert!(
            md.contains("Efficient-CapsNet's MNIST network (Mazzia et al. 2021; `--network efficient-capsnet`) (1,573,168 parameters"),
            "{md}"
        );
        assert!(
            md.contains("Batch norm uses batch statistics in training"),
            "{md}"
        );
        assert!(table(&report).starts_with("efficient-capsnet, batch 32"));
    }

    /// A bench result with the fields the renderer reads (and a few it copies through).
    fn bench(backend: &str, train: f64, infer: f64) -> Value {
        json!({
            "backend": backend, "batch_size": 32, "steps": 10,
            "git_revision": "abc", "machine": {"threads": 2},
            "train_images_per_sec": train, "inference_images_per_sec": infer,
            "train_ms_per_step_median": 32_000.0 / train,
        })
    }

    fn round(n: usize, ours: Value, theirs: Value) -> Value {
        json!({
            "round": n, "order": round_order(n - 1).map(Side::key),
            "capsnet": ours, "pytorch": theirs,
        })
    }

    /// Three rounds whose median ratio (train 0.4) differs from the ratio of the medians (0.5).
    fn three_rounds() -> Vec<Value> {
        vec![
            round(
                1,
                bench("flex", 10.0, 100.0),
                bench("pytorch-cpu", 25.0, 50.0),
            ),
            round(
                2,
                bench("flex", 12.0, 90.0),
                bench("pytorch-cpu", 15.0, 60.0),
            ),
            round(
                3,
                bench("flex", 8.0, 120.0),
                bench("pytorch-cpu", 20.0, 40.0),
            ),
        ]
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn rounds_alternate_which_side_goes_first() {
        use Side::{Capsnet, Pytorch};
        assert_eq!(round_order(0), [Capsnet, Pytorch], "round 1 runs as before");
        assert_eq!(round_order(1), [Pytorch, Capsnet]);
        assert_eq!(round_order(2), [Capsnet, Pytorch]);
        assert_eq!(round_order(3), [Pytorch, Capsnet]);
        assert_eq!(round_order(1).map(Side::key), ["pytorch", "capsnet"]);
    }

    #[test]
    fn median_of_odd_even_and_no_values() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[7.0]), Some(7.0));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(
            median(&[5.0, 100.0, 6.0]),
            Some(6.0),
            "an outlier does not move it"
        );
    }

    #[test]
    fn median_result_takes_medians_of_varying_numbers_only() {
        let (a, b, c) = (
            bench("flex", 10.0, 100.0),
            bench("flex", 12.0, 90.0),
            bench("flex", 8.0, 120.0),
        );
        let mut c = c;
        c["git_revision"] = json!("later");
        c["machine"] = json!({"threads": 3});
        let m = median_result(&[&a, &b, &c]);
        assert_eq!(m["train_images_per_sec"], json!(10.0));
        assert_eq!(m["inference_images_per_sec"], json!(100.0));
        assert!(close(num(&m["train_ms_per_step_median"]), 3200.0));
        // Equal integers stay integers; strings and objects come from the first round.
        assert_eq!(m["batch_size"], json!(32));
        assert!(m["batch_size"].is_u64());
        assert_eq!(m["git_revision"], json!("abc"));
        assert_eq!(m["machine"], json!({"threads": 2}));
        assert_eq!(m["backend"], json!("flex"));
        assert_eq!(median_result(&[&a]), a);
        assert_eq!(median_result(&[]), Value::Null);
    }

    #[test]
    fn ratios_need_both_throughputs() {
        let r = ratios(&bench("flex", 10.0, 100.0), &bench("pt", 20.0, 50.0)).unwrap();
        assert_eq!(r["train_images_per_sec"], json!(0.5));
        assert_eq!(r["inference_images_per_sec"], json!(2.0));
        assert!(
            ratios(
                &json!({"train_images_per_sec": 1.0}),
                &bench("pt", 1.0, 1.0)
            )
            .is_err()
        );
        assert!(ratios(&bench("flex", 1.0, 1.0), &json!({})).is_err());
    }

    #[test]
    fn one_round_reports_like_a_single_run() {
        let ours = bench("flex", 10.0, 100.0);
        let theirs = bench("pytorch-cpu", 20.0, 50.0);
        let out = combine_rounds(vec![round(1, ours.clone(), theirs.clone())]).unwrap();
        let keys: Vec<&str> = out.keys().map(String::as_str).collect();
        assert_eq!(keys, ["capsnet", "pytorch", "ratios_capsnet_over_pytorch"]);
        assert_eq!(out["capsnet"], ours);
        assert_eq!(out["pytorch"], theirs);
        assert_eq!(
            out["ratios_capsnet_over_pytorch"],
            json!({"train_images_per_sec": 0.5, "inference_images_per_sec": 2.0})
        );
        assert!(combine_rounds(Vec::new()).is_err());
    }

    #[test]
    fn several_rounds_report_medians_ratios_of_medians_and_per_round_ratios() {
        let out = combine_rounds(three_rounds()).unwrap();
        assert_eq!(out["capsnet"]["train_images_per_sec"], json!(10.0));
        assert_eq!(out["pytorch"]["train_images_per_sec"], json!(20.0));
        assert_eq!(out["capsnet"]["inference_images_per_sec"], json!(100.0));
        assert_eq!(out["pytorch"]["inference_images_per_sec"], json!(50.0));
        let r = &out["ratios_capsnet_over_pytorch"];
        assert!(close(num(&r["train_images_per_sec"]), 0.5), "{r}");
        assert!(close(num(&r["inference_images_per_sec"]), 2.0), "{r}");
        let range = &out["ratios_capsnet_over_pytorch_range"];
        assert!(close(num(&range["train_images_per_sec"]["min"]), 0.4));
        assert!(close(num(&range["train_images_per_sec"]["max"]), 0.8));
        assert!(close(num(&range["inference_images_per_sec"]["min"]), 1.5));
        assert!(close(num(&range["inference_images_per_sec"]["max"]), 3.0));
        let rounds = out["rounds"].as_array().unwrap();
        assert_eq!(rounds.len(), 3);
        assert_eq!(rounds[1]["order"], json!(["pytorch", "capsnet"]));
        assert_eq!(rounds[1]["capsnet"]["train_images_per_sec"], json!(12.0));
        assert!(close(
            num(&rounds[1]["ratios_capsnet_over_pytorch"]["train_images_per_sec"]),
            0.8
        ));
        assert!(out["aggregation"].as_str().unwrap().contains("3 rounds"));
    }

    /// The fields of a report that do not come from the benchmark results.
    fn report_fixture() -> Value {
        json!({
            "batch_size": 32, "threads": 2, "steps": 10, "warmup": 2,
            "machine": {"cpu": "X", "hostname": "h", "cores": 2, "os": "Linux",
                        "vector_isa": {"widest": "AVX2", "features": ["avx2", "fma"]}},
            "load_average_start": [0.1, 0.2, 0.3], "load_average_end": [0.5, 0.2, 0.3],
            "versions": {"rustc": "rustc 1.95", "burn": "0.22.1", "torch": "2.11.0", "python": "3.11"},
            "commands": {"build": null, "capsnet": "a", "pytorch": "b"},
            "model_check": {"params": 8215568},
        })
    }

    /// [`report_fixture`] with the results of `rounds` merged in.
    fn report_with(rounds: Vec<Value>) -> Value {
        let mut report = report_fixture();
        report
            .as_object_mut()
            .unwrap()
            .extend(combine_rounds(rounds).unwrap());
        report
    }

    #[test]
    fn markdown_and_table_show_rounds() {
        let report = report_with(three_rounds());
        let md = render_markdown(&report);
        assert!(
            md.contains("in 3 rounds, alternating which goes first"),
            "{md}"
        );
        assert!(md.contains("Medians over the 3 rounds"), "{md}");
        assert!(
            md.contains("| train images/s | 10.0 | 20.0 | 0.50× |"),
            "{md}"
        );
        assert!(
            md.contains("| 2 | PyTorch | 12.0 | 90.0 | 15.0 | 60.0 | 0.80× | 1.50× |"),
            "{md}"
        );
        assert!(
            md.contains("| 1 | capsnet | 10.0 | 100.0 | 25.0 | 50.0 | 0.40× | 2.00× |"),
            "{md}"
        );
        assert!(
            md.contains("over the 3 rounds: training 0.40×–0.80×, inference 1.50×–3.00×."),
            "{md}"
        );
        assert!(md.contains("- vector ISA: AVX2 (avx2, fma)"), "{md}");
        let t = table(&report);
        assert!(t.contains("median of 3 rounds"), "{t}");
        assert!(
            t.contains("training 0.40×–0.80×, inference 1.50×–3.00×"),
            "{t}"
        );
        let row = t
            .lines()
            .find(|l| l.trim_start().starts_with("3  "))
            .unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "3", "capsnet", "8.0", "120.0", "20.0", "40.0", "0.40×", "3.00×"
            ],
            "{t}"
        );

        // One round: the single-run rendering, no per-round section.
        let single = report_with(vec![round(
            1,
            bench("flex", 10.0, 100.0),
            bench("pytorch-cpu", 20.0, 50.0),
        )]);
        let md = render_markdown(&single);
        assert!(md.contains("one after the other on the same machine, 2 threads each"));
        assert!(!md.contains("Per round") && !md.contains("rounds"), "{md}");
        assert!(!table(&single).contains("round"));
    }
    /// Runs `run` with fake `capsnet` and `python` executables in a scratch folder that log each
    /// bench call and report its call number as the training throughput; returns the call log
    /// and the written report.
    #[cfg(unix)]
    fn run_with_fakes(
        tag: &str,
        rounds: &str,
        extra: &[&str],
    ) -> (Vec<String>, Value, String, String) {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!(
            "xtask-bench-compare-{tag}-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let out = dir.join("out");
        std::fs::create_dir_all(&out).unwrap();
        let calls = dir.join("calls");
        let info = r#"{"layers": [["conv1", [256, 20, 20]]], "params": 42}"#;
        // `$1`/`$2`: the command for capsnet, the script and the command for python. `check`: a
        // shell test the arguments must pass.
        let fake = |name: &str, side: &str, command: &str, check: &str| {
            let path = dir.join(name);
            std::fs::write(
                &path,
                format!(
                    "#!/usr/bin/env bash
if [ \"$1\" = -c ]; then echo 9.9.9; echo 3.0.0; exit 0; fi
{check} || exit 4
case \"{command}\" in
  info) echo '{info}' ;;
  bench) echo {side} >> '{calls}'; n=$(( $(wc -l < '{calls}') ))
         echo \"{{\\\"backend\\\": \\\"fake\\\", \\\"train_images_per_sec\\\": $n, \\
\\\"inference_images_per_sec\\\": 10.0, \\\"train_ms_per_step_median\\\": 1.0}}\" ;;
  *) exit 3 ;;
esac
",
                    calls = calls.display()
                ),
            )
            .unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path.display().to_string()
        };
        let capsnet = fake("capsnet", "capsnet", "$1", "true");
        // The reference gets `--network <network>` right after its command.
        let python = fake(
            "python",
            "pytorch",
            "$2",
            r#"[ "$3 $4" = "--network capsnet" ] || [ "$3 $4" = "--network efficient-capsnet" ] || [ "$4 $5" = "--network capsnet" ] || [ "$4 $5" = "--network efficient-capsnet" ]"#,
        );
        let mut args: Vec<String> = [
            "--binary",
            &capsnet,
            "--python",
            &python,
            "--out",
            &out.display().to_string(),
            "--rounds",
            rounds,
            "--steps",
            "1",
        ]
        .map(String::from)
        .to_vec();
        args.extend(extra.iter().map(|s| s.to_string()));
        run(parse_args(&args).unwrap()).unwrap();
        let log: Vec<String> = std::fs::read_to_string(&calls)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        let written = |ext: &str| {
            let file = std::fs::read_dir(&out)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.extension().is_some_and(|e| e == ext))
                .unwrap();
            let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
            (std::fs::read_to_string(file).unwrap(), stem)
        };
        let ((json, stem), (md, md_stem)) = (written("json"), written("md"));
        assert_eq!(stem, md_stem);
        std::fs::remove_dir_all(&dir).unwrap();
        (log, serde_json::from_str(&json).unwrap(), md, stem)
    }

    #[cfg(unix)]
    #[test]
    fn run_alternates_the_order_and_writes_every_round() {
        let (log, report, md, _) = run_with_fakes("rounds", "3", &[]);
        assert_eq!(
            log,
            [
                "capsnet", "pytorch", "pytorch", "capsnet", "capsnet", "pytorch"
            ]
        );
        // capsnet ran as calls 1, 4, 5 and PyTorch as 2, 3, 6: medians 4 and 3.
        assert_eq!(report["capsnet"]["train_images_per_sec"], json!(4.0));
        assert_eq!(report["pytorch"]["train_images_per_sec"], json!(3.0));
        let r = &report["ratios_capsnet_over_pytorch"];
        assert!(close(num(&r["train_images_per_sec"]), 4.0 / 3.0), "{r}");
        let rounds = report["rounds"].as_array().unwrap();
        let orders: Vec<&Value> = rounds.iter().map(|r| &r["order"]).collect();
        assert_eq!(
            orders,
            [
                &json!(["capsnet", "pytorch"]),
                &json!(["pytorch", "capsnet"]),
                &json!(["capsnet", "pytorch"])
            ]
        );
        let range = &report["ratios_capsnet_over_pytorch_range"]["train_images_per_sec"];
        assert!(close(num(&range["min"]), 0.5), "{range}");
        assert!(close(num(&range["max"]), 4.0 / 3.0), "{range}");
        assert!(
            md.contains("| 2 | PyTorch | 4.0 | 10.0 | 3.0 | 10.0 | 1.33× | 1.00× |"),
            "{md}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn run_with_one_round_writes_the_single_run_report() {
        let (log, report, md, stem) = run_with_fakes("single", "1", &[]);
        assert_eq!(log, ["capsnet", "pytorch"]);
        let keys: Vec<&str> = report
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "batch_size",
                "capsnet",
                "commands",
                "date_utc",
                "load_average_end",
                "load_average_start",
                "machine",
                "model_check",
                "network",
                "pytorch",
                "ratios_capsnet_over_pytorch",
                "steps",
                "threads",
                "versions",
                "warmup",
                "what"
            ]
        );
        assert_eq!(report["capsnet"]["train_images_per_sec"], json!(1));
        assert_eq!(report["pytorch"]["train_images_per_sec"], json!(2));
        assert_eq!(
            report["ratios_capsnet_over_pytorch"]["train_images_per_sec"],
            json!(0.5)
        );
        assert!(
            md.contains("| train images/s | 1.0 | 2.0 | 0.50× |"),
            "{md}"
        );
        assert!(!md.contains("round"), "{md}");
        assert_eq!(report["network"], json!("capsnet"));
        assert!(md.starts_with("# CapsNet throughput"), "{md}");
        assert!(!stem.contains("capsnet"), "{stem}");
        let pytorch = report["commands"]["pytorch"].as_str().unwrap();
        assert!(
            pytorch.contains(" bench --network capsnet --batch-size 32 "),
            "{pytorch}"
        );
        let ours = report["commands"]["capsnet"].as_str().unwrap();
        assert!(ours.contains(" bench experiments/mnist.toml "), "{ours}");
    }

    #[cfg(unix)]
    #[test]
    fn run_with_efficient_capsnet_records_the_network() {
        let (log, report, md, stem) =
            run_with_fakes("efficient", "1", &["--network", "efficient-capsnet"]);
        assert_eq!(log, ["capsnet", "pytorch"]);
        assert_eq!(report["network"], json!("efficient-capsnet"));
        assert!(stem.contains("-b32-efficient-capsnet"), "{stem}");
        assert!(md.starts_with("# Efficient-CapsNet throughput"), "{md}");
        let pytorch = report["commands"]["pytorch"].as_str().unwrap();
        assert!(
            pytorch.contains(" bench --network efficient-capsnet "),
            "{pytorch}"
        );
        let ours = report["commands"]["capsnet"].as_str().unwrap();
        assert!(
            ours.contains(" bench experiments/efficient_capsnet.toml "),
            "{ours}"
        );
    }
}

#[cfg(test)]
mod committed_records {
    use super::*;

    /// The committed records written since the report took its current form (the older ones
    /// predate the `vector ISA` line) render to their committed `.md`, byte for byte.
    #[test]
    fn committed_records_render_to_their_markdown() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/bench");
        for stem in ["vm-amd-epyc-b1", "vm-amd-epyc-b16"] {
            let path = dir.join(format!("{stem}.json"));
            let report: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let md = std::fs::read_to_string(path.with_extension("md")).unwrap();
            assert_eq!(render_markdown(&report), md, "{}", path.display());
        }
    }
}
