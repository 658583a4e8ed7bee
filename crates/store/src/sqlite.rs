//! The embedded SQLite store.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use warden_model::{Incident, IncidentId, JournalEntry, Service, ServiceName, Timestamp};

use crate::{Approval, ApprovalState, DecideError, JournalQuery, Result, Store, StoreError};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS services (
    name TEXT PRIMARY KEY,
    updated_ms INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    opened_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_opened ON incidents (opened_ms);
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms INTEGER NOT NULL,
    incident TEXT,
    kind TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_incident ON journal (incident, seq);
CREATE TABLE IF NOT EXISTS approvals (
    incident TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    consumed INTEGER NOT NULL DEFAULT 0,
    action TEXT NOT NULL,
    by TEXT,
    requested_ms INTEGER NOT NULL,
    decided_ms INTEGER
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '1');
"#;

/// SQLite-backed store (WAL, synchronous=FULL).
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn err(context: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::new(context, e)
}

fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::new("encode", e))
}

fn parse<T: serde::de::DeserializeOwned>(context: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::new(context, e))
}

impl SqliteStore {
    /// Opens (creating if needed) `dir/warden.db`.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::new(format!("create {}", dir.display()), e))?;
        Self::open(&dir.join("warden.db"))
    }

    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let ctx = format!("open {}", path.display());
        let conn = Connection::open(path).map_err(|e| StoreError::new(&ctx, e))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| StoreError::new(&ctx, e))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| StoreError::new(&ctx, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| StoreError::new(&ctx, e))?;
        conn.execute_batch(SCHEMA)
            .map_err(|e| StoreError::new(&ctx, e))?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    /// An in-memory store (tests).
    pub fn in_memory() -> Result<Self> {
        let conn = Connection::open_in_memory().map_err(err("open memory"))?;
        conn.execute_batch(SCHEMA).map_err(err("schema"))?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

/// An approvals row: incident, state, action, by, requested_ms, decided_ms.
type ApprovalRow = (String, String, String, Option<String>, i64, Option<i64>);

fn approval_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ApprovalRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

fn to_approval(r: ApprovalRow) -> Result<Approval> {
    Ok(Approval {
        incident: IncidentId(r.0),
        state: ApprovalState::parse(&r.1)
            .ok_or_else(|| StoreError::new("approval state", format!("{:?}", r.1)))?,
        action: parse("approval action", &r.2)?,
        by: r.3,
        requested_at: Timestamp(r.4),
        decided_at: r.5.map(Timestamp),
    })
}

impl Store for SqliteStore {
    fn upsert_service(&self, s: &Service) -> Result<()> {
        let body = json(s)?;
        self.with(|c| {
            c.execute(
                "INSERT INTO services (name, updated_ms, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT(name) DO UPDATE SET updated_ms = excluded.updated_ms, body = excluded.body",
                params![s.name.as_str(), s.registered_at.millis(), body],
            )
            .map_err(err("upsert service"))?;
            Ok(())
        })
    }

    fn services(&self) -> Result<Vec<Service>> {
        self.with(|c| {
            let mut st = c
                .prepare("SELECT body FROM services ORDER BY name")
                .map_err(err("services"))?;
            let rows = st
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(err("services"))?;
            rows.map(|r| {
                r.map_err(err("services"))
                    .and_then(|b| parse("service", &b))
            })
            .collect()
        })
    }

    fn service(&self, name: &ServiceName) -> Result<Option<Service>> {
        self.with(|c| {
            let body: Option<String> = c
                .query_row(
                    "SELECT body FROM services WHERE name = ?1",
                    [name.as_str()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(err("service"))?;
            body.map(|b| parse("service", &b)).transpose()
        })
    }

    fn upsert_incident(&self, i: &Incident) -> Result<()> {
        let body = json(i)?;
        self.with(|c| {
            c.execute(
                "INSERT INTO incidents (id, status, opened_ms, updated_ms, body) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(id) DO UPDATE SET status = excluded.status, updated_ms = excluded.updated_ms, body = excluded.body",
                params![i.id.as_str(), i.status.as_str(), i.opened_at.millis(), i.updated_at.millis(), body],
            )
            .map_err(err("upsert incident"))?;
            Ok(())
        })
    }

    fn incidents(&self, limit: usize) -> Result<Vec<Incident>> {
        self.with(|c| {
            let mut st = c
                .prepare("SELECT body FROM incidents ORDER BY opened_ms DESC, id LIMIT ?1")
                .map_err(err("incidents"))?;
            let rows = st
                .query_map([limit as i64], |r| r.get::<_, String>(0))
                .map_err(err("incidents"))?;
            rows.map(|r| {
                r.map_err(err("incidents"))
                    .and_then(|b| parse("incident", &b))
            })
            .collect()
        })
    }

    fn incident(&self, id: &IncidentId) -> Result<Option<Incident>> {
        self.with(|c| {
            let body: Option<String> = c
                .query_row(
                    "SELECT body FROM incidents WHERE id = ?1",
                    [id.as_str()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(err("incident"))?;
            body.map(|b| parse("incident", &b)).transpose()
        })
    }

    fn append(&self, entries: &mut [JournalEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let bodies: Vec<String> = entries
            .iter()
            .map(|e| json(&e.event))
            .collect::<Result<_>>()?;
        self.with(|c| {
            let tx = c.transaction().map_err(err("append"))?;
            {
                let mut st = tx
                    .prepare(
                        "INSERT INTO journal (ts_ms, incident, kind, body) VALUES (?1, ?2, ?3, ?4)",
                    )
                    .map_err(err("append"))?;
                for (e, body) in entries.iter_mut().zip(&bodies) {
                    st.execute(params![
                        e.ts.millis(),
                        e.incident.as_ref().map(|i| i.as_str()),
                        e.event.kind(),
                        body
                    ])
                    .map_err(err("append"))?;
                    e.seq = tx.last_insert_rowid() as u64;
                }
            }
            tx.commit().map_err(err("append commit"))
        })
    }

    fn journal(&self, q: &JournalQuery) -> Result<Vec<JournalEntry>> {
        let limit = if q.limit == 0 {
            1000
        } else {
            q.limit.min(100_000)
        };
        let mut sql = String::from("SELECT seq, ts_ms, incident, body FROM journal WHERE seq > ?1");
        if q.incident.is_some() {
            sql.push_str(" AND incident = ?2");
        }
        if !q.kinds.is_empty() {
            let list: Vec<String> = q
                .kinds
                .iter()
                .filter(|k| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
                .map(|k| format!("'{k}'"))
                .collect();
            sql.push_str(&format!(" AND kind IN ({})", list.join(",")));
        }
        // Newest `limit` records, returned oldest first.
        let sql = format!("SELECT * FROM ({sql} ORDER BY seq DESC LIMIT {limit}) ORDER BY seq");
        self.with(|c| {
            let mut st = c.prepare(&sql).map_err(err("journal"))?;
            let after = q.after_seq.unwrap_or(0) as i64;
            let map =
                |r: &rusqlite::Row<'_>| -> rusqlite::Result<(i64, i64, Option<String>, String)> {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                };
            let rows: Vec<_> = match &q.incident {
                Some(i) => st.query_map(params![after, i.as_str()], map),
                None => st.query_map(params![after], map),
            }
            .map_err(err("journal"))?
            .collect::<rusqlite::Result<_>>()
            .map_err(err("journal"))?;
            rows.into_iter()
                .map(|(seq, ts, inc, body)| {
                    Ok(JournalEntry {
                        seq: seq as u64,
                        ts: Timestamp(ts),
                        incident: inc.map(IncidentId),
                        event: parse("journal event", &body)?,
                    })
                })
                .collect()
        })
    }

    fn request_approval(&self, a: &Approval) -> Result<()> {
        let action = json(&a.action)?;
        self.with(|c| {
            c.execute(
                "INSERT INTO approvals (incident, state, consumed, action, by, requested_ms, decided_ms)
                 VALUES (?1, 'pending', 0, ?2, NULL, ?3, NULL)
                 ON CONFLICT(incident) DO UPDATE SET state = 'pending', consumed = 0, action = excluded.action,
                   by = NULL, requested_ms = excluded.requested_ms, decided_ms = NULL",
                params![a.incident.as_str(), action, a.requested_at.millis()],
            )
            .map_err(err("request approval"))?;
            Ok(())
        })
    }

    fn decide_approval(
        &self,
        incident: &IncidentId,
        approve: bool,
        by: &str,
        now: Timestamp,
    ) -> std::result::Result<Approval, DecideError> {
        let state = if approve {
            ApprovalState::Approved
        } else {
            ApprovalState::Rejected
        };
        let row = self.with(|c| {
            let n = c
                .execute(
                    "UPDATE approvals SET state = ?1, by = ?2, decided_ms = ?3 WHERE incident = ?4 AND state = 'pending'",
                    params![state.as_str(), by, now.millis(), incident.as_str()],
                )
                .map_err(err("decide approval"))?;
            if n == 0 {
                return Ok(None);
            }
            c.query_row(
                "SELECT incident, state, action, by, requested_ms, decided_ms FROM approvals WHERE incident = ?1",
                [incident.as_str()],
                approval_row,
            )
            .map(Some)
            .map_err(err("decide approval"))
        })?;
        match row {
            Some(r) => Ok(to_approval(r)?),
            None => Err(DecideError::NotPending(incident.clone())),
        }
    }

    fn approvals(&self, state: ApprovalState) -> Result<Vec<Approval>> {
        self.with(|c| {
            let mut st = c
                .prepare(
                    "SELECT incident, state, action, by, requested_ms, decided_ms FROM approvals
                     WHERE state = ?1 AND consumed = 0 ORDER BY requested_ms, incident",
                )
                .map_err(err("approvals"))?;
            let rows: Vec<_> = st
                .query_map([state.as_str()], approval_row)
                .map_err(err("approvals"))?
                .collect::<rusqlite::Result<_>>()
                .map_err(err("approvals"))?;
            rows.into_iter().map(to_approval).collect()
        })
    }

    fn consume_approval(&self, incident: &IncidentId) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE approvals SET consumed = 1 WHERE incident = ?1",
                [incident.as_str()],
            )
            .map_err(err("consume approval"))?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_memory_store_passes_the_conformance_suite() {
        crate::conformance::run(&SqliteStore::in_memory().expect("store"));
    }

    #[test]
    fn file_store_passes_the_conformance_suite_and_keeps_data_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = SqliteStore::open_dir(dir.path()).expect("open");
            crate::conformance::run(&s);
        }
        let s = SqliteStore::open_dir(dir.path()).expect("reopen");
        assert!(!s.services().expect("services").is_empty());
        assert!(
            !s.journal(&JournalQuery::default())
                .expect("journal")
                .is_empty()
        );
    }
}
