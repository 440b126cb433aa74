//! Loading experiments: code defaults → `extends` files → the experiment file → `key=value`
//! overrides, strictly (unknown keys and wrong types name the key and where it came from).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use crate::config::ExperimentConfig;
use crate::error::ConfigError;

/// An experiment with the record of how it was assembled.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The validated configuration.
    pub config: ExperimentConfig,
    /// Files merged, lowest precedence first (the experiment file last).
    pub files: Vec<PathBuf>,
    /// Command-line overrides, in order.
    pub overrides: Vec<String>,
    /// The `[sweep]` table (and `seeds`), if the experiment has one.
    pub sweep: Option<crate::sweep::SweepSpec>,
}

/// Where each dotted key's value came from.
type Provenance = BTreeMap<String, String>;

/// Loads `path` with its `extends` chain, applies `overrides` and validates the result.
pub fn load_experiment(path: &Path, overrides: &[String]) -> Result<Resolved, ConfigError> {
    let mut files = Vec::new();
    let mut provenance = Provenance::new();
    let mut table = load_file(path, &mut files, &mut Vec::new(), &mut provenance)?;
    for text in overrides {
        apply_override(&mut table, text, &mut provenance)?;
    }
    let sweep = crate::sweep::SweepSpec::parse(table.remove("sweep"), table.remove("seeds"))?;
    let config = deserialize(table, &provenance)?;
    config.validate()?;
    Ok(Resolved {
        config,
        files,
        overrides: overrides.to_vec(),
        sweep,
    })
}

/// Parses TOML text into an experiment (no `extends`, no validation): for tests and tools.
pub fn parse_str(text: &str, source: &str) -> Result<ExperimentConfig, ConfigError> {
    let table: Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax {
            path: source.into(),
            message: e.to_string(),
        })?;
    let mut provenance = Provenance::new();
    record(&table, "", source, &mut provenance);
    deserialize(table, &provenance)
}

/// Serialises a configuration as TOML (the `config.resolved.toml` of a run).
pub fn to_toml(config: &ExperimentConfig) -> String {
    toml::to_string_pretty(config).expect("the experiment schema serialises to TOML")
}

fn load_file(
    path: &Path,
    files: &mut Vec<PathBuf>,
    stack: &mut Vec<PathBuf>,
    provenance: &mut Provenance,
) -> Result<Table, ConfigError> {
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
    stack.push(canonical);
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut merged = Table::new();
    for parent in parents {
        let parent_path = dir.join(&parent);
        if !parent_path.is_file() {
            return Err(ConfigError::Extends {
                path: path.to_path_buf(),
                reason: format!("file {} does not exist", parent_path.display()),
            });
        }
        let parent_table = load_file(&parent_path, files, stack, provenance)?;
        merge(&mut merged, parent_table);
    }
    stack.pop();
    record(&table, "", &path.display().to_string(), provenance);
    merge(&mut merged, table);
    files.push(path.to_path_buf());
    Ok(merged)
}

/// A TOML document as `dotted.key → value` (tables flattened; arrays are values).
pub fn flatten_toml(text: &str) -> std::collections::BTreeMap<String, Value> {
    fn walk(prefix: &str, value: &Value, out: &mut std::collections::BTreeMap<String, Value>) {
        match value {
            Value::Table(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            other => {
                out.insert(prefix.to_string(), other.clone());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    if let Ok(table) = text.parse::<Table>() {
        walk("", &Value::Table(table), &mut out);
    }
    out
}

/// Deep-merges `over` into `base`: tables merge key by key, anything else replaces.
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

fn record(table: &Table, prefix: &str, source: &str, provenance: &mut Provenance) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if let Value::Table(inner) = value {
            record(inner, &path, source, provenance);
        }
        provenance.insert(path, source.to_string());
    }
}

/// Applies one `dotted.key=value` override; the value is a TOML literal, or else a bare string.
pub fn apply_override(
    table: &mut Table,
    text: &str,
    provenance: &mut Provenance,
) -> Result<(), ConfigError> {
    let bad = |reason: &str| ConfigError::Override {
        text: text.into(),
        reason: reason.into(),
    };
    let (key, raw) = text
        .split_once('=')
        .ok_or_else(|| bad("expected `dotted.key=value`"))?;
    let key = key.trim();
    let parts: Vec<&str> = key.split('.').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || p.contains(char::is_whitespace))
    {
        return Err(bad(
            "the key must be dotted identifiers, e.g. model.routing.iterations",
        ));
    }
    let value = parse_literal(raw.trim());
    let mut node = table;
    for (i, part) in parts[..parts.len() - 1].iter().enumerate() {
        let entry = node
            .entry(part.to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        node = match entry {
            Value::Table(t) => t,
            _ => return Err(bad(&format!("`{}` is not a table", parts[..=i].join(".")))),
        };
    }
    if let Value::Table(t) = &value {
        record(t, key, "override", provenance);
    }
    node.insert(parts[parts.len() - 1].to_string(), value);
    provenance.insert(key.to_string(), format!("override `{text}`"));
    Ok(())
}

fn parse_literal(raw: &str) -> Value {
    match format!("v = {raw}").parse::<Table>() {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| Value::String(raw.into())),
        Err(_) => Value::String(raw.into()),
    }
}

fn deserialize(table: Table, provenance: &Provenance) -> Result<ExperimentConfig, ConfigError> {
    serde_path_to_error::deserialize(Value::Table(table)).map_err(|err| {
        let path = err.path().to_string();
        let message = err.inner().to_string();
        if let Some(field) = unknown_field(&message) {
            let key = if path.ends_with(&field) || path == "." {
                if path == "." {
                    field.clone()
                } else {
                    path.clone()
                }
            } else {
                format!("{path}.{field}")
            };
            let parent = key.rsplit_once('.').map(|(p, _)| p.to_string());
            let suggestion = closest(&field, &expected_fields(&message))
                .map(|s| parent.as_ref().map(|p| format!("{p}.{s}")).unwrap_or(s));
            ConfigError::UnknownKey {
                source_name: source_of(&key, provenance),
                key,
                suggestion,
            }
        } else {
            ConfigError::WrongType {
                source_name: source_of(&path, provenance),
                key: path,
                message,
            }
        }
    })
}

fn source_of(key: &str, provenance: &Provenance) -> String {
    let mut k = key;
    loop {
        if let Some(source) = provenance.get(k) {
            return source.clone();
        }
        match k.rsplit_once('.') {
            Some((parent, _)) => k = parent,
            None => return "defaults".into(),
        }
    }
}

fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

fn expected_fields(message: &str) -> Vec<String> {
    let Some(idx) = message.find("expected") else {
        return Vec::new();
    };
    message[idx..]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The candidate closest to `word` by edit distance, if reasonably close.
fn closest(word: &str, candidates: &[String]) -> Option<String> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 2).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.clone())
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
        let c = vec!["iterations".to_string(), "leaky".to_string()];
        assert_eq!(closest("iteratons", &c).as_deref(), Some("iterations"));
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
}
