//! Numbers that README.md and results/README.md quote from the generated tables, checked by
//! `cargo xtask tables` (and `--check`, so CI).
//!
//! A quoted number is written as a Markdown link to the table it comes from, e.g.
//! `[0.84 ± 0.05 %](results/routing_algorithms.md)` in README.md or
//! `[0.84 ± 0.05 %](routing_algorithms.md)` in results/README.md. Every number in the text of
//! a link to a generated table must occur in that table's Markdown as the table prints it
//! (`0.84`, `2,117,072`, `−0.08`), or be one of the table's numbers rounded to fewer decimals
//! (`6.7` for `6.66`). A number quoted with a sign must have that sign in the table; one
//! without a sign matches either. Links to other files are not checked.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{Result, bail};

/// The files whose quoted numbers are checked, relative to the repository root.
pub(crate) const QUOTING_FILES: [&str; 2] = ["README.md", "results/README.md"];

/// A number as written: its sign (`+` or `−`; `-` is read as `−`) and its digits with their
/// `.` and `,`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Number {
    sign: Option<char>,
    body: String,
}

/// The numbers in `text`: runs of digits joined by single `.` or `,` between digits, with a
/// sign directly before them unless a letter or digit precedes the sign (`2-core`).
fn numbers(text: &str) -> Vec<Number> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() || (i > 0 && chars[i - 1].is_ascii_digit()) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len()
            && (chars[i].is_ascii_digit()
                || (matches!(chars[i], '.' | ',')
                    && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit())
                    && chars[i - 1].is_ascii_digit()))
        {
            i += 1;
        }
        let sign = match start.checked_sub(1).map(|j| chars[j]) {
            Some(c @ ('+' | '-' | '−')) if start < 2 || !chars[start - 2].is_alphanumeric() => {
                Some(if c == '+' { '+' } else { '−' })
            }
            _ => None,
        };
        // A number glued to a decimal point before it (`.5`) is part of something else.
        if start > 0 && chars[start - 1] == '.' {
            continue;
        }
        out.push(Number {
            sign,
            body: chars[start..i].iter().collect(),
        });
    }
    out
}

/// Whether the quoted number is the table's, exactly or rounded to the quote's decimals.
fn quotes(quoted: &Number, table: &Number) -> bool {
    if quoted.sign.is_some() && quoted.sign != table.sign {
        return false;
    }
    if quoted.body == table.body {
        return true;
    }
    let decimals = |b: &str| b.split_once('.').map_or(0, |(_, d)| d.len());
    let (dq, dt) = (decimals(&quoted.body), decimals(&table.body));
    if dq == 0 || dt <= dq {
        return false;
    }
    let Ok(value) = table.body.replace(',', "").parse::<f64>() else {
        return false;
    };
    format!("{value:.dq$}") == quoted.body.replace(',', "")
}

/// Markdown links in `text`: (byte offset of the `[`, link text, target).
fn links(text: &str) -> Vec<(usize, &str, &str)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find("](") {
        let close = from + found;
        from = close + 2;
        let Some(end) = text[from..].find(')').map(|e| from + e) else {
            break;
        };
        let target = &text[from..end];
        if target.contains(char::is_whitespace) {
            continue;
        }
        let mut depth = 0;
        let mut open = None;
        for (i, c) in text[..close].char_indices().rev() {
            match c {
                ']' => depth += 1,
                '[' if depth == 0 => {
                    open = Some(i);
                    break;
                }
                '[' => depth -= 1,
                _ => {}
            }
        }
        if let Some(open) = open
            && !text[open..close].contains("\n\n")
        {
            out.push((open, &text[open + 1..close], target));
        }
    }
    out
}

/// `path` without `.` and with each `..` taking away the folder before it.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Checks every quoted number in `file` (its text `text`) against `tables` (a generated
/// table's path, as `normalize` gives it, to its Markdown); the problems, one per line.
fn check_file(file: &Path, text: &str, tables: &BTreeMap<PathBuf, Vec<Number>>) -> Vec<String> {
    let dir = file.parent().unwrap_or(Path::new(""));
    let mut problems = Vec::new();
    for (offset, link_text, target) in links(text) {
        let target_path = target.split('#').next().unwrap_or(target);
        let resolved = normalize(&dir.join(target_path));
        let Some(table) = tables.get(&resolved) else {
            continue;
        };
        let line = text[..offset].matches('\n').count() + 1;
        for number in numbers(link_text) {
            if !table.iter().any(|t| quotes(&number, t)) {
                let shown = format!(
                    "{}{}",
                    number.sign.map(String::from).unwrap_or_default(),
                    number.body
                );
                problems.push(format!(
                    "{}:{line}: {shown} in [{}]({target}) is not a number of {}",
                    file.display(),
                    link_text.replace('\n', " "),
                    resolved.display()
                ));
            }
        }
    }
    problems
}

/// Checks the numbers [`QUOTING_FILES`] under `root` quote from the generated tables
/// (`tables`: each table's Markdown path and text); a missing quoting file is skipped.
pub(crate) fn check_quotes(root: &Path, tables: &[(PathBuf, String)]) -> Result<()> {
    let tables: BTreeMap<PathBuf, Vec<Number>> = tables
        .iter()
        .map(|(path, md)| (normalize(path), numbers(md)))
        .collect();
    let mut problems = Vec::new();
    for name in QUOTING_FILES {
        let file = root.join(name);
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let file_problems = check_file(&normalize(&file), &text, &tables);
        let root = normalize(root);
        let prefix = format!("{}/", root.display());
        problems.extend(file_problems.into_iter().map(|p| p.replace(&prefix, "")));
    }
    if !problems.is_empty() {
        bail!(
            "numbers quoted from the tables do not match them (link text numbers must occur in the linked table):\n{}",
            problems.join("\n")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(sign: Option<char>, body: &str) -> Number {
        Number {
            sign,
            body: body.into(),
        }
    }

    #[test]
    fn numbers_keep_their_text_and_signs() {
        assert_eq!(
            numbers("0.84 ± 0.05 %, 2,117,072 params, 2-core, −0.08 [-0.22, +0.06], r = 1."),
            vec![
                n(None, "0.84"),
                n(None, "0.05"),
                n(None, "2,117,072"),
                n(None, "2"),
                n(Some('−'), "0.08"),
                n(Some('−'), "0.22"),
                n(Some('+'), "0.06"),
                n(None, "1"),
            ]
        );
    }

    #[test]
    fn quotes_match_exactly_or_rounded() {
        assert!(quotes(&n(None, "0.84"), &n(None, "0.84")));
        assert!(quotes(&n(None, "6.7"), &n(None, "6.66")));
        assert!(!quotes(&n(None, "6.6"), &n(None, "6.66")));
        assert!(!quotes(&n(None, "7"), &n(None, "6.66")));
        assert!(quotes(&n(None, "0.08"), &n(Some('−'), "0.08")));
        assert!(!quotes(&n(Some('+'), "0.08"), &n(Some('−'), "0.08")));
        assert!(!quotes(&n(None, "0.840"), &n(None, "0.84")));
    }

    const TABLE: &str =
        "| self-attention | 0.84 ± 0.05 | −0.08 [−0.22, +0.06], n = 3 | 2,119,952 |\n";

    fn tables(root: &Path) -> Vec<(PathBuf, String)> {
        vec![(root.join("results/routing_algorithms.md"), TABLE.into())]
    }

    /// Links from README.md (`results/x.md`) and from results/README.md (`x.md`) resolve to
    /// the same table; a matching quote passes and a wrong one names file, line and number.
    #[test]
    fn linked_numbers_are_checked_against_their_table() {
        let root = crate::scratch_dir("quotes");
        std::fs::create_dir_all(root.join("results")).unwrap();
        let readme = "Self-attention: [0.84 ± 0.05 %](results/routing_algorithms.md),\n\
                      [−0.08 points](results/routing_algorithms.md#x) (2-core VM, 297 img/s: not linked).\n\
                      [docs](docs/performance.md) [9.99](results/bench/b32.md)\n";
        std::fs::write(root.join("README.md"), readme).unwrap();
        let results_readme = "Rounded: [0.8 %](routing_algorithms.md), \
                              [2,119,952 parameters](./routing_algorithms.md).\n";
        std::fs::write(root.join("results/README.md"), results_readme).unwrap();
        check_quotes(&root, &tables(&root)).unwrap();

        std::fs::write(
            root.join("README.md"),
            format!("{readme}\nWrong: [0.85 ± 0.05 %](results/routing_algorithms.md)\n"),
        )
        .unwrap();
        std::fs::write(
            root.join("results/README.md"),
            format!("{results_readme}[+0.08](routing_algorithms.md)\n"),
        )
        .unwrap();
        let err = check_quotes(&root, &tables(&root)).unwrap_err().to_string();
        assert!(
            err.contains("README.md:5: 0.85 in [0.85 ± 0.05 %]"),
            "{err}"
        );
        assert!(!err.contains("0.05 in"), "{err}");
        assert!(
            err.contains("results/README.md:2: +0.08 in [+0.08]"),
            "{err}"
        );
        assert!(err.contains("results/routing_algorithms.md"), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
