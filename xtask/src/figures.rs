//! Figures declared beside the tables in `results/tables.toml` (`[[figure]]`), drawn by
//! `cargo xtask tables` from the same committed run records.
//!
//! A figure is one of two kinds:
//!
//! - with `x = "<dotted config key>"`: per series (runs selected by resolved-config keys, like a
//!   table row), the mean ± sample standard deviation over runs (seeds) of the final error on
//!   one evaluation set (`set`: `test`, the default, or an extra set such as `train`) against
//!   that numeric config key (drawn here);
//! - with `curve = { kind = "train" | "eval", value = "<record key>" }` instead: learning
//!   curves over training steps from each run's `metrics.jsonl` (drawn by `curves.rs`).
//!
//! The output is `results/figures/<name>.{png,svg}` and the numbers behind it, `<name>.csv`.
//! PNG text is rasterised from the DejaVu Sans bytes the binary embeds (no system fonts) and the
//! PNG is encoded here, so the bytes are the same on every machine; `--check` compares all
//! three files. Run records are read and selected by `runs.rs`, as for the tables.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use serde::Deserialize;
use toml::Value;

use crate::runs::{Run, check_finished, csv_field, matches, mean_std};

/// One `[[figure]]` of `results/tables.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FigureSpec {
    /// File stem under `results/figures/`.
    pub name: String,
    /// Caption drawn above the plot.
    pub title: String,
    /// Folder of run records, relative to `results/`.
    pub raw: String,
    /// Dotted resolved-config key on the x axis (numeric); exactly one of `x` and `curve`.
    pub x: Option<String>,
    /// Learning curves over training steps instead (`curves.rs`).
    pub curve: Option<crate::curves::CurveSpec>,
    pub x_label: String,
    #[serde(default)]
    pub log_x: bool,
    pub y_label: String,
    #[serde(default)]
    pub log_y: bool,
    pub series: Vec<SeriesSpec>,
}

/// One line of a figure.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesSpec {
    pub label: String,
    /// Dotted resolved-config keys and the values a run must have (empty: every run).
    #[serde(rename = "match", default)]
    pub matches: toml::Table,
    /// Evaluation set whose final error is plotted: `test` (default) or an extra set. Not for
    /// curves (their set is `curve.set`).
    pub set: Option<String>,
}

impl SeriesSpec {
    /// The evaluation set of an `x` figure's series.
    fn set(&self) -> &str {
        self.set.as_deref().unwrap_or("test")
    }
}

/// One point: the runs at one x value.
#[derive(Debug, Clone, PartialEq)]
struct Point {
    x: f64,
    mean: f64,
    std: Option<f64>,
    runs: Vec<String>,
    /// Each run's error, in `runs` order (drawn as its own point).
    errors: Vec<f64>,
}

pub(crate) const WIDTH: u32 = 800;
pub(crate) const HEIGHT: u32 = 520;
pub(crate) const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// The `.csv`, `.svg` and `.png` of `figure`, computed in memory.
pub fn render(
    results: &Path,
    figure: &FigureSpec,
    runs: &[Run],
) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let x = match (&figure.x, &figure.curve) {
        (Some(x), None) => x,
        (None, Some(curve)) => return crate::curves::render(results, figure, curve, runs),
        _ => bail!(
            "figure `{}` needs exactly one of `x` (a config key) and `curve` (learning curves)",
            figure.name
        ),
    };
    if figure.series.is_empty() {
        bail!("figure `{}` has no series", figure.name);
    }
    if figure.series.len() > COLORS.len() {
        bail!(
            "figure `{}` has {} series; at most {} are drawn distinguishably",
            figure.name,
            figure.series.len(),
            COLORS.len()
        );
    }
    let series: Vec<(&SeriesSpec, Vec<Point>)> = figure
        .series
        .iter()
        .map(|s| Ok((s, points(figure, x, s, runs)?)))
        .collect::<Result<_>>()?;
    let mut csv = String::from("series,set,x,n,mean_error_pct,std_error_pct,runs\n");
    for (spec, points) in &series {
        for p in points {
            csv += &format!(
                "{},{},{},{},{:.4},{},{}\n",
                csv_field(&spec.label),
                spec.set(),
                p.x,
                p.runs.len(),
                p.mean,
                p.std.map(|s| format!("{s:.4}")).unwrap_or_default(),
                csv_field(&p.runs.join(" ")),
            );
        }
    }
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
    outputs(results, figure, csv, svg, &rgb)
}

/// The `.csv`, `.svg` and `.png` of `figure` under `results/figures/`.
pub(crate) fn outputs(
    results: &Path,
    figure: &FigureSpec,
    csv: String,
    svg: String,
    rgb: &[u8],
) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let dir = results.join("figures");
    Ok(vec![
        (dir.join(format!("{}.csv", figure.name)), csv.into_bytes()),
        (dir.join(format!("{}.svg", figure.name)), svg.into_bytes()),
        (dir.join(format!("{}.png", figure.name)), encode_png(rgb)?),
    ])
}

/// The points of one series: runs grouped by their value of the config key `x`, in increasing x.
fn points(
    figure: &FigureSpec,
    x_key: &str,
    series: &SeriesSpec,
    runs: &[Run],
) -> Result<Vec<Point>> {
    let context = || format!("series `{}` of figure `{}`", series.label, figure.name);
    let matched: Vec<&Run> = runs
        .iter()
        .filter(|r| matches(r, &series.matches))
        .collect();
    if matched.is_empty() {
        bail!("{} matches no run (match: {})", context(), series.matches);
    }
    // Keyed by the x value's bits: x values are exact config numbers, never computed.
    let mut by_x: BTreeMap<u64, (f64, Vec<f64>, Vec<String>)> = BTreeMap::new();
    for run in matched {
        check_finished(run).with_context(context)?;
        let x = match run.config.get(x_key) {
            Some(Value::Integer(i)) => *i as f64,
            Some(Value::Float(f)) => *f,
            Some(other) => bail!(
                "{}: run {} has {} = {other}, not a number",
                context(),
                run.name,
                x_key
            ),
            None => bail!("{}: run {} has no {}", context(), run.name, x_key),
        };
        if (figure.log_x && x <= 0.0) || !x.is_finite() {
            bail!(
                "{}: run {} has {} = {x}, which a {} x axis cannot show",
                context(),
                run.name,
                x_key,
                if figure.log_x { "logarithmic" } else { "" }
            );
        }
        let error = match series.set() {
            "test" => run
                .summary
                .final_test_error_pct
                .with_context(|| format!("run {} has no test error", run.name))?,
            set => {
                100.0
                    - run.summary.final_extra_accuracy.get(set).with_context(|| {
                        format!(
                            "{}: run {} was not evaluated on `{set}`",
                            context(),
                            run.name
                        )
                    })?
            }
        };
        // -0.0 and 0.0 are one point.
        let key = if x == 0.0 { 0 } else { x.to_bits() };
        let entry = by_x
            .entry(key)
            .or_insert_with(|| (x, Vec::new(), Vec::new()));
        entry.1.push(error);
        entry.2.push(run.name.clone());
    }
    let mut points: Vec<Point> = by_x
        .into_values()
        .map(|(x, errors, runs)| {
            let (mean, std) = mean_std(&errors);
            Point {
                x,
                mean,
                std,
                runs,
                errors,
            }
        })
        .collect();
    points.sort_by(|a, b| a.x.total_cmp(&b.x));
    Ok(points)
}

pub(crate) fn register_font() -> Result<()> {
    plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| anyhow::anyhow!("the embedded DejaVu Sans font did not load"))
}

/// Axis range with a margin: a factor on log axes, a fraction of the span on linear ones.
pub(crate) fn padded(lo: f64, hi: f64, log: bool) -> (f64, f64) {
    if log {
        (lo / 1.5, hi * 1.5)
    } else {
        let pad = ((hi - lo) * 0.08).max(0.5);
        (lo - pad, hi + pad)
    }
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    figure: &FigureSpec,
    series: &[(&SeriesSpec, Vec<Point>)],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let all = || series.iter().flat_map(|(_, p)| p);
    let (x_lo, x_hi) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
        (lo.min(p.x), hi.max(p.x))
    });
    let low = |p: &Point| p.mean - p.std.unwrap_or(0.0);
    let high = |p: &Point| p.mean + p.std.unwrap_or(0.0);
    let (x_lo, x_hi) = padded(x_lo, x_hi, figure.log_x);
    // The axis holds every run's point, not only the band.
    let y_hi = all()
        .map(|p| p.errors.iter().copied().fold(high(p), f64::max))
        .fold(f64::NEG_INFINITY, f64::max);
    // No band below zero: on a linear axis it is cut at zero, on a log axis at a fifth of the
    // smallest mean.
    let floor = all()
        .map(|p| p.mean)
        .fold(f64::INFINITY, f64::min)
        .max(1e-3)
        / 5.0;
    let (y_lo, y_hi) = if figure.log_y {
        let lo = all()
            .map(|p| p.errors.iter().copied().fold(low(p), f64::min).max(floor))
            .fold(f64::INFINITY, f64::min);
        padded(lo, y_hi, true)
    } else {
        (0.0, y_hi * 1.08 + 1e-9)
    };
    let x_ticks: Vec<f64> = {
        let mut xs: Vec<f64> = all().map(|p| p.x).collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        xs
    };
    match (figure.log_x, figure.log_y) {
        (true, true) => plot(
            root,
            figure,
            series,
            (x_lo..x_hi).log_scale(),
            (y_lo..y_hi).log_scale(),
            floor,
            &x_ticks,
        ),
        (true, false) => plot(
            root,
            figure,
            series,
            (x_lo..x_hi).log_scale(),
            y_lo..y_hi,
            0.0,
            &x_ticks,
        ),
        (false, true) => plot(
            root,
            figure,
            series,
            x_lo..x_hi,
            (y_lo..y_hi).log_scale(),
            floor,
            &x_ticks,
        ),
        (false, false) => plot(root, figure, series, x_lo..x_hi, y_lo..y_hi, 0.0, &x_ticks),
    }
}

pub(crate) fn tick_label(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        let grouped = capsnet_common::group_thousands(v.abs() as u64);
        format!("{}{grouped}", if v < 0.0 { "-" } else { "" })
    } else {
        format!("{v:.2}")
    }
}

/// A chart over the coordinates `x` and `y` give.
pub(crate) type Chart<'a, DB, X, Y> = ChartContext<
    'a,
    DB,
    Cartesian2d<<X as AsRangedCoord>::CoordDescType, <Y as AsRangedCoord>::CoordDescType>,
>;

/// A figure's chart on `root`: white background, caption, label areas and the mesh every figure
/// shares, with `x_labels` x ticks and the two tick formatters.
pub(crate) fn chart<'a, DB, X, Y>(
    root: &'a DrawingArea<DB, Shift>,
    figure: &FigureSpec,
    x: X,
    y: Y,
    x_labels: usize,
    x_formatter: &dyn Fn(&f64) -> String,
    y_formatter: &dyn Fn(&f64) -> String,
) -> Result<Chart<'a, DB, X, Y>>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let err = |e: &dyn std::fmt::Debug| anyhow::anyhow!("drawing figure `{}`: {e:?}", figure.name);
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(root)
        .caption(&figure.title, ("sans-serif", 17))
        .margin(14)
        .x_label_area_size(46)
        .y_label_area_size(62)
        .build_cartesian_2d(x, y)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc(figure.x_label.as_str())
        .y_desc(figure.y_label.as_str())
        .x_labels(x_labels)
        .x_label_formatter(x_formatter)
        .y_labels(12)
        .y_label_formatter(y_formatter)
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .light_line_style(WHITE)
        .bold_line_style(BLACK.mix(0.12))
        .draw()
        .map_err(|e| err(&e))?;
    Ok(chart)
}

#[allow(clippy::too_many_arguments)]
fn plot<DB, X, Y>(
    root: DrawingArea<DB, Shift>,
    figure: &FigureSpec,
    series: &[(&SeriesSpec, Vec<Point>)],
    x: X,
    y: Y,
    floor: f64,
    x_ticks: &[f64],
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
    // Only the x values that have runs get a label (a log axis would otherwise label 200, 500…).
    let x_formatter = |v: &f64| {
        if x_ticks
            .iter()
            .any(|t| (t - v).abs() <= 1e-9 * t.abs().max(1.0))
        {
            tick_label(*v)
        } else {
            String::new()
        }
    };
    let y_formatter = |v: &f64| format!("{v}");
    let x_labels = if figure.log_x { 40 } else { x_ticks.len() * 4 };
    let mut chart = chart(&root, figure, x, y, x_labels, &x_formatter, &y_formatter)?;
    for (i, (spec, points)) in series.iter().enumerate() {
        let color = COLORS[i];
        if points.iter().any(|p| p.std.is_some()) {
            let upper = points.iter().map(|p| (p.x, p.mean + p.std.unwrap_or(0.0)));
            let lower = points
                .iter()
                .rev()
                .map(|p| (p.x, (p.mean - p.std.unwrap_or(0.0)).max(floor)));
            chart
                .draw_series(std::iter::once(Polygon::new(
                    upper.chain(lower).collect::<Vec<_>>(),
                    color.mix(0.18),
                )))
                .map_err(|e| err(&e))?;
        }
        // Every run as its own small hollow point, beside the mean.
        chart
            .draw_series(points.iter().flat_map(|p| {
                p.errors.iter().map(move |&e| {
                    Circle::new((p.x, e.max(floor)), 2, color.mix(0.7).stroke_width(1))
                })
            }))
            .map_err(|e| err(&e))?;
        let line: Vec<(f64, f64)> = points.iter().map(|p| (p.x, p.mean)).collect();
        let n = points.iter().map(|p| p.runs.len()).max().unwrap_or(0);
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(format!("{} (mean ± std and each run, n = {n})", spec.label))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 22, y)], color.stroke_width(2))
            });
        chart
            .draw_series(line.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .position(legend_corner(series))
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// The upper corner whose side of the plot has the lower data (by the highest mean + std in
/// the outer third of the x values), so that the legend stays clear of it.
fn legend_corner(series: &[(&SeriesSpec, Vec<Point>)]) -> SeriesLabelPosition {
    let xs: Vec<f64> = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|p| p.x))
        .collect();
    if xs.is_empty() {
        return SeriesLabelPosition::UpperRight;
    }
    let mut sorted = xs.clone();
    sorted.sort_by(f64::total_cmp);
    sorted.dedup();
    let third = sorted.len().div_ceil(3);
    let (left, right) = (&sorted[..third], &sorted[sorted.len() - third..]);
    let top = |edge: &[f64]| {
        series
            .iter()
            .flat_map(|(_, p)| p.iter())
            .filter(|p| edge.contains(&p.x))
            .map(|p| {
                p.errors
                    .iter()
                    .copied()
                    .fold(p.mean + p.std.unwrap_or(0.0), f64::max)
            })
            .fold(f64::NEG_INFINITY, f64::max)
    };
    if top(right) > top(left) {
        SeriesLabelPosition::UpperLeft
    } else {
        SeriesLabelPosition::UpperRight
    }
}

/// RGB pixels as a PNG, with fixed encoder settings (same bytes for the same pixels).
fn encode_png(rgb: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Balanced);
    let mut writer = encoder.write_header().context("PNG header")?;
    writer.write_image_data(rgb).context("PNG data")?;
    writer.finish().context("PNG end")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_group_thousands() {
        assert_eq!(tick_label(100.0), "100");
        assert_eq!(tick_label(60000.0), "60,000");
        assert_eq!(tick_label(1234567.0), "1,234,567");
        assert_eq!(tick_label(3.0), "3");
        assert_eq!(tick_label(0.25), "0.25");
    }
}
