//! Persistent state: catalog, incidents, journal, approvals (SQLite embedded).
