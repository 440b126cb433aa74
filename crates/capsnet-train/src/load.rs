//! Loading experiments: a [`figment`] of named layers, later layers winning key by key.
//!
//! 1. code defaults ([`ExperimentConfig::default`], named `defaults`);
//! 2. the `extends` files, depth first in list order (each file's own `extends` before it;
//!    a cycle is an error);
//! 3. the experiment file;
//! 4. `CAPSNET_` environment variables (see [`env_source`] for which ones);
//! 5. command-line `dotted.key=value` overrides, in order, one layer each.
//!
//! Tables merge key by key; anything else (numbers, strings, arrays) is replaced. Each layer is
//! a figment provider whose metadata names it (the file's path, the override, the variable),
//! so figment's structured errors carry the layer of the value at fault: an unknown key or a
//! wrong type becomes a [`ConfigError`] naming the dotted key, that source, and for unknown
//! keys the closest valid key at the same level. Every section is `deny_unknown_fields`.
//!
//! Files are parsed with the `toml` crate rather than figment's TOML provider because three of
//! their keys are not experiment keys: `extends` (read here), and `[sweep]` and `seeds`, which
//! are layered in the same order but outside figment, whose tables are sorted maps: a sweep's
//! axes keep their file order ([`crate::sweep_spec`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::error::Kind;
use figment::providers::Env;
use figment::value::{Dict, Map, UncasedStr};
use figment::{Figment, Metadata, Profile, Provider, Source};
use toml::{Table, Value};

use crate::config::ExperimentConfig;
use crate::error::ConfigError;

/// Prefix of the environment variables that set experiment keys.
pub const ENV_PREFIX: &str = "CAPSNET_";

/// Separator of key levels in environment variable names (`CAPSNET_TRAIN__EPOCHS`).
pub const ENV_SEPARATOR: &str = "__";

/// Top-level keys that are not experiment keys: layered like the rest, but outside figment.
const SWEEP_KEYS: [&str; 2] = ["sweep", "seeds"];

/// The variable that chose the convolution algorithm inside the kernels before it was the
/// experiment key `runtime.conv_algorithm`: refused, so that an A/B script that still sets it
/// does not silently measure the default.
const RETIRED_CONV_VARIABLE: &str = "CAPSNET_CONV";

/// Name of the environment layer in figment's metadata.
const ENV_LAYER: &str = "environment";

/// Name of the code-defaults layer (and the source of keys no layer sets).
const DEFAULTS_LAYER: &str = "defaults";

/// An experiment with the record of how it was assembled.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The validated configuration.
    pub config: ExperimentConfig,
    /// Files merged, lowest precedence first (the experiment file last).
    pub files: Vec<PathBuf>,
    /// Environment variables that set keys: name (`CAPSNET_` + upper-case key, levels joined
    /// by `__`) → value as given.
    pub env: BTreeMap<String, String>,
    /// Command-line overrides, in order.
    pub overrides: Vec<String>,
    /// The `[sweep]` table (and `seeds`), if the experiment has one.
    pub sweep: Option<crate::sweep_spec::SweepSpec>,
}

/// Loads `path` with its `extends` chain, the `CAPSNET_` environment and `overrides`, and
/// validates the result.
pub fn load_experiment(path: &Path, overrides: &[String]) -> Result<Resolved, ConfigError> {
    reject_retired_variables()?;
    let mut files = Vec::new();
    let mut layers = Vec::new();
    read_file(path, &mut Vec::new(), &mut files, &mut layers)?;
    let mut stack = vec![Layer::defaults()];
    let mut sweep_table = Table::new();
    for (file, (config, sweep)) in files.iter().zip(layers) {
        stack.push(Layer::file(file, config));
        merge(&mut sweep_table, sweep);
    }
    let env_vars = env_vars(&env_source())?;
    stack.push(Layer::env(&env_vars)?);
    for text in overrides {
        let (key, value) = parse_override(text)?;
        if SWEEP_KEYS.contains(&key[0].as_str()) {
            set_key(&mut sweep_table, &key, value).map_err(|reason| ConfigError::Override {
                text: text.clone(),
                reason,
            })?;
        } else {
            stack.push(Layer::cli_override(text, &key, value));
        }
    }
    restart_switched_routing(&mut stack)?;
    let figment = stack
        .into_iter()
        .fold(Figment::new(), |figment, layer| figment.merge(layer));
    let sweep = crate::sweep_spec::SweepSpec::parse(
        sweep_table.remove("sweep"),
        sweep_table.remove("seeds"),
    )?;
    let config = extract(&figment, &env_vars)?;
    config
        .validate()
        .map_err(|e| with_value_source(e, &figment, &env_vars))?;
    Ok(Resolved {
        config,
        files,
        env: env_vars
            .into_iter()
            .map(|(key, value)| (env_var_name(&key), value))
            .collect(),
        overrides: overrides.to_vec(),
        sweep,
    })
}

/// Refuses the environment variables that chose settings before they were experiment keys, so
/// that a script that still sets them does not silently measure the default.
fn reject_retired_variables() -> Result<(), ConfigError> {
    if let Some(value) = std::env::var_os(RETIRED_CONV_VARIABLE) {
        return Err(ConfigError::Invalid {
            key: "runtime.conv_algorithm".into(),
            value: value.to_string_lossy().into_owned(),
            reason: format!(
                "the environment variable {RETIRED_CONV_VARIABLE} is no longer read: the \
                 convolution algorithm is the experiment key runtime.conv_algorithm (\"auto\", \
                 \"blocked\" or \"spectral\"; in the environment \
                 {ENV_PREFIX}RUNTIME{ENV_SEPARATOR}CONV_ALGORITHM); unset {RETIRED_CONV_VARIABLE}"
            ),
        });
    }
    Ok(())
}

/// Parses TOML text into an experiment over the code defaults (no `extends`, no environment,
/// no validation): for stored configurations, tests and tools. `source` names the text in
/// errors.
pub fn parse_str(text: &str, source: &str) -> Result<ExperimentConfig, ConfigError> {
    reject_retired_variables()?;
    let table: Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax {
            path: source.into(),
            message: e.to_string(),
        })?;
    let mut table = table;
    move_renamed_keys(&mut table);
    let mut stack = [Layer::defaults(), Layer::named(source, &table)];
    restart_switched_routing(&mut stack)?;
    let [defaults, stored] = stack;
    let figment = Figment::from(defaults).merge(stored);
    extract(&figment, &BTreeMap::new())
}

/// The network sections whose `routing` table is a choice of algorithm.
const ROUTING_SECTIONS: [&str; 2] = ["model", "efficient"];

/// A layer that switches `<section>.routing.algorithm` to another algorithm than the layers
/// below it selected starts that routing table afresh: the options the files below gave it
/// (which belong to the algorithm they meant) are dropped, so `model.routing.algorithm =
/// "self-attention"` in an experiment that extends a file with `model.routing.iterations = 3`,
/// or a sweep's `model.routing={ algorithm = "self-attention" }`, switches the algorithm.
/// Setting the algorithm already in force drops nothing. An option that came from the
/// environment or a command-line override is never dropped silently: the switch is an error
/// naming it. Options set in the same layer as the algorithm, or in a later one, are kept and
/// checked against it.
fn restart_switched_routing(layers: &mut [Layer]) -> Result<(), ConfigError> {
    use figment::value::Value as FValue;
    fn routing_mut<'a>(dict: &'a mut Dict, section: &str) -> Option<&'a mut Dict> {
        match dict.get_mut(section)? {
            FValue::Dict(_, section) => match section.get_mut("routing")? {
                FValue::Dict(_, routing) => Some(routing),
                _ => None,
            },
            _ => None,
        }
    }
    fn algorithm(layer: &mut Layer, section: &str) -> Option<String> {
        match routing_mut(&mut layer.dict, section)?.get("algorithm")? {
            FValue::String(_, name) => Some(name.to_lowercase()),
            _ => None,
        }
    }
    for section in ROUTING_SECTIONS {
        let mut current: Option<String> = None;
        for i in 0..layers.len() {
            let Some(next) = algorithm(&mut layers[i], section) else {
                continue;
            };
            let switches = current.as_ref().is_some_and(|c| *c != next);
            if switches {
                let (lower, rest) = layers.split_at_mut(i);
                let switcher = rest[0].metadata.name.to_string();
                for layer in lower {
                    let command_line = layer.command_line;
                    let name = layer.metadata.name.to_string();
                    let Some(routing) = routing_mut(&mut layer.dict, section) else {
                        continue;
                    };
                    if command_line
                        && let Some(key) = routing.keys().find(|k| k.as_str() != "algorithm")
                    {
                        return Err(ConfigError::Invalid {
                            key: format!("{section}.routing.{key}"),
                            value: format!("(set by {name})"),
                            reason: format!(
                                "{switcher} switches {section}.routing.algorithm to \"{next}\", \
                                 which drops the options set before it; set `{key}` after the \
                                 algorithm, or leave it out"
                            ),
                        });
                    }
                    routing.retain(|key, _| key == "algorithm");
                }
            }
            current = Some(next);
        }
    }
    Ok(())
}

/// Moves keys renamed since files were first written to their current place, so that older
/// experiment files and the `config.resolved.toml` of older runs load unchanged:
/// `model.routing.squash_eps` (routing options before routing algorithms were a choice) is
/// the network setting `model.squash_eps`. A value already at the new place wins.
fn move_renamed_keys(table: &mut Table) {
    if let Some(Value::Table(model)) = table.get_mut("model") {
        let eps = match model.get_mut("routing") {
            Some(Value::Table(routing)) => routing.remove("squash_eps"),
            _ => None,
        };
        if let Some(eps) = eps {
            model.entry("squash_eps").or_insert(eps);
        }
    }
}

/// Serialises a configuration as TOML (the `config.resolved.toml` of a run).
pub fn to_toml(config: &ExperimentConfig) -> String {
    toml::to_string_pretty(config).expect("the experiment schema serialises to TOML")
}

/// figment's `Env`, selecting the variables of the environment layer: `CAPSNET_` variables
/// whose name (after the prefix) contains `__`, or is exactly a top-level scalar key of the
/// schema (`CAPSNET_NAME`, `CAPSNET_SEED`, `CAPSNET_ARCH`). `__` separates levels and names
/// are case-insensitive: `CAPSNET_TRAIN__EPOCHS=5` sets `train.epochs`,
/// `CAPSNET_MODEL__ROUTING__ITERATIONS=1` sets `model.routing.iterations`. Values are read like `key=value` overrides: a TOML literal
/// (`5`, `1e-3`, `true`, `[256, 512]`), anything else a string. (figment's own value grammar
/// would read `1e-3` as a string, so the layer parses the values it selects itself.)
///
/// The rule leaves out the project's other variables, all single-underscore names with other
/// meanings (`CAPSNET_DATA`, `CAPSNET_PYTHON`, `CAPSNET_BENCH_BACKEND`, `CAPSNET_CIFAR_MIRROR`,
/// `CAPSNET_MNIST_MIRROR`, `CAPSNET_GPU_*`, …), while a misspelt key such as
/// `CAPSNET_TRAIN__EPOCHZ` is still read, and rejected as an unknown key.
pub fn env_source() -> Env {
    let scalars = top_level_scalar_keys();
    Env::prefixed(ENV_PREFIX)
        .filter(move |key: &UncasedStr| {
            key.as_str().contains(ENV_SEPARATOR)
                || scalars.iter().any(|s| key.as_str().eq_ignore_ascii_case(s))
        })
        .split(ENV_SEPARATOR)
}

/// Top-level keys of the schema whose values are not tables (`name`, `seed`, `arch`).
fn top_level_scalar_keys() -> Vec<String> {
    Layer::defaults()
        .dict
        .into_iter()
        .filter(|(_, v)| v.as_dict().is_none())
        .map(|(k, _)| k)
        .collect()
}

/// The variables `env` reads, as dotted key → value; sweep keys are refused (they are set in
/// files or overrides, where their order is kept).
fn env_vars(env: &Env) -> Result<BTreeMap<String, String>, ConfigError> {
    let vars: BTreeMap<String, String> = env
        .iter()
        .map(|(key, value)| (key.as_str().to_string(), value))
        .collect();
    if let Some((key, value)) = vars
        .iter()
        .find(|(key, _)| SWEEP_KEYS.contains(&key.split('.').next().unwrap_or_default()))
    {
        return Err(ConfigError::Invalid {
            key: key.clone(),
            value: value.clone(),
            reason: format!(
                "set by environment variable {}: sweeps come from experiment files or \
                 `key=value` overrides, not the environment",
                env_var_name(key)
            ),
        });
    }
    Ok(vars)
}

/// `train.epochs` → `CAPSNET_TRAIN__EPOCHS`.
fn env_var_name(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.split('.')
            .collect::<Vec<_>>()
            .join(ENV_SEPARATOR)
            .to_ascii_uppercase()
    )
}

/// One layer of experiment keys with the name errors give it.
struct Layer {
    metadata: Metadata,
    dict: Dict,
    /// Set on the command line (an environment variable or an override), not in a file.
    command_line: bool,
}

impl Layer {
    fn defaults() -> Self {
        let value = figment::value::Value::serialize(ExperimentConfig::default())
            .expect("the experiment schema serialises");
        Self {
            metadata: Metadata::named(DEFAULTS_LAYER),
            dict: value.into_dict().expect("a struct serialises to a dict"),
            command_line: false,
        }
    }

    fn named(name: &str, table: &Table) -> Self {
        Self {
            metadata: Metadata::named(name.to_string()),
            dict: to_dict(table),
            command_line: false,
        }
    }

    fn file(path: &Path, table: Table) -> Self {
        Self {
            metadata: Metadata::from(path.display().to_string(), Source::File(path.into())),
            dict: to_dict(&table),
            command_line: false,
        }
    }

    /// The variables `vars` (dotted key → raw value) as one layer.
    fn env(vars: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let mut table = Table::new();
        for (key, raw) in vars {
            let parts: Vec<String> = key.split('.').map(str::to_string).collect();
            set_key(&mut table, &parts, parse_literal(raw.trim())).map_err(|reason| {
                ConfigError::Invalid {
                    key: key.clone(),
                    value: raw.clone(),
                    reason: format!("environment variable {}: {reason}", env_var_name(key)),
                }
            })?;
        }
        Ok(Self {
            metadata: Metadata::named(ENV_LAYER),
            dict: to_dict(&table),
            command_line: true,
        })
    }

    fn cli_override(text: &str, key: &[String], value: Value) -> Self {
        let mut table = Table::new();
        set_key(&mut table, key, value).expect("a fresh table has no scalars in the way");
        Self {
            metadata: Metadata::named(format!("override `{text}`")),
            dict: to_dict(&table),
            command_line: true,
        }
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Map::from([(Profile::Default, self.dict.clone())]))
    }
}

fn to_dict(table: &Table) -> Dict {
    figment::value::Value::serialize(table)
        .expect("TOML values serialise")
        .into_dict()
        .expect("a table serialises to a dict")
}

/// Reads `path` and, depth first, the files it extends; appends each file and its two parts
/// (experiment keys; `sweep`/`seeds`) in layering order.
fn read_file(
    path: &Path,
    stack: &mut Vec<PathBuf>,
    files: &mut Vec<PathBuf>,
    layers: &mut Vec<(Table, Table)>,
) -> Result<(), ConfigError> {
    let canonical = path.canonicalize().map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if stack.contains(&canonical) {
        return Err(ConfigError::Extends {
            path: path.to_path_buf(),
            reason: format!("cycle through {}", canonical.display()),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut table: Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let parents = match table.remove("extends") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Ok(s),
                other => Err(ConfigError::Extends {
                    path: path.to_path_buf(),
                    reason: format!("entries must be file paths (strings), found {other}"),
                }),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => {
            return Err(ConfigError::Extends {
                path: path.to_path_buf(),
                reason: format!("must be an array of file paths, found {other}"),
            });
        }
    };
    move_renamed_keys(&mut table);
    stack.push(canonical);
    let dir = path.parent().unwrap_or(Path::new("."));
    for parent in parents {
        let parent_path = dir.join(&parent);
        if !parent_path.is_file() {
            return Err(ConfigError::Extends {
                path: path.to_path_buf(),
                reason: format!("file {} does not exist", parent_path.display()),
            });
        }
        read_file(&parent_path, stack, files, layers)?;
    }
    stack.pop();
    let mut sweep = Table::new();
    for key in SWEEP_KEYS {
        if let Some(value) = table.remove(key) {
            sweep.insert(key.to_string(), value);
        }
    }
    files.push(path.to_path_buf());
    layers.push((table, sweep));
    Ok(())
}

/// A TOML document as `dotted.key → value` (tables flattened; arrays are values); empty when
/// the text does not parse.
pub fn flatten_toml(text: &str) -> BTreeMap<String, Value> {
    text.parse::<Table>()
        .map(|table| capsnet_common::flatten_toml(&Value::Table(table)))
        .unwrap_or_default()
}

/// Deep-merges `over` into `base`: tables merge key by key, anything else replaces (the rule
/// figment applies to the experiment keys, here for the ordered sweep tables).
fn merge(base: &mut Table, over: Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Splits a `dotted.key=value` override; the value is a TOML literal, or else a bare string.
fn parse_override(text: &str) -> Result<(Vec<String>, Value), ConfigError> {
    let bad = |reason: &str| ConfigError::Override {
        text: text.into(),
        reason: reason.into(),
    };
    let (key, raw) = text
        .split_once('=')
        .ok_or_else(|| bad("expected `dotted.key=value`"))?;
    let parts: Vec<String> = key.trim().split('.').map(str::to_string).collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || p.contains(char::is_whitespace))
    {
        return Err(bad(
            "the key must be dotted identifiers, e.g. model.routing.iterations",
        ));
    }
    Ok((parts, parse_literal(raw.trim())))
}

/// Sets `key` (non-empty) in `table`, creating tables on the way; a scalar on the way is an
/// error naming it.
fn set_key(table: &mut Table, key: &[String], value: Value) -> Result<(), String> {
    let (last, path) = key.split_last().expect("override keys are non-empty");
    let mut node = table;
    for (i, part) in path.iter().enumerate() {
        let entry = node
            .entry(part.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        node = match entry {
            Value::Table(t) => t,
            _ => return Err(format!("`{}` is not a table", key[..=i].join("."))),
        };
    }
    node.insert(last.clone(), value);
    Ok(())
}

fn parse_literal(raw: &str) -> Value {
    match format!("v = {raw}").parse::<Table>() {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| Value::String(raw.into())),
        Err(_) => Value::String(raw.into()),
    }
}

/// Extracts the experiment, turning figment's first error into a [`ConfigError`].
fn extract(
    figment: &Figment,
    env_vars: &BTreeMap<String, String>,
) -> Result<ExperimentConfig, ConfigError> {
    figment.extract().map_err(|err| {
        let err = err
            .into_iter()
            .next()
            .expect("a figment error holds at least one error");
        let key = dotted(&err.path);
        let source_name = source_name(err.metadata.as_ref(), &err.path, env_vars);
        match err.kind {
            Kind::UnknownField(field, expected) => {
                let parent = &err.path[..err.path.len().saturating_sub(1)];
                let suggestion = closest(&field, expected).map(|s| {
                    if parent.is_empty() {
                        s.to_string()
                    } else {
                        format!("{}.{s}", dotted(parent))
                    }
                });
                ConfigError::UnknownKey {
                    key,
                    source_name,
                    suggestion,
                }
            }
            kind => ConfigError::WrongType {
                key,
                source_name,
                message: kind.to_string(),
            },
        }
    })
}

/// A rejected value's error, told where the value came from (the file, `extends` file,
/// environment variable or override that set it, or the default), as type errors are.
fn with_value_source(
    err: ConfigError,
    figment: &Figment,
    env_vars: &BTreeMap<String, String>,
) -> ConfigError {
    match err {
        ConfigError::Invalid { key, value, reason } => {
            let path: Vec<String> = key.split('.').map(str::to_string).collect();
            let source = match figment.find_metadata(&key) {
                Some(m) if m.name == DEFAULTS_LAYER => "the default value".to_string(),
                Some(m) => format!("set by {}", source_name(Some(m), &path, env_vars)),
                // A key the layers do not hold as such (e.g. a whole table's value).
                None => return ConfigError::Invalid { key, value, reason },
            };
            ConfigError::Invalid {
                key,
                value,
                reason: format!("{reason} ({source})"),
            }
        }
        other => other,
    }
}

/// `["model", "decoder", "hidden", "1"]` → `model.decoder.hidden[1]` (the schema has no
/// numeric keys, so a number is an array index).
fn dotted(path: &[String]) -> String {
    let mut out = String::new();
    for part in path {
        if part.parse::<usize>().is_ok() {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

/// The layer a value came from, as errors name it.
fn source_name(
    metadata: Option<&Metadata>,
    path: &[String],
    env_vars: &BTreeMap<String, String>,
) -> String {
    let Some(metadata) = metadata else {
        return DEFAULTS_LAYER.into();
    };
    if metadata.name != ENV_LAYER {
        return metadata.name.to_string();
    }
    // The variables under the key: one for a value, several for an unknown table.
    let key = path.join(".");
    let names: Vec<String> = env_vars
        .keys()
        .filter(|k| **k == key || k.starts_with(&format!("{key}.")))
        .map(|k| env_var_name(k))
        .collect();
    match names.as_slice() {
        [] => format!("environment variable {}", env_var_name(&key)),
        [one] => format!("environment variable {one}"),
        many => format!("environment variables {}", many.join(", ")),
    }
}

/// The candidate closest to `word` by edit distance, if reasonably close.
fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 2).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_and_closest() {
        assert_eq!(edit_distance("iteration", "iterations"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        let c = ["iterations", "leaky"];
        assert_eq!(closest("iteratons", &c), Some("iterations"));
        assert_eq!(closest("zzzzzzzzzz", &c), None);
    }

    #[test]
    fn literals_parse_as_toml_or_fall_back_to_strings() {
        assert_eq!(parse_literal("5"), Value::Integer(5));
        assert_eq!(parse_literal("1e-3"), Value::Float(1e-3));
        assert_eq!(parse_literal("true"), Value::Boolean(true));
        assert_eq!(parse_literal("\"x\""), Value::String("x".into()));
        assert_eq!(
            parse_literal("fashion-mnist"),
            Value::String("fashion-mnist".into())
        );
        assert!(matches!(parse_literal("[0, 1, 2]"), Value::Array(a) if a.len() == 3));
    }

    #[test]
    fn env_names_and_error_paths_render_as_users_write_them() {
        assert_eq!(
            env_var_name("model.routing.iterations"),
            "CAPSNET_MODEL__ROUTING__ITERATIONS"
        );
        assert_eq!(env_var_name("seed"), "CAPSNET_SEED");
        let path = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            dotted(&path(&["model", "decoder", "hidden", "1"])),
            "model.decoder.hidden[1]"
        );
        assert_eq!(dotted(&path(&["seed"])), "seed");
    }

    #[test]
    fn top_level_scalars_are_the_schemas() {
        let mut keys = top_level_scalar_keys();
        keys.sort();
        assert_eq!(keys, ["arch", "name", "seed"]);
    }
}
