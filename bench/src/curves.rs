//! Curves of how cost grows, drawn from a run's rows as SVG (`--svg DIR`): one file per curve
//! whose rows the run has, each side of the comparison a line.

use std::path::Path;

use plotters::prelude::*;

use crate::stats::Row;

/// A curve: rows whose case is a line's prefix, a point's label and the suffix; one line per
/// prefix, and for compared rows one more for the baseline.
struct Curve {
    file: &'static str,
    title: &'static str,
    x_label: &'static str,
    y_label: &'static str,
    scenario: &'static str,
    /// The cases' prefixes and the lines' names.
    lines: &'static [(&'static str, &'static str)],
    /// Case infix and x value of each point.
    points: &'static [(&'static str, f64)],
    /// What follows the point in the case.
    suffix: &'static str,
    /// Whether the rows compare rmicro with a baseline (the rate is then drawn for both).
    compared: bool,
}

const NODES: &[(&str, f64)] = &[("100", 100.0), ("1000", 1000.0), ("10000", 10000.0)];

/// A registry curve of the growth scenario: `what` at every size, one line per registry.
const fn registry(
    file: &'static str,
    title: &'static str,
    y_label: &'static str,
    lines: &'static [(&'static str, &'static str)],
    suffix: &'static str,
) -> Curve {
    Curve {
        file,
        title,
        x_label: "registered nodes of the service",
        y_label,
        scenario: "growth",
        lines,
        points: NODES,
        suffix,
        compared: false,
    }
}

const CURVES: [Curve; 8] = [
    Curve {
        file: "rpc-payload.svg",
        title: "RPC at 16 callers against reply size",
        x_label: "bytes added to the reply",
        y_label: "calls per second",
        scenario: "rpc",
        lines: &[("json reply +", "JSON"), ("proto reply +", "protobuf")],
        points: &[
            ("100 B", 100.0),
            ("10 KiB", 10240.0),
            ("1 MiB", 1_048_576.0),
        ],
        suffix: " c=16",
        compared: true,
    },
    registry(
        "registry-lookup.svg",
        "get_service against registered nodes",
        "ms per lookup",
        &[
            ("memory lookup, ", "memory"),
            ("etcd lookup, ", "etcd"),
            ("consul lookup, ", "consul"),
            ("consul lookup by hand, ", "consul, the HTTP request alone"),
        ],
        " nodes",
    ),
    registry(
        "registry-select.svg",
        "Warm select and pick against registered nodes",
        "µs per selection",
        &[
            ("memory select, ", "memory"),
            ("etcd select, ", "etcd"),
            ("consul select, ", "consul"),
        ],
        " nodes",
    ),
    registry(
        "registry-fanout.svg",
        "Watch fan-out (16 watchers) against registered nodes",
        "ms until every watcher saw a new node",
        &[
            ("memory watch fan-out, ", "memory"),
            ("etcd watch fan-out, ", "etcd"),
            ("consul watch fan-out, ", "consul"),
        ],
        " nodes",
    ),
    registry(
        "registry-cache.svg",
        "Heap of one selector's cache against registered nodes",
        "KiB",
        &[
            ("memory selector cache, ", "memory"),
            ("etcd selector cache, ", "etcd"),
            ("consul selector cache, ", "consul"),
        ],
        " nodes",
    ),
    Curve {
        file: "memory-connections.svg",
        title: "Heap per idle connection against open connections",
        x_label: "open connections (one call each)",
        y_label: "bytes per connection",
        scenario: "growth",
        lines: &[("heap per idle connection, ", "rmicro server (mucp)")],
        points: &[("100", 100.0), ("1000", 1000.0), ("5000", 5000.0)],
        suffix: " connections",
        compared: false,
    },
    Curve {
        file: "memory-subscriptions.svg",
        title: "Heap per subscription against subscriptions",
        x_label: "subscriptions (one topic each)",
        y_label: "bytes per subscription",
        scenario: "growth",
        lines: &[
            ("heap per subscription, memory broker, ", "memory broker"),
            ("heap per subscription, http broker, ", "http broker"),
        ],
        points: &[("100", 100.0), ("1000", 1000.0), ("10000", 10000.0)],
        suffix: " subscriptions",
        compared: false,
    },
    Curve {
        file: "heartbeat-cpu.svg",
        title: "Heartbeat CPU against services (1 s interval, memory registry)",
        x_label: "services in one process",
        y_label: "ms CPU per second",
        scenario: "footprint",
        lines: &[("heartbeat CPU, ", "rmicro")],
        points: &[("100", 100.0), ("1000", 1000.0), ("5000", 5000.0)],
        suffix: " services @ 1 s (memory registry)",
        compared: false,
    },
];

/// Writes every curve the rows hold into `dir`; returns the files written.
pub fn write(rows: &[Row], dir: &Path) -> Result<Vec<String>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut written = Vec::new();
    for curve in &CURVES {
        let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        for (prefix, name) in curve.lines {
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
                // Log axes: a point at or below zero (a heap that shrank) is left out.
                if let Some(a) = row.rmicro.as_ref().filter(|a| a.rate > 0.0) {
                    ours.push((*x, a.rate));
                }
                if let Some(b) = row.baseline.as_ref().filter(|b| b.rate > 0.0) {
                    theirs.push((*x, b.rate));
                    baseline.clone_from(&row.baseline_name);
                }
            }
            if ours.is_empty() {
                continue;
            }
            if curve.compared {
                series.push((format!("rmicro, {name}"), ours));
                series.push((format!("{baseline}, {name}"), theirs));
            } else {
                series.push(((*name).to_owned(), ours));
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

fn label(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 0.1 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
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
        .y_desc(curve.y_label)
        .x_label_formatter(&|x| label(*x))
        .y_label_formatter(&|y| label(*y))
        .draw()?;
    // One colour per line; compared, one per pair: rmicro thick with filled points, its
    // baseline thin with hollow ones.
    const COLORS: [RGBColor; 4] = [
        RGBColor(200, 30, 45),
        RGBColor(30, 90, 200),
        RGBColor(20, 140, 60),
        RGBColor(120, 60, 160),
    ];
    for (i, (name, points)) in series.iter().enumerate() {
        let (pair, ours) = if curve.compared {
            (i / 2, i % 2 == 0)
        } else {
            (i, true)
        };
        let color = COLORS[pair % COLORS.len()].to_rgba();
        let width = if ours { 3 } else { 1 };
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(width),
            ))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(width))
            });
        chart.draw_series(
            points
                .iter()
                .map(|p| Circle::new(*p, 4, if ours { color.filled() } else { color.into() })),
        )?;
    }
    chart
        .configure_series_labels()
        // Rates fall as payloads grow; growth curves rise: the legend goes where lines are not.
        .position(if curve.compared {
            SeriesLabelPosition::LowerLeft
        } else {
            SeriesLabelPosition::UpperLeft
        })
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
