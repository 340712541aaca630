//! Output of benchmark results: one JSON object per line on stdout, a readable row on stderr.
//!
//! The JSON shape follows DESIGN.md §8, for example
//! `{"scenario":"trace","case":"automerge-paper","ours_ms":31.2,"reference":"diamond-types",
//! "reference_ms":20.9,"ratio":1.49}`; scenarios add fields of their own with units in the name.

use serde_json::{Map, Value, json};

/// One measured case of a scenario.
pub struct Result {
    fields: Map<String, Value>,
}

impl Result {
    /// A result for `case` of `scenario`.
    pub fn new(scenario: &str, case: &str) -> Self {
        let mut fields = Map::new();
        fields.insert("scenario".into(), json!(scenario));
        fields.insert("case".into(), json!(case));
        Result { fields }
    }

    /// Records ours and the reference in `unit` (for example `ms`, `ops_per_s`, `bytes`) and
    /// their ratio ours / reference.
    pub fn compare(mut self, unit: &str, ours: f64, reference: &str, theirs: f64) -> Self {
        self.fields
            .insert(format!("ours_{unit}"), json!(round(ours)));
        self.fields.insert("reference".into(), json!(reference));
        self.fields
            .insert(format!("reference_{unit}"), json!(round(theirs)));
        let ratio = if theirs == 0.0 {
            f64::NAN
        } else {
            ours / theirs
        };
        self.fields.insert("ratio".into(), json!(round(ratio)));
        self
    }

    /// Like [`compare`](Self::compare) for whole numbers (bytes, counts): ours and the
    /// reference are recorded as integers.
    pub fn compare_counts(mut self, unit: &str, ours: u64, reference: &str, theirs: u64) -> Self {
        self = self.compare(unit, ours as f64, reference, theirs as f64);
        self.fields.insert(format!("ours_{unit}"), json!(ours));
        self.fields
            .insert(format!("reference_{unit}"), json!(theirs));
        self
    }

    /// Adds one more field.
    pub fn field(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(name.into(), value.into());
        self
    }

    /// Prints the JSON line on stdout and a table row on stderr.
    pub fn emit(self) {
        let row: Vec<String> = self
            .fields
            .iter()
            .filter(|(k, _)| k.as_str() != "scenario")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        eprintln!(
            "{:<10} {}",
            self.fields["scenario"].as_str().unwrap_or(""),
            row.join("  ")
        );
        println!("{}", Value::Object(self.fields));
    }
}

fn round(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1000.0).round() / 1000.0
    } else {
        x
    }
}
