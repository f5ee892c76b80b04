//! The JSON the tools print (`check --json`, `load --json`, `bench ... --json`, `zoo --json`):
//! each record is a typed struct serialized by serde, one object per line, so a field cannot go
//! missing or a string go unescaped. The records live beside the code that fills them.

/// `record` as one line of JSON (no newline).
pub fn line<T: serde::Serialize>(record: &T) -> String {
    // A record is a struct of strings, numbers, booleans and lists of them: serde_json fails
    // only on maps with non-string keys, which no record has.
    serde_json::to_string(record).expect("a record of strings and numbers serializes")
}

/// `value` rounded to `decimals` places, so a record shows what was measured, not float noise.
pub fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_the_places_asked() {
        assert_eq!(round(1.23456, 3), 1.235);
        assert_eq!(round(1234.5, 0), 1235.0);
        assert_eq!(line(&vec!["a\"b\\c\u{1}"]), r#"["a\"b\\c\u0001"]"#);
    }
}
