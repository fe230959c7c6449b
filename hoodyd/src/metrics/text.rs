//! The Prometheus text exposition format (version 0.0.4): each family's HELP and TYPE, then
//! its samples, label values escaped.

use std::fmt::Write;

use super::histogram::Histogram;

#[derive(Default)]
pub struct Text {
    out: String,
}

/// Escapes a label value: backslash, double quote and line feed.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    format!("{{{}}}", inner.join(","))
}

/// A number as the format writes it.
fn number(v: f64) -> String {
    if v.is_infinite() { if v > 0.0 { "+Inf".into() } else { "-Inf".into() } } else { format!("{v}") }
}

impl Text {
    /// Begins a family: `kind` is counter, gauge or histogram.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", help.replace('\\', "\\\\").replace('\n', "\\n"));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    pub fn sample(&mut self, name: &str, pairs: &[(&str, &str)], value: f64) {
        let _ = writeln!(self.out, "{name}{} {}", labels(pairs), number(value));
    }

    /// A histogram's buckets, sum and count under `name`.
    pub fn histogram(&mut self, name: &str, pairs: &[(&str, &str)], bounds: &[f64], h: &Histogram) {
        let cumulative = h.cumulative();
        for (i, b) in bounds.iter().enumerate() {
            let le = number(*b);
            let mut with = pairs.to_vec();
            with.push(("le", &le));
            self.sample(&format!("{name}_bucket"), &with, cumulative.get(i).copied().unwrap_or(0) as f64);
        }
        let mut with = pairs.to_vec();
        with.push(("le", "+Inf"));
        self.sample(&format!("{name}_bucket"), &with, h.count as f64);
        self.sample(&format!("{name}_sum"), pairs, h.sum);
        self.sample(&format!("{name}_count"), pairs, h.count as f64);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escapes() {
        let mut t = Text::default();
        t.family("hoody_x_total", "counter", "Things.");
        t.sample("hoody_x_total", &[("name", "a\"b\\c\nd")], 3.0);
        t.sample("hoody_y", &[], 0.25);
        assert_eq!(
            t.finish(),
            "# HELP hoody_x_total Things.\n# TYPE hoody_x_total counter\nhoody_x_total{name=\"a\\\"b\\\\c\\nd\"} 3\nhoody_y 0.25\n"
        );
    }
}
