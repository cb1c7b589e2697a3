//! The report's latency plot: every latency KPI's samples, one line per scenario
//! and KPI, as SVG (plotters' SVG backend: no fonts or native libraries needed).

use plotters::prelude::*;

use super::metrics::ScenarioMetrics;

const COLOURS: [RGBColor; 6] = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];

/// The plot as an SVG document, or why it could not be drawn.
pub fn latency_svg(runs: &[ScenarioMetrics]) -> Result<String, String> {
    let series: Vec<(String, &[f64])> = runs
        .iter()
        .flat_map(|run| run.kpis.iter().map(move |(kpi, s)| (format!("{} {kpi}", run.scenario), s.values.as_slice())))
        .collect();
    let longest = series.iter().map(|(_, values)| values.len()).max().unwrap_or(1).max(2);
    let highest = series.iter().flat_map(|(_, values)| values.iter().copied()).fold(1.0_f64, f64::max) * 1.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption("RC1 latency samples", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0_usize..longest - 1, 0.0..highest)
            .map_err(|e| e.to_string())?;
        chart.configure_mesh().x_desc("sample (epoch, or request)").y_desc("ms").draw().map_err(|e| e.to_string())?;
        for (index, (label, values)) in series.iter().enumerate() {
            let colour = COLOURS[index % COLOURS.len()];
            chart
                .draw_series(LineSeries::new(values.iter().copied().enumerate(), colour))
                .map_err(|e| e.to_string())?
                .label(label.as_str())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}
