//! The JSON form of a report: one object, `{"trace", "findings", "locks", "tasks"}` (see
//! README.md). Scripts and CI read it; its names change only on purpose.

use super::Report;

/// The report as pretty-printed JSON, with a final newline.
pub fn render(report: &Report) -> String {
    // The model holds only strings, numbers, booleans and lists: serializing cannot fail.
    let mut out = serde_json::to_string_pretty(report)
        .expect("a report always serializes to JSON; this is a bug");
    out.push('\n');
    out
}
