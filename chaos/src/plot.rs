//! A line chart as SVG text, for the growth curves (`--plot DIR`): x on a log scale (node
//! counts), y linear from 0, one polyline and legend entry per series. Plain text, so that
//! the suite needs no plotting library and the files diff as text.

use std::fmt::Write as _;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    /// `(x, y)`, x > 0.
    pub points: Vec<(f64, f64)>,
}

const W: f64 = 640.0;
const H: f64 = 360.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/// The chart: `title` above, `x_label` and `y_label` on the axes.
pub fn svg(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .filter(|x| *x > 0.0)
        .collect();
    let (x_min, x_max) = xs
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
    let (x_min, x_max) = if xs.is_empty() || x_min >= x_max {
        (1.0, 10.0)
    } else {
        (x_min, x_max)
    };
    let y_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0_f64, f64::max)
        .max(f64::MIN_POSITIVE)
        * 1.1;
    let px = |x: f64| LEFT + (x.ln() - x_min.ln()) / (x_max.ln() - x_min.ln()) * (W - LEFT - RIGHT);
    let py = |y: f64| H - BOTTOM - y / y_max * (H - TOP - BOTTOM);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
        W / 2.0,
        escape(title)
    );
    // Axes.
    let (x0, y0) = (LEFT, H - BOTTOM);
    let _ = writeln!(
        out,
        r#"<path d="M{x0} {TOP} V{y0} H{}" stroke="black" fill="none"/>"#,
        W - RIGHT
    );
    let mut ticks: Vec<f64> = xs.clone();
    ticks.sort_by(f64::total_cmp);
    ticks.dedup();
    for x in ticks {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            px(x),
            y0 + 18.0,
            x
        );
    }
    for i in 0..=5 {
        let y = y_max / 1.1 * f64::from(i) / 5.0;
        let _ = writeln!(
            out,
            r##"<text x="{}" y="{:.1}" text-anchor="end">{}</text><path d="M{x0} {:.1} H{}" stroke="#ddd"/>"##,
            x0 - 6.0,
            py(y) + 4.0,
            round(y),
            py(y),
            W - RIGHT
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 12.0,
        escape(x_label)
    );
    let _ = writeln!(
        out,
        r#"<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{}</text>"#,
        (TOP + y0) / 2.0,
        (TOP + y0) / 2.0,
        escape(y_label)
    );
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<String> = s
            .points
            .iter()
            .filter(|p| p.0 > 0.0)
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            points.join(" ")
        );
        for &(x, y) in &s.points {
            let _ = writeln!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                px(x),
                py(y)
            );
        }
        let ly = TOP + 6.0 + 16.0 * i as f64;
        let _ = writeln!(
            out,
            r#"<path d="M{} {ly} h18" stroke="{color}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
            LEFT + 12.0,
            LEFT + 36.0,
            ly + 4.0,
            escape(&s.name)
        );
    }
    out.push_str("</svg>\n");
    out
}

fn round(y: f64) -> String {
    if y >= 10.0 {
        format!("{y:.0}")
    } else {
        format!("{y:.1}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_a_line_and_a_point_per_value() {
        let chart = svg(
            "t <x>",
            "nodes",
            "ms",
            &[Series {
                name: "consul".into(),
                points: vec![(100.0, 9.0), (1000.0, 59.0), (5000.0, 283.0)],
            }],
        );
        assert!(chart.starts_with("<svg"));
        assert!(chart.trim_end().ends_with("</svg>"));
        assert_eq!(chart.matches("<polyline").count(), 1);
        assert_eq!(chart.matches("<circle").count(), 3);
        assert!(chart.contains("t &lt;x&gt;"));
        // Log x: 100 at the left edge, 5000 at the right.
        assert!(chart.contains(r#"cx="70.0""#), "{chart}");
        assert!(chart.contains(r#"cx="620.0""#), "{chart}");
    }
}
