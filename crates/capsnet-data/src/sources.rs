//! Where dataset files come from: [`DataSources`], the data roots in order, whether missing
//! files may be downloaded (and from which mirrors) and whether they must be verified.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use crate::BuiltinDataset;
use crate::dataset::{DATA_ENV, default_cache_dir};

/// Where dataset files are looked for, and whether they may be downloaded and must be
/// verified.
///
/// Roots are tried in order: `explicit` (experiment config / `--data-dir`), `env`
/// (`CAPSNET_DATA`), `cache`; if none holds the split and `download` is set, the files are
/// downloaded into `cache`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSources {
    /// Root given by the experiment config or the command line.
    pub explicit: Option<PathBuf>,
    /// Root from the `CAPSNET_DATA` environment variable.
    pub env: Option<PathBuf>,
    /// Cache root, also the download destination.
    pub cache: Option<PathBuf>,
    /// Download missing files into `cache` (needs the `download` feature).
    pub download: bool,
    /// Verify every file against the dataset's published digest (or, where none is
    /// published, its canonical shape) (default `true`); turn off for custom data.
    pub verify: bool,
    /// Mirror base URLs to download each dataset from, where overridden; a dataset missing
    /// here (or with an empty list) uses its own ([`crate::DatasetFacts::mirrors`]).
    /// [`DataSources::from_env`] fills it from each dataset's
    /// [`crate::DatasetFacts::mirror_env`].
    pub mirrors: BTreeMap<BuiltinDataset, Vec<String>>,
}

impl Default for DataSources {
    /// No roots, no download, verification on.
    fn default() -> Self {
        Self {
            explicit: None,
            env: None,
            cache: None,
            download: false,
            verify: true,
            mirrors: BTreeMap::new(),
        }
    }
}

impl DataSources {
    /// Only `root`: no environment, no cache, no download; verification on.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self {
            explicit: Some(root.into()),
            ..Self::default()
        }
    }

    /// Sources from the process environment (`CAPSNET_DATA`, `XDG_CACHE_HOME`, `HOME`, and
    /// each built-in dataset's mirror variable: `CAPSNET_MNIST_MIRROR`,
    /// `CAPSNET_CIFAR_MIRROR`, `CAPSNET_SVHN_MIRROR`, `CAPSNET_NORB_MIRROR`) plus an optional
    /// explicit root; downloading is on when the `download` feature is compiled in.
    pub fn from_env(explicit: Option<PathBuf>) -> Self {
        Self::from_vars(explicit, |key| std::env::var_os(key))
    }

    /// Like [`DataSources::from_env`], reading variables through `var` (for tests).
    /// Empty variables count as unset.
    pub fn from_vars(explicit: Option<PathBuf>, var: impl Fn(&str) -> Option<OsString>) -> Self {
        let var = |key: &str| var(key).filter(|v| !v.is_empty());
        let mirrors = BuiltinDataset::ALL
            .into_iter()
            .filter_map(|d| {
                let list = split_mirror_list(&var(d.facts().mirror_env)?);
                (!list.is_empty()).then_some((d, list))
            })
            .collect();
        Self {
            explicit,
            env: var(DATA_ENV).map(PathBuf::from),
            cache: default_cache_dir(var("XDG_CACHE_HOME"), var("HOME")),
            download: cfg!(feature = "download"),
            verify: true,
            mirrors,
        }
    }

    /// The roots to search, in order, without duplicates.
    pub fn roots(&self) -> Vec<PathBuf> {
        let mut roots: Vec<PathBuf> = Vec::new();
        for root in [&self.explicit, &self.env, &self.cache]
            .into_iter()
            .flatten()
        {
            if !roots.contains(root) {
                roots.push(root.clone());
            }
        }
        roots
    }

    /// The mirrors to download `dataset` from: its entry of [`DataSources::mirrors`] if set
    /// and not empty, else the dataset's own.
    pub fn mirrors_for(&self, dataset: impl Into<BuiltinDataset>) -> Vec<String> {
        let dataset = dataset.into();
        match self.mirrors.get(&dataset) {
            Some(mirrors) if !mirrors.is_empty() => mirrors.clone(),
            _ => dataset
                .facts()
                .mirrors
                .iter()
                .map(|m| (*m).to_owned())
                .collect(),
        }
    }

    /// These sources with `mirrors` for `dataset` in place of its own.
    pub fn with_mirrors(
        mut self,
        dataset: impl Into<BuiltinDataset>,
        mirrors: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        let mirrors = mirrors.into_iter().map(Into::into).collect();
        self.mirrors.insert(dataset.into(), mirrors);
        self
    }
}

/// Base URLs from a mirror variable's value, separated by commas or whitespace.
fn split_mirror_list(value: &OsStr) -> Vec<String> {
    value
        .to_string_lossy()
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IdxDataset;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.into())
    }

    #[test]
    fn from_vars_reads_every_variable() {
        let s = DataSources::from_vars(
            Some("/exp".into()),
            vars(&[
                ("CAPSNET_DATA", "/env"),
                ("XDG_CACHE_HOME", "/xdg"),
                ("HOME", "/home/u"),
                ("CAPSNET_MNIST_MIRROR", "http://a/, http://b/"),
            ]),
        );
        assert_eq!(s.explicit, Some("/exp".into()));
        assert_eq!(s.env, Some("/env".into()));
        assert_eq!(s.cache, Some("/xdg/capsnet".into()));
        assert_eq!(
            s.mirrors[&BuiltinDataset::Mnist],
            ["http://a/", "http://b/"]
        );
        assert_eq!(s.mirrors_for(IdxDataset::Mnist), ["http://a/", "http://b/"]);
        assert!(s.verify);
        assert_eq!(s.download, cfg!(feature = "download"));
        assert_eq!(
            s.roots(),
            [PathBuf::from("/exp"), "/env".into(), "/xdg/capsnet".into()]
        );
    }

    #[test]
    fn cache_falls_back_to_home_and_empty_vars_are_unset() {
        let s = DataSources::from_vars(
            None,
            vars(&[
                ("CAPSNET_DATA", ""),
                ("XDG_CACHE_HOME", "relative"),
                ("HOME", "/h"),
            ]),
        );
        assert_eq!(s.env, None);
        assert_eq!(s.cache, Some("/h/.cache/capsnet".into()));
        assert_eq!(s.roots(), [PathBuf::from("/h/.cache/capsnet")]);
        assert_eq!(
            s.mirrors_for(IdxDataset::FashionMnist),
            IdxDataset::FashionMnist.mirrors()
        );
        let none = DataSources::from_vars(None, vars(&[]));
        assert!(none.roots().is_empty());
    }

    #[test]
    fn roots_are_deduplicated_in_order() {
        let s = DataSources {
            explicit: Some("/a".into()),
            env: Some("/a".into()),
            cache: Some("/c".into()),
            ..DataSources::default()
        };
        assert_eq!(s.roots(), [PathBuf::from("/a"), "/c".into()]);
    }
}
