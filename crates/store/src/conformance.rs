//! The behaviour every `Store` implementation must have. Run it from each
//! implementation's tests.

use warden_model::{
    Action, Incident, IncidentId, IncidentStatus, JournalEntry, JournalEvent, Service, ServiceName,
    Timestamp,
};

use crate::{Approval, ApprovalState, DecideError, JournalQuery, Store};

fn n(s: &str) -> ServiceName {
    ServiceName::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs every check against an empty store; panics on the first failure.
pub fn run(store: &dyn Store) {
    catalog(store);
    incidents(store);
    journal(store);
    approvals(store);
}

fn catalog(store: &dyn Store) {
    let mut s = Service {
        name: n("user-service"),
        description: "users".into(),
        endpoints: vec!["/api/users".into()],
        dependencies: vec![n("auth-service")],
        source: "registration".into(),
        registered_at: Timestamp::from_secs(1),
    };
    store.upsert_service(&s).expect("upsert");
    s.description = "user management".into();
    store.upsert_service(&s).expect("upsert again");
    let all = store.services().expect("services");
    assert_eq!(all, vec![s.clone()], "upsert replaces");
    assert_eq!(store.service(&n("user-service")).expect("get"), Some(s));
    assert_eq!(store.service(&n("nope")).expect("get"), None);
}

fn incident(id: &str, opened: i64) -> Incident {
    Incident {
        id: IncidentId(id.into()),
        title: "t".into(),
        status: IncidentStatus::Open,
        opened_at: Timestamp::from_secs(opened),
        updated_at: Timestamp::from_secs(opened),
        resolved_at: None,
        services: vec![n("a")],
        signals: vec!["a/cpu_usage".into()],
        ranking: vec![],
    }
}

fn incidents(store: &dyn Store) {
    let mut a = incident("INC-0000000a", 10);
    let b = incident("INC-0000000b", 20);
    store.upsert_incident(&a).expect("a");
    store.upsert_incident(&b).expect("b");
    a.status = IncidentStatus::Resolved;
    store.upsert_incident(&a).expect("a again");
    let all = store.incidents(10).expect("list");
    assert_eq!(
        all.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        vec!["INC-0000000b", "INC-0000000a"],
        "newest first"
    );
    assert_eq!(
        store.incident(&a.id).expect("get").map(|i| i.status),
        Some(IncidentStatus::Resolved)
    );
    assert_eq!(store.incidents(1).expect("limit").len(), 1);
}

fn journal(store: &dyn Store) {
    let inc = IncidentId("INC-0000000a".into());
    let mut entries: Vec<JournalEntry> = (0..5)
        .map(|i| JournalEntry {
            seq: 0,
            ts: Timestamp::from_secs(100 + i),
            incident: if i % 2 == 0 { Some(inc.clone()) } else { None },
            event: JournalEvent::IncidentResolved {
                reason: format!("r{i}"),
            },
        })
        .collect();
    store.append(&mut entries).expect("append");
    let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]) && seqs[0] > 0,
        "increasing seqs {seqs:?}"
    );
    let all = store.journal(&JournalQuery::default()).expect("all");
    assert_eq!(all, entries);
    let mine = store
        .journal(&JournalQuery {
            incident: Some(inc),
            ..Default::default()
        })
        .expect("by incident");
    assert_eq!(mine.len(), 3);
    let after = store
        .journal(&JournalQuery {
            after_seq: Some(seqs[2]),
            ..Default::default()
        })
        .expect("after");
    assert_eq!(after.len(), 2);
    let last2 = store
        .journal(&JournalQuery {
            limit: 2,
            ..Default::default()
        })
        .expect("limit");
    assert_eq!(
        last2,
        entries[3..].to_vec(),
        "limit keeps the newest, oldest first"
    );
    let kinds = store
        .journal(&JournalQuery {
            kinds: vec![
                "incident_resolved".into(),
                "x'); drop table journal; --".into(),
            ],
            ..Default::default()
        })
        .expect("kinds");
    assert_eq!(kinds.len(), 5);
    let none = store
        .journal(&JournalQuery {
            kinds: vec!["metric_anomaly".into()],
            ..Default::default()
        })
        .expect("none");
    assert!(none.is_empty());
}

fn approvals(store: &dyn Store) {
    let inc = IncidentId("INC-000000c1".into());
    let action = Action::Restart { target: n("a") };
    assert!(matches!(
        store.decide_approval(&inc, true, "ops", Timestamp::from_secs(1)),
        Err(DecideError::NotPending(_))
    ));
    store
        .request_approval(&Approval {
            incident: inc.clone(),
            action: action.clone(),
            state: ApprovalState::Pending,
            by: None,
            requested_at: Timestamp::from_secs(5),
            decided_at: None,
        })
        .expect("request");
    assert_eq!(
        store
            .approvals(ApprovalState::Pending)
            .expect("pending")
            .len(),
        1
    );
    let a = store
        .decide_approval(&inc, true, "ops", Timestamp::from_secs(6))
        .expect("decide");
    assert_eq!(
        (a.state, a.by.as_deref(), a.action),
        (ApprovalState::Approved, Some("ops"), action)
    );
    assert!(
        matches!(
            store.decide_approval(&inc, false, "ops", Timestamp::from_secs(7)),
            Err(DecideError::NotPending(_))
        ),
        "a decision is final"
    );
    assert_eq!(
        store
            .approvals(ApprovalState::Approved)
            .expect("approved")
            .len(),
        1
    );
    store.consume_approval(&inc).expect("consume");
    assert!(
        store
            .approvals(ApprovalState::Approved)
            .expect("approved")
            .is_empty()
    );
}
