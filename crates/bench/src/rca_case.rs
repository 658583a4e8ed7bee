//! Reading one RCA case directory.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use warden_model::Candidate;
use warden_rca::{Case, RankParams, Series};

/// Largest CSV file read, bytes.
pub const MAX_FILE_BYTES: u64 = 512 << 20;

/// A problem with a case, naming the file and the value.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("{path}: {message}")]
    Bad { path: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

pub(crate) fn bad(path: &Path, message: impl Into<String>) -> CaseError {
    CaseError::Bad {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// A named series: (service, metric, values on a time grid).
pub type Column = (String, String, Vec<f64>);

/// A call edge: (caller, callee).
pub type Edge = (String, String);

/// A metrics table: a `time` column and `<service>_<metric>` columns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub times: Vec<f64>,
    /// (service, metric, values); NaN for an empty cell.
    pub columns: Vec<Column>,
}

/// Parses a finite number (surrounding spaces allowed).
pub(crate) fn finite_number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Splits `<service>_<metric>` at the last `_`.
pub fn split_column(name: &str) -> Option<(&str, &str)> {
    let i = name.rfind('_')?;
    let (s, m) = (&name[..i], &name[i + 1..]);
    (!s.is_empty() && !m.is_empty()).then_some((s, m))
}

/// Opens a CSV with a header for reading, refusing files over
/// [`MAX_FILE_BYTES`] and rows of uneven length.
pub(crate) fn open_csv(
    path: &Path,
    trim: csv::Trim,
) -> Result<csv::Reader<std::fs::File>, CaseError> {
    let meta = std::fs::metadata(path).map_err(|e| CaseError::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(bad(
            path,
            format!("{} bytes; at most {MAX_FILE_BYTES} read", meta.len()),
        ));
    }
    csv::ReaderBuilder::new()
        .flexible(false)
        .trim(trim)
        .from_path(path)
        .map_err(|e| bad(path, e.to_string()))
}

/// Reads a metrics CSV. Errors name the line and column.
pub fn read_table(path: &Path) -> Result<Table, CaseError> {
    let mut rdr = open_csv(path, csv::Trim::None)?;
    let headers = rdr.headers().map_err(|e| bad(path, e.to_string()))?.clone();
    if headers.get(0).map(str::trim) != Some("time") {
        return Err(bad(
            path,
            format!(
                "first column is {:?}, expected \"time\"",
                headers.get(0).unwrap_or("")
            ),
        ));
    }
    let mut cols: Vec<Option<(String, String)>> = Vec::new();
    for (i, h) in headers.iter().enumerate().skip(1) {
        match split_column(h) {
            Some((s, m)) => cols.push(Some((s.to_string(), m.to_string()))),
            None => {
                return Err(bad(
                    path,
                    format!("column {} header {h:?} is not <service>_<metric>", i + 1),
                ));
            }
        }
    }
    let mut t = Table {
        times: Vec::new(),
        columns: cols
            .iter()
            .flatten()
            .map(|(s, m)| (s.clone(), m.clone(), Vec::new()))
            .collect(),
    };
    for (row, rec) in rdr.records().enumerate() {
        let line = row + 2;
        let rec = rec.map_err(|e| bad(path, format!("line {line}: {e}")))?;
        let time_text = rec.get(0).unwrap_or("").trim();
        let time: f64 = finite_number(time_text).ok_or_else(|| {
            bad(
                path,
                format!("line {line} column 1: time {time_text:?} is not a number"),
            )
        })?;
        if t.times.last().is_some_and(|p| time < *p) {
            return Err(bad(
                path,
                format!("line {line} column 1: time {time_text} goes backwards"),
            ));
        }
        t.times.push(time);
        for (j, col) in t.columns.iter_mut().enumerate() {
            let cell = rec.get(j + 1).unwrap_or("").trim();
            let v = if cell.is_empty() {
                f64::NAN
            } else {
                finite_number(cell).ok_or_else(|| {
                    bad(
                        path,
                        format!(
                            "line {line} column {}: {cell:?} is not a finite number",
                            j + 2
                        ),
                    )
                })?
            };
            col.2.push(v);
        }
    }
    Ok(t)
}

/// `alert.json` / `truth.json` shapes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Alert {
    pub service: String,
    pub metric: String,
}

/// The scoring truth of a case (never given to the ranker).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Truth {
    pub root_cause: String,
    #[serde(default = "unknown")]
    pub fault: String,
}

fn unknown() -> String {
    "unknown".into()
}

/// One case as read from disk.
#[derive(Debug, Clone)]
pub struct LoadedCase {
    pub dir: PathBuf,
    pub data: Table,
    pub normal: Option<Table>,
    pub inject_time: f64,
    pub edges: Vec<(String, String)>,
    pub alert: Option<Alert>,
    /// Series derived from traces.csv and logs.csv on data.csv's time grid
    /// (`<service>_latency-trace`, `_errors-trace`, `_errors-log`).
    pub derived: Table,
    /// Only for scoring; `rank_case` never reads it.
    pub truth: Option<Truth>,
}

pub(crate) fn read_text(path: &Path) -> Result<String, CaseError> {
    std::fs::read_to_string(path).map_err(|e| CaseError::Io {
        path: path.display().to_string(),
        source: e,
    })
}

/// Every case directory below `root` (a directory with `data.csv` and
/// `inject_time.txt`), sorted.
pub fn find_cases(root: &Path) -> Result<Vec<PathBuf>, CaseError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        if d.join("data.csv").is_file() && d.join("inject_time.txt").is_file() {
            out.push(d.clone());
        }
        let rd = std::fs::read_dir(&d).map_err(|e| CaseError::Io {
            path: d.display().to_string(),
            source: e,
        })?;
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Reads a case; `root` bounds the search for a shared `normal.csv`.
pub fn load_case(dir: &Path, root: &Path) -> Result<LoadedCase, CaseError> {
    let data = read_table(&dir.join("data.csv"))?;
    let inject_path = dir.join("inject_time.txt");
    let text = read_text(&inject_path)?;
    let inject_time: f64 = finite_number(&text).ok_or_else(|| {
        bad(
            &inject_path,
            format!("{:?} is not a number of Unix seconds", text.trim()),
        )
    })?;
    let mut normal = None;
    let mut d = Some(dir);
    while let Some(cur) = d {
        let p = cur.join("normal.csv");
        if p.is_file() {
            normal = Some(read_table(&p)?);
            break;
        }
        if cur == root {
            break;
        }
        d = cur.parent();
    }
    let mut edges = Vec::new();
    let gp = dir.join("graph.csv");
    if gp.is_file() {
        let mut rdr = csv::Reader::from_path(&gp).map_err(|e| bad(&gp, e.to_string()))?;
        for (i, rec) in rdr.records().enumerate() {
            let rec = rec.map_err(|e| bad(&gp, format!("line {}: {e}", i + 2)))?;
            match (rec.get(0), rec.get(1)) {
                (Some(a), Some(b)) if !a.is_empty() && !b.is_empty() => {
                    edges.push((a.to_string(), b.to_string()))
                }
                _ => return Err(bad(&gp, format!("line {}: expected caller,callee", i + 2))),
            }
        }
    }
    let ap = dir.join("alert.json");
    let alert = if ap.is_file() {
        Some(serde_json::from_str(&read_text(&ap)?).map_err(|e| bad(&ap, e.to_string()))?)
    } else {
        None
    };
    let mut derived = Table {
        times: data.times.clone(),
        columns: Vec::new(),
    };
    let trp = dir.join("traces.csv");
    if trp.is_file() {
        let (trace_edges, cols) = read_traces(&trp, &data.times)?;
        for e in trace_edges {
            if !edges.contains(&e) {
                edges.push(e);
            }
        }
        derived.columns.extend(cols);
    }
    let lp = dir.join("logs.csv");
    if lp.is_file() {
        derived.columns.extend(read_logs(&lp, &data.times)?);
    }
    let tp = dir.join("truth.json");
    let truth = if tp.is_file() {
        Some(serde_json::from_str(&read_text(&tp)?).map_err(|e| bad(&tp, e.to_string()))?)
    } else {
        None
    };
    Ok(LoadedCase {
        dir: dir.to_path_buf(),
        data,
        normal,
        inject_time,
        edges,
        alert,
        derived,
        truth,
    })
}

/// Index of the grid bucket holding `t`: the last grid time at or before it
/// (the first bucket for earlier times). None for an empty grid.
fn bucket(grid: &[f64], t: f64) -> Option<usize> {
    if grid.is_empty() {
        return None;
    }
    Some(grid.partition_point(|g| *g <= t).saturating_sub(1))
}

/// Accumulates (sum, count) per (service, metric) and grid bucket.
#[derive(Default)]
struct Acc(std::collections::BTreeMap<(String, String), Vec<(f64, f64)>>);

impl Acc {
    fn add(&mut self, service: &str, metric: &str, n: usize, b: usize, v: f64) {
        let row = self
            .0
            .entry((service.to_string(), metric.to_string()))
            .or_insert_with(|| vec![(0.0, 0.0); n]);
        row[b].0 += v;
        row[b].1 += 1.0;
    }

    /// Means per bucket (`mean`) or sums (`!mean`); empty buckets are NaN
    /// for means and 0 for sums.
    fn columns(self, mean: bool) -> Vec<Column> {
        self.0
            .into_iter()
            .map(|((s, m), row)| {
                let v = row
                    .into_iter()
                    .map(|(sum, n)| {
                        if mean {
                            if n > 0.0 { sum / n } else { f64::NAN }
                        } else {
                            sum
                        }
                    })
                    .collect();
                (s, m, v)
            })
            .collect()
    }
}

/// traces.csv: call edges (a span's parent in another service calls it) and
/// per-service mean span latency (ms) and error share per grid bucket.
fn read_traces(path: &Path, grid: &[f64]) -> Result<(Vec<Edge>, Vec<Column>), CaseError> {
    #[derive(Deserialize)]
    struct Row {
        time: f64,
        trace_id: String,
        span_id: String,
        #[serde(default)]
        parent_span_id: String,
        service: String,
        #[serde(default)]
        duration_us: Option<f64>,
        #[serde(default)]
        status: String,
    }
    let mut rdr = csv::Reader::from_path(path).map_err(|e| bad(path, e.to_string()))?;
    let mut spans: Vec<Row> = Vec::new();
    for (i, rec) in rdr.deserialize::<Row>().enumerate() {
        let r = rec.map_err(|e| bad(path, format!("line {}: {e}", i + 2)))?;
        if !r.time.is_finite() {
            return Err(bad(
                path,
                format!("line {}: time {} is not a number", i + 2, r.time),
            ));
        }
        spans.push(r);
    }
    let owner: std::collections::BTreeMap<(&str, &str), &str> = spans
        .iter()
        .map(|s| {
            (
                (s.trace_id.as_str(), s.span_id.as_str()),
                s.service.as_str(),
            )
        })
        .collect();
    let mut edges: Vec<(String, String)> = Vec::new();
    let mut latency = Acc::default();
    let mut errors = Acc::default();
    for s in &spans {
        if !s.parent_span_id.is_empty()
            && let Some(parent) = owner.get(&(s.trace_id.as_str(), s.parent_span_id.as_str()))
        {
            let e = (parent.to_string(), s.service.clone());
            if *parent != s.service && !edges.contains(&e) {
                edges.push(e);
            }
        }
        let Some(b) = bucket(grid, s.time) else {
            continue;
        };
        if let Some(d) = s.duration_us.filter(|d| d.is_finite()) {
            latency.add(&s.service, "latency-trace", grid.len(), b, d / 1000.0);
        }
        match s.status.as_str() {
            "error" => errors.add(&s.service, "errors-trace", grid.len(), b, 1.0),
            "ok" => errors.add(&s.service, "errors-trace", grid.len(), b, 0.0),
            _ => {}
        }
    }
    edges.sort();
    let mut cols = latency.columns(true);
    cols.extend(errors.columns(true));
    Ok((edges, cols))
}

/// logs.csv: per-service count of error-level lines per grid bucket.
fn read_logs(path: &Path, grid: &[f64]) -> Result<Vec<Column>, CaseError> {
    #[derive(Deserialize)]
    struct Row {
        time: f64,
        service: String,
        #[serde(default)]
        level: String,
    }
    let mut rdr = csv::Reader::from_path(path).map_err(|e| bad(path, e.to_string()))?;
    let mut acc = Acc::default();
    let mut services = std::collections::BTreeSet::new();
    for (i, rec) in rdr.deserialize::<Row>().enumerate() {
        let r = rec.map_err(|e| bad(path, format!("line {}: {e}", i + 2)))?;
        services.insert(r.service.clone());
        let level = r.level.to_ascii_lowercase();
        if matches!(
            level.as_str(),
            "error" | "err" | "fatal" | "critical" | "crit" | "alert" | "emerg" | "panic"
        ) && let Some(b) = bucket(grid, r.time)
        {
            acc.add(&r.service, "errors-log", grid.len(), b, 1.0);
        }
    }
    // Services that log but never an error get a zero series, so that a
    // burst elsewhere stands out against them.
    for s in services {
        acc.0
            .entry((s, "errors-log".into()))
            .or_insert_with(|| vec![(0.0, 0.0); grid.len()]);
    }
    Ok(acc.columns(false))
}

/// Ranks a case's services with the live loop's engine. Reads everything
/// but `truth`.
pub fn rank_case(c: &LoadedCase, params: &RankParams) -> Vec<Candidate> {
    let series: Vec<Series<'_>> = c
        .data
        .columns
        .iter()
        .map(|(s, m, v)| Series {
            service: s,
            metric: m,
            times: &c.data.times,
            values: v,
        })
        .chain(c.derived.columns.iter().map(|(s, m, v)| Series {
            service: s,
            metric: m,
            times: &c.derived.times,
            values: v,
        }))
        .collect();
    let normal: Vec<Series<'_>> = c
        .normal
        .iter()
        .flat_map(|n| {
            n.columns.iter().map(move |(s, m, v)| Series {
                service: s,
                metric: m,
                times: &n.times,
                values: v,
            })
        })
        .collect();
    let case = Case {
        series,
        onset_s: c.inject_time,
        normal,
        edges: c.edges.clone(),
        alert: c
            .alert
            .as_ref()
            .map(|a| (a.service.clone(), a.metric.clone())),
    };
    warden_rca::rank(&case, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names_split_at_the_last_underscore() {
        assert_eq!(
            split_column("cartservice_cpu"),
            Some(("cartservice", "cpu"))
        );
        assert_eq!(
            split_column("lambdastatusupdater_AWS::Lambda::Function_requests-sum"),
            Some(("lambdastatusupdater_AWS::Lambda::Function", "requests-sum"))
        );
        assert_eq!(split_column("nounderscore"), None);
        assert_eq!(split_column("trailing_"), None);
    }

    /// A case with flat metrics for a, b, c, one sample a minute for 20
    /// minutes, onset at minute 10.
    fn flat_case(dir: &Path) {
        let mut data = String::from("time,a_cpu,b_cpu,c_cpu\n");
        for i in 0..20 {
            data.push_str(&format!("{},0.3,0.3,0.3\n", i * 60));
        }
        std::fs::write(dir.join("data.csv"), data).expect("write");
        std::fs::write(dir.join("inject_time.txt"), "600\n").expect("write");
    }

    #[test]
    fn traces_give_the_graph_and_error_series_that_rank_the_failing_callee() {
        let dir = tempfile::tempdir().expect("tempdir");
        flat_case(dir.path());
        // Every 10 s a trace a → b → c; from t=600 c fails and b, a fail with it.
        let mut t = String::from(
            "time,trace_id,span_id,parent_span_id,service,operation,duration_us,status\n",
        );
        for k in 0..120 {
            let ts = k * 10;
            let fail = ts >= 600;
            let st = if fail { "error" } else { "ok" };
            t.push_str(&format!("{ts},t{k},{k}a,,a,GET /,30000,{st}\n"));
            t.push_str(&format!("{ts},t{k},{k}b,{k}a,b,GET /b,20000,{st}\n"));
            t.push_str(&format!("{ts},t{k},{k}c,{k}b,c,GET /c,10000,{st}\n"));
        }
        std::fs::write(dir.path().join("traces.csv"), t).expect("write");
        let c = load_case(dir.path(), dir.path()).expect("case");
        assert_eq!(
            c.edges,
            vec![
                ("a".to_string(), "b".to_string()),
                ("b".to_string(), "c".to_string())
            ]
        );
        assert!(
            c.derived
                .columns
                .iter()
                .any(|(s, m, _)| s == "c" && m == "errors-trace")
        );
        let r = rank_case(&c, &RankParams::default());
        assert_eq!(r[0].service, "c", "{r:#?}");
    }

    #[test]
    fn error_log_bursts_count_as_a_signal() {
        let dir = tempfile::tempdir().expect("tempdir");
        flat_case(dir.path());
        let mut logs = String::from("time,service,level,message\n");
        for k in 0..240 {
            let ts = k * 5;
            logs.push_str(&format!("{ts},a,info,ok\n{ts},b,info,ok\n"));
            if ts >= 600 {
                logs.push_str(&format!("{ts},b,ERROR,connection refused\n"));
            }
        }
        std::fs::write(dir.path().join("logs.csv"), logs).expect("write");
        let c = load_case(dir.path(), dir.path()).expect("case");
        let r = rank_case(&c, &RankParams::default());
        assert_eq!(r[0].service, "b", "{r:#?}");
        assert!(r[0].score > 0.0);
        assert!(
            r.iter()
                .filter(|x| x.service != "b")
                .all(|x| x.score == 0.0)
        );
    }

    #[test]
    fn malformed_csv_names_line_and_column() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("data.csv");
        std::fs::write(&p, "time,a_cpu\n1,0.5\n2,abc\n").expect("write");
        let e = read_table(&p).expect_err("bad cell").to_string();
        assert!(e.contains("line 3 column 2") && e.contains("abc"), "{e}");
        std::fs::write(&p, "stamp,a_cpu\n").expect("write");
        assert!(
            read_table(&p)
                .expect_err("bad header")
                .to_string()
                .contains("stamp")
        );
        std::fs::write(&p, "time,a_cpu\n2,1\n1,1\n").expect("write");
        assert!(
            read_table(&p)
                .expect_err("backwards")
                .to_string()
                .contains("backwards")
        );
        std::fs::write(&p, "time,a_cpu\n1,inf\n").expect("write");
        assert!(
            read_table(&p)
                .expect_err("inf")
                .to_string()
                .contains("\"inf\"")
        );
        std::fs::write(&p, "time,a_cpu\n1,\n").expect("write");
        assert!(read_table(&p).expect("empty cell is missing").columns[0].2[0].is_nan());
    }
}
