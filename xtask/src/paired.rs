//! Paired differences for `cargo xtask tables`: a row's runs matched one to one with its
//! partner row's runs by resolved-config keys (the seed), the mean of the per-pair differences
//! of test error and its two-sided 95% Student-t interval.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};

use crate::runs::{Run, mean_std};

/// The 0.975 quantile of Student's t distribution with `df` degrees of freedom (the factor of a
/// two-sided 95% interval): tabulated for 1–30, a Cornish–Fisher expansion around the normal
/// quantile beyond (off by less than 1e-5 there).
pub(crate) fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157,
        2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922,
        2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831,
        2.048407, 2.045230, 2.042272,
    ];
    assert!(df >= 1, "a t quantile needs at least 1 degree of freedom");
    if df <= TABLE.len() {
        return TABLE[df - 1];
    }
    let z: f64 = 1.959_963_984_540_054;
    let v = df as f64;
    let (z3, z5, z7) = (z.powi(3), z.powi(5), z.powi(7));
    z + (z3 + z) / (4.0 * v)
        + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * v * v)
        + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * v * v * v)
}

/// The mean of paired differences with its 95% t-interval (`None` for a single pair).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PairedDiff {
    pub(crate) mean: f64,
    pub(crate) interval: Option<(f64, f64)>,
    pub(crate) n: usize,
}

/// Mean and two-sided 95% Student-t interval of `diffs` (n − 1 degrees of freedom).
pub(crate) fn paired_diff(diffs: &[f64]) -> PairedDiff {
    let (mean, sd) = mean_std(diffs);
    let n = diffs.len();
    let interval = sd.map(|sd| {
        let half = t_975(n - 1) * sd / (n as f64).sqrt();
        (mean - half, mean + half)
    });
    PairedDiff { mean, interval, n }
}

/// `runs` keyed by the values of the resolved-config keys `by` (e.g. `seed = 0`); a run without
/// a key, or two runs with the same values, is an error naming `label`.
fn keyed<'a>(label: &str, runs: &[&'a Run], by: &[String]) -> Result<BTreeMap<String, &'a Run>> {
    let mut out = BTreeMap::new();
    for run in runs {
        let key = by
            .iter()
            .map(|k| {
                run.config
                    .get(k)
                    .map(|v| format!("{k} = {v}"))
                    .with_context(|| {
                        format!(
                            "row `{label}`: run {} has no `{k}` in its resolved config to pair by",
                            run.name
                        )
                    })
            })
            .collect::<Result<Vec<_>>>()?
            .join(", ");
        if let Some(other) = out.insert(key.clone(), *run) {
            bail!(
                "row `{label}` cannot be paired: runs {} and {} both have {key}",
                other.name,
                run.name
            );
        }
    }
    Ok(out)
}

/// The paired difference `row − partner` of final test error over the runs of the two rows,
/// matched by the keys `by`. Every run of the row needs exactly one partner run (the partner
/// may have more runs than the row).
pub(crate) fn pair_rows(
    label: &str,
    runs: &[&Run],
    partner_label: &str,
    partner_runs: &[&Run],
    by: &[String],
) -> Result<PairedDiff> {
    let mine = keyed(label, runs, by)?;
    let theirs = keyed(partner_label, partner_runs, by)?;
    let error = |run: &Run| {
        run.summary
            .final_test_error_pct
            .with_context(|| format!("run {} has no test error", run.name))
    };
    let mut diffs = Vec::new();
    for (key, run) in &mine {
        let partner = theirs.get(key).with_context(|| {
            format!("row `{label}` cannot be paired: no run of `{partner_label}` has {key}")
        })?;
        diffs.push(error(run)? - error(partner)?);
    }
    if diffs.is_empty() {
        bail!("row `{label}` has no runs to pair with `{partner_label}`");
    }
    Ok(paired_diff(&diffs))
}

/// `x` with its sign (`+` or the minus sign `−`), 2 decimals, as the Markdown tables print it.
pub(crate) fn signed(x: f64) -> String {
    let s = format!("{:.2}", x.abs());
    if s.trim_start_matches(['0', '.']).is_empty() {
        s
    } else if x < 0.0 {
        format!("−{s}")
    } else {
        format!("+{s}")
    }
}

impl PairedDiff {
    /// The Markdown cell: `−2.08 [−3.12, −1.04], n = 3`, or `+0.10, n = 1`.
    pub(crate) fn cell(&self) -> String {
        match self.interval {
            Some((lo, hi)) => format!(
                "{} [{}, {}], n = {}",
                signed(self.mean),
                signed(lo),
                signed(hi),
                self.n
            ),
            None => format!("{}, n = {}", signed(self.mean), self.n),
        }
    }

    /// The CSV fields `mean,lo,hi,n` (lo and hi empty for a single pair).
    pub(crate) fn csv(&self) -> String {
        let (lo, hi) = self
            .interval
            .map(|(lo, hi)| (format!("{lo:.4}"), format!("{hi:.4}")))
            .unwrap_or_default();
        format!("{:.4},{lo},{hi},{}", self.mean, self.n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_the_tables_and_approach_the_normal() {
        assert_eq!(t_975(1), 12.706205);
        assert_eq!(t_975(2), 4.302653);
        assert_eq!(t_975(30), 2.042272);
        // Beyond the table: t(0.975; 40) = 2.021075, 60: 2.000298, 120: 1.979930.
        for (df, want) in [
            (31, 2.039513),
            (40, 2.021075),
            (60, 2.000298),
            (120, 1.979930),
        ] {
            assert!((t_975(df) - want).abs() < 1e-5, "df {df}: {}", t_975(df));
        }
        assert!((t_975(100_000) - 1.959988).abs() < 1e-6);
        assert!((2..200).all(|df| t_975(df) < t_975(df - 1)));
    }

    /// Differences 1, 2, 3: mean 2, sd 1, t(0.975; 2) = 4.303, half-width 4.303 / √3 = 2.484.
    #[test]
    fn interval_of_hand_computed_differences() {
        let d = paired_diff(&[1.0, 2.0, 3.0]);
        assert_eq!(d.n, 3);
        assert!((d.mean - 2.0).abs() < 1e-12);
        let (lo, hi) = d.interval.unwrap();
        assert!((lo - (2.0 - 2.484)).abs() < 1e-3, "{lo}");
        assert!((hi - (2.0 + 2.484)).abs() < 1e-3, "{hi}");
        assert_eq!(d.cell(), "+2.00 [−0.48, +4.48], n = 3");
        assert_eq!(d.csv(), "2.0000,-0.4841,4.4841,3");
        let one = paired_diff(&[-0.25]);
        assert_eq!(one.interval, None);
        assert_eq!(one.cell(), "−0.25, n = 1");
        assert_eq!(one.csv(), "-0.2500,,,1");
        assert_eq!(signed(-0.001), "0.00");
        assert_eq!(signed(0.0), "0.00");
    }
}
