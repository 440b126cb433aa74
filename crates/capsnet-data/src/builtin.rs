//! The built-in datasets ([`BuiltinDataset`]): which there are, their names, and their facts
//! (each dataset's [`DatasetFacts`] table lives in its own module). How they are loaded is in
//! [`crate::loader`].

use std::fmt;
use std::str::FromStr;

use crate::dataset::DatasetFacts;
use crate::{DataError, IdxDataset, Split, cifar, mnist, norb, svhn};

/// A dataset this crate can find, download, verify and read by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BuiltinDataset {
    /// MNIST, 1×28×28, 10 digits.
    Mnist,
    /// Fashion-MNIST, 1×28×28, 10 kinds of clothing.
    FashionMnist,
    /// CIFAR-10 (binary version), 3×32×32, 10 classes.
    Cifar10,
    /// SVHN (format 2, cropped digits), 3×32×32, 10 digits.
    Svhn,
    /// smallNORB, both cameras as 2 channels, downscaled to 48×48 as in the CapsNet paper;
    /// 5 categories.
    SmallNorb,
}

impl BuiltinDataset {
    /// Every built-in dataset, in the order `capsnet download --dataset all` fetches them.
    pub const ALL: [Self; 5] = [
        Self::Mnist,
        Self::FashionMnist,
        Self::Cifar10,
        Self::Svhn,
        Self::SmallNorb,
    ];

    /// The dataset's facts (see [`DatasetFacts`]).
    pub fn facts(self) -> &'static DatasetFacts {
        match self {
            Self::Mnist => &mnist::MNIST_FACTS,
            Self::FashionMnist => &mnist::FASHION_MNIST_FACTS,
            Self::Cifar10 => &cifar::CIFAR10_FACTS,
            Self::Svhn => &svhn::SVHN_FACTS,
            Self::SmallNorb => &norb::SMALLNORB_FACTS,
        }
    }

    /// Name in experiment files and on the command line, also the sub-directory of a data
    /// root: `mnist`, `fashion-mnist`, `cifar10`, `svhn`, `smallnorb`.
    pub fn name(self) -> &'static str {
        self.facts().name
    }

    /// Number of classes.
    pub fn num_classes(self) -> usize {
        self.facts().num_classes()
    }

    /// Class names in label order.
    pub fn class_names(self) -> &'static [&'static str] {
        self.facts().class_names
    }

    /// Shape of an image as [`BuiltinDataset::load`] gives it.
    pub fn dims(self) -> crate::Dims {
        self.facts().dims
    }

    /// The MNIST-family dataset this is, if it is one.
    pub fn idx(self) -> Option<IdxDataset> {
        match self {
            Self::Mnist => Some(IdxDataset::Mnist),
            Self::FashionMnist => Some(IdxDataset::FashionMnist),
            Self::Cifar10 | Self::Svhn | Self::SmallNorb => None,
        }
    }

    /// The canonical names of the files a split is read from (without `.gz`).
    pub fn file_names(self, split: Split) -> Vec<&'static str> {
        match self {
            Self::Mnist | Self::FashionMnist => mnist::split_files(split).to_vec(),
            Self::Cifar10 => cifar::cifar10_files(split).to_vec(),
            Self::Svhn => vec![svhn::svhn_file(split)],
            Self::SmallNorb => {
                let files = norb::norb_files(split);
                vec![files.dat, files.cat]
            }
        }
    }
}

impl From<IdxDataset> for BuiltinDataset {
    fn from(kind: IdxDataset) -> Self {
        match kind {
            IdxDataset::Mnist => Self::Mnist,
            IdxDataset::FashionMnist => Self::FashionMnist,
        }
    }
}

impl fmt::Display for BuiltinDataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BuiltinDataset {
    type Err = DataError;

    /// Parses a dataset's [`name`](BuiltinDataset::name) (case-insensitive).
    fn from_str(s: &str) -> Result<Self, DataError> {
        Self::ALL
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                DataError::Invalid(format!(
                    "unknown dataset {s:?}; valid values: {}",
                    Self::ALL.map(Self::name).join(", ")
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_are_complete_and_names_round_trip() {
        let names = BuiltinDataset::ALL.map(BuiltinDataset::name);
        assert_eq!(
            names,
            ["mnist", "fashion-mnist", "cifar10", "svhn", "smallnorb"]
        );
        for d in BuiltinDataset::ALL {
            let facts = d.facts();
            assert_eq!(d.name().parse::<BuiltinDataset>().unwrap(), d);
            assert_eq!(
                facts.num_classes(),
                if d == BuiltinDataset::SmallNorb {
                    5
                } else {
                    10
                }
            );
            assert!(!facts.mirrors.is_empty() && facts.mirror_env.starts_with("CAPSNET_"));
            assert!(facts.dims.size() > 0);
            for split in [Split::Train, Split::Test] {
                assert!(!d.file_names(split).is_empty());
            }
        }
        assert_eq!(BuiltinDataset::SmallNorb.dims().channels, 2);
        assert!("multimnist".parse::<BuiltinDataset>().is_err());
    }
}
