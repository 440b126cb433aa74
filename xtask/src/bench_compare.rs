//! `cargo xtask bench-compare`: our `capsnet bench` against the PyTorch reference
//! (`scripts/reference/capsnet_torch.py`, the same network) on this machine, in one invocation.
//!
//! `--network capsnet` (default) compares the paper's CapsNet (`experiments/mnist.toml`),
//! `--network efficient-capsnet` Efficient-CapsNet (`experiments/efficient_capsnet.toml`); the
//! reference script gets the same `--network`.
//!
//! [`run`] is a sequence of named steps: [`preflight`] (the reference can run), [`build`] (the
//! workspace the way the tests build it, `cargo build --release --workspace --all-targets`),
//! [`check_layer_tables`] (both implementations report the same layer table, `info --json`),
//! [`run_rounds`] (both benchmarks with the same batch size, steps and thread count),
//! [`combine_rounds`] (medians and ratios) and [`write_report`]: it prints a table and writes
//! `results/bench/<machine>-b<batch>.json` (`<machine>-b<batch>-efficient-capsnet.json` for
//! Efficient-CapsNet; both raw results, ratios, network, versions, exact commands, machine, load
//! average) and a `.md` rendering of it next to it.
//!
//! What the two sides print and what the record holds are typed: `capsnet bench` and `capsnet
//! info --json` print the binary's own types from `capsnet-common` ([`BenchResult`],
//! [`InfoReport`]); the reference script's are [`ReferenceBench`] and [`ReferenceInfo`]; the
//! record is [`Report`] (optional fields keep older records readable).
//!
//! The machine's speed drifts, so the pair runs `--rounds` times (default 3), alternating which
//! of the two goes first; the reported figures are medians over the rounds and the ratios are
//! ratios of those medians, with every round's raw results, ratios and their range kept as well.
//! With `--rounds 1` the report has exactly the fields of a single run (no `rounds`).
//!
//! `--isa avx2` ([`IsaMode`]) restricts the PyTorch reference to AVX2 (`ATEN_CPU_CAPABILITY=avx2`,
//! `ONEDNN_MAX_CPU_ISA=AVX2`, [`IsaMode::reference_env`]) so that one AVX-512 host measures the
//! comparison an AVX2 host would see; the reference reads back what it ran (torch's CPU
//! capability, oneDNN's ISA) and a capability other than AVX2 fails the run
//! ([`check_reference_isa`]). The records get `-avx2` in their names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use capsnet_common::bench::BenchResult;
use capsnet_common::cpu::VectorIsa;
use capsnet_common::info::{InfoReport, LayerInfo};
use capsnet_common::machine::BURN_VERSION;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The networks the reference script implements (`--network`) and the experiment each compares
/// against by default. The first is the default network.
const NETWORKS: [(&str, &str); 2] = [
    ("capsnet", "experiments/mnist.toml"),
    ("efficient-capsnet", "experiments/efficient_capsnet.toml"),
];

/// The variables that restrict PyTorch's CPU kernels: ATen's own (`ATEN_CPU_CAPABILITY`) and
/// oneDNN's, which runs the convolutions (`ONEDNN_MAX_CPU_ISA`).
const ISA_VARIABLES: [&str; 2] = ["ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA"];

/// `--isa`: which vector instructions the two sides may use.
///
/// capsnet's flex backend needs no restriction for `avx2` as far as its GEMM goes (the matrix
/// products and the convolutions' products, most of the arithmetic): burn-flex's `gemm` runs its
/// x86-v3 (AVX2 + FMA) kernels unless burn-flex is built with its `x86-v4` feature, which this
/// project does not enable. burn-flex's other SIMD kernels (macerator: elementwise operations,
/// reductions, softmax, bias) pick AVX-512 at run time where the CPU has it, and no variable
/// restricts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IsaMode {
    /// Each side uses what it picks on this CPU; the reference's environment has neither of
    /// [`ISA_VARIABLES`].
    #[default]
    Native,
    /// PyTorch restricted to AVX2 (ATen and oneDNN).
    Avx2,
}

impl IsaMode {
    /// Every mode, in the order `--isa` lists them; the first is the default.
    const ALL: [IsaMode; 2] = [IsaMode::Native, IsaMode::Avx2];

    /// Its `--isa` value.
    fn name(self) -> &'static str {
        match self {
            IsaMode::Native => "native",
            IsaMode::Avx2 => "avx2",
        }
    }

    /// The reference's environment in this mode: each of [`ISA_VARIABLES`] set (`Some`) or
    /// removed (`None`, so that a variable left in the caller's shell does not restrict a
    /// `native` run).
    fn reference_env(self) -> [(&'static str, Option<&'static str>); 2] {
        let [aten, onednn] = ISA_VARIABLES;
        match self {
            IsaMode::Native => [(aten, None), (onednn, None)],
            IsaMode::Avx2 => [(aten, Some("avx2")), (onednn, Some("AVX2"))],
        }
    }

    /// Applies [`IsaMode::reference_env`] to a command that runs the reference.
    fn apply(self, cmd: &mut Command) -> &mut Command {
        for (name, value) in self.reference_env() {
            match value {
                Some(v) => cmd.env(name, v),
                None => cmd.env_remove(name),
            };
        }
        cmd
    }

    /// The variables set, as a command line prefix (`ATEN_CPU_CAPABILITY=avx2 … `; empty in
    /// `native` mode).
    fn command_prefix(self) -> String {
        self.reference_env()
            .iter()
            .filter_map(|(name, value)| value.map(|v| format!("{name}={v} ")))
            .collect()
    }
}

/// `--isa`: one of [`IsaMode::ALL`].
fn parse_isa(text: &str) -> Result<IsaMode> {
    match IsaMode::ALL.into_iter().find(|m| m.name() == text) {
        Some(mode) => Ok(mode),
        None => {
            let names: Vec<&str> = IsaMode::ALL.iter().map(|m| m.name()).collect();
            bail!("--isa takes {}, got `{text}`", names.join(" or "))
        }
    }
}

/// In `--isa avx2` mode, the reference must have run AVX2 kernels: its CPU capability (as
/// `torch.backends.cpu.get_cpu_capability()` reads it back) must be AVX2, and oneDNN's ISA, when
/// read, an AVX2 one. An old torch that ignores `ATEN_CPU_CAPABILITY` (or a CPU without AVX2)
/// would otherwise be timed as if restricted.
fn check_reference_isa(
    isa: IsaMode,
    capability: Option<&str>,
    onednn_isa: Option<&str>,
) -> Result<()> {
    if isa != IsaMode::Avx2 {
        return Ok(());
    }
    let [aten, onednn] = IsaMode::Avx2
        .reference_env()
        .map(|(name, value)| format!("{name}={}", value.unwrap_or_default()));
    let capability = capability.unwrap_or("not reported");
    if !capability.eq_ignore_ascii_case("AVX2") {
        bail!(
            "--isa avx2: the PyTorch reference ran with {aten} but reports CPU capability              `{capability}`, not AVX2 (this torch ignores the variable, or the CPU has no AVX2);              its timings would not be AVX2's"
        );
    }
    if let Some(got) = onednn_isa
        && !got.contains("AVX2")
    {
        bail!(
            "--isa avx2: the PyTorch reference ran with {onednn} but oneDNN reports ISA `{got}`,              not AVX2; its convolutions would not be AVX2's"
        );
    }
    Ok(())
}

/// Above this 1-minute load average at the start, timings are flagged as taken on a busy machine.
const QUIET_LOAD: f64 = 0.5;

const INSTALL_HINT: &str = "install PyTorch into a virtual environment and point --python at it:
    python3 -m venv /work/venv-torch
    /work/venv-torch/bin/pip install torch numpy
    cargo xtask bench-compare --python /work/venv-torch/bin/python
(PyPI's Linux torch wheel is the CUDA build, several GB with its nvidia wheels; it runs on the CPU
too. See scripts/reference/README.md.)";

/// What `scripts/reference/capsnet_torch.py bench` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceBench {
    /// `pytorch-reference`.
    pub name: String,
    pub arch: String,
    /// `--network` (absent in older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// `pytorch-cpu` or `pytorch-cuda`.
    pub backend: String,
    pub batch_size: usize,
    pub steps: usize,
    pub train_images_per_sec: f64,
    /// `sorted(times)[len / 2]`, as `capsnet bench` computes it.
    pub train_ms_per_step_median: f64,
    pub inference_images_per_sec: f64,
    pub machine: ReferenceMachine,
    pub torch_version: String,
    /// `torch.get_num_threads()`.
    pub threads: usize,
    pub dtype: String,
    /// The Adam implementation (`fused`, `foreach`, `for-loop`).
    pub adam: String,
    pub channels_last: bool,
    pub params: u64,
    /// CUDA runs only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<String>,
    /// CUDA runs only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda_version: Option<String>,
    /// Whether TF32 was allowed for float32 products and convolutions (absent in older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tf32: Option<bool>,
}

/// The machine as the reference script reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceMachine {
    pub hostname: String,
    pub cpu: String,
    pub threads: usize,
    pub os: String,
    /// The ATen kernels dispatched to, e.g. AVX2 (absent in older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch_cpu_capability: Option<String>,
    /// The ISA oneDNN dispatches to, from its verbose output, e.g. `Intel AVX2` (absent in older
    /// records and when it could not be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onednn_isa: Option<String>,
    /// The restricting variables ([`ISA_VARIABLES`]) as the reference saw them, `null` when unset
    /// (absent in older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isa_environment: Option<BTreeMap<String, Option<String>>>,
}

/// What `scripts/reference/capsnet_torch.py info --json` prints (capsnet's side is
/// [`InfoReport`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceInfo {
    /// `pytorch-reference`.
    pub name: String,
    /// `--network`.
    pub network: String,
    pub layers: Vec<LayerInfo>,
    pub params: usize,
}

/// The record `cargo xtask bench-compare` writes to `results/bench/<stem>.json` (its keys in
/// alphabetical order, as [`write_report`] writes them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub what: String,
    /// When timing started.
    pub date_utc: String,
    /// `--network` (absent in records written before it existed: CapsNet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// `--isa` (absent in records written before it existed, which ran natively, and in GPU
    /// records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isa: Option<IsaMode>,
    pub batch_size: usize,
    pub steps: usize,
    pub warmup: usize,
    pub threads: usize,
    pub machine: Machine,
    pub load_average_start: Option<Vec<f64>>,
    pub load_average_end: Option<Vec<f64>>,
    pub versions: Versions,
    pub commands: Commands,
    pub model_check: ModelCheck,
    #[serde(flatten)]
    pub results: Results,
}

/// The machine as bench-compare records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub hostname: String,
    pub cpu: String,
    /// Threads available to this process (all cores, as `--threads` defaults to).
    pub cores: usize,
    pub logical_cpus_in_cpuinfo: Option<usize>,
    pub os: String,
    /// Absent in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_isa: Option<VectorIsa>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Versions {
    pub rustc: String,
    pub burn: String,
    pub torch: String,
    pub python: String,
    pub capsnet_git_revision: Option<String>,
}

/// The exact commands run (`build`: `None` with `--no-build`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Commands {
    pub build: Option<String>,
    pub capsnet: String,
    pub pytorch: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCheck {
    pub layers_match: bool,
    /// Parameters of the network (the same on both sides).
    pub params: u64,
}

/// The results part of a [`Report`] ([`combine_rounds`]): one round's raw results, or the
/// medians of several with every round kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub capsnet: BenchResult,
    pub pytorch: ReferenceBench,
    pub ratios_capsnet_over_pytorch: Ratios,
    /// Several rounds: min and max of the per-round ratios.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratios_capsnet_over_pytorch_range: Option<RatioRange>,
    /// Several rounds: how `capsnet` and `pytorch` were aggregated, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregation: Option<String>,
    /// Several rounds: each round (empty, and absent from the JSON, for one round).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rounds: Vec<Round>,
}

/// capsnet / PyTorch throughputs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ratios {
    pub train_images_per_sec: f64,
    pub inference_images_per_sec: f64,
}

impl Ratios {
    /// capsnet's throughputs over the reference's.
    fn of(ours: &BenchResult, reference: &ReferenceBench) -> Ratios {
        Ratios {
            train_images_per_sec: ours.train_images_per_sec / reference.train_images_per_sec,
            inference_images_per_sec: ours.inference_images_per_sec
                / reference.inference_images_per_sec,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RatioRange {
    pub train_images_per_sec: MinMax,
    pub inference_images_per_sec: MinMax,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MinMax {
    pub min: f64,
    pub max: f64,
}

impl MinMax {
    fn of(values: impl Iterator<Item = f64>) -> MinMax {
        let (min, max) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        MinMax { min, max }
    }
}

/// One round: both sides' raw results in the order they ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Round {
    /// 1-based.
    pub round: usize,
    /// Which side ran first.
    pub order: [Side; 2],
    pub date_utc: String,
    pub load_average_start: Option<Vec<f64>>,
    pub capsnet: BenchResult,
    pub pytorch: ReferenceBench,
    /// Set by [`combine_rounds`] when there are several rounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratios_capsnet_over_pytorch: Option<Ratios>,
}

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
///
/// --isa avx2 runs the PyTorch reference with ATEN_CPU_CAPABILITY=avx2 and ONEDNN_MAX_CPU_ISA=AVX2,
/// so that an AVX-512 host also measures what an AVX2 host sees, and adds -avx2 to the file
/// names; it fails if the reference reads back a CPU capability other than AVX2 (a torch that
/// ignores the variable). capsnet (flex) is not restricted: burn-flex's gemm already runs AVX2
/// kernels (burn-flex's x86-v4 feature, which adds AVX-512 ones, is not enabled here), while its
/// other SIMD kernels (elementwise, reductions, softmax) use AVX-512 where the CPU has it.
/// --isa native (default) removes both variables from the reference's environment.
#[derive(Debug, clap::Args)]
pub struct BenchCompareArgs {
    /// The network, on both sides: capsnet or efficient-capsnet.
    #[arg(long, value_name = "NAME", default_value = NETWORKS[0].0, value_parser = parse_network)]
    network: String,
    /// native (each side picks its kernels) or avx2 (PyTorch restricted to AVX2).
    #[arg(long, value_name = "MODE", default_value = "native", value_parser = parse_isa)]
    isa: IsaMode,
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
    /// GPU mode: build the report from records a machine without cargo wrote
    /// (scripts/gpu/run.sh's `compare/`: info-capsnet.json, info-pytorch.json and the
    /// alternated rounds capsnet-r1.json, pytorch-r1.json, …) instead of running anything here.
    /// The layer tables are checked as usual; batch, steps and backend come from the records.
    #[arg(long, value_name = "DIR")]
    from_records: Option<PathBuf>,
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
        if self.isa == IsaMode::Avx2 {
            if self.from_records.is_some() {
                bail!(
                    "--isa avx2 restricts the reference this command starts; --from-records \
                     starts none"
                );
            }
            if self.backend != "flex" {
                bail!(
                    "--isa avx2 restricts the PyTorch reference only; capsnet's --backend {} \
                     would need its own restriction (only flex is supported)",
                    self.backend
                );
            }
        }
        Ok(Args {
            batch_size: self.batch_size,
            steps: self.steps,
            warmup: self.warmup,
            rounds: self.rounds,
            threads: self.threads.unwrap_or_else(available_threads),
            python: self.python,
            out: self.out,
            network: self.network,
            isa: self.isa,
            experiment,
            build: !self.no_build && self.binary.is_none(),
            backend: self.backend,
            binary: self.binary,
            from_records: self.from_records,
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
    /// `--isa`.
    isa: IsaMode,
    /// `--experiment`, or the network's default experiment.
    experiment: String,
    build: bool,
    backend: String,
    binary: Option<PathBuf>,
    /// `--from-records`.
    from_records: Option<PathBuf>,
}

/// Entry point of `cargo xtask bench-compare`.
pub fn run(args: Args) -> Result<()> {
    let root = workspace_root()?;
    if let Some(dir) = args.from_records.clone() {
        return run_from_records(args, &root, &dir);
    }
    let reference = preflight(&args, &root)?;
    let binary = build(&args, &root)?;
    let params = check_layer_tables(&args, &root, &binary, &reference)?;
    let sides = Sides::new(&args, &root, &binary, &reference);
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
    let rounds = run_rounds(&args, &sides)?;
    let load_end = load_average();
    let results = combine_rounds(rounds)?;
    let report = Report {
        what: "capsnet bench vs the PyTorch reference (scripts/reference/capsnet_torch.py), same \
               machine, one invocation"
            .into(),
        date_utc: started,
        network: Some(args.network.clone()),
        isa: Some(args.isa),
        batch_size: args.batch_size,
        steps: args.steps,
        warmup: args.warmup,
        threads: args.threads,
        machine: machine(),
        load_average_start: load_start,
        load_average_end: load_end,
        versions: Versions {
            rustc: command_line("rustc", &["-V"]).unwrap_or_else(|| "unknown".into()),
            burn: BURN_VERSION.into(),
            torch: reference.torch_version.clone(),
            python: reference.python_version.clone(),
            capsnet_git_revision: Some(results.capsnet.git_revision.clone()),
        },
        commands: Commands {
            build: args.build.then(|| BUILD_COMMAND.join(" ")),
            capsnet: sides.ours_cmd,
            pytorch: sides.ref_cmd,
        },
        model_check: ModelCheck {
            layers_match: true,
            params,
        },
        results,
    };
    write_report(&args, &root, &report)
}

/// The reference script and the Python that runs it.
struct Reference {
    script: PathBuf,
    torch_version: String,
    python_version: String,
}

/// Fails before the (possibly long) build when the reference cannot run, or (`--isa avx2`)
/// reads back a CPU capability other than AVX2.
fn preflight(args: &Args, root: &Path) -> Result<Reference> {
    let script = root.join("scripts/reference/capsnet_torch.py");
    if !script.is_file() {
        bail!("{} is missing", script.display());
    }
    let (torch_version, python_version, capability) = torch_versions(&args.python, args.isa)?;
    eprintln!(
        "PyTorch {torch_version} (Python {python_version}, {}){}",
        args.python,
        capability
            .as_deref()
            .map(|c| format!(", CPU capability {c} (--isa {})", args.isa.name()))
            .unwrap_or_default()
    );
    if let Some(capability) = capability.as_deref() {
        check_reference_isa(args.isa, Some(capability), None)?;
    }
    Ok(Reference {
        script,
        torch_version,
        python_version,
    })
}

/// How [`build`] builds capsnet: like the test suite.
const BUILD_COMMAND: [&str; 5] = [
    "cargo",
    "build",
    "--release",
    "--workspace",
    "--all-targets",
];

/// Builds the workspace (unless `--no-build`/`--binary`); returns the capsnet binary to time.
fn build(args: &Args, root: &Path) -> Result<PathBuf> {
    if args.build {
        eprintln!("$ {}", BUILD_COMMAND.join(" "));
        let status = Command::new(BUILD_COMMAND[0])
            .args(&BUILD_COMMAND[1..])
            .current_dir(root)
            .status()
            .context("cannot start cargo")?;
        if !status.success() {
            bail!("`{}` failed with {status}", BUILD_COMMAND.join(" "));
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
            BUILD_COMMAND.join(" ")
        );
    }
    Ok(binary)
}

/// Same network on both sides: the layer tables (shapes and parameters) must agree. Returns the
/// parameter count.
fn check_layer_tables(
    args: &Args,
    root: &Path,
    binary: &Path,
    reference: &Reference,
) -> Result<u64> {
    let ours: InfoReport = run_json(
        Command::new(binary)
            .args(["info", &args.experiment, "--json"])
            .current_dir(root),
        "capsnet info",
    )?;
    let theirs: ReferenceInfo = run_json(
        args.isa
            .apply(&mut Command::new(&args.python))
            .arg(&reference.script)
            .args(["info", "--json", "--network", &args.network])
            .current_dir(root),
        "capsnet_torch.py info",
    )?;
    same_network(args, &ours, &theirs)
}

/// The layer tables of both sides agree: their parameter count.
fn same_network(args: &Args, ours: &InfoReport, theirs: &ReferenceInfo) -> Result<u64> {
    if ours.layers != theirs.layers || ours.params != theirs.params {
        bail!(
            "the PyTorch reference (--network {}) is not the network of {}:\ncapsnet: {}\npytorch: {}",
            args.network,
            args.experiment,
            serde_json::to_string(&ours.layers)?,
            serde_json::to_string(&theirs.layers)?
        );
    }
    Ok(ours.params as u64)
}

/// The GPU mode: the report from the records `scripts/gpu/run.sh` wrote on a machine without
/// cargo (both sides on the same GPU, alternated, capsnet first in each round).
fn run_from_records(mut args: Args, root: &Path, dir: &Path) -> Result<()> {
    fn read<T: DeserializeOwned>(path: &Path) -> Result<T> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not a record", path.display()))
    }
    let ours: InfoReport = read(&dir.join("info-capsnet.json"))?;
    let theirs: ReferenceInfo = read(&dir.join("info-pytorch.json"))?;
    args.network = theirs.network.clone();
    let params = same_network(&args, &ours, &theirs)?;
    let mut rounds = Vec::new();
    while dir
        .join(format!("capsnet-r{}.json", rounds.len() + 1))
        .is_file()
    {
        let k = rounds.len() + 1;
        let capsnet: BenchResult = read(&dir.join(format!("capsnet-r{k}.json")))?;
        let pytorch: ReferenceBench = read(&dir.join(format!("pytorch-r{k}.json")))?;
        if (capsnet.batch_size, capsnet.steps) != (pytorch.batch_size, pytorch.steps) {
            bail!(
                "round {k}: capsnet ran batch {} × {} steps, the reference batch {} × {}",
                capsnet.batch_size,
                capsnet.steps,
                pytorch.batch_size,
                pytorch.steps
            );
        }
        rounds.push(Round {
            round: k,
            order: [Side::Capsnet, Side::Pytorch],
            date_utc: String::new(),
            load_average_start: None,
            capsnet,
            pytorch,
            ratios_capsnet_over_pytorch: None,
        });
    }
    if rounds.is_empty() {
        bail!("{} holds no capsnet-r1.json", dir.display());
    }
    args.rounds = rounds.len();
    args.batch_size = rounds[0].capsnet.batch_size;
    args.steps = rounds[0].capsnet.steps;
    args.backend = rounds[0].capsnet.backend.clone();
    let results = combine_rounds(rounds)?;
    let m = &results.capsnet.machine;
    args.threads = m.threads;
    let gpu = results
        .pytorch
        .gpu
        .clone()
        .unwrap_or_else(|| "no GPU".into());
    let report = Report {
        what: format!(
            "capsnet bench vs the PyTorch reference on one {gpu}, alternated rounds recorded by \
             scripts/gpu/run.sh (TF32 off on both sides), combined here"
        ),
        date_utc: std::fs::metadata(dir.join("capsnet-r1.json"))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or_else(utc_timestamp, |d| capsnet_common::format_utc(d.as_secs())),
        network: Some(args.network.clone()),
        isa: None,
        batch_size: args.batch_size,
        steps: args.steps,
        warmup: args.warmup,
        threads: args.threads,
        machine: Machine {
            hostname: m.hostname.clone(),
            cpu: m.cpu.clone(),
            cores: m.threads,
            logical_cpus_in_cpuinfo: None,
            os: m.os.clone(),
            vector_isa: Some(m.vector_isa.clone()),
        },
        load_average_start: None,
        load_average_end: None,
        versions: Versions {
            rustc: "built elsewhere (scripts/gpu/prepare.sh)".into(),
            burn: BURN_VERSION.into(),
            torch: results.pytorch.torch_version.clone(),
            python: "the GPU machine's python3".into(),
            capsnet_git_revision: Some(results.capsnet.git_revision.clone()),
        },
        commands: Commands {
            build: None,
            capsnet: format!(
                "capsnet bench <experiment> --backend {} --batch-size {} --steps {} (scripts/gpu/run.sh)",
                args.backend, args.batch_size, args.steps
            ),
            pytorch: format!(
                "python3 scripts/reference/capsnet_torch.py bench --device cuda --dtype fp32 --batch-size {} --steps {} (scripts/gpu/run.sh)",
                args.batch_size, args.steps
            ),
        },
        model_check: ModelCheck {
            layers_match: true,
            params,
        },
        results,
    };
    write_report(&args, root, &report)
}

/// The two benchmark commands, as run and as recorded.
struct Sides<'a> {
    args: &'a Args,
    root: &'a Path,
    binary: &'a Path,
    script: &'a Path,
    /// `--batch-size N --steps N --warmup N`, the same on both sides.
    bench_args: [String; 6],
    threads: String,
    /// capsnet's command line as recorded (the binary relative to the workspace).
    ours_cmd: String,
    /// The reference's command line as recorded.
    ref_cmd: String,
}

impl<'a> Sides<'a> {
    fn new(args: &'a Args, root: &'a Path, binary: &'a Path, reference: &'a Reference) -> Self {
        let threads = args.threads.to_string();
        let bench_args = [
            "--batch-size".to_string(),
            args.batch_size.to_string(),
            "--steps".into(),
            args.steps.to_string(),
            "--warmup".into(),
            args.warmup.to_string(),
        ];
        let binary_shown = binary.strip_prefix(root).unwrap_or(binary).display();
        let ours_cmd = format!(
            "RAYON_NUM_THREADS={threads} OMP_NUM_THREADS={threads} {binary_shown} bench {} {} --backend {}",
            args.experiment,
            bench_args.join(" "),
            args.backend
        );
        let script_shown = "scripts/reference/capsnet_torch.py";
        let ref_cmd = format!(
            "{}OMP_NUM_THREADS={threads} {} {script_shown} bench --network {} {} --threads {threads} --device cpu",
            args.isa.command_prefix(),
            args.python,
            args.network,
            bench_args.join(" ")
        );
        Sides {
            args,
            root,
            binary,
            script: &reference.script,
            bench_args,
            threads,
            ours_cmd,
            ref_cmd,
        }
    }

    fn run_ours(&self) -> Result<BenchResult> {
        eprintln!("$ {}", self.ours_cmd);
        run_json(
            Command::new(self.binary)
                .args(["bench", &self.args.experiment])
                .args(&self.bench_args)
                .args(["--backend", &self.args.backend])
                .env("RAYON_NUM_THREADS", &self.threads)
                .env("OMP_NUM_THREADS", &self.threads)
                .current_dir(self.root),
            "capsnet bench",
        )
    }

    /// Runs the reference in `--isa`'s environment and checks that it ran the kernels asked for.
    fn run_reference(&self) -> Result<ReferenceBench> {
        eprintln!("$ {}", self.ref_cmd);
        let result: ReferenceBench = run_json(
            self.args
                .isa
                .apply(&mut Command::new(&self.args.python))
                .arg(self.script)
                .args(["bench", "--network", &self.args.network])
                .args(&self.bench_args)
                .args(["--threads", &self.threads, "--device", "cpu"])
                .env("OMP_NUM_THREADS", &self.threads)
                .current_dir(self.root),
            "capsnet_torch.py bench",
        )?;
        let m = &result.machine;
        check_reference_isa(
            self.args.isa,
            m.torch_cpu_capability.as_deref(),
            m.onednn_isa.as_deref(),
        )?;
        Ok(result)
    }
}

/// Runs both sides `--rounds` times, alternating which goes first ([`round_order`]).
fn run_rounds(args: &Args, sides: &Sides) -> Result<Vec<Round>> {
    let mut rounds = Vec::with_capacity(args.rounds);
    for round in 0..args.rounds {
        let order = round_order(round);
        let (date_utc, load_average_start) = (utc_timestamp(), load_average());
        if args.rounds > 1 {
            eprintln!(
                "round {}/{}: {} first",
                round + 1,
                args.rounds,
                order[0].label()
            );
        }
        let (mut ours, mut theirs) = (None, None);
        for side in order {
            match side {
                Side::Capsnet => ours = Some(sides.run_ours()?),
                Side::Pytorch => theirs = Some(sides.run_reference()?),
            }
        }
        rounds.push(Round {
            round: round + 1,
            order,
            date_utc,
            load_average_start,
            capsnet: ours.context("capsnet ran in every round")?,
            pytorch: theirs.context("the reference ran in every round")?,
            ratios_capsnet_over_pytorch: None,
        });
    }
    Ok(rounds)
}

/// Prints the table and writes the record and its `.md` rendering into `--out`.
fn write_report(args: &Args, root: &Path, report: &Report) -> Result<()> {
    let md = render_markdown(report);
    println!("\n{}", table(report));
    let out_dir = if args.out.is_absolute() {
        args.out.clone()
    } else {
        root.join(&args.out)
    };
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let stem = record_stem(&report.machine, args);
    let json_path = out_dir.join(format!("{stem}.json"));
    let md_path = out_dir.join(format!("{stem}.md"));
    // Through `Value`, whose maps are sorted: the keys in alphabetical order, as always.
    let json = serde_json::to_string_pretty(&serde_json::to_value(report)?)? + "\n";
    std::fs::write(&json_path, json)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    std::fs::write(&md_path, md).with_context(|| format!("cannot write {}", md_path.display()))?;
    eprintln!("wrote {} and {}", json_path.display(), md_path.display());
    Ok(())
}

/// The file name of the record without its extension:
/// `<machine>-b<batch>[-<network>][-<backend>][-t<threads>][-avx2]`, the network only when it is
/// not `capsnet`, the backend only when it is not `flex`, the threads only when they are not all
/// cores, `-avx2` with `--isa avx2`.
fn record_stem(machine: &Machine, args: &Args) -> String {
    let mut stem = format!("{}-b{}", machine_slug(machine), args.batch_size);
    if args.network != NETWORKS[0].0 {
        stem.push_str(&format!("-{}", args.network));
    }
    if args.backend != "flex" {
        stem.push_str(&format!("-{}", args.backend));
    }
    if args.threads != machine.cores {
        stem.push_str(&format!("-t{}", args.threads));
    }
    if args.isa != IsaMode::Native {
        stem.push_str(&format!("-{}", args.isa.name()));
    }
    stem
}

/// One of the two implementations being compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Capsnet,
    Pytorch,
}

impl Side {
    /// Its key in the report (`capsnet`, `pytorch`).
    #[cfg(test)]
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

/// One side's bench results over several rounds as one result: each top-level numeric field
/// that differs between rounds becomes its median over the rounds (throughputs, step times,
/// GFLOP/s, peak memory); everything else (equal numbers, strings, nested objects) is taken from
/// the first round. Field by field whatever the type's fields are (through its JSON form), so a
/// field the bench output gains is aggregated too. No results give `T` read from `null`.
fn median_result<T: Serialize + DeserializeOwned>(results: &[&T]) -> Result<T> {
    let results: Vec<Value> = results
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()?;
    let Some(Value::Object(first)) = results.first() else {
        return Ok(serde_json::from_value(Value::Null)?);
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
    Ok(serde_json::from_value(Value::Object(out))?)
}

/// The report's [`Results`] from the rounds. One round gives its raw results and their ratios,
/// exactly as a single run. Several give the median results ([`median_result`]), the ratios of
/// those medians, the rounds (each with its own ratios), the range of the per-round ratios and
/// `aggregation`.
fn combine_rounds(mut rounds: Vec<Round>) -> Result<Results> {
    if rounds.is_empty() {
        bail!("no rounds to combine");
    }
    if rounds.len() == 1 {
        let round = rounds.remove(0);
        return Ok(Results {
            ratios_capsnet_over_pytorch: Ratios::of(&round.capsnet, &round.pytorch),
            capsnet: round.capsnet,
            pytorch: round.pytorch,
            ratios_capsnet_over_pytorch_range: None,
            aggregation: None,
            rounds: Vec::new(),
        });
    }
    for round in &mut rounds {
        round.ratios_capsnet_over_pytorch = Some(Ratios::of(&round.capsnet, &round.pytorch));
    }
    let ours = median_result(&rounds.iter().map(|r| &r.capsnet).collect::<Vec<_>>())?;
    let theirs = median_result(&rounds.iter().map(|r| &r.pytorch).collect::<Vec<_>>())?;
    let per_round = || rounds.iter().filter_map(|r| r.ratios_capsnet_over_pytorch);
    let range = RatioRange {
        train_images_per_sec: MinMax::of(per_round().map(|r| r.train_images_per_sec)),
        inference_images_per_sec: MinMax::of(per_round().map(|r| r.inference_images_per_sec)),
    };
    Ok(Results {
        ratios_capsnet_over_pytorch: Ratios::of(&ours, &theirs),
        ratios_capsnet_over_pytorch_range: Some(range),
        aggregation: Some(format!(
            "capsnet, pytorch: median over the {} rounds of each numeric field that differs \
             between rounds (other fields from round 1); ratios_capsnet_over_pytorch: ratios of \
             those medians; ratios_capsnet_over_pytorch_range: min and max of the per-round ratios",
            rounds.len()
        )),
        capsnet: ours,
        pytorch: theirs,
        rounds,
    })
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

/// Torch and Python versions of `python` and torch's CPU capability in `isa`'s environment
/// (`None` when not printed), or an error saying how to install them.
fn torch_versions(python: &str, isa: IsaMode) -> Result<(String, String, Option<String>)> {
    let output = isa
        .apply(&mut Command::new(python))
        .args([
            "-c",
            "import sys, torch; print(torch.__version__); print(sys.version.split()[0]); \
             cpu = getattr(torch.backends, 'cpu', None); \
             print(cpu.get_cpu_capability() if hasattr(cpu, 'get_cpu_capability') else 'unknown')",
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
    let capability = lines.next().map(|c| c.trim().to_string());
    Ok((torch, py, capability))
}

/// Runs `cmd` (stderr passed through) and parses its stdout as one JSON value of type `T`.
fn run_json<T: DeserializeOwned>(cmd: &mut Command, what: &str) -> Result<T> {
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
fn machine() -> Machine {
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
    Machine {
        hostname,
        cpu,
        cores: available_threads(),
        logical_cpus_in_cpuinfo: (logical > 0).then_some(logical),
        os,
        vector_isa: Some(capsnet_common::cpu::vector_isa_from_cpuinfo(&cpuinfo)),
    }
}

impl Report {
    /// The network compared (`capsnet` for records written before `--network` existed).
    fn network(&self) -> &str {
        self.network.as_deref().unwrap_or(NETWORKS[0].0)
    }

    /// The rounds of a report of several rounds; `None` for a single run (no `rounds`).
    fn rounds(&self) -> Option<&[Round]> {
        Some(self.results.rounds.as_slice()).filter(|r| r.len() > 1)
    }

    /// `, --isa avx2` (`code`: in backticks) for a restricted run, empty for a native one (old
    /// records included): how the title and the table's first line end.
    fn isa_suffix(&self, code: bool) -> String {
        let tick = if code { "`" } else { "" };
        match self.isa {
            Some(mode) if mode != IsaMode::Native => format!(", {tick}--isa {}{tick}", mode.name()),
            _ => String::new(),
        }
    }
}

/// The machine's vector ISA, with the GEMM kernels flex ran and PyTorch's CPU capability and
/// oneDNN ISA as each side reported them (older records: what they have; records with `isa`
/// say when oneDNN's could not be read).
fn isa_line(report: &Report) -> String {
    let mut line = match &report.machine.vector_isa {
        Some(isa) => format!("{} ({})", isa.widest, isa.features.join(", ")),
        None => "not recorded".into(),
    };
    // The side's (median) result, else its result in any round.
    let r = &report.results;
    let gemm = std::iter::once(&r.capsnet)
        .chain(r.rounds.iter().map(|r| &r.capsnet))
        .map(|c| c.machine.flex_gemm.as_str())
        .find(|g| !g.is_empty());
    if let Some(gemm) = gemm {
        line += &format!("; capsnet (flex): {gemm}");
    }
    let pytorch = || std::iter::once(&r.pytorch).chain(r.rounds.iter().map(|r| &r.pytorch));
    let mut theirs = Vec::new();
    if let Some(cap) = pytorch().find_map(|p| p.machine.torch_cpu_capability.as_deref()) {
        theirs.push(format!("CPU capability: {cap}"));
    }
    match pytorch().find_map(|p| p.machine.onednn_isa.as_deref()) {
        Some(isa) => theirs.push(format!("oneDNN ISA: {isa}")),
        None if report.isa.is_some() => theirs.push("oneDNN ISA: not read".into()),
        None => {}
    }
    if !theirs.is_empty() {
        line += &format!("; PyTorch {}", theirs.join(", "));
    }
    line
}

/// The `- ISA mode:` line of the Markdown (with its newline): which `--isa` ran, and the
/// restricting variables as the reference saw them; empty for records without `isa`.
fn isa_mode_line(report: &Report) -> String {
    let Some(mode) = report.isa else {
        return String::new();
    };
    let r = &report.results;
    let environment = std::iter::once(&r.pytorch)
        .chain(r.rounds.iter().map(|r| &r.pytorch))
        .find_map(|p| p.machine.isa_environment.as_ref());
    let seen = match environment {
        Some(env) => env
            .iter()
            .map(|(name, value)| match value {
                Some(v) => format!("`{name}={v}`"),
                None => format!("`{name}` unset"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        None => "not recorded".into(),
    };
    match mode {
        IsaMode::Native => format!(
            "- ISA mode: native (`--isa native`): each side picks its kernels for this CPU; the \
             reference's environment: {seen}\n"
        ),
        IsaMode::Avx2 => format!(
            "- ISA mode: AVX2 (`--isa avx2`): PyTorch restricted to AVX2 (the reference's \
             environment: {seen}; its CPU capability and oneDNN ISA as read back above); capsnet \
             (flex) not restricted: its GEMM runs AVX2 kernels (burn-flex's `x86-v4` feature, \
             which would add AVX-512 ones, is not enabled in this project), its other SIMD \
             kernels (elementwise, reductions, softmax) use AVX-512 where the CPU has it\n"
        ),
    }
}

/// `hostname-cpu-model`, lower case, `[a-z0-9-]` only.
fn machine_slug(machine: &Machine) -> String {
    let raw = format!("{}-{}", machine.hostname, machine.cpu);
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

/// The comparison rows: (label, capsnet, pytorch, ratio).
fn rows(report: &Report) -> Vec<(&'static str, String, String, String)> {
    let (ours, theirs) = (&report.results.capsnet, &report.results.pytorch);
    let ratios = &report.results.ratios_capsnet_over_pytorch;
    vec![
        (
            "train images/s",
            format!("{:.1}", ours.train_images_per_sec),
            format!("{:.1}", theirs.train_images_per_sec),
            format!("{:.2}×", ratios.train_images_per_sec),
        ),
        (
            "train ms/step (median)",
            format!("{:.0}", ours.train_ms_per_step_median),
            format!("{:.0}", theirs.train_ms_per_step_median),
            String::new(),
        ),
        (
            "inference images/s",
            format!("{:.1}", ours.inference_images_per_sec),
            format!("{:.1}", theirs.inference_images_per_sec),
            format!("{:.2}×", ratios.inference_images_per_sec),
        ),
    ]
}

fn loads(loads: &Option<Vec<f64>>) -> String {
    match loads {
        Some(l) => l
            .iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(", "),
        None => "unknown".into(),
    }
}

fn headers(report: &Report) -> (String, String) {
    (
        format!("capsnet ({})", report.results.capsnet.backend),
        format!("PyTorch {}", report.versions.torch),
    )
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
fn round_rows(rounds: &[Round]) -> Vec<[String; 8]> {
    rounds
        .iter()
        .map(|round| {
            let (ours, theirs) = (&round.capsnet, &round.pytorch);
            let r = round.ratios_capsnet_over_pytorch.unwrap_or(Ratios {
                train_images_per_sec: f64::NAN,
                inference_images_per_sec: f64::NAN,
            });
            [
                round.round.to_string(),
                round.order[0].label().to_string(),
                format!("{:.1}", ours.train_images_per_sec),
                format!("{:.1}", ours.inference_images_per_sec),
                format!("{:.1}", theirs.train_images_per_sec),
                format!("{:.1}", theirs.inference_images_per_sec),
                format!("{:.2}×", r.train_images_per_sec),
                format!("{:.2}×", r.inference_images_per_sec),
            ]
        })
        .collect()
}

/// `training 0.45×–0.52×, inference 0.55×–0.60×`: the range of the per-round ratios.
fn ratio_range(report: &Report) -> String {
    let unknown = MinMax {
        min: f64::NAN,
        max: f64::NAN,
    };
    let range = report
        .results
        .ratios_capsnet_over_pytorch_range
        .unwrap_or(RatioRange {
            train_images_per_sec: unknown,
            inference_images_per_sec: unknown,
        });
    let one = |m: MinMax| format!("{:.2}×–{:.2}×", m.min, m.max);
    format!(
        "training {}, inference {}",
        one(range.train_images_per_sec),
        one(range.inference_images_per_sec)
    )
}

/// Plain-text table for the terminal.
fn table(report: &Report) -> String {
    let (ours, theirs) = headers(report);
    let rounds = report.rounds();
    let mut out = format!(
        "{}, batch {}, {} threads, {} timed steps{}{} — {}\n",
        report.network(),
        report.batch_size,
        report.threads,
        report.steps,
        rounds
            .map(|r| format!(", median of {} rounds", r.len()))
            .unwrap_or_default(),
        report.isa_suffix(false),
        report.machine.cpu
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
        loads(&report.load_average_start)
    );
    out
}

/// The `.md` rendering of a report.
fn render_markdown(report: &Report) -> String {
    let (ours, theirs) = headers(report);
    let (m, v) = (&report.machine, &report.versions);
    let rounds = report.rounds();
    let how = match rounds {
        None => "one after the other on the same machine".to_string(),
        Some(r) => format!(
            "one after the other on the same machine in {} rounds, alternating which goes first",
            r.len()
        ),
    };
    let (title, network, batch_norm) = match report.network() {
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
        "# {title} throughput: capsnet vs the PyTorch reference, batch {}{}\n\n\
         Generated by `cargo xtask bench-compare` (do not edit by hand): both implementations of \
         {network} ({} parameters, layer tables checked equal) on random inputs, \
         {how}, {} threads each, {} warm-up + {} timed steps. \
         A training step is forward, loss, backward, Adam step and reading the loss back; \
         inference is a forward pass without autodiff, decoder masked by the longest \
         capsule.{batch_norm}\n\n",
        report.batch_size,
        report.isa_suffix(true),
        capsnet_common::group_thousands(report.model_check.params),
        report.threads,
        report.warmup,
        report.steps,
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
        "\n- date (UTC): {}\n- machine: {} ({}, {} cores, {})\n- vector ISA: {}\n{}\
         - load average (1, 5, 15 min): {} when timing started, {} at the end\n\
         - versions: {}, burn {}, PyTorch {} (Python {}), capsnet revision {}\n\
         - commands:\n",
        report.date_utc,
        m.cpu,
        m.hostname,
        m.cores,
        m.os,
        isa_line(report),
        isa_mode_line(report),
        loads(&report.load_average_start),
        loads(&report.load_average_end),
        v.rustc,
        v.burn,
        v.torch,
        v.python,
        v.capsnet_git_revision.as_deref().unwrap_or("—"),
    );
    // The GPU, when the reference ran on one (CPU records keep their bytes).
    if let Some(gpu) = &report.results.pytorch.gpu {
        let cuda = report
            .results
            .pytorch
            .cuda_version
            .as_deref()
            .unwrap_or("?");
        md = md.replacen(
            "\n- vector ISA:",
            &format!(
                "\n- GPU: {gpu} (PyTorch's CUDA {cuda}); {}\n- vector ISA:",
                report.what
            ),
            1,
        );
    }
    let c = &report.commands;
    for cmd in [c.build.as_deref(), Some(&c.capsnet), Some(&c.pytorch)]
        .into_iter()
        .flatten()
    {
        md += &format!("  - `{cmd}`\n");
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::{SystemTime, UNIX_EPOCH};

    fn num(v: &Value) -> f64 {
        v.as_f64().unwrap_or(f64::NAN)
    }

    /// A record (given as JSON) as the renderers read it.
    fn typed(report: &Value) -> Report {
        serde_json::from_value(report.clone()).unwrap()
    }

    /// The machine of a record, from JSON.
    fn machine_of(machine: Value) -> Machine {
        serde_json::from_value(machine).unwrap()
    }

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
        let m = machine_of(json!({"hostname": "vm", "cpu": "AMD EPYC", "cores": 2, "os": "Linux"}));
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
        // `--isa avx2` records do not overwrite the native ones.
        assert_eq!(
            record_stem(&m, &parse(&["--isa", "avx2"])),
            "vm-amd-epyc-b32-avx2"
        );
        assert_eq!(
            record_stem(&m, &parse(&["--isa", "native"])),
            "vm-amd-epyc-b32"
        );
        assert_eq!(
            record_stem(
                &m,
                &parse(&[
                    "--network",
                    "efficient-capsnet",
                    "--threads",
                    "1",
                    "--isa",
                    "avx2"
                ])
            ),
            "vm-amd-epyc-b32-efficient-capsnet-t1-avx2"
        );
    }

    #[test]
    fn isa_takes_native_or_avx2() {
        assert_eq!(parse_args::<&str>(&[]).unwrap().isa, IsaMode::Native);
        assert_eq!(
            parse_args(&["--isa", "native"]).unwrap().isa,
            IsaMode::Native
        );
        assert_eq!(parse_args(&["--isa", "avx2"]).unwrap().isa, IsaMode::Avx2);
        for other in ["avx512", "AVX2", "sse", ""] {
            let err = parse_args(&["--isa", other]).unwrap_err().to_string();
            assert!(err.contains("--isa takes native or avx2"), "{err}");
            assert!(err.contains(&format!("got `{other}`")), "{err}");
        }
        assert!(parse_args(&["--isa"]).is_err());
        // avx2 restricts processes bench-compare starts, and only the reference's kernels.
        let err = parse_args(&["--isa", "avx2", "--from-records", "/x"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--from-records"), "{err}");
        assert!(parse_args(&["--isa", "native", "--from-records", "/x"]).is_ok());
        let err = parse_args(&[
            "--isa",
            "avx2",
            "--backend",
            "tch",
            "--binary",
            "/x/capsnet",
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("--backend tch"), "{err}");
        assert!(parse_args(&["--backend", "tch", "--binary", "/x/capsnet"]).is_ok());
    }

    /// The variables of the reference's command as set (`Some`) or removed (`None`).
    fn env_of(cmd: &Command) -> Vec<(String, Option<String>)> {
        let text = |s: &std::ffi::OsStr| s.to_string_lossy().into_owned();
        cmd.get_envs()
            .map(|(k, v)| (text(k), v.map(text)))
            .collect()
    }

    #[test]
    fn avx2_mode_gives_the_reference_both_variables() {
        let avx2 = IsaMode::Avx2.reference_env();
        assert_eq!(
            avx2,
            [
                ("ATEN_CPU_CAPABILITY", Some("avx2")),
                ("ONEDNN_MAX_CPU_ISA", Some("AVX2"))
            ]
        );
        let mut cmd = Command::new("python");
        IsaMode::Avx2.apply(&mut cmd);
        assert_eq!(
            env_of(&cmd),
            [
                ("ATEN_CPU_CAPABILITY".to_string(), Some("avx2".to_string())),
                ("ONEDNN_MAX_CPU_ISA".to_string(), Some("AVX2".to_string()))
            ]
        );
        assert_eq!(
            IsaMode::Avx2.command_prefix(),
            "ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 "
        );
        // Native: neither variable, even when the caller's environment has them.
        let mut cmd = Command::new("python");
        cmd.env("ATEN_CPU_CAPABILITY", "default");
        IsaMode::Native.apply(&mut cmd);
        assert_eq!(
            env_of(&cmd),
            [
                ("ATEN_CPU_CAPABILITY".to_string(), None),
                ("ONEDNN_MAX_CPU_ISA".to_string(), None)
            ]
        );
        assert_eq!(IsaMode::Native.command_prefix(), "");
        assert_eq!(IsaMode::default(), IsaMode::Native);
    }

    #[test]
    fn a_capability_other_than_avx2_is_refused_in_avx2_mode() {
        let avx2 = IsaMode::Avx2;
        assert!(check_reference_isa(avx2, Some("AVX2"), Some("Intel AVX2")).is_ok());
        assert!(check_reference_isa(avx2, Some("avx2"), None).is_ok());
        for capability in [Some("AVX512"), Some("DEFAULT"), Some("unknown"), None] {
            let err = check_reference_isa(avx2, capability, Some("Intel AVX2"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("ATEN_CPU_CAPABILITY=avx2"), "{err}");
            let shown = capability.unwrap_or("not reported");
            assert!(err.contains(&format!("`{shown}`")), "{err}");
        }
        let onednn = "Intel AVX-512 with AVX512BW, AVX512VL, and AVX512DQ extensions";
        let err = check_reference_isa(avx2, Some("AVX2"), Some(onednn))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ONEDNN_MAX_CPU_ISA=AVX2"), "{err}");
        assert!(err.contains(onednn), "{err}");
        // Native runs take whatever the reference picked.
        assert!(check_reference_isa(IsaMode::Native, Some("AVX512"), Some(onednn)).is_ok());
        assert!(check_reference_isa(IsaMode::Native, None, None).is_ok());
    }

    /// [`report_fixture`] of one round in mode `isa` (`None`: an older record without it), the
    /// reference's machine given the fields in `machine`.
    fn isa_report(isa: Option<&str>, machine: Value) -> Report {
        let mut theirs = reference("pytorch-cpu", 20.0, 50.0);
        theirs["machine"]
            .as_object_mut()
            .unwrap()
            .extend(machine.as_object().unwrap().clone());
        let mut report = report_with(vec![round(1, bench("flex", 10.0, 100.0), theirs)]);
        if let Some(isa) = isa {
            report["isa"] = json!(isa);
        }
        typed(&report)
    }

    #[test]
    fn markdown_of_an_avx2_record_names_the_mode_and_the_isas() {
        let report = isa_report(
            Some("avx2"),
            json!({
                "torch_cpu_capability": "AVX2", "onednn_isa": "Intel AVX2",
                "isa_environment": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
            }),
        );
        assert_eq!(report.isa, Some(IsaMode::Avx2));
        let md = render_markdown(&report);
        assert!(
            md.starts_with(
                "# CapsNet throughput: capsnet vs the PyTorch reference, batch 32, `--isa avx2`\n"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "- vector ISA: AVX2 (avx2, fma); capsnet (flex): x86-v3 kernels; \
                 PyTorch CPU capability: AVX2, oneDNN ISA: Intel AVX2\n- ISA mode: AVX2 (`--isa avx2`)"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "the reference's environment: `ATEN_CPU_CAPABILITY=avx2`, `ONEDNN_MAX_CPU_ISA=AVX2`"
            ),
            "{md}"
        );
        assert!(md.contains("burn-flex's `x86-v4` feature"), "{md}");
        assert!(
            table(&report).starts_with("capsnet, batch 32, 2 threads, 10 timed steps, --isa avx2"),
            "{}",
            table(&report)
        );
        // The JSON says the mode, and reads back the same.
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["isa"], json!("avx2"));
        assert_eq!(
            json["pytorch"]["machine"]["onednn_isa"],
            json!("Intel AVX2")
        );
        assert_eq!(typed(&json), report);

        // A native record with the new fields says so, without a title suffix.
        let report = isa_report(
            Some("native"),
            json!({
                "torch_cpu_capability": "AVX512",
                "isa_environment": {"ATEN_CPU_CAPABILITY": null, "ONEDNN_MAX_CPU_ISA": null}
            }),
        );
        let md = render_markdown(&report);
        assert!(
            md.starts_with("# CapsNet throughput: capsnet vs the PyTorch reference, batch 32\n")
        );
        assert!(
            md.contains("PyTorch CPU capability: AVX512, oneDNN ISA: not read\n"),
            "{md}"
        );
        assert!(
            md.contains(
                "- ISA mode: native (`--isa native`): each side picks its kernels for this CPU; the \
                 reference's environment: `ATEN_CPU_CAPABILITY` unset, `ONEDNN_MAX_CPU_ISA` unset\n"
            ),
            "{md}"
        );
        assert!(!table(&report).contains("--isa"));

        // An older record (no `isa`, no oneDNN ISA): the vector ISA line as before, no mode line.
        let md = render_markdown(&isa_report(None, json!({})));
        assert!(
            md.contains(
                "- vector ISA: AVX2 (avx2, fma); capsnet (flex): x86-v3 kernels; PyTorch CPU \
                 capability: AVX2\n- load average"
            ),
            "{md}"
        );
        assert!(!md.contains("ISA mode") && !md.contains("oneDNN"), "{md}");
    }

    #[test]
    fn slug_is_filename_safe() {
        let m = machine_of(json!({
            "hostname": "vm", "cpu": "AMD EPYC 7B13 64-Core Processor", "cores": 2, "os": "Linux"
        }));
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
                "capsnet": bench("flex", 10.0, 100.0),
                "pytorch": reference("pytorch-cpu", 20.0, 50.0),
            })
            .as_object()
            .unwrap()
            .clone(),
        );
        let md = render_markdown(&typed(&report));
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
        assert!(table(&typed(&report)).contains("capsnet (flex)"));
        assert!(table(&typed(&report)).starts_with("capsnet, batch 32"));

        report["network"] = json!("efficient-capsnet");
        report["model_check"]["params"] = json!(1_573_168);
        let md = render_markdown(&typed(&report));
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
        assert!(table(&typed(&report)).starts_with("efficient-capsnet, batch 32"));
    }

    /// A `capsnet bench` result (every field, as [`BenchResult`] writes it).
    fn bench(backend: &str, train: f64, infer: f64) -> Value {
        json!({
            "name": "mnist", "arch": "capsnet", "backend": backend, "batch_size": 32, "steps": 10,
            "git_revision": "abc",
            "machine": {"hostname": "h", "cpu": "X", "threads": 2, "os": "Linux",
                        "vector_isa": {"widest": "AVX2", "features": ["avx2", "fma"]},
                        "flex_gemm": "x86-v3 kernels"},
            "train_images_per_sec": train, "inference_images_per_sec": infer,
            "train_ms_per_step_median": 32_000.0 / train,
            "train_gflop_per_image": 0.5, "train_gflops": 0.5 * train,
            "inference_gflops": infer / 6.0, "train_peak_fraction": null, "peak_gflops": null,
            "peak_rss_mib": 100.0,
        })
    }

    /// A `capsnet_torch.py bench` result (every field, as [`ReferenceBench`] writes it).
    fn reference(backend: &str, train: f64, infer: f64) -> Value {
        json!({
            "name": "pytorch-reference", "arch": "capsnet", "network": "capsnet",
            "backend": backend, "batch_size": 32, "steps": 10,
            "machine": {"hostname": "h", "cpu": "X", "threads": 2, "os": "linux x86_64",
                        "torch_cpu_capability": "AVX2"},
            "train_images_per_sec": train, "inference_images_per_sec": infer,
            "train_ms_per_step_median": 32_000.0 / train,
            "torch_version": "2.11.0", "threads": 2, "dtype": "float32", "adam": "fused",
            "channels_last": false, "params": 8215568,
        })
    }

    fn round(n: usize, ours: Value, theirs: Value) -> Round {
        serde_json::from_value(json!({
            "round": n, "order": round_order(n - 1).map(Side::key),
            "date_utc": "2026-01-01T00:00:00Z", "load_average_start": null,
            "capsnet": ours, "pytorch": theirs,
        }))
        .unwrap()
    }

    /// Three rounds whose median ratio (train 0.4) differs from the ratio of the medians (0.5).
    fn three_rounds() -> Vec<Round> {
        vec![
            round(
                1,
                bench("flex", 10.0, 100.0),
                reference("pytorch-cpu", 25.0, 50.0),
            ),
            round(
                2,
                bench("flex", 12.0, 90.0),
                reference("pytorch-cpu", 15.0, 60.0),
            ),
            round(
                3,
                bench("flex", 8.0, 120.0),
                reference("pytorch-cpu", 20.0, 40.0),
            ),
        ]
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// The GPU mode: records written elsewhere (run.sh's `compare/`) become the same report,
    /// with the batch and backend of the records, the ratios of the rounds' medians, the GPU
    /// named; records of another network are refused.
    #[test]
    fn records_from_a_gpu_machine_make_the_report() {
        let dir = crate::scratch_dir("bench-records");
        let layers = json!([{"name": "conv1", "output": [256, 20, 20], "params": 20992}]);
        let info = json!({
            "name": "mnist", "arch": "capsnet", "layers": layers, "params": 20992,
            "routing": null,
            "forward_macs": {"convolutions": 1, "votes": 0, "routing": 0, "dense": 0},
            "train_gflop_per_image": 1.0, "inference_gflop_per_image": 0.3,
            "memory": {"bytes_per_value": 4, "activations_per_example": 1, "votes_per_example": 0,
                       "routing_per_example": 0, "capsules": null,
                       "parameters_and_optimizer": 1, "batch": 128, "training_peak": 1,
                       "warning": null}
        });
        let write = |name: &str, value: &Value| {
            std::fs::write(dir.join(name), value.to_string()).unwrap();
        };
        write("info-capsnet.json", &info);
        write(
            "info-pytorch.json",
            &json!({"name": "pytorch-reference", "network": "capsnet", "layers": layers, "params": 20992}),
        );
        for (k, ours, theirs) in [(1, 900.0, 1000.0), (2, 1100.0, 1000.0)] {
            let mut c = bench("tch-cuda", ours, 2.0 * ours);
            c["batch_size"] = json!(128);
            let mut r = reference("pytorch-cuda", theirs, 2.0 * theirs);
            r["batch_size"] = json!(128);
            r["gpu"] = json!("NVIDIA H100 80GB HBM3");
            write(&format!("capsnet-r{k}.json"), &c);
            write(&format!("pytorch-r{k}.json"), &r);
        }
        let out = dir.join("out");
        let args = parse_args(&[
            "--from-records",
            dir.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .unwrap();
        run(args).unwrap();
        let md_file = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "md"))
            .unwrap();
        let name = md_file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.contains("-b128") && name.contains("tch-cuda"),
            "{name}"
        );
        let md = std::fs::read_to_string(&md_file).unwrap();
        assert!(md.contains("NVIDIA H100 80GB HBM3"), "{md}");
        let json: Report =
            serde_json::from_str(&std::fs::read_to_string(md_file.with_extension("json")).unwrap())
                .unwrap();
        assert_eq!(json.results.rounds.len(), 2);
        assert_eq!(json.batch_size, 128);
        assert!(
            (json
                .results
                .ratios_capsnet_over_pytorch
                .train_images_per_sec
                - 1.0)
                .abs()
                < 1e-9
        );

        let mut other = json!({"name": "pytorch-reference", "network": "capsnet", "params": 1});
        other["layers"] = json!([]);
        write("info-pytorch.json", &other);
        let args = parse_args(&[
            "--from-records",
            dir.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .unwrap();
        let err = format!("{:#}", run(args).unwrap_err());
        assert!(err.contains("is not the network"), "{err}");
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
        let (mut a, mut b, mut c) = (a, b, c);
        a["machine"] = json!({"threads": 2});
        b["machine"] = json!({"threads": 2});
        c["git_revision"] = json!("later");
        c["machine"] = json!({"threads": 3});
        // Generic over the result type: here the JSON itself.
        let m: Value = median_result(&[&a, &b, &c]).unwrap();
        assert_eq!(m["train_images_per_sec"], json!(10.0));
        assert_eq!(m["inference_images_per_sec"], json!(100.0));
        assert!(close(num(&m["train_ms_per_step_median"]), 3200.0));
        // Equal integers stay integers; strings and objects come from the first round.
        assert_eq!(m["batch_size"], json!(32));
        assert!(m["batch_size"].is_u64());
        assert_eq!(m["git_revision"], json!("abc"));
        assert_eq!(m["machine"], json!({"threads": 2}));
        assert_eq!(m["backend"], json!("flex"));
        assert_eq!(median_result(&[&a]).unwrap(), a);
        assert_eq!(median_result::<Value>(&[]).unwrap(), Value::Null);
        // Typed results come back typed, with the medians.
        let typed: Vec<BenchResult> = [10.0, 12.0, 8.0]
            .map(|t| serde_json::from_value(bench("flex", t, 100.0)).unwrap())
            .to_vec();
        let m = median_result(&typed.iter().collect::<Vec<_>>()).unwrap();
        assert_eq!(m.train_images_per_sec, 10.0);
        assert_eq!(m.git_revision, "abc");
    }

    #[test]
    fn ratios_need_both_throughputs() {
        let ours: BenchResult = serde_json::from_value(bench("flex", 10.0, 100.0)).unwrap();
        let theirs: ReferenceBench = serde_json::from_value(reference("pt", 20.0, 50.0)).unwrap();
        let r = serde_json::to_value(Ratios::of(&ours, &theirs)).unwrap();
        assert_eq!(r["train_images_per_sec"], json!(0.5));
        assert_eq!(r["inference_images_per_sec"], json!(2.0));
        // Output without both throughputs is not a bench result: it is refused when read.
        assert!(
            serde_json::from_value::<BenchResult>(json!({"train_images_per_sec": 1.0})).is_err()
        );
        assert!(serde_json::from_value::<ReferenceBench>(json!({})).is_err());
    }

    #[test]
    fn one_round_reports_like_a_single_run() {
        let ours = bench("flex", 10.0, 100.0);
        let theirs = reference("pytorch-cpu", 20.0, 50.0);
        let out = combine_rounds(vec![round(1, ours.clone(), theirs.clone())]).unwrap();
        let out = serde_json::to_value(out).unwrap();
        let keys: Vec<&str> = out
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
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
        let out = serde_json::to_value(combine_rounds(three_rounds()).unwrap()).unwrap();
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
            "what": "test", "date_utc": "2026-01-01T00:00:00Z",
            "batch_size": 32, "threads": 2, "steps": 10, "warmup": 2,
            "machine": {"cpu": "X", "hostname": "h", "cores": 2, "os": "Linux",
                        "vector_isa": {"widest": "AVX2", "features": ["avx2", "fma"]}},
            "load_average_start": [0.1, 0.2, 0.3], "load_average_end": [0.5, 0.2, 0.3],
            "versions": {"rustc": "rustc 1.95", "burn": "0.22.1", "torch": "2.11.0", "python": "3.11"},
            "commands": {"build": null, "capsnet": "a", "pytorch": "b"},
            "model_check": {"layers_match": true, "params": 8215568},
        })
    }

    /// [`report_fixture`] with the results of `rounds` merged in.
    fn report_with(rounds: Vec<Round>) -> Value {
        let mut report = report_fixture();
        let results = serde_json::to_value(combine_rounds(rounds).unwrap()).unwrap();
        report
            .as_object_mut()
            .unwrap()
            .extend(results.as_object().unwrap().clone());
        report
    }

    #[test]
    fn markdown_and_table_show_rounds() {
        let report = report_with(three_rounds());
        let md = render_markdown(&typed(&report));
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
        let t = table(&typed(&report));
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
            reference("pytorch-cpu", 20.0, 50.0),
        )]);
        let md = render_markdown(&typed(&single));
        assert!(md.contains("one after the other on the same machine, 2 threads each"));
        assert!(!md.contains("Per round") && !md.contains("rounds"), "{md}");
        assert!(!table(&typed(&single)).contains("round"));
    }
    /// How the fake `python` of [`try_run_with_fakes`] treats the ISA variables: it reports
    /// AVX-512 (CPU capability `AVX512`, an AVX-512 oneDNN ISA) unless restricted, and the
    /// variables as it saw them.
    #[cfg(unix)]
    #[derive(Clone, Copy, PartialEq)]
    enum FakeTorch {
        /// `ATEN_CPU_CAPABILITY=avx2` gives `AVX2`, `ONEDNN_MAX_CPU_ISA=AVX2` `Intel AVX2`.
        HonoursIsa,
        /// An old torch: `AVX512` whatever `ATEN_CPU_CAPABILITY` says (its oneDNN honours its
        /// variable).
        IgnoresIsa,
        /// [`FakeTorch::IgnoresIsa`], and its `-c` (the preflight) prints no capability, so that
        /// only the bench results can tell.
        IgnoresIsaSilently,
    }

    /// [`try_run_with_fakes`] with a torch that honours the ISA variables, which must succeed.
    #[cfg(unix)]
    fn run_with_fakes(
        tag: &str,
        rounds: &str,
        extra: &[&str],
    ) -> (Vec<String>, Value, String, String) {
        try_run_with_fakes(tag, rounds, extra, FakeTorch::HonoursIsa).unwrap()
    }

    /// Runs `run` with fake `capsnet` and `python` executables in a scratch folder that log each
    /// bench call and report its call number as the training throughput; returns the call log
    /// and the written report, or `run`'s error.
    #[cfg(unix)]
    fn try_run_with_fakes(
        tag: &str,
        rounds: &str,
        extra: &[&str],
        torch: FakeTorch,
    ) -> Result<(Vec<String>, Value, String, String)> {
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
        // Each side's `info --json`: the same one-layer table.
        let info = |side: &str| {
            let layers = json!([{"name": "conv1", "output": [256, 20, 20], "params": 42}]);
            match side {
                "capsnet" => json!({
                    "name": "fake", "arch": "capsnet", "layers": layers, "params": 42,
                    "routing": null,
                    "forward_macs": {"convolutions": 1, "votes": 0, "routing": 0, "dense": 0},
                    "train_gflop_per_image": 0.0, "inference_gflop_per_image": 0.0,
                    "memory": {"bytes_per_value": 4, "activations_per_example": 1,
                               "votes_per_example": 0, "routing_per_example": 0,
                               "capsules": null, "parameters_and_optimizer": 1, "batch": 1,
                               "training_peak": 1, "warning": null},
                }),
                _ => json!({
                    "name": "pytorch-reference", "network": "capsnet", "layers": layers,
                    "params": 42
                }),
            }
            .to_string()
        };
        // Each side's bench output with its call number as the training throughput: the JSON
        // before and after that number. The reference's kernels and ISA variables are the
        // shell's `$cap`, `$onednn`, `$aten_seen` and `$onednn_seen` (JSON values).
        let output = |side: &str| {
            let mut result = match side {
                "capsnet" => bench("fake", 1.0, 10.0),
                _ => {
                    let mut r = reference("fake", 1.0, 10.0);
                    r["machine"]["torch_cpu_capability"] = json!("@cap@");
                    r["machine"]["onednn_isa"] = json!("@onednn@");
                    r["machine"]["isa_environment"] = json!({
                        "ATEN_CPU_CAPABILITY": "@aten_seen@", "ONEDNN_MAX_CPU_ISA": "@onednn_seen@"
                    });
                    r
                }
            };
            result["train_images_per_sec"] = json!("N");
            result["train_ms_per_step_median"] = json!(1.0);
            let text = result
                .to_string()
                .replace("\"@cap@\"", "\"'\"$cap\"'\"")
                .replace("\"@onednn@\"", "\"'\"$onednn\"'\"")
                .replace("\"@aten_seen@\"", "'\"$aten_seen\"'")
                .replace("\"@onednn_seen@\"", "'\"$onednn_seen\"'");
            let (before, after) = text.split_once("\"N\"").unwrap();
            (before.to_string(), after.to_string())
        };
        let honours = if torch == FakeTorch::HonoursIsa {
            "[ \"$ATEN_CPU_CAPABILITY\" = avx2 ] && cap=AVX2"
        } else {
            ":"
        };
        let preflight_capability = if torch == FakeTorch::IgnoresIsaSilently {
            ""
        } else {
            "echo $cap;"
        };
        // `$1`/`$2`: the command for capsnet, the script and the command for python. `check`: a
        // shell test the arguments must pass.
        let fake = |name: &str, side: &str, command: &str, check: &str| {
            let path = dir.join(name);
            let (before, after) = output(side);
            let info = info(side);
            std::fs::write(
                &path,
                format!(
                    "#!/usr/bin/env bash
cap=AVX512; onednn='Intel AVX-512 with AVX512BW, AVX512VL, and AVX512DQ extensions'
{honours}
[ \"$ONEDNN_MAX_CPU_ISA\" = AVX2 ] && onednn='Intel AVX2'
aten_seen=null; onednn_seen=null
[ -n \"${{ATEN_CPU_CAPABILITY+set}}\" ] && aten_seen=\"\\\"$ATEN_CPU_CAPABILITY\\\"\"
[ -n \"${{ONEDNN_MAX_CPU_ISA+set}}\" ] && onednn_seen=\"\\\"$ONEDNN_MAX_CPU_ISA\\\"\"
if [ \"$1\" = -c ]; then echo 9.9.9; echo 3.0.0; {preflight_capability} exit 0; fi
{check} || exit 4
case \"{command}\" in
  info) echo '{info}' ;;
  bench) echo {side} >> '{calls}'; n=$(( $(wc -l < '{calls}') ))
         echo '{before}'$n'{after}' ;;
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
        if let Err(err) = run(parse_args(&args).unwrap()) {
            std::fs::remove_dir_all(&dir).unwrap();
            return Err(err);
        }
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
        Ok((log, serde_json::from_str(&json).unwrap(), md, stem))
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
                "isa",
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
        // The call numbers, as the f64 fields of the typed results.
        assert_eq!(report["capsnet"]["train_images_per_sec"], json!(1.0));
        assert_eq!(report["pytorch"]["train_images_per_sec"], json!(2.0));
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
    fn run_with_avx2_restricts_the_reference_and_names_the_record() {
        let (log, report, md, stem) = run_with_fakes("avx2", "1", &["--isa", "avx2"]);
        assert_eq!(log, ["capsnet", "pytorch"]);
        assert!(stem.ends_with("-b32-avx2"), "{stem}");
        assert_eq!(report["isa"], json!("avx2"));
        // What the fake torch read back: the variables reached it.
        let machine = &report["pytorch"]["machine"];
        assert_eq!(machine["torch_cpu_capability"], json!("AVX2"));
        assert_eq!(machine["onednn_isa"], json!("Intel AVX2"));
        assert_eq!(
            machine["isa_environment"],
            json!({"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"})
        );
        let pytorch = report["commands"]["pytorch"].as_str().unwrap();
        assert!(
            pytorch
                .starts_with("ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 OMP_NUM_THREADS="),
            "{pytorch}"
        );
        let ours = report["commands"]["capsnet"].as_str().unwrap();
        assert!(!ours.contains("ATEN_CPU_CAPABILITY"), "{ours}");
        assert!(md.contains(", `--isa avx2`\n"), "{md}");
        assert!(
            md.contains("PyTorch CPU capability: AVX2, oneDNN ISA: Intel AVX2"),
            "{md}"
        );

        // Native: the reference runs without either variable and picks AVX-512 here.
        let (_, report, md, stem) = run_with_fakes("native", "1", &[]);
        assert!(!stem.contains("avx2"), "{stem}");
        assert_eq!(report["isa"], json!("native"));
        let machine = &report["pytorch"]["machine"];
        assert_eq!(machine["torch_cpu_capability"], json!("AVX512"));
        assert_eq!(
            machine["isa_environment"],
            json!({"ATEN_CPU_CAPABILITY": null, "ONEDNN_MAX_CPU_ISA": null})
        );
        assert!(md.contains("- ISA mode: native (`--isa native`)"), "{md}");
        let pytorch = report["commands"]["pytorch"].as_str().unwrap();
        assert!(pytorch.starts_with("OMP_NUM_THREADS="), "{pytorch}");
    }

    #[cfg(unix)]
    #[test]
    fn run_with_avx2_refuses_a_torch_that_ignores_it() {
        // Seen in the preflight, before anything is built or timed.
        let err = try_run_with_fakes("ignores", "1", &["--isa", "avx2"], FakeTorch::IgnoresIsa)
            .unwrap_err()
            .to_string();
        assert!(err.contains("ATEN_CPU_CAPABILITY=avx2"), "{err}");
        assert!(err.contains("`AVX512`"), "{err}");
        // Seen in the bench result when the preflight cannot tell.
        let err = try_run_with_fakes(
            "ignores-silently",
            "1",
            &["--isa", "avx2"],
            FakeTorch::IgnoresIsaSilently,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("ATEN_CPU_CAPABILITY=avx2"), "{err}");
        assert!(err.contains("`AVX512`"), "{err}");
        // The same torch is fine natively.
        assert!(try_run_with_fakes("ignores-native", "1", &[], FakeTorch::IgnoresIsa).is_ok());
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

    fn committed() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/bench")
    }

    fn read(path: &Path) -> Report {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Every committed record, old ones included, reads as a [`Report`].
    #[test]
    fn committed_records_read_as_reports() {
        let mut seen = 0;
        for entry in std::fs::read_dir(committed()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let report = read(&path);
                assert!(report.results.rounds.len() != 1, "{}", path.display());
                seen += 1;
            }
        }
        assert!(seen > 3, "expected the committed bench records");
    }

    /// The committed records written since the report took its current form (the older ones
    /// predate the `vector ISA` line) render to their committed `.md`, byte for byte.
    #[test]
    fn committed_records_render_to_their_markdown() {
        for stem in ["vm-amd-epyc-b1", "vm-amd-epyc-b16"] {
            let path = committed().join(format!("{stem}.json"));
            let md = std::fs::read_to_string(path.with_extension("md")).unwrap();
            assert_eq!(render_markdown(&read(&path)), md, "{}", path.display());
        }
    }
}
