//! Learning curves: `[[figure]]`s of `results/tables.toml` with
//! `curve = { kind = "train" | "eval", value = "<record key>" }` instead of `x`, drawn by
//! `cargo xtask tables` from each run's `metrics.jsonl` (copied beside `summary.json` by
//! `cargo xtask collect`).
//!
//! The x axis is the global training `step`. `kind = "train"` takes the records written every
//! `log_every_steps` (`loss`, `margin_loss`, `recon_loss`, `accuracy`, `lr`, `images_per_sec`:
//! means over the window of steps that ends at `step`); `kind = "eval"` takes the evaluations
//! of the main test set (`test_error_pct`, `test_loss`, `test_accuracy`, …), or with
//! `set = "<name>"` those of an extra evaluation set (`affine`, …). A step logged twice (a
//! resumed run) keeps its last record.
//!
//! Each series (runs selected by resolved-config keys, as for the other figures: `runs.rs`)
//! draws every run as a thin line in the series' colour and the mean over its runs as a thick
//! one, at the steps all of them share only. `log_x` and `log_y` give logarithmic axes; the
//! legend goes to the corner of the plot with the least data under it. The CSV
//! (`<name>.csv`) has one row per series, step and run (`run` = the run's folder) and one per
//! shared step with `run = mean`. Errors name the figure and series: an unknown `kind`, a run
//! without `metrics.jsonl`, records without the `value` key (the keys they have are listed),
//! runs that share no step, a non-positive value on a log axis.
//!
//! The drawing setup (size, colours, embedded font, PNG encoding) is `figures.rs`'s, so the
//! bytes are the same on every machine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use plotters::coord::Shift;
use plotters::coord::combinators::BindKeyPoints;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use serde::Deserialize;

use crate::figures::{
    COLORS, FigureSpec, HEIGHT, SeriesSpec, WIDTH, chart, padded, register_font, tick_label,
};
use crate::runs::{Run, check_finished, csv_field, matches};

/// `curve = { kind = "train", value = "margin_loss" }` of a `[[figure]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurveSpec {
    /// Which records of `metrics.jsonl`: `train` (every log window) or `eval` (every
    /// evaluation).
    pub kind: String,
    /// The records' key on the y axis (e.g. `margin_loss`, `test_error_pct`).
    pub value: String,
    /// For `eval`: an extra evaluation set (e.g. `affine`); without it, the main test set.
    pub set: Option<String>,
}

/// One run's curve: (step, value) in increasing step.
struct RunCurve {
    name: String,
    points: Vec<(u64, f64)>,
}

/// One series: its runs' curves and their mean at the steps all of them share.
struct SeriesCurves<'a> {
    spec: &'a SeriesSpec,
    runs: Vec<RunCurve>,
    mean: Vec<(u64, f64)>,
}

/// The `.csv`, `.svg` and `.png` of the curve figure `figure`, computed in memory.
pub(crate) fn render(
    results: &Path,
    figure: &FigureSpec,
    curve: &CurveSpec,
    runs: &[Run],
) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let name = &figure.name;
    if curve.kind != "train" && curve.kind != "eval" {
        bail!(
            "figure `{name}`: curve.kind = `{}` is neither `train` nor `eval`",
            curve.kind
        );
    }
    if curve.kind == "train"
        && let Some(set) = &curve.set
    {
        bail!("figure `{name}`: curve.set = `{set}` is only for kind = \"eval\"");
    }
    if figure.series.is_empty() {
        bail!("figure `{name}` has no series");
    }
    if figure.series.len() > COLORS.len() {
        bail!(
            "figure `{name}` has {} series; at most {} are drawn distinguishably",
            figure.series.len(),
            COLORS.len()
        );
    }
    let series: Vec<SeriesCurves> = figure
        .series
        .iter()
        .map(|s| series_curves(figure, curve, s, runs))
        .collect::<Result<_>>()?;
    if figure.log_y
        && let Some((s, run, step, v)) = series
            .iter()
            .flat_map(|s| {
                s.runs
                    .iter()
                    .flat_map(move |r| r.points.iter().map(move |&(x, v)| (s, r, x, v)))
            })
            .find(|p| p.3 <= 0.0)
    {
        bail!(
            "series `{}` of figure `{name}`: run {} has {} = {v} at step {step}, which a logarithmic y axis cannot show",
            s.spec.label,
            run.name,
            curve.value
        );
    }
    let csv = csv(curve, &series);
    register_font()?;
    let mut svg = String::new();
    draw(
        SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area(),
        figure,
        &series,
    )?;
    let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    draw(
        BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area(),
        figure,
        &series,
    )?;
    crate::figures::outputs(results, figure, csv, svg, &rgb)
}

/// The curves of one series' runs and their mean.
fn series_curves<'a>(
    figure: &FigureSpec,
    curve: &CurveSpec,
    series: &'a SeriesSpec,
    runs: &[Run],
) -> Result<SeriesCurves<'a>> {
    let context = || format!("series `{}` of figure `{}`", series.label, figure.name);
    if series.set.is_some() {
        bail!(
            "{}: `set` is for figures over a config key; a curve's evaluation set is `curve.set`",
            context()
        );
    }
    let matched: Vec<&Run> = runs
        .iter()
        .filter(|r| matches(r, &series.matches))
        .collect();
    if matched.is_empty() {
        bail!("{} matches no run (match: {})", context(), series.matches);
    }
    let mut curves = Vec::new();
    for run in matched {
        check_finished(run).with_context(context)?;
        curves.push(RunCurve {
            name: run.name.clone(),
            points: read_curve(run, curve).with_context(context)?,
        });
    }
    let shared: BTreeSet<u64> = curves
        .iter()
        .map(|c| c.points.iter().map(|p| p.0).collect::<BTreeSet<u64>>())
        .reduce(|a, b| a.intersection(&b).copied().collect())
        .unwrap_or_default();
    if shared.is_empty() {
        let names: Vec<&str> = curves.iter().map(|c| c.name.as_str()).collect();
        bail!(
            "{}: runs {} share no step of their `{}` records, so they have no mean",
            context(),
            names.join(", "),
            curve.kind
        );
    }
    let mean = shared
        .iter()
        .map(|&step| {
            let sum: f64 = curves
                .iter()
                .map(|c| {
                    let i = c.points.partition_point(|p| p.0 < step);
                    c.points[i].1
                })
                .sum();
            (step, sum / curves.len() as f64)
        })
        .collect();
    Ok(SeriesCurves {
        spec: series,
        runs: curves,
        mean,
    })
}

/// `run`'s (step, value) of `curve` from its `metrics.jsonl`, in increasing step.
fn read_curve(run: &Run, curve: &CurveSpec) -> Result<Vec<(u64, f64)>> {
    let path = run.dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "run {} has no metrics.jsonl ({}; collect the runs again with `cargo xtask collect`)",
            run.name,
            path.display()
        )
    })?;
    let what = match &curve.set {
        Some(set) => format!("`{}` records on `{set}`", curve.kind),
        None => format!("`{}` records", curve.kind),
    };
    let mut points = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{} line {} is not JSON", path.display(), i + 1))?;
        if record.get("kind").and_then(|k| k.as_str()) != Some(curve.kind.as_str())
            || record.get("set").and_then(|s| s.as_str()) != curve.set.as_deref()
        {
            continue;
        }
        let step = record
            .get("step")
            .and_then(|s| s.as_u64())
            .with_context(|| format!("{} line {} has no step", path.display(), i + 1))?;
        let value = match record.get(&curve.value) {
            Some(v) => v.as_f64().with_context(|| {
                format!(
                    "run {}: {} = {v} at step {step} is not a number",
                    run.name, curve.value
                )
            })?,
            None => {
                let mut keys: Vec<&str> = record
                    .as_object()
                    .map(|o| o.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                keys.sort_unstable();
                bail!(
                    "run {}'s {what} have no value `{}` (curve.value; they have {})",
                    run.name,
                    curve.value,
                    keys.join(", ")
                );
            }
        };
        points.insert(step, value);
    }
    if points.is_empty() {
        bail!("run {}'s metrics.jsonl has no {what}", run.name);
    }
    Ok(points.into_iter().collect())
}

/// One row per series, step and run, and one per shared step with `run = mean`.
fn csv(curve: &CurveSpec, series: &[SeriesCurves]) -> String {
    let mut csv = format!("series,step,run,{}\n", csv_field(&curve.value));
    for s in series {
        let steps: BTreeSet<u64> = s
            .runs
            .iter()
            .flat_map(|r| r.points.iter().map(|p| p.0))
            .collect();
        let label = csv_field(&s.spec.label);
        for step in steps {
            for run in &s.runs {
                if let Ok(i) = run.points.binary_search_by_key(&step, |p| p.0) {
                    csv += &format!(
                        "{label},{step},{},{:.6}\n",
                        csv_field(&run.name),
                        run.points[i].1
                    );
                }
            }
            if let Ok(i) = s.mean.binary_search_by_key(&step, |p| p.0) {
                csv += &format!("{label},{step},mean,{:.6}\n", s.mean[i].1);
            }
        }
    }
    csv
}

/// Up to this many shared steps, the points are marked as well as joined.
const MARKED_POINTS: usize = 20;

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    figure: &FigureSpec,
    series: &[SeriesCurves],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let all = || {
        series
            .iter()
            .flat_map(|s| s.runs.iter().flat_map(|r| r.points.iter().copied()))
    };
    let (x_lo, x_hi) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
        (lo.min(p.0 as f64), hi.max(p.0 as f64))
    });
    let (y_lo, y_hi) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
        (lo.min(p.1), hi.max(p.1))
    });
    // A linear step axis starts at step 0; a log one (steps are ≥ 1) is padded.
    let (x_lo, x_hi) = if figure.log_x {
        padded(x_lo.max(1.0), x_hi, true)
    } else {
        (0.0, x_hi * 1.04 + 1.0)
    };
    let (y_lo, y_hi) = if figure.log_y {
        padded(y_lo, y_hi, true)
    } else {
        (y_lo.min(0.0), y_hi * 1.08 + 1e-9)
    };
    let axes = Axes {
        x: (x_lo, x_hi, figure.log_x),
        y: (y_lo, y_hi, figure.log_y),
    };
    match (figure.log_x, figure.log_y) {
        (true, true) => plot(
            root,
            figure,
            series,
            (x_lo..x_hi).log_scale(),
            (y_lo..y_hi)
                .log_scale()
                .with_key_points(log_ticks(y_lo, y_hi)),
            &axes,
        ),
        (true, false) => plot(
            root,
            figure,
            series,
            (x_lo..x_hi).log_scale(),
            y_lo..y_hi,
            &axes,
        ),
        (false, true) => plot(
            root,
            figure,
            series,
            x_lo..x_hi,
            (y_lo..y_hi)
                .log_scale()
                .with_key_points(log_ticks(y_lo, y_hi)),
            &axes,
        ),
        (false, false) => plot(root, figure, series, x_lo..x_hi, y_lo..y_hi, &axes),
    }
}

/// The plotted ranges (low, high, logarithmic), to place the legend.
struct Axes {
    x: (f64, f64, bool),
    y: (f64, f64, bool),
}

impl Axes {
    /// `(x, y)` as a fraction of the plot area (0 at the left and bottom).
    fn unit(&self, x: f64, y: f64) -> (f64, f64) {
        let f = |v: f64, (lo, hi, log): (f64, f64, bool)| {
            if log {
                (v.ln() - lo.ln()) / (hi.ln() - lo.ln())
            } else {
                (v - lo) / (hi - lo)
            }
        };
        (f(x, self.x), f(y, self.y))
    }
}

/// The ticks of a logarithmic axis: 1–9 × each power of ten within `lo..=hi` (plotters' own
/// label some values twice, e.g. 0.1 as the end of one decade and the start of the next).
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let (first, last) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    (first..=last)
        .flat_map(|k| (1..=9).map(move |m| f64::from(m) * 10f64.powi(k)))
        .filter(|v| (lo..=hi).contains(v))
        .collect()
}

/// A y tick: the value to 4 significant digits, without trailing zeros.
fn y_tick(v: f64) -> String {
    let decimals = if v == 0.0 {
        0
    } else {
        (3 - v.abs().log10().floor() as i32).clamp(0, 12) as usize
    };
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    if s == "-0" { "0".into() } else { s.into() }
}

fn legend_label(s: &SeriesCurves) -> String {
    format!(
        "{} ({} runs thin, their mean thick)",
        s.spec.label,
        s.runs.len()
    )
}

fn plot<DB, X, Y>(
    root: DrawingArea<DB, Shift>,
    figure: &FigureSpec,
    series: &[SeriesCurves],
    x: X,
    y: Y,
    axes: &Axes,
) -> Result<()>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let err = |e: &dyn std::fmt::Debug| anyhow::anyhow!("drawing figure `{}`: {e:?}", figure.name);
    let x_formatter = |v: &f64| tick_label(v.round());
    let y_formatter = |v: &f64| y_tick(*v);
    let mut chart = chart(&root, figure, x, y, 10, &x_formatter, &y_formatter)?;
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i];
        let marked = s.mean.len() <= MARKED_POINTS;
        for run in &s.runs {
            let line: Vec<(f64, f64)> = run.points.iter().map(|&(x, v)| (x as f64, v)).collect();
            chart
                .draw_series(LineSeries::new(
                    line.clone(),
                    color.mix(0.45).stroke_width(1),
                ))
                .map_err(|e| err(&e))?;
            if marked {
                chart
                    .draw_series(
                        line.into_iter()
                            .map(|p| Circle::new(p, 2, color.mix(0.7).stroke_width(1))),
                    )
                    .map_err(|e| err(&e))?;
            }
        }
        let mean: Vec<(f64, f64)> = s.mean.iter().map(|&(x, v)| (x as f64, v)).collect();
        chart
            .draw_series(LineSeries::new(mean.clone(), color.stroke_width(3)))
            .map_err(|e| err(&e))?
            .label(legend_label(s))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 22, y)], color.stroke_width(3))
            });
        if marked {
            chart
                .draw_series(mean.into_iter().map(|p| Circle::new(p, 4, color.filled())))
                .map_err(|e| err(&e))?;
        }
    }
    chart
        .configure_series_labels()
        .position(legend_corner(series, axes))
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// The corner of the plot whose legend-sized box covers the fewest points of the drawn lines
/// (each segment sampled), upper right first on ties.
fn legend_corner(series: &[SeriesCurves], axes: &Axes) -> SeriesLabelPosition {
    // The legend's size as a fraction of the plot area, from the label lengths (13 px text
    // about 7.5 px a character, 22 px of line sample, padding) and ~19 px a row.
    let (plot_w, plot_h) = (
        f64::from(WIDTH) - 2.0 * 14.0 - 62.0,
        f64::from(HEIGHT) - 2.0 * 14.0 - 46.0 - 30.0,
    );
    let chars = series
        .iter()
        .map(|s| legend_label(s).chars().count())
        .max()
        .unwrap_or(0);
    let w = ((chars as f64 * 7.5 + 50.0) / plot_w).min(1.0);
    let h = ((series.len() as f64 * 19.0 + 30.0) / plot_h).min(1.0);
    let mut samples = Vec::new();
    for s in series {
        let lines = s.runs.iter().map(|r| r.points.as_slice());
        for line in lines.chain(std::iter::once(s.mean.as_slice())) {
            let unit: Vec<(f64, f64)> = line.iter().map(|&(x, v)| axes.unit(x as f64, v)).collect();
            samples.extend(unit.first().copied());
            for pair in unit.windows(2) {
                let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
                samples.extend((1..=16).map(|k| {
                    let t = f64::from(k) / 16.0;
                    (x0 + t * (x1 - x0), y0 + t * (y1 - y0))
                }));
            }
        }
    }
    let corners = [
        (
            SeriesLabelPosition::UpperRight,
            (1.0 - w, 1.0),
            (1.0 - h, 1.0),
        ),
        (SeriesLabelPosition::UpperLeft, (0.0, w), (1.0 - h, 1.0)),
        (SeriesLabelPosition::LowerRight, (1.0 - w, 1.0), (0.0, h)),
        (SeriesLabelPosition::LowerLeft, (0.0, w), (0.0, h)),
    ];
    let covered = |(xs, ys): ((f64, f64), (f64, f64))| {
        samples
            .iter()
            .filter(|(x, y)| (xs.0..=xs.1).contains(x) && (ys.0..=ys.1).contains(y))
            .count()
    };
    corners
        .into_iter()
        .min_by_key(|(_, xs, ys)| covered((*xs, *ys)))
        .map(|(corner, _, _)| corner)
        .unwrap_or(SeriesLabelPosition::UpperRight)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn y_ticks_drop_float_noise() {
        assert_eq!(y_tick(0.30000000000000004), "0.3");
        assert_eq!(y_tick(1.0), "1");
        assert_eq!(y_tick(0.025), "0.025");
        assert_eq!(y_tick(-0.0), "0");
        assert_eq!(y_tick(0.07), "0.07");
        assert_eq!(y_tick(0.0001), "0.0001");
        assert_eq!(y_tick(1800.0), "1800");
        assert_eq!(y_tick(0.1), "0.1");
    }

    /// The legend goes where the lines are not: above a falling curve's right end, below a
    /// curve that stays high.
    #[test]
    fn legend_avoids_the_lines() {
        let spec = SeriesSpec {
            label: "s".into(),
            matches: toml::Table::new(),
            set: None,
        };
        let curves = |points: Vec<(u64, f64)>| {
            vec![SeriesCurves {
                spec: &spec,
                runs: vec![RunCurve {
                    name: "a".into(),
                    points: points.clone(),
                }],
                mean: points,
            }]
        };
        let axes = Axes {
            x: (0.0, 1000.0, false),
            y: (0.0, 1.0, false),
        };
        let falling = curves(vec![(10, 0.95), (100, 0.2), (1000, 0.1)]);
        assert!(matches!(
            legend_corner(&falling, &axes),
            SeriesLabelPosition::UpperRight
        ));
        let rising = curves(vec![(10, 0.1), (500, 0.5), (1000, 0.95)]);
        assert!(matches!(
            legend_corner(&rising, &axes),
            SeriesLabelPosition::UpperLeft
        ));
        let high = curves(vec![(10, 0.9), (1000, 0.95)]);
        assert!(matches!(
            legend_corner(&high, &axes),
            SeriesLabelPosition::LowerRight
        ));
    }

    #[test]
    fn log_ticks_name_each_value_once() {
        let ticks = log_ticks(0.008, 0.65);
        let labels: Vec<String> = ticks.iter().map(|&v| y_tick(v)).collect();
        assert_eq!(labels.first().map(String::as_str), Some("0.008"));
        assert_eq!(labels.last().map(String::as_str), Some("0.6"));
        assert_eq!(
            labels.iter().filter(|l| *l == "0.1").count(),
            1,
            "{labels:?}"
        );
        assert_eq!(labels.len(), 2 + 9 + 6, "{labels:?}");
    }
}
