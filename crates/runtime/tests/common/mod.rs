//! Helpers shared by the runtime's test binaries.

use warden_model::JournalEntry;
use warden_store::{JournalQuery, SqliteStore, Store};

/// The whole journal of the data directory `dir`, oldest first.
pub fn journal(dir: &std::path::Path) -> Vec<JournalEntry> {
    SqliteStore::open_dir(dir)
        .expect("store")
        .journal(&JournalQuery {
            limit: 100_000,
            ..Default::default()
        })
        .expect("journal")
}
