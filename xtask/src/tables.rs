//! `cargo xtask tables [--check]` and `cargo xtask collect`: results tables from run summaries.
//!
//! `results/tables.toml` lists the tables: for each, the folder of committed run records
//! (`results/raw/<table>/<job>/{summary.json,config.resolved.toml}` and, when the run wrote one,
//! its `metrics.jsonl` for the learning curves, copied from a sweep by `cargo xtask collect`),
//! the command that produced them, and rows that select runs by
//! resolved-config keys. Paper numbers live once, in `results/paper.toml`. Each row reports the
//! mean ± sample standard deviation over its runs (seeds) of the final-epoch test error — never
//! the best epoch — with n, epochs, backend and hardware.
//!
//! Paired comparisons: a table with `paired = { reference = "<row label>", by = ["seed"] }`
//! gets a column "Δ vs <reference> (paired)" beside the means. Each other row's runs are
//! matched one to one with the reference's by the values of the flattened resolved-config keys
//! `by`; the cell is the mean of the per-pair differences of test error (row − reference, in
//! percentage points) with a two-sided 95% Student-t interval (n − 1 degrees of freedom; none
//! for n = 1) and n pairs (`paired.rs`); the CSV gets `paired_with, paired_diff_mean,
//! paired_diff_lo, paired_diff_hi, paired_n`. A row may name its own partner instead
//! (`paired_with = "<row label>"`, e.g. the CNN at the same training-set size); then the
//! column reads "Δ vs the row named (paired)" and each cell names its partner. A row run
//! without a partner run, or two runs of one row with the same key, is an error naming the
//! row and the key; the reference may have runs the row lacks.
//!
//! `--check` also checks the numbers README.md and results/README.md quote from the tables
//! (`quotes.rs`).
//!
//! Reading and selecting run records is `runs.rs` (shared with the figures); the figures the
//! manifest also declares are drawn by `figures.rs` (final error against a config key) and
//! `curves.rs` (learning curves over training steps from `metrics.jsonl`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use toml::Value;

use crate::paired::pair_rows;
use crate::runs::{Run, Summary, check_finished, csv_field, matches, mean_std, read_runs};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    #[serde(default)]
    table: Vec<TableSpec>,
    #[serde(default)]
    figure: Vec<crate::figures::FigureSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableSpec {
    name: String,
    title: String,
    /// Folder of run records, relative to `results/`.
    raw: String,
    /// The commands that produced the runs.
    command: String,
    /// Where the runs ran, in words (e.g. "2-core AMD EPYC VM, CPU only").
    machine_note: Option<String>,
    /// Section of `results/paper.toml` with this table's paper numbers.
    paper: Option<String>,
    /// The evaluation set of the main error column: `test` (the default) or an extra set such as
    /// `validation` (a table choosing settings on a validation split shows no test error).
    set: Option<String>,
    /// Extra evaluation sets (e.g. `affine`) whose final error gets its own column.
    #[serde(default)]
    extra: Vec<String>,
    /// Cost columns from the run summaries, after the error columns.
    #[serde(default)]
    columns: Vec<Column>,
    /// Set for a table whose runs need hardware this project rarely has (Table 1 needs a GPU):
    /// a row without runs reads "not run yet" beside the paper's number, and while `raw` holds
    /// no runs at all the note says what is awaited. Without it, a row without runs is an error.
    awaiting: Option<String>,
    /// Paired differences of test error against a reference row (`reference`, or per row
    /// `paired_with`), the runs matched by the resolved-config keys `by` (the seed).
    paired: Option<PairedSpec>,
    row: Vec<RowSpec>,
}

/// `paired = { reference = "<row label>", by = ["seed"] }` in tables.toml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PairedSpec {
    /// The row every other row is paired with, unless a row names its own `paired_with`.
    reference: Option<String>,
    /// Flattened resolved-config keys whose values pair two runs (e.g. `["seed"]`).
    by: Vec<String>,
}

/// A cost column of a table (`columns = ["params", …]` in tables.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Column {
    /// Trainable parameters (the same in every run of a row).
    Params,
    /// Training GFLOP per image of the FLOP model (the same in every run of a row).
    TrainGflopPerImage,
    /// Training images per second, mean ± std over the row's runs.
    TrainImagesPerSec,
}

impl Column {
    fn header(self) -> &'static str {
        match self {
            Column::Params => "parameters",
            Column::TrainGflopPerImage => "train GFLOP / image",
            Column::TrainImagesPerSec => "train img/s",
        }
    }

    fn csv_header(self) -> &'static str {
        match self {
            Column::Params => ",params",
            Column::TrainGflopPerImage => ",train_gflop_per_image",
            Column::TrainImagesPerSec => ",train_images_per_sec_mean,train_images_per_sec_std",
        }
    }

    /// The Markdown cell and the CSV values of `runs`.
    fn cells(self, label: &str, runs: &[&Run]) -> Result<(String, String)> {
        let same = |values: Vec<f64>, what: &str| -> Result<f64> {
            if values.windows(2).any(|w| w[0] != w[1]) {
                bail!("row `{label}` mixes runs with different {what}: {values:?}");
            }
            Ok(values[0])
        };
        Ok(match self {
            Column::Params => {
                let values = runs.iter().map(|r| r.summary.params as f64).collect();
                let p = same(values, "parameter counts")? as u64;
                (capsnet_common::group_thousands(p), format!(",{p}"))
            }
            Column::TrainGflopPerImage => {
                let values = runs
                    .iter()
                    .map(|r| {
                        r.summary.train_gflop_per_image.with_context(|| {
                            format!(
                                "row `{label}`: run {} has no train_gflop_per_image in its summary",
                                r.name
                            )
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let g = same(values, "FLOP models")?;
                (format!("{g:.3}"), format!(",{g:.6}"))
            }
            Column::TrainImagesPerSec => {
                let values: Vec<f64> = runs
                    .iter()
                    .map(|r| r.summary.train_images_per_sec)
                    .collect();
                let (m, s) = mean_std(&values);
                match s {
                    Some(s) => (format!("{m:.0} ± {s:.0}"), format!(",{m:.2},{s:.2}")),
                    None => (format!("{m:.0}"), format!(",{m:.2},")),
                }
            }
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RowSpec {
    label: String,
    /// Dotted resolved-config keys and the values a run must have.
    #[serde(rename = "match")]
    matches: toml::Table,
    /// Key of the paper's number in the table's paper section.
    paper: Option<String>,
    /// The row this row is paired with (overrides the table's `paired.reference`).
    paired_with: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PaperNumber {
    mean: f64,
    std: Option<f64>,
}

/// `cargo xtask tables` arguments.
#[derive(Debug, clap::Args)]
pub struct TablesArgs {
    /// Check that the committed tables and figures are current instead of writing them.
    #[arg(long)]
    pub check: bool,
    /// The results folder (tables.toml, paper.toml, raw/, the outputs); default `results/`.
    /// Another folder renders tables from other records without touching the committed ones
    /// (e.g. a dry run's).
    #[arg(long, value_name = "DIR")]
    pub results: Option<PathBuf>,
}

/// `cargo xtask collect` arguments.
#[derive(Debug, clap::Args)]
pub struct CollectArgs {
    /// A sweep directory, or the .tar.gz of `capsnet launch --archive`.
    #[arg(value_name = "SWEEP_DIR|ARCHIVE.tar.gz")]
    pub sweep: PathBuf,
    /// Where the run records go (results/raw/<table>).
    #[arg(value_name = "RAW_DIR")]
    pub raw: PathBuf,
}

/// Runs `cargo xtask tables` in the repository `root`: writes every table and figure, or with
/// `check` fails unless the committed ones are current.
pub fn tables(root: &Path, check: bool, results: Option<&Path>) -> Result<()> {
    let committed = results.is_none();
    let results = results.map_or_else(|| root.join("results"), Path::to_path_buf);
    let outputs = render_all(&results)?;
    // The numbers README.md and results/README.md quote from the committed tables.
    let check_quotes = || -> Result<()> {
        if !committed {
            return Ok(());
        }
        let tables: Vec<(PathBuf, String)> = outputs
            .iter()
            .filter(|(path, _)| path.extension().is_some_and(|e| e == "md"))
            .map(|(path, bytes)| (path.clone(), String::from_utf8_lossy(bytes).into_owned()))
            .collect();
        crate::quotes::check_quotes(root, &tables)
    };
    if check {
        let stale: Vec<String> = outputs
            .iter()
            .filter(|(path, bytes)| std::fs::read(path).ok().as_deref() != Some(bytes.as_slice()))
            .map(|(path, _)| path.display().to_string())
            .collect();
        if !stale.is_empty() {
            bail!(
                "stale or missing tables or figures (run `cargo xtask tables` and commit): {}",
                stale.join(", ")
            );
        }
        eprintln!("{} table and figure files are up to date", outputs.len());
        check_quotes()?;
        eprintln!(
            "the numbers {} quote from the tables match them",
            crate::quotes::QUOTING_FILES.join(" and ")
        );
        return Ok(());
    }
    for (path, bytes) in &outputs {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    check_quotes()
}

/// Every table's `.md` and `.csv` and every figure's files, computed before anything is
/// written.
fn render_all(results: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let manifest_path = results.join("tables.toml");
    let manifest: Manifest = toml::from_str(
        &std::fs::read_to_string(&manifest_path)
            .with_context(|| format!("cannot read {}", manifest_path.display()))?,
    )
    .with_context(|| format!("{} is invalid", manifest_path.display()))?;
    let paper_path = results.join("paper.toml");
    let paper: BTreeMap<String, BTreeMap<String, Value>> = toml::from_str(
        &std::fs::read_to_string(&paper_path)
            .with_context(|| format!("cannot read {}", paper_path.display()))?,
    )
    .with_context(|| format!("{} is invalid", paper_path.display()))?;
    let mut outputs = Vec::new();
    for table in &manifest.table {
        let (md, csv) =
            render(results, table, &paper).with_context(|| format!("table `{}`", table.name))?;
        outputs.push((results.join(format!("{}.md", table.name)), md.into_bytes()));
        outputs.push((
            results.join(format!("{}.csv", table.name)),
            csv.into_bytes(),
        ));
    }
    for figure in &manifest.figure {
        let runs = read_runs(&results.join(&figure.raw))
            .with_context(|| format!("figure `{}`", figure.name))?;
        outputs.extend(
            crate::figures::render(results, figure, &runs)
                .with_context(|| format!("figure `{}`", figure.name))?,
        );
    }
    Ok(outputs)
}

fn render(
    results: &Path,
    table: &TableSpec,
    paper: &BTreeMap<String, BTreeMap<String, Value>>,
) -> Result<(String, String)> {
    let raw = results.join(&table.raw);
    let has_records = raw
        .read_dir()
        .is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.path().join("summary.json").is_file())));
    let runs = match &table.awaiting {
        Some(_) if !has_records => Vec::new(),
        _ => read_runs(&raw)?,
    };
    let paper_section = match &table.paper {
        Some(name) => Some(
            paper
                .get(name)
                .with_context(|| format!("results/paper.toml has no [{name}] section"))?,
        ),
        None => None,
    };
    let mut md = format!(
        "# {}\n\nGenerated by `cargo xtask tables` from `results/{}` (do not edit by hand).\n\n",
        table.title, table.raw
    );
    md += &format!("Produced by: `{}`\n\n", table.command);
    if let Some(note) = &table.machine_note {
        md += &format!("Machine: {note}\n\n");
    }
    if let Some(awaited) = &table.awaiting {
        if runs.is_empty() {
            md += &format!("**Not run yet:** {awaited}\n\n");
        } else if table
            .row
            .iter()
            .any(|r| !runs.iter().any(|run| matches(run, &r.matches)))
        {
            md += "Rows marked \"not run yet\" had no finished run in the records.\n\n";
        }
    }
    let main_set = table.set.as_deref().unwrap_or("test");
    if main_set != "test" && table.paired.is_some() {
        bail!(
            "table `{}`: paired differences are of test error; `set = \"{main_set}\"` cannot have them",
            table.name
        );
    }
    let capital = main_set[..1].to_uppercase() + &main_set[1..];
    md += &format!(
        "{capital} error (%) at the fixed final epoch of each run (never the best epoch); mean ± sample std over runs.\n\n"
    );
    let partners = partners(table)?;
    let paired_header = paired_header(table, &partners);
    if let (Some(paired), Some(header)) = (&table.paired, &paired_header) {
        md += &format!(
            "{header}: mean over pairs of runs of (row − {}) test error, in percentage points, paired by {}, 95% t-interval [low, high] over n pairs (none for n = 1).\n\n",
            if table.row.iter().any(|r| r.paired_with.is_some()) {
                "the row it is paired with"
            } else {
                "reference"
            },
            paired.by.join(", ")
        );
    }
    let paired_md = paired_header
        .as_ref()
        .map(|h| format!(" {h} |"))
        .unwrap_or_default();
    let paired_csv = if paired_header.is_some() {
        ",paired_with,paired_diff_mean,paired_diff_lo,paired_diff_hi,paired_n"
    } else {
        ""
    };
    let paired_cols = usize::from(paired_header.is_some());
    let extra_md: String = table
        .extra
        .iter()
        .map(|set| format!(" ours: {set} error % |"))
        .collect();
    let extra_csv: String = table
        .extra
        .iter()
        .map(|set| format!(",{set}_mean_error_pct,{set}_std_error_pct"))
        .collect();
    let columns_md: String = table
        .columns
        .iter()
        .map(|c| format!(" {} |", c.header()))
        .collect();
    let columns_csv: String = table.columns.iter().map(|c| c.csv_header()).collect();
    md += &format!(
        "| Method | ours: {main_set} error % |{paired_md}{extra_md}{columns_md} n | paper | epochs | steps | batch | train images | backend | hardware |\n"
    );
    md += &format!(
        "|---|---|{}---|---|---|---|---|---|---|---|\n",
        "---|".repeat(paired_cols + table.extra.len() + table.columns.len())
    );
    let mut csv = format!(
        "method,mean_error_pct,std_error_pct,n,paper_mean_pct,paper_std_pct,epochs,steps,batch_size,train_images,backend,hardware,runs{extra_csv}{columns_csv}{paired_csv}\n",
    );
    for (row, partner) in table.row.iter().zip(&partners) {
        let matched: Vec<&Run> = runs.iter().filter(|r| matches(r, &row.matches)).collect();
        if matched.is_empty() && table.awaiting.is_some() {
            let paper = paper_text(&paper_number(table, row, paper_section)?);
            md += &format!(
                "| {} | not run yet |{} 0 | {paper} | – | – | – | – | – | – |\n",
                row.label,
                " – |".repeat(paired_cols + table.extra.len() + table.columns.len())
            );
            let fields = csv.lines().next().map_or(0, |h| h.split(',').count());
            csv += &format!(
                "{},,,0,{}{}\n",
                csv_field(&row.label),
                paper_csv(&paper_number(table, row, paper_section)?),
                ",".repeat(fields - 6)
            );
            continue;
        }
        if matched.is_empty() {
            bail!(
                "row `{}` matches no run in {} (match: {})",
                row.label,
                raw.display(),
                row.matches
            );
        }
        let mut errors = Vec::new();
        for run in &matched {
            check_finished(run).with_context(|| format!("row `{}`", row.label))?;
            let s = &run.summary;
            let error = match main_set {
                "test" => s.final_test_error_pct,
                set => s.final_extra_accuracy.get(set).map(|a| 100.0 - a),
            };
            errors
                .push(error.with_context(|| format!("run {} has no {main_set} error", run.name))?);
        }
        let same = |f: &dyn Fn(&Summary) -> String, what: &str| -> Result<String> {
            let first = f(&matched[0].summary);
            if let Some(other) = matched.iter().find(|r| f(&r.summary) != first) {
                bail!(
                    "row `{}` mixes runs with different {what}: {} vs {}",
                    row.label,
                    first,
                    f(&other.summary)
                );
            }
            Ok(first)
        };
        let epochs = same(&|s| s.epochs.to_string(), "epochs")?;
        let steps = same(&|s| s.steps.to_string(), "steps")?;
        let batch = same(&|s| s.batch_size.to_string(), "batch sizes")?;
        let images = same(&|s| s.train_images.to_string(), "training sets")?;
        let backend = same(&|s| s.backend.clone(), "backends")?;
        let hardware = same(
            &|s| match &s.accelerator {
                Some(gpu) => format!("{} (driver {})", gpu.name, gpu.driver),
                None => format!("{} ({} threads)", s.machine.cpu, s.machine.threads),
            },
            "hardware",
        )?;
        let (mean, std) = mean_std(&errors);
        let paper_number = paper_number(table, row, paper_section)?;
        let ours = match std {
            Some(std) => format!("{mean:.2} ± {std:.2}"),
            None => format!("{mean:.2}"),
        };
        let paper_text = paper_text(&paper_number);
        let mut extra_cells = String::new();
        let mut extra_values = String::new();
        let mut paired_values = String::new();
        if let Some(paired) = &table.paired {
            let pair = match partner {
                Some(partner) => {
                    let partner_runs: Vec<&Run> = runs
                        .iter()
                        .filter(|r| matches(r, &partner.matches))
                        .collect();
                    if partner_runs.is_empty() && table.awaiting.is_some() {
                        None
                    } else {
                        for run in &partner_runs {
                            check_finished(run)
                                .with_context(|| format!("row `{}`", partner.label))?;
                        }
                        Some((
                            partner,
                            pair_rows(
                                &row.label,
                                &matched,
                                &partner.label,
                                &partner_runs,
                                &paired.by,
                            )?,
                        ))
                    }
                }
                None => None,
            };
            match pair {
                Some((partner, diff)) => {
                    let versus = if paired_header.as_deref() == Some(PER_ROW_HEADER) {
                        format!(" vs {}", partner.label)
                    } else {
                        String::new()
                    };
                    extra_cells += &format!(" {}{versus} |", diff.cell());
                    paired_values = format!(",{},{}", csv_field(&partner.label), diff.csv());
                }
                None => {
                    extra_cells += " – |";
                    paired_values = ",,,,,".into();
                }
            }
        }
        for set in &table.extra {
            let values: Vec<f64> = matched
                .iter()
                .filter_map(|r| r.summary.final_extra_accuracy.get(set))
                .map(|a| 100.0 - a)
                .collect();
            if values.is_empty() {
                extra_cells += " – |";
                extra_values += ",,";
                continue;
            }
            if values.len() != matched.len() {
                bail!(
                    "row `{}`: only {} of {} runs were evaluated on `{set}`",
                    row.label,
                    values.len(),
                    matched.len()
                );
            }
            let (m, s) = mean_std(&values);
            extra_cells += &match s {
                Some(s) => format!(" {m:.2} ± {s:.2} |"),
                None => format!(" {m:.2} |"),
            };
            extra_values += &format!(
                ",{m:.4},{}",
                s.map(|s| format!("{s:.4}")).unwrap_or_default()
            );
        }
        for column in &table.columns {
            let (cell, values) = column.cells(&row.label, &matched)?;
            extra_cells += &format!(" {cell} |");
            extra_values += &values;
        }
        md += &format!(
            "| {} | {} |{extra_cells} {} | {} | {} | {} | {} | {} | {} | {} |\n",
            row.label,
            ours,
            errors.len(),
            paper_text,
            epochs,
            steps,
            batch,
            images,
            backend,
            hardware
        );
        let names: Vec<&str> = matched.iter().map(|r| r.name.as_str()).collect();
        csv += &format!(
            "{},{:.4},{},{},{},{},{},{},{},{},{},{}{extra_values}{paired_values}\n",
            csv_field(&row.label),
            mean,
            std.map(|s| format!("{s:.4}")).unwrap_or_default(),
            errors.len(),
            paper_csv(&paper_number),
            epochs,
            steps,
            batch,
            images,
            backend,
            csv_field(&hardware),
            csv_field(&names.join(" ")),
        );
    }
    Ok((md, csv))
}

/// The Δ column's header when each row names its own partner (the cell names it).
const PER_ROW_HEADER: &str = "Δ vs the row named (paired)";

/// Each row's partner for the paired difference (None for a reference row, or without
/// `paired`); a `paired_with` without `paired`, or a partner that is no row, is an error.
fn partners(table: &TableSpec) -> Result<Vec<Option<&RowSpec>>> {
    let find = |label: &str| {
        table
            .row
            .iter()
            .find(|r| r.label == label)
            .with_context(|| format!("paired: no row is labelled `{label}`"))
    };
    let reference = match table.paired.as_ref().and_then(|p| p.reference.as_deref()) {
        Some(label) => Some(find(label)?),
        None => None,
    };
    if let Some(paired) = &table.paired
        && paired.by.is_empty()
    {
        bail!("paired: `by` names no key to pair runs by");
    }
    table
        .row
        .iter()
        .map(|row| {
            if row.paired_with.is_some() && table.paired.is_none() {
                bail!(
                    "row `{}` has `paired_with` but the table has no `paired = {{ by = [...] }}`",
                    row.label
                );
            }
            let partner = match &row.paired_with {
                Some(label) => Some(find(label)?),
                None => reference,
            };
            Ok(partner.filter(|p| p.label != row.label))
        })
        .collect()
}

/// The Δ column's header: `Δ vs <reference> (paired)` when every paired row has the same
/// partner, else [`PER_ROW_HEADER`]; None without pairing.
fn paired_header(table: &TableSpec, partners: &[Option<&RowSpec>]) -> Option<String> {
    table.paired.as_ref()?;
    let mut labels: Vec<&str> = partners
        .iter()
        .flatten()
        .map(|p| p.label.as_str())
        .collect();
    labels.dedup();
    Some(match labels.as_slice() {
        [one] => format!("Δ vs {one} (paired)"),
        _ => PER_ROW_HEADER.to_string(),
    })
}

/// The paper's number a row names, from the table's section of paper.toml.
fn paper_number(
    table: &TableSpec,
    row: &RowSpec,
    section: Option<&BTreeMap<String, Value>>,
) -> Result<Option<PaperNumber>> {
    Ok(match (&row.paper, section) {
        (Some(key), Some(section)) => Some(
            section
                .get(key)
                .with_context(|| {
                    format!(
                        "paper section `{}` has no `{key}`",
                        table.paper.as_deref().unwrap_or("")
                    )
                })?
                .clone()
                .try_into()
                .with_context(|| {
                    format!("paper number `{key}` needs `mean` (and optional `std`)")
                })?,
        ),
        (Some(key), None) => bail!(
            "row `{}` names paper number `{key}` but the table has no `paper` section",
            row.label
        ),
        _ => None,
    })
}

/// The paper's number as a Markdown cell (`–` without one).
fn paper_text(number: &Option<PaperNumber>) -> String {
    number
        .as_ref()
        .map(|p| match p.std {
            Some(s) => format!("{} ± {}", p.mean, s),
            None => p.mean.to_string(),
        })
        .unwrap_or_else(|| "–".into())
}

/// The paper's mean and std as two CSV fields.
fn paper_csv(number: &Option<PaperNumber>) -> String {
    format!(
        "{},{}",
        number
            .as_ref()
            .map(|p| p.mean.to_string())
            .unwrap_or_default(),
        number
            .as_ref()
            .and_then(|p| p.std)
            .map(|s| s.to_string())
            .unwrap_or_default()
    )
}

/// `cargo xtask collect SWEEP_DIR|ARCHIVE RAW_DIR`: copies each finished run's `summary.json`,
/// `config.resolved.toml` and, when present, `metrics.jsonl` (the learning curves' records:
/// JSON lines every `log_every_steps` and per evaluation) into `RAW_DIR/<job>/` (small files,
/// meant to be committed).
pub fn collect(sweep: &Path, raw: &Path) -> Result<()> {
    // An archive from `capsnet launch --archive` (e.g. back from a GPU machine): unpacked
    // beside it, then collected like a sweep directory.
    let unpacked;
    let sweep = if sweep.is_file() {
        let name = sweep
            .file_name()
            .and_then(|n| n.to_str())
            .context("archive name")?;
        let stem = name.strip_suffix(".tar.gz").with_context(|| {
            format!(
                "{}: expected a directory or a .tar.gz from `capsnet launch --archive`",
                sweep.display()
            )
        })?;
        unpacked = sweep.with_file_name(stem);
        std::fs::create_dir_all(&unpacked)
            .with_context(|| format!("cannot create {}", unpacked.display()))?;
        let status = std::process::Command::new("tar")
            .arg("-xzf")
            .arg(sweep)
            .arg("-C")
            .arg(&unpacked)
            .status()
            .context("cannot run tar to unpack the archive")?;
        if !status.success() {
            bail!("tar could not unpack {} ({status})", sweep.display());
        }
        eprintln!("unpacked {} into {}", sweep.display(), unpacked.display());
        unpacked.as_path()
    } else {
        sweep
    };
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(sweep)
        .with_context(|| format!("cannot read {}", sweep.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("summary.json").is_file())
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        bail!(
            "no finished runs (with summary.json) in {}",
            sweep.display()
        );
    }
    for dir in &dirs {
        let name = dir.file_name().context("run directory name")?;
        let target = raw.join(name);
        std::fs::create_dir_all(&target)?;
        for file in ["summary.json", "config.resolved.toml"] {
            std::fs::copy(dir.join(file), target.join(file))
                .with_context(|| format!("cannot copy {}", dir.join(file).display()))?;
        }
        let metrics = dir.join("metrics.jsonl");
        if metrics.is_file() {
            std::fs::copy(&metrics, target.join("metrics.jsonl"))
                .with_context(|| format!("cannot copy {}", metrics.display()))?;
        }
    }
    eprintln!("collected {} runs into {}", dirs.len(), raw.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `collect` takes a sweep directory or the `.tar.gz` of `capsnet launch --archive`.
    #[test]
    fn collect_reads_a_directory_or_a_launch_archive() {
        let tmp = std::env::temp_dir().join(format!("xtask-collect-{}", std::process::id()));
        let out = tmp.join("out");
        for run in ["a", "b"] {
            std::fs::create_dir_all(out.join(run)).unwrap();
            std::fs::write(out.join(run).join("summary.json"), "{}").unwrap();
            std::fs::write(out.join(run).join("config.resolved.toml"), "").unwrap();
        }
        // Run a logged metrics; run b did not (older runs): both are collected.
        let metrics = "{\"kind\":\"train\",\"step\":50,\"loss\":0.5}\n";
        std::fs::write(out.join("a/metrics.jsonl"), metrics).unwrap();
        std::fs::create_dir_all(out.join("unfinished")).unwrap();
        let archive = tmp.join("results.tar.gz");
        let status = std::process::Command::new("tar")
            .arg("-czf")
            .arg(&archive)
            .arg("-C")
            .arg(&out)
            .args(["a", "b", "unfinished"])
            .status()
            .unwrap();
        assert!(status.success());
        let raw = tmp.join("raw");
        collect(&archive, &raw).unwrap();
        assert!(
            raw.join("a/summary.json").is_file() && raw.join("b/config.resolved.toml").is_file()
        );
        assert!(!raw.join("unfinished").exists());
        assert_eq!(
            std::fs::read_to_string(raw.join("a/metrics.jsonl")).unwrap(),
            metrics
        );
        assert!(!raw.join("b/metrics.jsonl").exists());
        let raw2 = tmp.join("raw2");
        collect(&out, &raw2).unwrap();
        assert!(raw2.join("b/summary.json").is_file());
        assert!(raw2.join("a/metrics.jsonl").is_file());
        let text = tmp.join("notes.txt");
        std::fs::write(&text, "x").unwrap();
        let err = collect(&text, &raw).unwrap_err().to_string();
        assert!(err.contains(".tar.gz"), "{err}");
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    fn write_run(raw: &Path, name: &str, error: f64, iterations: i64, completed: bool) {
        let dir = raw.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let summary = crate::summary_json(serde_json::json!({
            "completed": completed, "epochs": 2, "epochs_completed": if completed { 2 } else { 1 },
            "final_eval_epoch": if completed { 2 } else { 1 }, "final_test_error_pct": error,
            "batch_size": 64, "steps": 100, "train_images": 3200, "backend": "flex",
            "machine": { "hostname": "test", "cpu": "Test CPU", "threads": 2, "os": "linux" }
        }));
        std::fs::write(dir.join("summary.json"), summary.to_string()).unwrap();
        std::fs::write(
            dir.join("config.resolved.toml"),
            format!("arch = \"capsnet\"\n[model.routing]\niterations = {iterations}\n"),
        )
        .unwrap();
    }

    /// A finished run (see `write_run`) whose summary also has `extra` accuracies.
    fn write_run_with_extra(raw: &Path, name: &str, iterations: i64, extra: serde_json::Value) {
        write_run(raw, name, 1.0, iterations, true);
        let path = raw.join(name).join("summary.json");
        let mut summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        summary["final_extra_accuracy"] = extra;
        std::fs::write(&path, summary.to_string()).unwrap();
    }

    /// Three runs at routing 1 (errors 1, 2, 3: mean 2, std 1) and one at routing 3 (0.5).
    fn write_four_runs(raw: &Path) {
        write_run(raw, "a", 1.0, 1, true);
        write_run(raw, "b", 2.0, 1, true);
        write_run(raw, "c", 3.0, 1, true);
        write_run(raw, "d", 0.5, 3, true);
    }

    fn setup(tmp: &Path) -> PathBuf {
        let results = tmp.join("results");
        std::fs::create_dir_all(&results).unwrap();
        std::fs::write(
            results.join("tables.toml"),
            r#"
[[table]]
name = "t"
title = "Test table"
raw = "raw/t"
command = "cargo xtask sweep x.toml"
paper = "t"
[[table.row]]
label = "r1"
match = { "model.routing.iterations" = 1 }
paper = "r1"
[[table.row]]
label = "r3"
match = { model = { routing = { iterations = 3 } } }
"#,
        )
        .unwrap();
        std::fs::write(
            results.join("paper.toml"),
            "[t]\nr1 = { mean = 0.34, std = 0.032 }\n",
        )
        .unwrap();
        results
    }

    #[test]
    fn mean_std_over_seeds_with_paper_numbers() {
        let tmp = tempfile_dir();
        let results = setup(&tmp);
        let raw = results.join("raw/t");
        write_four_runs(&raw);
        let out = render_all(&results).unwrap();
        let md = std::str::from_utf8(&out[0].1).unwrap();
        assert!(
            md.contains("| r1 | 2.00 ± 1.00 | 3 | 0.34 ± 0.032 | 2 |"),
            "{md}"
        );
        assert!(md.contains("| r3 | 0.50 | 1 | – |"), "{md}");
        let csv = std::str::from_utf8(&out[1].1).unwrap();
        assert!(
            csv.contains(
                "r1,2.0000,1.0000,3,0.34,0.032,2,100,64,3200,flex,Test CPU (2 threads),a b c"
            ),
            "{csv}"
        );
    }

    /// A table awaiting hardware renders without records ("not run yet" beside the paper's
    /// numbers), then fills the rows that have runs and marks the others; a GPU run's hardware
    /// is its accelerator.
    #[test]
    fn awaiting_tables_render_before_and_between_their_runs() {
        let tmp = tempfile_dir();
        let results = setup(&tmp);
        let manifest = std::fs::read_to_string(results.join("tables.toml")).unwrap();
        std::fs::write(
            results.join("tables.toml"),
            manifest.replace("paper = \"t\"\n", "paper = \"t\"\nawaiting = \"a GPU\"\n"),
        )
        .unwrap();
        let out = render_all(&results).unwrap();
        let md = std::str::from_utf8(&out[0].1).unwrap();
        assert!(md.contains("**Not run yet:** a GPU"), "{md}");
        assert!(
            md.contains("| r1 | not run yet | 0 | 0.34 ± 0.032 | – |"),
            "{md}"
        );
        assert!(md.contains("| r3 | not run yet | 0 | – |"), "{md}");
        let csv = std::str::from_utf8(&out[1].1).unwrap();
        let fields = |line: &str| line.split(',').count();
        let lines: Vec<&str> = csv.lines().collect();
        assert!(lines[1].starts_with("r1,,,0,0.34,0.032,"), "{csv}");
        assert!(lines.iter().all(|l| fields(l) == fields(lines[0])), "{csv}");

        let raw = results.join("raw/t");
        write_run(&raw, "a", 1.0, 1, true);
        let path = raw.join("a/summary.json");
        let mut summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        summary["accelerator"] = serde_json::json!({
            "name": "NVIDIA H100", "driver": "580.65", "cuda_driver_api": "13.0",
            "memory_mib": 81559, "libtorch": "2.11.0", "tf32": "off"
        });
        std::fs::write(&path, summary.to_string()).unwrap();
        let out = render_all(&results).unwrap();
        let md = std::str::from_utf8(&out[0].1).unwrap();
        assert!(!md.contains("**Not run yet:**"), "{md}");
        assert!(md.contains("had no finished run"), "{md}");
        assert!(md.contains("| r1 | 1.00 | 1 | 0.34 ± 0.032 | 2 |"), "{md}");
        assert!(md.contains("NVIDIA H100 (driver 580.65)"), "{md}");
        assert!(md.contains("| r3 | not run yet | 0 |"), "{md}");
    }

    #[test]
    fn extra_sets_get_their_own_error_column() {
        let tmp = tempfile_dir();
        let results = setup(&tmp);
        let manifest = std::fs::read_to_string(results.join("tables.toml")).unwrap();
        std::fs::write(
            results.join("tables.toml"),
            manifest.replace(
                "paper = \"t\"\n[[",
                "paper = \"t\"\nextra = [\"affine\"]\n[[",
            ),
        )
        .unwrap();
        let raw = results.join("raw/t");
        for (name, accuracy) in [("a", 70.0), ("b", 80.0)] {
            write_run_with_extra(&raw, name, 1, serde_json::json!({ "affine": accuracy }));
        }
        write_run(&raw, "d", 0.5, 3, true);
        let out = render_all(&results).unwrap();
        let md = std::str::from_utf8(&out[0].1).unwrap();
        assert!(
            md.contains("| Method | ours: test error % | ours: affine error % | n |"),
            "{md}"
        );
        assert!(
            md.contains("| r1 | 1.00 ± 0.00 | 25.00 ± 7.07 | 2 |"),
            "{md}"
        );
        assert!(md.contains("| r3 | 0.50 | – | 1 |"), "{md}");
        let csv = std::str::from_utf8(&out[1].1).unwrap();
        assert!(
            csv.lines()
                .next()
                .unwrap()
                .ends_with(",runs,affine_mean_error_pct,affine_std_error_pct"),
            "{csv}"
        );
        assert!(csv.contains(",a b,25.0000,7.0711"), "{csv}");
        // A row whose runs were not all evaluated on the set is an error.
        write_run(&raw, "c", 1.0, 1, true);
        let err = format!("{:#}", render_all(&results).unwrap_err());
        assert!(
            err.contains("only 2 of 3 runs were evaluated on `affine`"),
            "{err}"
        );
    }

    #[test]
    fn a_table_can_report_a_validation_set_instead_of_the_test_set() {
        let tmp = tempfile_dir();
        let results = setup(&tmp);
        let manifest = std::fs::read_to_string(results.join("tables.toml")).unwrap();
        std::fs::write(
            results.join("tables.toml"),
            manifest.replace(
                "paper = \"t\"\n[[",
                "paper = \"t\"\nset = \"validation\"\n[[",
            ),
        )
        .unwrap();
        let raw = results.join("raw/t");
        for (name, accuracy, iterations) in [("a", 90.0, 1), ("b", 80.0, 1), ("c", 75.0, 3)] {
            write_run_with_extra(
                &raw,
                name,
                iterations,
                serde_json::json!({ "validation": accuracy }),
            );
        }
        let out = render_all(&results).unwrap();
        let md = std::str::from_utf8(&out[0].1).unwrap();
        assert!(
            md.contains("Validation error (%) at the fixed final epoch"),
            "{md}"
        );
        assert!(
            md.contains("| Method | ours: validation error % | n |"),
            "{md}"
        );
        assert!(md.contains("| r1 | 15.00 ± 7.07 | 2 |"), "{md}");
        assert!(md.contains("| r3 | 25.00 | 1 |"), "{md}");
        assert!(!md.contains("| 1.00"), "no test error shown: {md}");
        // A run without the set is an error naming it.
        write_run(&raw, "d", 1.0, 3, true);
        let err = format!("{:#}", render_all(&results).unwrap_err());
        assert!(err.contains("has no validation error"), "{err}");
    }

    #[test]
    fn cost_columns_report_parameters_flops_and_speed() {
        let tmp = tempfile_dir();
        let results = setup(&tmp);
        let manifest = std::fs::read_to_string(results.join("tables.toml")).unwrap();
        std::fs::write(
            results.join("tables.toml"),
            manifest.replace(
                "paper = \"t\"\n[[",
                "paper = \"t\"\ncolumns = [\"params\", \"train_gflop_per_image\", \"train_images_per_sec\"]\n[[",
            ),
        )
        .unwrap();
        let raw = results.join("raw/t");
        for (name, iterations, params, speed) in [
            ("a", 1, 2_117_072u64, 300.0),
            ("b", 1, 2_117_072, 320.0),
            ("d", 3, 2_117_072, 250.0),
        ] {
            write_run(&raw, name, 1.0, iterations, true);
            let path = raw.join(name).join("summary.json");
            let mut summary: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            summary["params"] = serde_json::json!(params);
            summary["train_gflop_per_image"] = serde_json::json!(0.25);
            summary["train_images_per_sec"] = serde_json::json!(speed);
            std::fs::write(&path, summary.to_string()).unwrap();
        }
        let out = render_all(&results).unwrap();
        let md = std::str::from_utf8(&out[0].1).unwrap();
        assert!(
            md.contains(
                "| ours: test error % | parameters | train GFLOP / image | train img/s | n |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| r1 | 1.00 ± 0.00 | 2,117,072 | 0.250 | 310 ± 14 | 2 |"),
            "{md}"
        );
        assert!(
            md.contains("| r3 | 1.00 | 2,117,072 | 0.250 | 250 | 1 |"),
            "{md}"
        );
        let csv = std::str::from_utf8(&out[1].1).unwrap();
        assert!(
            csv.lines().next().unwrap().ends_with(
                ",runs,params,train_gflop_per_image,train_images_per_sec_mean,train_images_per_sec_std"
            ),
            "{csv}"
        );
        assert!(csv.contains(",a b,2117072,0.250000,310.00,14.14"), "{csv}");
        // Runs of one row with different parameter counts are not one method.
        let path = raw.join("b/summary.json");
        let mut summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        summary["params"] = serde_json::json!(5);
        std::fs::write(&path, summary.to_string()).unwrap();
        let err = format!("{:#}", render_all(&results).unwrap_err());
        assert!(err.contains("different parameter counts"), "{err}");
    }

    #[test]
    fn missing_or_unfinished_runs_are_errors() {
        let tmp = tempfile_dir();
        let results = setup(&tmp);
        let raw = results.join("raw/t");
        write_run(&raw, "a", 1.0, 1, true);
        let err = format!("{:#}", render_all(&results).unwrap_err());
        assert!(err.contains("row `r3` matches no run"), "{err}");
        write_run(&raw, "d", 0.5, 3, false);
        let err = format!("{:#}", render_all(&results).unwrap_err());
        assert!(err.contains("did not finish"), "{err}");
    }

    /// A run evaluated every N steps has its last evaluation at the step that ends its last
    /// epoch, numbered with the epochs completed before it: finished when `metrics.jsonl`
    /// shows the test set evaluated at the run's last step, not otherwise.
    #[test]
    fn a_run_evaluated_at_its_last_step_is_finished() {
        let tmp = tempfile_dir();
        let results = setup(&tmp);
        let raw = results.join("raw/t");
        write_run(&raw, "a", 1.0, 1, true);
        write_run(&raw, "b", 0.5, 3, true);
        let summary_path = raw.join("b/summary.json");
        let mut summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&summary_path).unwrap()).unwrap();
        summary["final_eval_epoch"] = serde_json::json!(1);
        std::fs::write(&summary_path, summary.to_string()).unwrap();
        let err = format!("{:#}", render_all(&results).unwrap_err());
        assert!(err.contains("run b was not evaluated at the end"), "{err}");
        let metrics = |last_step: u64| {
            format!(
                "{{\"kind\":\"eval\",\"epoch\":1,\"step\":50,\"test_error_pct\":2.0}}\n\
                 {{\"kind\":\"eval\",\"epoch\":1,\"step\":{last_step},\"test_error_pct\":0.5}}\n\
                 {{\"kind\":\"eval\",\"set\":\"train\",\"epoch\":1,\"step\":100,\"test_error_pct\":0.1}}\n"
            )
        };
        // The train set's record at step 100 does not count: the test set's last is at 99.
        std::fs::write(raw.join("b/metrics.jsonl"), metrics(99)).unwrap();
        let err = format!("{:#}", render_all(&results).unwrap_err());
        assert!(err.contains("run b was not evaluated at the end"), "{err}");
        std::fs::write(raw.join("b/metrics.jsonl"), metrics(100)).unwrap();
        let out = render_all(&results).unwrap();
        let md = std::str::from_utf8(&out[0].1).unwrap();
        assert!(md.contains("| r3 | 0.50 |"), "{md}");
    }

    #[test]
    fn check_detects_stale_tables_and_nothing_is_half_written() {
        let tmp = tempfile_dir();
        let results = setup(&tmp);
        let raw = results.join("raw/t");
        write_run(&raw, "a", 1.0, 1, true);
        // Row r3 has no runs: nothing may be written.
        assert!(tables(&tmp, false, None).is_err());
        assert!(!results.join("t.md").exists());
        write_run(&raw, "d", 0.5, 3, true);
        assert!(tables(&tmp, true, None).is_err());
        tables(&tmp, false, None).unwrap();
        tables(&tmp, true, None).unwrap();
        write_run(&raw, "e", 0.7, 3, true);
        let err = format!("{:#}", tables(&tmp, true, None).unwrap_err());
        assert!(err.contains("stale"), "{err}");
    }

    #[test]
    fn figures_plot_mean_and_std_per_x_and_are_checked() {
        let tmp = tempfile_dir();
        let results = setup(&tmp);
        let manifest = std::fs::read_to_string(results.join("tables.toml")).unwrap();
        let figure = r#"
[[figure]]
name = "f"
title = "Error vs iterations"
raw = "raw/t"
x = "model.routing.iterations"
x_label = "routing iterations"
y_label = "error (%)"
log_y = true
[[figure.series]]
label = "CapsNet test"
match = { arch = "capsnet" }
"#;
        std::fs::write(results.join("tables.toml"), format!("{manifest}{figure}")).unwrap();
        let raw = results.join("raw/t");
        write_four_runs(&raw);
        let out = render_all(&results).unwrap();
        let file = |name: &str| {
            out.iter()
                .find(|(p, _)| p.ends_with(name))
                .map(|(_, b)| b.clone())
                .unwrap_or_else(|| panic!("no {name}"))
        };
        let csv = String::from_utf8(file("figures/f.csv")).unwrap();
        assert_eq!(
            csv,
            "series,set,x,n,mean_error_pct,std_error_pct,runs\n\
             CapsNet test,test,1,3,2.0000,1.0000,a b c\n\
             CapsNet test,test,3,1,0.5000,,d\n"
        );
        let svg = String::from_utf8(file("figures/f.svg")).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("Error vs iterations"),
            "{svg}"
        );
        assert!(
            svg.contains("CapsNet test (mean ± std and each run, n = 3)"),
            "{svg}"
        );
        assert!(svg.contains("<polygon"), "the std band is drawn: {svg}");
        // Each of the 4 runs as its own point, besides the 2 means.
        assert!(svg.matches("<circle").count() >= 6, "{svg}");
        let png = file("figures/f.png");
        let mut reader = png::Decoder::new(std::io::Cursor::new(&png))
            .read_info()
            .unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        assert_eq!((info.width, info.height), (800, 520));
        let drawn = pixels.chunks(3).filter(|p| p != &[255, 255, 255]).count();
        assert!(drawn > 5_000, "only {drawn} non-white pixels");
        // Same records, same bytes; a new run makes the figure stale.
        assert_eq!(render_all(&results).unwrap(), out);
        tables(&tmp, false, None).unwrap();
        tables(&tmp, true, None).unwrap();
        std::fs::write(results.join("figures/f.png"), b"not the figure").unwrap();
        let err = format!("{:#}", tables(&tmp, true, None).unwrap_err());
        assert!(err.contains("figures/f.png"), "{err}");
        // A series on an evaluation set the runs lack, and a non-numeric x, are errors.
        let bad_set = format!("{manifest}{figure}set = \"train\"\n");
        std::fs::write(results.join("tables.toml"), bad_set).unwrap();
        let err = format!("{:#}", render_all(&results).unwrap_err());
        assert!(err.contains("was not evaluated on `train`"), "{err}");
        let bad_x = format!(
            "{manifest}{}",
            figure.replace("model.routing.iterations", "arch")
        );
        std::fs::write(results.join("tables.toml"), bad_x).unwrap();
        let err = format!("{:#}", render_all(&results).unwrap_err());
        assert!(err.contains("not a number"), "{err}");
    }

    /// `metrics.jsonl` of run `name`: `train` records (step, margin loss) and `eval` records
    /// (step, test error).
    fn write_metrics(raw: &Path, name: &str, train: &[(u64, f64)], eval: &[(u64, f64)]) {
        let mut lines = String::new();
        for (step, margin) in train {
            lines += &format!(
                "{{\"kind\":\"train\",\"epoch\":1,\"step\":{step},\"loss\":1.0,\"margin_loss\":{margin},\"accuracy\":50.0}}\n"
            );
        }
        for (step, error) in eval {
            lines += &format!(
                "{{\"kind\":\"eval\",\"epoch\":1,\"step\":{step},\"test_loss\":0.1,\"test_error_pct\":{error}}}\n"
            );
            // An extra set's evaluation at the same step is not the test set's.
            lines += &format!(
                "{{\"kind\":\"eval\",\"set\":\"affine\",\"epoch\":1,\"step\":{step},\"test_error_pct\":50.0}}\n"
            );
        }
        std::fs::write(raw.join(name).join("metrics.jsonl"), lines).unwrap();
    }

    /// Learning curves: each run's values, the mean at the steps all runs of a series share,
    /// and errors that name the figure and the key.
    #[test]
    fn curve_figures_draw_each_run_and_the_mean_over_steps() {
        let tmp = tempfile_dir();
        let results = setup(&tmp);
        let manifest = std::fs::read_to_string(results.join("tables.toml")).unwrap();
        let figure = r#"
[[figure]]
name = "c"
title = "Margin loss over steps"
raw = "raw/t"
curve = { kind = "train", value = "margin_loss" }
x_label = "step"
y_label = "margin loss"
log_y = true
[[figure.series]]
label = "r1"
match = { "model.routing.iterations" = 1 }
[[figure.series]]
label = "r3"
match = { "model.routing.iterations" = 3 }
"#;
        let write_manifest = |figure: &str| {
            std::fs::write(results.join("tables.toml"), format!("{manifest}{figure}")).unwrap()
        };
        write_manifest(figure);
        let raw = results.join("raw/t");
        write_four_runs(&raw);
        // b logged fewer steps; c logged step 100 twice (a resumed run): the last one counts.
        write_metrics(
            &raw,
            "a",
            &[(50, 0.4), (100, 0.2), (150, 0.1)],
            &[(100, 2.0)],
        );
        write_metrics(&raw, "b", &[(50, 0.6), (100, 0.4)], &[(100, 3.0)]);
        write_metrics(
            &raw,
            "c",
            &[(50, 0.2), (100, 9.0), (100, 0.3), (150, 0.2)],
            &[(100, 1.0)],
        );
        write_metrics(&raw, "d", &[(50, 0.5), (100, 0.25)], &[(100, 0.5)]);
        let out = render_all(&results).unwrap();
        let file = |out: &[(PathBuf, Vec<u8>)], name: &str| {
            out.iter()
                .find(|(p, _)| p.ends_with(name))
                .map(|(_, b)| b.clone())
                .unwrap_or_else(|| panic!("no {name}"))
        };
        let csv = String::from_utf8(file(&out, "figures/c.csv")).unwrap();
        assert_eq!(
            csv,
            "series,step,run,margin_loss\n\
             r1,50,a,0.400000\n\
             r1,50,b,0.600000\n\
             r1,50,c,0.200000\n\
             r1,50,mean,0.400000\n\
             r1,100,a,0.200000\n\
             r1,100,b,0.400000\n\
             r1,100,c,0.300000\n\
             r1,100,mean,0.300000\n\
             r1,150,a,0.100000\n\
             r1,150,c,0.200000\n\
             r3,50,d,0.500000\n\
             r3,50,mean,0.500000\n\
             r3,100,d,0.250000\n\
             r3,100,mean,0.250000\n"
        );
        let svg = String::from_utf8(file(&out, "figures/c.svg")).unwrap();
        assert!(svg.contains("Margin loss over steps"), "{svg}");
        assert!(svg.contains("r1 (3 runs thin, their mean thick)"), "{svg}");
        assert!(svg.contains("r3 (1 runs thin, their mean thick)"), "{svg}");
        // 4 runs as thin lines, and 2 means as thick ones (and their legend samples).
        assert_eq!(
            svg.matches(r##"opacity="0.45" stroke="#1F77B4" stroke-width="1""##)
                .count(),
            3,
            "{svg}"
        );
        assert_eq!(
            svg.matches(r##"opacity="0.45" stroke="#D62728" stroke-width="1""##)
                .count(),
            1,
            "{svg}"
        );
        assert_eq!(svg.matches(r#"stroke-width="3""#).count(), 4, "{svg}");
        let png = file(&out, "figures/c.png");
        let mut reader = png::Decoder::new(std::io::Cursor::new(&png))
            .read_info()
            .unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        assert_eq!((info.width, info.height), (800, 520));
        // Same records, same bytes; --check sees the curves.
        assert_eq!(render_all(&results).unwrap(), out);
        tables(&tmp, false, None).unwrap();
        tables(&tmp, true, None).unwrap();
        write_metrics(&raw, "d", &[(50, 0.5), (100, 0.2)], &[(100, 0.5)]);
        let err = format!("{:#}", tables(&tmp, true, None).unwrap_err());
        assert!(err.contains("figures/c.csv"), "{err}");

        // The test set's evaluations, not the extra set's logged at the same steps.
        write_manifest(&figure.replace(
            "kind = \"train\", value = \"margin_loss\"",
            "kind = \"eval\", value = \"test_error_pct\"",
        ));
        let csv = String::from_utf8(file(&render_all(&results).unwrap(), "figures/c.csv")).unwrap();
        assert!(csv.starts_with("series,step,run,test_error_pct\n"), "{csv}");
        assert!(csv.contains("r1,100,mean,2.000000\n"), "{csv}");
        assert!(!csv.contains("50.000000"), "{csv}");
        write_manifest(&figure.replace(
            "kind = \"train\", value = \"margin_loss\"",
            "kind = \"eval\", value = \"test_error_pct\", set = \"affine\"",
        ));
        let csv = String::from_utf8(file(&render_all(&results).unwrap(), "figures/c.csv")).unwrap();
        assert!(csv.contains("r1,100,mean,50.000000\n"), "{csv}");

        // Errors name the figure, the series and the key.
        let err_with = |figure: &str| {
            write_manifest(figure);
            format!("{:#}", render_all(&results).unwrap_err())
        };
        let err = err_with(&figure.replace("\"margin_loss\"", "\"margin\""));
        assert!(
            err.contains("series `r1` of figure `c`")
                && err.contains("run a's `train` records have no value `margin` (curve.value; they have accuracy, epoch, kind, loss, margin_loss, step)"),
            "{err}"
        );
        let err = err_with(&figure.replace("kind = \"train\"", "kind = \"test\""));
        assert!(
            err.contains("figure `c`: curve.kind = `test` is neither `train` nor `eval`"),
            "{err}"
        );
        let err = err_with(&figure.replace("margin_loss\" }", "margin_loss\", set = \"affine\" }"));
        assert!(
            err.contains("curve.set = `affine` is only for kind = \"eval\""),
            "{err}"
        );
        let err = err_with(&figure.replace("raw = \"raw/t\"\n", "raw = \"raw/t\"\nx = \"seed\"\n"));
        assert!(err.contains("figure `c` needs exactly one of `x`"), "{err}");
        let err = err_with(&format!("{figure}set = \"train\"\n"));
        assert!(
            err.contains("series `r3` of figure `c`: `set` is for figures over a config key"),
            "{err}"
        );
        write_manifest(figure);
        write_metrics(&raw, "d", &[(50, 0.5), (100, 0.0)], &[]);
        let err = format!("{:#}", render_all(&results).unwrap_err());
        assert!(
            err.contains("series `r3` of figure `c`: run d has margin_loss = 0 at step 100, which a logarithmic y axis cannot show"),
            "{err}"
        );
        write_manifest(&figure.replace(
            "kind = \"train\", value = \"margin_loss\"",
            "kind = \"eval\", value = \"test_error_pct\"",
        ));
        let err = format!("{:#}", render_all(&results).unwrap_err());
        assert!(
            err.contains("series `r3` of figure `c`")
                && err.contains("run d's metrics.jsonl has no `eval` records"),
            "{err}"
        );
        write_manifest(figure);
        write_metrics(&raw, "b", &[(60, 0.6)], &[]);
        let err = format!("{:#}", render_all(&results).unwrap_err());
        assert!(
            err.contains(
                "series `r1` of figure `c`: runs a, b, c share no step of their `train` records"
            ),
            "{err}"
        );
        std::fs::remove_file(raw.join("b/metrics.jsonl")).unwrap();
        let err = format!("{:#}", render_all(&results).unwrap_err());
        assert!(
            err.contains("series `r1` of figure `c`: run b has no metrics.jsonl"),
            "{err}"
        );
    }

    /// A run of routing `iterations` at `seed` with test error `error`.
    fn write_seeded_run(raw: &Path, iterations: i64, seed: i64, error: f64) {
        let name = format!("r{iterations}-s{seed}");
        write_run(raw, &name, error, iterations, true);
        let path = raw.join(&name).join("config.resolved.toml");
        let config = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("seed = {seed}\n{config}")).unwrap();
    }

    /// r3 − r1 per seed: 1, 2, 3 (mean 2, sd 1, t(0.975; 2) = 4.303: 2 ± 2.484).
    #[test]
    fn paired_differences_by_seed_with_t_intervals() {
        let tmp = tempfile_dir();
        let results = setup(&tmp);
        let manifest = std::fs::read_to_string(results.join("tables.toml")).unwrap();
        let paired = manifest.replace(
            "paper = \"t\"\n[[",
            "paper = \"t\"\npaired = { reference = \"r1\", by = [\"seed\"] }\n[[",
        );
        std::fs::write(results.join("tables.toml"), &paired).unwrap();
        let raw = results.join("raw/t");
        for (seed, r1, r3) in [(0, 1.0, 2.0), (1, 2.0, 4.0), (2, 1.5, 4.5)] {
            write_seeded_run(&raw, 1, seed, r1);
            write_seeded_run(&raw, 3, seed, r3);
        }
        let out = render_all(&results).unwrap();
        let md = std::str::from_utf8(&out[0].1).unwrap();
        assert!(
            md.contains("| Method | ours: test error % | Δ vs r1 (paired) | n |"),
            "{md}"
        );
        assert!(md.contains("paired by seed, 95% t-interval"), "{md}");
        assert!(md.contains("| r1 | 1.50 ± 0.50 | – | 3 |"), "{md}");
        assert!(
            md.contains("| r3 | 3.50 ± 1.32 | +2.00 [−0.48, +4.48], n = 3 | 3 |"),
            "{md}"
        );
        let csv = std::str::from_utf8(&out[1].1).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert!(
            lines[0].ends_with(
                ",runs,paired_with,paired_diff_mean,paired_diff_lo,paired_diff_hi,paired_n"
            ),
            "{csv}"
        );
        assert!(lines[1].ends_with(",r1-s0 r1-s1 r1-s2,,,,,"), "{csv}");
        assert!(
            lines[2].ends_with(",r3-s0 r3-s1 r3-s2,r1,2.0000,-0.4841,4.4841,3"),
            "{csv}"
        );

        // The reference may have seeds the row lacks; one pair has no interval.
        std::fs::remove_dir_all(raw.join("r3-s1")).unwrap();
        std::fs::remove_dir_all(raw.join("r3-s2")).unwrap();
        let md = String::from_utf8(render_all(&results).unwrap().remove(0).1).unwrap();
        assert!(md.contains("| r3 | 2.00 | +1.00, n = 1 | 1 |"), "{md}");

        // A row run without a partner is an error naming the row and the key.
        write_seeded_run(&raw, 3, 7, 1.0);
        let err = format!("{:#}", render_all(&results).unwrap_err());
        assert!(
            err.contains("row `r3` cannot be paired: no run of `r1` has seed = 7"),
            "{err}"
        );
        std::fs::remove_dir_all(raw.join("r3-s7")).unwrap();

        // Two runs of a row with one seed cannot be paired.
        write_seeded_run(&raw, 3, 0, 1.0);
        let dup = raw.join("r3-s0-again");
        std::fs::rename(raw.join("r3-s0"), &dup).unwrap();
        write_seeded_run(&raw, 3, 0, 1.0);
        let err = format!("{:#}", render_all(&results).unwrap_err());
        assert!(err.contains("row `r3` cannot be paired"), "{err}");
        assert!(err.contains("both have seed = 0"), "{err}");
        std::fs::remove_dir_all(&dup).unwrap();

        // A run without the key, a partner that is no row, paired_with without paired.
        let path = raw.join("r3-s0/config.resolved.toml");
        let config = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, config.replace("seed = 0\n", "")).unwrap();
        let err = format!("{:#}", render_all(&results).unwrap_err());
        assert!(
            err.contains("row `r3`: run r3-s0 has no `seed` in its resolved config"),
            "{err}"
        );
        std::fs::write(&path, config).unwrap();
        std::fs::write(
            results.join("tables.toml"),
            paired.replace("reference = \"r1\"", "reference = \"r2\""),
        )
        .unwrap();
        let err = format!("{:#}", render_all(&results).unwrap_err());
        assert!(err.contains("paired: no row is labelled `r2`"), "{err}");
        std::fs::write(
            results.join("tables.toml"),
            format!("{manifest}paired_with = \"r1\"\n"),
        )
        .unwrap();
        let err = format!("{:#}", render_all(&results).unwrap_err());
        assert!(
            err.contains("row `r3` has `paired_with` but the table has no `paired"),
            "{err}"
        );
    }

    /// `paired_with` per row: each row names its partner, and the cell names it too.
    #[test]
    fn rows_name_their_own_partners() {
        let tmp = tempfile_dir();
        let results = setup(&tmp);
        let manifest = std::fs::read_to_string(results.join("tables.toml")).unwrap();
        let manifest = manifest.replace(
            "paper = \"t\"\n[[",
            "paper = \"t\"\npaired = { by = [\"seed\"] }\n[[",
        ) + "paired_with = \"r1\"\n[[table.row]]\nlabel = \"r5\"\nmatch = { \"model.routing.iterations\" = 5 }\npaired_with = \"r3\"\n";
        std::fs::write(results.join("tables.toml"), manifest).unwrap();
        let raw = results.join("raw/t");
        for seed in 0..2 {
            write_seeded_run(&raw, 1, seed, 2.0);
            write_seeded_run(&raw, 3, seed, 1.0 + seed as f64);
            write_seeded_run(&raw, 5, seed, 1.5 + seed as f64);
        }
        let md = String::from_utf8(render_all(&results).unwrap().remove(0).1).unwrap();
        assert!(md.contains("| Δ vs the row named (paired) |"), "{md}");
        assert!(md.contains("(row − the row it is paired with)"), "{md}");
        assert!(md.contains("| r1 | 2.00 ± 0.00 | – |"), "{md}");
        // Differences −1 and 0: mean −0.5, sd 0.707, t(0.975; 1) = 12.706: ± 6.353.
        assert!(
            md.contains("| r3 | 1.50 ± 0.71 | −0.50 [−6.85, +5.85], n = 2 vs r1 |"),
            "{md}"
        );
        assert!(
            md.contains("| r5 | 2.00 ± 0.71 | +0.50 [+0.50, +0.50], n = 2 vs r3 |"),
            "{md}"
        );
    }

    fn tempfile_dir() -> PathBuf {
        crate::scratch_dir("tables")
    }
}
