//! Sweeps: a `[sweep]` table in an experiment file expands into jobs, each a set of
//! `key=value` overrides of the same experiment.
//!
//! ```toml
//! seeds = [0, 1, 2]                      # shorthand for a grid axis over `seed`
//! [sweep]
//! grid = { "model.routing.iterations" = [1, 3], "model.decoder.enabled" = [true, false] }
//! zip = { arch = ["baseline-cnn", "capsnet"], "train.epochs" = [10, 20] }
//! ```
//!
//! `"runtime.backend" = "compiled"` sweeps over every backend compiled into the binary.
//!
//! Jobs are the zip rows (all `zip` lists have one length) × the cartesian product of the `grid`
//! axes, in file order (first axis slowest), then the `seeds` axis. `order = "grid-first"` makes
//! the grid the slow part instead (e.g. seeds slowest over zipped arms, so that an interrupted
//! sweep already has whole seeds). Job names are built from the
//! axis values and are unique and file-name safe. Every job is resolved and validated before any
//! runs ([`plan`]).
//!
//! This module is the `[sweep]` table and its expansion into jobs; [`crate::sweep`] resolves
//! every job of an experiment file into a plan.

use serde::Serialize;
use toml::{Table, Value};

use crate::error::ConfigError;

/// One swept key and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// Dotted key, e.g. `model.routing.iterations`.
    pub key: String,
    /// Values, as TOML literals.
    pub values: Vec<Value>,
}

/// The `[sweep]` table (and top-level `seeds`) of an experiment file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SweepSpec {
    /// Axes combined as a cartesian product.
    pub grid: Vec<Axis>,
    /// Axes advanced together (one job per index).
    pub zip: Vec<Axis>,
    /// The grid's product is the slow part of the job order, the zip rows the fast one
    /// (`order = "grid-first"`); by default the zip rows are slowest.
    pub grid_first: bool,
}

/// One job of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    /// Position in the sweep (0-based, deterministic).
    pub index: usize,
    /// Unique, file-name-safe name built from the axis values.
    pub name: String,
    /// The job's `key=value` overrides (after the command line's).
    pub overrides: Vec<String>,
}

impl SweepSpec {
    /// Reads the `sweep` table and `seeds` array removed from an experiment's merged table.
    pub fn parse(sweep: Option<Value>, seeds: Option<Value>) -> Result<Option<Self>, ConfigError> {
        if sweep.is_none() && seeds.is_none() {
            return Ok(None);
        }
        let mut spec = SweepSpec::default();
        if let Some(sweep) = sweep {
            let Value::Table(table) = sweep else {
                return Err(invalid(
                    "sweep",
                    &sweep,
                    "must be a table with `grid` and/or `zip`",
                ));
            };
            for (key, value) in table {
                if key == "order" {
                    spec.grid_first = match value.as_str() {
                        Some("grid-first") => true,
                        Some("zip-first") => false,
                        _ => {
                            return Err(invalid(
                                "sweep.order",
                                &value,
                                "must be \"zip-first\" (the default) or \"grid-first\"",
                            ));
                        }
                    };
                    continue;
                }
                let axes = match key.as_str() {
                    "grid" => &mut spec.grid,
                    "zip" => &mut spec.zip,
                    other => {
                        return Err(ConfigError::UnknownKey {
                            key: format!("sweep.{other}"),
                            source_name: "the [sweep] table".into(),
                            suggestion: Some(
                                if other.starts_with('z') {
                                    "sweep.zip"
                                } else if other.starts_with('o') {
                                    "sweep.order"
                                } else {
                                    "sweep.grid"
                                }
                                .into(),
                            ),
                        });
                    }
                };
                let Value::Table(axes_table) = value else {
                    return Err(invalid(
                        &format!("sweep.{key}"),
                        &value,
                        "must be a table of key = [values]",
                    ));
                };
                flatten_axes("", axes_table, &format!("sweep.{key}"), axes)?;
            }
        }
        if let Some(seeds) = seeds {
            let Value::Array(values) = seeds else {
                return Err(invalid("seeds", &seeds, "must be an array of integers"));
            };
            if values.is_empty() {
                return Err(invalid("seeds", &Value::Array(values), "must not be empty"));
            }
            if spec.grid.iter().chain(&spec.zip).any(|a| a.key == "seed") {
                return Err(ConfigError::Invalid {
                    key: "seeds".into(),
                    value: "…".into(),
                    reason: "`seed` is already a sweep axis".into(),
                });
            }
            spec.grid.push(Axis {
                key: "seed".into(),
                values,
            });
        }
        if let Some(first) = spec.zip.first() {
            let n = first.values.len();
            if let Some(other) = spec.zip.iter().find(|a| a.values.len() != n) {
                return Err(ConfigError::Invalid {
                    key: format!("sweep.zip.{}", other.key),
                    value: format!("{} values", other.values.len()),
                    reason: format!("every zip axis needs {n} values, like `{}`", first.key),
                });
            }
        }
        Ok(Some(spec))
    }

    /// Expands the sweep into jobs (zip rows × grid product), in a deterministic order.
    pub fn jobs(&self) -> Result<Vec<Job>, ConfigError> {
        let mut zip_rows: Vec<Vec<(String, Value)>> = vec![Vec::new()];
        if let Some(first) = self.zip.first() {
            zip_rows = (0..first.values.len())
                .map(|i| {
                    self.zip
                        .iter()
                        .map(|a| (a.key.clone(), a.values[i].clone()))
                        .collect()
                })
                .collect();
        }
        let mut grid_rows: Vec<Vec<(String, Value)>> = vec![Vec::new()];
        for axis in &self.grid {
            grid_rows = grid_rows
                .into_iter()
                .flat_map(|row| {
                    axis.values.iter().map(move |v| {
                        let mut r = row.clone();
                        r.push((axis.key.clone(), v.clone()));
                        r
                    })
                })
                .collect();
        }
        // Every job's overrides list the zip keys, then the grid keys, whichever is slowest.
        let rows: Vec<Vec<(String, Value)>> = if self.grid_first {
            grid_rows
                .iter()
                .flat_map(|g| {
                    zip_rows
                        .iter()
                        .map(move |z| [z.clone(), g.clone()].concat())
                })
                .collect()
        } else {
            zip_rows
                .iter()
                .flat_map(|z| {
                    grid_rows
                        .iter()
                        .map(move |g| [z.clone(), g.clone()].concat())
                })
                .collect()
        };
        let keys: Vec<&str> = self
            .zip
            .iter()
            .chain(&self.grid)
            .map(|a| a.key.as_str())
            .collect();
        let mut jobs: Vec<Job> = rows
            .into_iter()
            .enumerate()
            .map(|(index, row)| Job {
                index,
                name: job_name(&row, &keys),
                overrides: row.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            })
            .collect();
        if jobs.len() == 1 && jobs[0].overrides.is_empty() {
            jobs.clear();
        }
        for (i, a) in jobs.iter().enumerate() {
            if let Some(b) = jobs[..i].iter().find(|b| b.name == a.name) {
                return Err(ConfigError::Invalid {
                    key: "sweep".into(),
                    value: a.name.clone(),
                    reason: format!(
                        "jobs {} and {} get the same name: an axis repeats a value",
                        b.index, a.index
                    ),
                });
            }
        }
        Ok(jobs)
    }
}

fn invalid(key: &str, value: &Value, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// `[sweep.grid]` may use quoted dotted keys or nested tables; both become dotted axis keys.
fn flatten_axes(
    prefix: &str,
    table: Table,
    section: &str,
    out: &mut Vec<Axis>,
) -> Result<(), ConfigError> {
    for (key, value) in table {
        let full = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Table(inner) => flatten_axes(&full, inner, section, out)?,
            Value::Array(values) if values.is_empty() => {
                return Err(ConfigError::Invalid {
                    key: format!("{section}.{full}"),
                    value: "[]".into(),
                    reason: "an empty axis yields no jobs".into(),
                });
            }
            Value::Array(values) => {
                if out.iter().any(|a| a.key == full) {
                    return Err(ConfigError::Invalid {
                        key: format!("{section}.{full}"),
                        value: "…".into(),
                        reason: "the key is swept twice".into(),
                    });
                }
                out.push(Axis { key: full, values });
            }
            Value::String(s) if full == "runtime.backend" && s == "compiled" => {
                let values = crate::backend::BackendKind::ALL
                    .into_iter()
                    .filter(|k| k.compiled())
                    .map(|k| Value::String(k.name().into()))
                    .collect();
                out.push(Axis { key: full, values });
            }
            other => {
                return Err(invalid(
                    &format!("{section}.{full}"),
                    &other,
                    "must be an array of values (or \"compiled\" for runtime.backend)",
                ));
            }
        }
    }
    Ok(())
}

/// `routing.iterations=3, decoder.enabled=false, seed=0` → `iterations-3_decoder-false_seed-0`;
/// a table value is its values in order: `routing={ algorithm = "dynamic", iterations = 1 }` →
/// `routing-dynamic-1`.
fn job_name(row: &[(String, Value)], keys: &[&str]) -> String {
    fn text(value: &Value) -> String {
        match value {
            Value::String(s) => s.clone(),
            Value::Table(table) => table.values().map(text).collect::<Vec<_>>().join("-"),
            other => other.to_string(),
        }
    }
    let short = |key: &str| -> String {
        let parts: Vec<&str> = key.split('.').collect();
        let mut name = parts[parts.len() - 1];
        if name == "enabled" && parts.len() > 1 {
            name = parts[parts.len() - 2];
        }
        let clashes = keys
            .iter()
            .filter(|k| k.rsplit('.').next() == key.rsplit('.').next())
            .count();
        if clashes > 1 {
            key.replace('.', "-")
        } else {
            name.to_string()
        }
    };
    row.iter()
        .map(|(k, v)| sanitize(&format!("{}-{}", short(k), text(v))))
        .collect::<Vec<_>>()
        .join("_")
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> Result<Option<SweepSpec>, ConfigError> {
        let mut t: Table = text.parse().unwrap();
        SweepSpec::parse(t.remove("sweep"), t.remove("seeds"))
    }

    #[test]
    fn grid_is_a_cartesian_product_in_file_order() {
        let s = spec(
            "seeds = [0, 1]\n[sweep.grid]\n\"model.routing.iterations\" = [1, 3]\nmodel.decoder.enabled = [true, false]\n",
        )
        .unwrap()
        .unwrap();
        let jobs = s.jobs().unwrap();
        assert_eq!(jobs.len(), 8);
        assert_eq!(jobs[0].name, "iterations-1_decoder-true_seed-0");
        assert_eq!(jobs[1].name, "iterations-1_decoder-true_seed-1");
        assert_eq!(jobs[7].name, "iterations-3_decoder-false_seed-1");
        assert_eq!(
            jobs[7].overrides,
            [
                "model.routing.iterations=3",
                "model.decoder.enabled=false",
                "seed=1"
            ]
        );
    }

    #[test]
    fn grid_first_puts_the_grid_slowest() {
        let jobs = spec(
            "[sweep]\norder = \"grid-first\"\nzip = { arch = [\"baseline-cnn\", \"capsnet\"], \"train.lr\" = [1e-3, 2e-3] }\ngrid = { seed = [5, 6] }\n",
        )
        .unwrap()
        .unwrap()
        .jobs()
        .unwrap();
        let overrides: Vec<String> = jobs.iter().map(|j| j.overrides.join(" ")).collect();
        assert_eq!(
            overrides,
            [
                "arch=\"baseline-cnn\" train.lr=0.001 seed=5",
                "arch=\"capsnet\" train.lr=0.002 seed=5",
                "arch=\"baseline-cnn\" train.lr=0.001 seed=6",
                "arch=\"capsnet\" train.lr=0.002 seed=6",
            ]
        );
        let err = spec("[sweep]\norder = \"seeds\"\ngrid = { seed = [1] }\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sweep.order") && err.contains("grid-first"),
            "{err}"
        );
    }

    #[test]
    fn zip_rows_times_grid() {
        let s = spec(
            "[sweep]\nzip = { arch = [\"baseline-cnn\", \"capsnet\"], \"train.epochs\" = [1, 2] }\ngrid = { seed = [5, 6] }\n",
        )
        .unwrap()
        .unwrap();
        let names: Vec<String> = s.jobs().unwrap().into_iter().map(|j| j.name).collect();
        assert_eq!(
            names,
            [
                "arch-baseline-cnn_epochs-1_seed-5",
                "arch-baseline-cnn_epochs-1_seed-6",
                "arch-capsnet_epochs-2_seed-5",
                "arch-capsnet_epochs-2_seed-6"
            ]
        );
    }

    #[test]
    fn bad_sweeps_are_rejected() {
        let err = spec("[sweep.grid]\nseed = []\n").unwrap_err().to_string();
        assert!(
            err.contains("sweep.grid.seed") && err.contains("empty"),
            "{err}"
        );
        let err = spec("[sweep]\nzip = { a = [1, 2], b = [1] }\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sweep.zip.b"), "{err}");
        let err = spec("[sweep]\ngird = { a = [1] }\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sweep.gird") && err.contains("sweep.grid"),
            "{err}"
        );
        let err = spec("[sweep.grid]\nseed = [1, 1]\n")
            .unwrap()
            .unwrap()
            .jobs()
            .unwrap_err()
            .to_string();
        assert!(err.contains("same name"), "{err}");
        let err = spec("seeds = [0]\n[sweep.grid]\nseed = [1]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("already"), "{err}");
        assert_eq!(spec("name = \"x\"\n").unwrap(), None);
    }

    #[test]
    fn clashing_short_names_use_the_full_key() {
        let s = spec(
            "[sweep.grid]\n\"model.decoder.hidden\" = [[1]]\n\"baseline.hidden\" = [[2], [3]]\n",
        )
        .unwrap()
        .unwrap();
        let names: Vec<String> = s.jobs().unwrap().into_iter().map(|j| j.name).collect();
        assert_eq!(names[0], "model-decoder-hidden--1-_baseline-hidden--2-");
    }
}
