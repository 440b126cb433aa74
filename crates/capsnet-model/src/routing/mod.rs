//! Routing between a child and a parent capsule layer: the algorithms, side by side, and the one
//! place that dispatches between them ([`route`]).
//!
//! - [`dynamic`]: routing-by-agreement (Sabour et al. 2017, Procedure 1), the default;
//! - [`self_attention`]: Efficient-CapsNet's self-attention routing (Mazzia et al. 2021).
//!
//! In experiment files `model.routing` is a table whose `algorithm` key picks the algorithm
//! (`"dynamic"` when absent, so files written before there was a choice keep their meaning);
//! the other keys are that algorithm's options, and an option of another algorithm is an error.
//! Adding an algorithm: ARCHITECTURE.md, "Adding a routing algorithm".

pub mod dynamic;
pub mod self_attention;

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

pub use dynamic::{DynamicRouting, couplings_from_logits, route_dynamic};
pub use self_attention::{SelfAttentionRouting, route_self_attention};

use crate::error::ModelConfigError;
use crate::squash::Squash;

/// Largest accepted number of dynamic-routing iterations.
pub const MAX_ROUTING_ITERATIONS: usize = 10;

/// Result of routing: parent capsules and the final coupling coefficients.
#[derive(Debug, Clone)]
pub struct Routed {
    /// Parent capsules `v_j`: `[batch, parents, dim]`.
    pub parents: Tensor<3>,
    /// Coupling coefficients `c_ij` used in the last iteration: `[batch, parents, children]`.
    pub couplings: Tensor<3>,
    /// Coupling coefficients of every iteration, first to last (diagnostics).
    pub coupling_history: Vec<Tensor<3>>,
}

/// The routing algorithm and its options (`model.routing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RoutingTable", into = "RoutingTable")]
pub enum RoutingConfig {
    /// Routing-by-agreement, Procedure 1 (`algorithm = "dynamic"`).
    Dynamic(DynamicRouting),
    /// Efficient-CapsNet's self-attention routing (`algorithm = "self-attention"`).
    SelfAttention(SelfAttentionRouting),
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self::Dynamic(DynamicRouting::default())
    }
}

/// The algorithms, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    /// [`RoutingConfig::Dynamic`].
    #[default]
    Dynamic,
    /// [`RoutingConfig::SelfAttention`].
    SelfAttention,
}

impl Algorithm {
    /// Every algorithm (the option grid, the parity and gradient tests run over it).
    pub const ALL: [Algorithm; 2] = [Algorithm::Dynamic, Algorithm::SelfAttention];

    /// Compile-time guard for [`Algorithm::ALL`]: this match is exhaustive, so a new variant
    /// does not compile until it is named here, next to the list it must join.
    #[allow(dead_code)]
    const fn listed_in_all(self) -> usize {
        match self {
            Algorithm::Dynamic => 0,
            Algorithm::SelfAttention => 1,
        }
    }

    /// The name used in experiment files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dynamic => "dynamic",
            Self::SelfAttention => "self-attention",
        }
    }

    /// The option keys this algorithm takes (besides `algorithm`).
    pub fn options(self) -> &'static [&'static str] {
        match self {
            Self::Dynamic => &["iterations", "stop_gradient", "leaky"],
            Self::SelfAttention => &["priors"],
        }
    }
}

impl RoutingConfig {
    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::Dynamic(_) => Algorithm::Dynamic,
            Self::SelfAttention(_) => Algorithm::SelfAttention,
        }
    }

    /// Dynamic routing's options, when that is the algorithm.
    pub fn dynamic(&self) -> Option<&DynamicRouting> {
        match self {
            Self::Dynamic(d) => Some(d),
            _ => None,
        }
    }

    /// Routing iterations, for the algorithms that iterate.
    pub fn iterations(&self) -> Option<usize> {
        match self {
            Self::Dynamic(d) => Some(d.iterations),
            Self::SelfAttention(_) => None,
        }
    }

    /// The same routing with `iterations` (an evaluation-time override); an error naming the
    /// algorithm for one that does not iterate.
    pub fn with_iterations(self, iterations: usize) -> Result<Self, ModelConfigError> {
        let routing = match self {
            Self::Dynamic(d) => Self::Dynamic(DynamicRouting { iterations, ..d }),
            Self::SelfAttention(_) => {
                return Err(ModelConfigError::Invalid {
                    key: "routing.iterations",
                    value: iterations.to_string(),
                    reason: format!(
                        "routing algorithm \"{}\" does not iterate (its options: {})",
                        self.algorithm().name(),
                        self.algorithm().options().join(", ")
                    ),
                });
            }
        };
        routing.validate()?;
        Ok(routing)
    }

    /// A short description for logs and tables: `dynamic r=3`, `self-attention`.
    pub fn describe(&self) -> String {
        match self {
            Self::Dynamic(d) => {
                let mut text = format!("dynamic r={}", d.iterations);
                if d.stop_gradient {
                    text.push_str(" stop-gradient");
                }
                if d.leaky {
                    text.push_str(" leaky");
                }
                text
            }
            Self::SelfAttention(s) => {
                if s.priors {
                    "self-attention".into()
                } else {
                    "self-attention without priors".into()
                }
            }
        }
    }

    /// Shape of the learned routing priors `[parents, children]`, for algorithms that have them.
    pub fn priors_shape(&self, parents: usize, children: usize) -> Option<[usize; 2]> {
        match self {
            Self::SelfAttention(SelfAttentionRouting { priors: true }) => Some([parents, children]),
            _ => None,
        }
    }

    /// Multiply-accumulates of one forward pass of the routing per example (the votes are not
    /// counted; element-wise work such as softmax and squash neither): dynamic routing's
    /// weighted sums and agreements over all iterations, `J·I·D·(2r − 1)`; self-attention's
    /// agreements and weighted sum, `2·J·I·D`.
    pub fn forward_macs(&self, children: usize, parents: usize, dim: usize) -> u64 {
        let per_pass = (children * parents * dim) as u64;
        match self {
            Self::Dynamic(d) => per_pass * (2 * d.iterations.max(1) as u64 - 1),
            Self::SelfAttention(_) => 2 * per_pass,
        }
    }

    /// Checks the options' values.
    pub fn validate(&self) -> Result<(), ModelConfigError> {
        match self {
            Self::Dynamic(d) if d.iterations > MAX_ROUTING_ITERATIONS => {
                Err(ModelConfigError::Invalid {
                    key: "routing.iterations",
                    value: d.iterations.to_string(),
                    reason: format!("must be between 0 and {MAX_ROUTING_ITERATIONS}"),
                })
            }
            _ => Ok(()),
        }
    }

    /// Every algorithm with every combination of its options (each option takes at least two
    /// values): the grid the fused-vs-generic parity and the gradient checks run over.
    pub fn option_grid() -> Vec<Self> {
        Algorithm::ALL
            .iter()
            .flat_map(|algorithm| match algorithm {
                Algorithm::Dynamic => DynamicRouting::option_grid()
                    .into_iter()
                    .map(Self::Dynamic)
                    .collect::<Vec<_>>(),
                Algorithm::SelfAttention => SelfAttentionRouting::option_grid()
                    .into_iter()
                    .map(Self::SelfAttention)
                    .collect(),
            })
            .collect()
    }
}

/// Routes votes `[batch, parents, children, dim]` to parents with the configured algorithm:
/// the one place that dispatches to the algorithms' reference implementations (the fused
/// kernels, where a backend has them, are picked in `crate::kernels`).
///
/// `bias`: `[parents, dim]`, added before squashing (any algorithm). `priors`: the algorithm's
/// learned priors, shaped as [`RoutingConfig::priors_shape`] says.
pub fn route(
    votes: Tensor<4>,
    bias: Option<&Tensor<2>>,
    priors: Option<&Tensor<2>>,
    config: &RoutingConfig,
    squash: &Squash,
) -> Routed {
    match config {
        RoutingConfig::Dynamic(dynamic) => route_dynamic(votes, bias, dynamic, squash),
        RoutingConfig::SelfAttention(SelfAttentionRouting {
            priors: with_priors,
        }) => {
            assert_eq!(
                priors.is_some(),
                *with_priors,
                "self-attention routing: the priors tensor must be given exactly when \
                 `priors` is on"
            );
            route_self_attention(votes, bias, priors, squash)
        }
    }
}

/// `model.routing` as written in files: the algorithm and every algorithm's options, each
/// optional; [`RoutingConfig`] is built from it, checking that every option given belongs to
/// the algorithm (unset options take the algorithm's defaults).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutingTable {
    #[serde(default)]
    algorithm: Algorithm,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iterations: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stop_gradient: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    leaky: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    priors: Option<bool>,
}

impl TryFrom<RoutingTable> for RoutingConfig {
    type Error = String;

    fn try_from(table: RoutingTable) -> Result<Self, String> {
        let RoutingTable {
            algorithm,
            iterations,
            stop_gradient,
            leaky,
            priors,
        } = table;
        let given = [
            ("iterations", iterations.is_some()),
            ("stop_gradient", stop_gradient.is_some()),
            ("leaky", leaky.is_some()),
            ("priors", priors.is_some()),
        ];
        if let Some((key, _)) = given
            .iter()
            .find(|(key, set)| *set && !algorithm.options().contains(key))
        {
            let takes: Vec<String> = Algorithm::ALL
                .iter()
                .filter(|a| a.options().contains(key))
                .map(|a| format!("\"{}\"", a.name()))
                .collect();
            return Err(format!(
                "`{key}` is not an option of routing algorithm \"{}\" (its options: {}; `{key}` \
                 belongs to {})",
                algorithm.name(),
                algorithm.options().join(", "),
                takes.join(", ")
            ));
        }
        Ok(match algorithm {
            Algorithm::Dynamic => {
                let d = DynamicRouting::default();
                Self::Dynamic(DynamicRouting {
                    iterations: iterations.unwrap_or(d.iterations),
                    stop_gradient: stop_gradient.unwrap_or(d.stop_gradient),
                    leaky: leaky.unwrap_or(d.leaky),
                })
            }
            Algorithm::SelfAttention => {
                let s = SelfAttentionRouting::default();
                Self::SelfAttention(SelfAttentionRouting {
                    priors: priors.unwrap_or(s.priors),
                })
            }
        })
    }
}

impl From<RoutingConfig> for RoutingTable {
    fn from(config: RoutingConfig) -> Self {
        match config {
            RoutingConfig::Dynamic(DynamicRouting {
                iterations,
                stop_gradient,
                leaky,
            }) => Self {
                algorithm: Algorithm::Dynamic,
                iterations: Some(iterations),
                stop_gradient: Some(stop_gradient),
                leaky: Some(leaky),
                ..Self::default()
            },
            RoutingConfig::SelfAttention(SelfAttentionRouting { priors }) => Self {
                algorithm: Algorithm::SelfAttention,
                priors: Some(priors),
                ..Self::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// The generated grid varies every option of every algorithm: a field added to an
    /// algorithm's options but not to its grid fails here (and does not compile in the
    /// grid's destructuring pattern).
    #[test]
    fn the_option_grid_varies_every_serialised_option() {
        for algorithm in Algorithm::ALL {
            let mut values: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for config in RoutingConfig::option_grid()
                .into_iter()
                .filter(|c| c.algorithm() == algorithm)
            {
                let table = serde_json::to_value(config).unwrap();
                for (key, value) in table.as_object().unwrap() {
                    values
                        .entry(key.clone())
                        .or_default()
                        .insert(value.to_string());
                }
            }
            let keys: BTreeSet<&str> = values.keys().map(String::as_str).collect();
            let mut expected: BTreeSet<&str> = algorithm.options().iter().copied().collect();
            expected.insert("algorithm");
            assert_eq!(
                keys, expected,
                "{algorithm:?}: serialised keys vs options()"
            );
            for key in algorithm.options() {
                assert!(
                    values[*key].len() >= 2,
                    "{algorithm:?}: option `{key}` takes one value in the grid"
                );
            }
        }
    }

    #[test]
    fn a_missing_algorithm_is_dynamic_and_round_trips() {
        let config: RoutingConfig = serde_json::from_str(r#"{"iterations": 2}"#).unwrap();
        assert_eq!(
            config,
            RoutingConfig::Dynamic(DynamicRouting {
                iterations: 2,
                ..Default::default()
            })
        );
        for config in RoutingConfig::option_grid() {
            let text = serde_json::to_string(&config).unwrap();
            let back: RoutingConfig = serde_json::from_str(&text).unwrap();
            assert_eq!(back, config, "{text}");
        }
    }

    /// Every option key of every algorithm, with a value from the grid, is refused under every
    /// other algorithm (so an option missing from the file form's checks fails here).
    #[test]
    fn every_option_of_another_algorithm_is_refused() {
        assert_eq!(
            Algorithm::ALL.map(Algorithm::listed_in_all),
            [0, 1],
            "Algorithm::ALL lists every variant once, in order"
        );
        for owner in RoutingConfig::option_grid() {
            let table = serde_json::to_value(owner).unwrap();
            for (key, value) in table.as_object().unwrap() {
                if key == "algorithm" {
                    continue;
                }
                for other in Algorithm::ALL {
                    if other.options().contains(&key.as_str()) {
                        continue;
                    }
                    let text = serde_json::json!({ "algorithm": other, key.as_str(): value });
                    let err = serde_json::from_value::<RoutingConfig>(text.clone())
                        .expect_err(&format!("{text} must be refused"))
                        .to_string();
                    assert!(err.contains(&format!("`{key}`")), "{text}: {err}");
                }
            }
        }
    }

    #[test]
    fn an_option_of_another_algorithm_is_refused_by_name() {
        let err = serde_json::from_str::<RoutingConfig>(
            r#"{"algorithm": "self-attention", "iterations": 3}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`iterations` is not an option"), "{err}");
        assert!(err.contains("\"self-attention\""), "{err}");
        assert!(err.contains("priors"), "{err}");
        let err = serde_json::from_str::<RoutingConfig>(r#"{"algorithm": "em"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("dynamic") && err.contains("self-attention"),
            "{err}"
        );
    }
}
