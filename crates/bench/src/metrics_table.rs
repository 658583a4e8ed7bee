//! Reading the seed's monitoring table for `warden detect`: a CSV with a
//! header, an optional `timestamp` (or `time`) column and numeric feature
//! columns, one row per sample in time order.

use std::path::Path;

use warden_model::Timestamp;

use crate::rca_case::{CaseError, bad, finite_number, open_csv};

/// A parsed table.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsTable {
    /// Feature column names, in file order.
    pub columns: Vec<String>,
    /// Timestamps as written (empty strings when the file has none).
    pub time_text: Vec<String>,
    /// Milliseconds since the epoch; without a timestamp column, one
    /// minute per row from 0.
    pub ts_ms: Vec<i64>,
    pub rows: Vec<Vec<f64>>,
    /// CSV line of each row (the header is line 1).
    pub lines: Vec<usize>,
}

/// A timestamp cell: RFC 3339 / `YYYY-MM-DD HH:MM:SS`, or epoch seconds
/// (values above 10^11 are taken as milliseconds).
fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Some(v) = finite_number(s) {
        return Ok(if v.abs() > 1e11 {
            v as i64
        } else {
            (v * 1000.0) as i64
        });
    }
    Timestamp::parse_rfc3339(s)
        .map(Timestamp::millis)
        .map_err(|e| format!("timestamp {s:?}: {e}"))
}

/// Reads and validates `path`. Every error names the line and column.
pub fn read_metrics_table(path: &Path) -> Result<MetricsTable, CaseError> {
    let mut rdr = open_csv(path, csv::Trim::All)?;
    let headers = rdr.headers().map_err(|e| bad(path, e.to_string()))?.clone();
    let time_col = headers
        .iter()
        .position(|h| h.eq_ignore_ascii_case("timestamp") || h.eq_ignore_ascii_case("time"));
    let columns: Vec<(usize, String)> = headers
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != time_col)
        .map(|(i, h)| (i, h.to_string()))
        .collect();
    if columns.is_empty() {
        return Err(bad(path, "no feature columns besides the timestamp"));
    }
    if let Some((i, _)) = columns.iter().find(|(_, h)| h.is_empty()) {
        return Err(bad(path, format!("line 1 column {}: empty header", i + 1)));
    }
    let mut t = MetricsTable {
        columns: columns.iter().map(|c| c.1.clone()).collect(),
        time_text: Vec::new(),
        ts_ms: Vec::new(),
        rows: Vec::new(),
        lines: Vec::new(),
    };
    for (k, rec) in rdr.records().enumerate() {
        let line = k + 2;
        let rec = rec.map_err(|e| bad(path, format!("line {line}: {e}")))?;
        let ts = match time_col {
            Some(c) => {
                let cell = rec.get(c).unwrap_or("");
                let ms = parse_time(cell)
                    .map_err(|e| bad(path, format!("line {line} column {}: {e}", c + 1)))?;
                if let Some(prev) = t.ts_ms.last()
                    && ms < *prev
                {
                    return Err(bad(
                        path,
                        format!(
                            "line {line} column {}: timestamp {cell:?} is before the previous row's; rows must be in time order",
                            c + 1
                        ),
                    ));
                }
                t.time_text.push(cell.to_string());
                ms
            }
            None => {
                t.time_text.push(String::new());
                k as i64 * 60_000
            }
        };
        let mut row = Vec::with_capacity(columns.len());
        for (c, name) in &columns {
            let cell = rec.get(*c).unwrap_or("");
            row.push(finite_number(cell).ok_or_else(|| {
                bad(
                    path,
                    format!(
                        "line {line} column {} ({name}): {cell:?} is not a finite number",
                        c + 1
                    ),
                )
            })?);
        }
        t.ts_ms.push(ts);
        t.rows.push(row);
        t.lines.push(line);
    }
    if t.rows.is_empty() {
        return Err(bad(path, "no data rows"));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<MetricsTable, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("m.csv");
        std::fs::write(&p, text).expect("write");
        read_metrics_table(&p).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_the_seed_table_with_any_timestamp_form() {
        let t = read(
            "timestamp,cpu_usage,memory_usage,request_latency,error_rate\n\
             2026-01-01T00:00:00Z,0.4,0.5,120,0.01\n\
             2026-01-01 00:01:00,0.5,0.5,130,0.02\n\
             1767225720,0.5,0.5,130,0.02\n",
        )
        .expect("reads");
        assert_eq!(t.columns.len(), 4);
        assert_eq!(t.ts_ms[1] - t.ts_ms[0], 60_000);
        assert_eq!(t.ts_ms[2] - t.ts_ms[1], 60_000);
        assert_eq!(t.lines, vec![2, 3, 4]);
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = read("timestamp,cpu\n2026-01-01T00:00:00Z,0.4\n2026-01-01T00:01:00Z,abc\n")
            .expect_err("refused");
        assert!(
            e.contains("line 3 column 2 (cpu)") && e.contains("\"abc\""),
            "{e}"
        );
        let e = read("timestamp,cpu\n2026-01-01T00:01:00Z,0.4\n2026-01-01T00:00:00Z,0.5\n")
            .expect_err("refused");
        assert!(
            e.contains("line 3 column 1") && e.contains("time order"),
            "{e}"
        );
        let e = read("timestamp,cpu\nyesterday,0.4\n").expect_err("refused");
        assert!(
            e.contains("line 2 column 1") && e.contains("yesterday"),
            "{e}"
        );
        let e = read("timestamp,cpu\n2026-01-01T00:00:00Z,0.4,9\n").expect_err("refused");
        assert!(e.contains("line 2"), "{e}");
        assert!(
            read("timestamp\n2026-01-01T00:00:00Z\n")
                .expect_err("refused")
                .contains("no feature")
        );
        assert!(read("cpu\n").expect_err("refused").contains("no data rows"));
        let e = read("cpu\ninf\n").expect_err("refused");
        assert!(e.contains("line 2 column 1 (cpu)"), "{e}");
    }

    #[test]
    fn without_a_timestamp_rows_are_a_minute_apart() {
        let t = read("a,b\n1,2\n3,4\n").expect("reads");
        assert_eq!(t.ts_ms, vec![0, 60_000]);
        assert_eq!(t.time_text, vec!["", ""]);
    }
}
