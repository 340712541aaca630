//! The divergence-over-time chart of the heal case: keys differing per node pair against
//! seconds since the heal, one line per pair, as a PNG (plotters' bitmap backend).
//!
//! Text goes through plotters' `ttf` feature, which needs a system font; if drawing text fails
//! the chart is drawn again without any (axes and lines only, colours as documented below).

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use super::heal::{PAIRS, Sample};

/// Colours of [`PAIRS`]: 1–2 red, 1–3 blue, 2–3 green.
const COLOURS: [RGBColor; 3] = [
    RGBColor(220, 40, 40),
    RGBColor(40, 80, 220),
    RGBColor(30, 160, 60),
];

const SIZE: (u32, u32) = (1000, 600);

/// Draws the chart to `path`; returns whether it has text labels.
pub fn divergence(path: &Path, samples: &[Sample], keys_per_side: usize) -> Result<bool> {
    match draw(path, samples, keys_per_side, true) {
        Ok(()) => Ok(true),
        Err(e) => {
            eprintln!("cluster: drawing the chart with text failed ({e}); drawing it without");
            draw(path, samples, keys_per_side, false)?;
            Ok(false)
        }
    }
}

fn draw(path: &Path, samples: &[Sample], keys_per_side: usize, text: bool) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("{}: {e}", path.display());
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let x_max = samples.last().map_or(1.0, |s| s.t_s).max(0.1) * 1.05;
    let y_max = samples
        .iter()
        .flat_map(|s| s.differing.iter().flatten().copied())
        .max()
        .unwrap_or(0)
        .max(1) as f64
        * 1.05;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(20);
    if text {
        builder
            .caption(
                format!(
                    "Keys differing per node pair after healing {{1}} | {{2,3}} \
                     ({keys_per_side} keys written per side)"
                ),
                ("sans-serif", 22),
            )
            .x_label_area_size(45)
            .y_label_area_size(80);
    }
    let mut chart = builder
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(|e| err(&e))?;
    if text {
        chart
            .configure_mesh()
            .x_desc("seconds since CLUSTER HEAL")
            .y_desc("keys held by only one node of the pair")
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()
            .map_err(|e| err(&e))?;
    } else {
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(0)
            .y_labels(0)
            .draw()
            .map_err(|e| err(&e))?;
    }
    for (p, ((a, b), colour)) in PAIRS.into_iter().zip(COLOURS).enumerate() {
        let points: Vec<(f64, f64)> = samples
            .iter()
            .filter_map(|s| Some((s.t_s, s.differing[p]? as f64)))
            .collect();
        let series = chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))
            .map_err(|e| err(&e))?;
        if text {
            series
                .label(format!("node {} - node {}", a + 1, b + 1))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
    }
    if text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
