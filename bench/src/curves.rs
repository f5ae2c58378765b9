//! Curves of how cost grows, drawn from a run's rows as SVG (`--svg DIR`): one file per curve
//! whose rows the run has, each side of the comparison a line.

use std::path::Path;

use plotters::prelude::*;

use crate::stats::Row;

/// A curve: rows whose case ends with one of `points` (the x label, its value), one line per
/// case prefix.
struct Curve {
    file: &'static str,
    title: &'static str,
    x_label: &'static str,
    scenario: &'static str,
    /// The cases' prefixes, one line each for rmicro and for the baseline.
    lines: &'static [(&'static str, &'static str)],
    /// Case infix and x value of each point.
    points: &'static [(&'static str, f64)],
    /// What follows the point in the case.
    suffix: &'static str,
}

const CURVES: [Curve; 1] = [Curve {
    file: "rpc-payload.svg",
    title: "RPC at 16 callers against reply size",
    x_label: "bytes added to the reply",
    scenario: "rpc",
    lines: &[("json reply +", "JSON"), ("proto reply +", "protobuf")],
    points: &[
        ("100 B", 100.0),
        ("10 KiB", 10240.0),
        ("1 MiB", 1_048_576.0),
    ],
    suffix: " c=16",
}];

/// Writes every curve the rows hold into `dir`; returns the files written.
pub fn write(rows: &[Row], dir: &Path) -> Result<Vec<String>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut written = Vec::new();
    for curve in &CURVES {
        let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        for (prefix, codec) in curve.lines {
            let mut ours = Vec::new();
            let mut theirs = Vec::new();
            let mut baseline = String::new();
            for (label, x) in curve.points {
                let case = format!("{prefix}{label}{}", curve.suffix);
                let Some(row) = rows
                    .iter()
                    .find(|r| r.scenario == curve.scenario && r.case == case)
                else {
                    continue;
                };
                if let (Some(a), Some(b)) = (&row.rmicro, &row.baseline) {
                    ours.push((*x, a.rate));
                    theirs.push((*x, b.rate));
                    baseline.clone_from(&row.baseline_name);
                }
            }
            if !ours.is_empty() {
                series.push((format!("rmicro, {codec}"), ours));
                series.push((format!("{baseline}, {codec}"), theirs));
            }
        }
        if series.is_empty() {
            continue;
        }
        let path = dir.join(curve.file);
        draw(curve, &series, &path).map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(path.display().to_string());
    }
    Ok(written)
}

fn draw(
    curve: &Curve,
    series: &[(String, Vec<(f64, f64)>)],
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let points = || series.iter().flat_map(|(_, p)| p.iter());
    let (x_min, x_max) = points().fold((f64::MAX, f64::MIN), |(lo, hi), (x, _)| {
        (lo.min(*x), hi.max(*x))
    });
    let (y_min, y_max) = points().fold((f64::MAX, f64::MIN), |(lo, hi), (_, y)| {
        (lo.min(*y), hi.max(*y))
    });
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(curve.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(
            (x_min / 2.0..x_max * 2.0).log_scale(),
            (y_min / 2.0..y_max * 2.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc(curve.x_label)
        .y_desc("calls per second")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    // One colour per pair: rmicro thick with filled points, its baseline thin with hollow ones.
    const COLORS: [RGBColor; 4] = [
        RGBColor(200, 30, 45),
        RGBColor(30, 90, 200),
        RGBColor(20, 140, 60),
        RGBColor(120, 60, 160),
    ];
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[(i / 2) % COLORS.len()].to_rgba();
        let width = if i % 2 == 0 { 3 } else { 1 };
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(width),
            ))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(width))
            });
        chart.draw_series(points.iter().map(|p| {
            Circle::new(
                *p,
                4,
                if i % 2 == 0 {
                    color.filled()
                } else {
                    color.into()
                },
            )
        }))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
