//! The append-only, hash-chained audit log.
//!
//! Record N stores `prev_hash` (record N-1's hash) and its own `hash`, the SHA-256 of the
//! previous hash and the record's canonical JSON. Changing, deleting or reordering a record
//! breaks the chain at that record; [`verify`] walks it and names each break. The head
//! (last sequence number and hash) is kept too and printed, so a site can store it
//! elsewhere and notice a truncated tail even if an attacker rewrote the head.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use airlock_api::{Actor, ActorKind, AuditRecord, Head, Outcome, Problem, VerifyReport};

use crate::store::{keys, Store, StoreError};
use crate::time::Timestamp;

pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a caller hands to [`crate::store::Txn::audit`]; the store adds sequence, time and hashes.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEvent {
    pub org_id: Option<String>,
    pub actor: Actor,
    pub action: String,
    pub subject: String,
    pub outcome: Outcome,
    pub source: String,
    pub request_id: String,
    pub detail: Option<String>,
}

/// The hash of a record in the chain; implemented here rather than in `airlock-api` because
/// the chain is the control plane's, not the wire's.
pub trait ChainHash {
    /// The hash this record should carry, computed from everything but `hash`.
    fn compute_hash(&self) -> String;
}

impl ChainHash for AuditRecord {
    fn compute_hash(&self) -> String {
        // Field order is fixed by the struct, and no field is a map, so this JSON is canonical.
        #[derive(Serialize)]
        struct Hashed<'a> {
            seq: u64,
            time: Timestamp,
            org_id: &'a Option<String>,
            actor: &'a Actor,
            action: &'a str,
            subject: &'a str,
            outcome: Outcome,
            source: &'a str,
            request_id: &'a str,
            detail: &'a Option<String>,
        }
        let body = serde_json::to_vec(&Hashed {
            seq: self.seq,
            time: self.time,
            org_id: &self.org_id,
            actor: &self.actor,
            action: &self.action,
            subject: &self.subject,
            outcome: self.outcome,
            source: &self.source,
            request_id: &self.request_id,
            detail: &self.detail,
        })
        .expect("audit records serialize");
        let mut h = Sha256::new();
        h.update(self.prev_hash.as_bytes());
        h.update(b"\n");
        h.update(&body);
        hex::encode(h.finalize())
    }
}

pub fn head(store: &Store) -> Result<Head, StoreError> {
    Ok(store.get(keys::AUDIT_HEAD)?.unwrap_or(Head {
        seq: 0,
        hash: GENESIS_HASH.into(),
    }))
}

/// Turns `events` into chained records staged into `writes`. Called by the store under its
/// writer lock, so the head cannot move underneath.
pub(crate) fn chain(
    store: &Store,
    now: Timestamp,
    events: Vec<AuditEvent>,
    writes: &mut BTreeMap<String, Option<Vec<u8>>>,
) -> Result<(), StoreError> {
    let mut head = head(store)?;
    for e in events {
        let mut record = AuditRecord {
            seq: head.seq + 1,
            time: now,
            org_id: e.org_id,
            actor: e.actor,
            action: e.action,
            subject: e.subject,
            outcome: e.outcome,
            source: e.source,
            request_id: e.request_id,
            detail: e.detail,
            prev_hash: head.hash.clone(),
            hash: String::new(),
        };
        record.hash = record.compute_hash();
        head = Head {
            seq: record.seq,
            hash: record.hash.clone(),
        };
        writes.insert(
            keys::audit(record.seq),
            Some(serde_json::to_vec(&record).expect("serializes")),
        );
    }
    writes.insert(
        keys::AUDIT_HEAD.into(),
        Some(serde_json::to_vec(&head).expect("serializes")),
    );
    Ok(())
}

/// Filters for [`query`]. Empty fields match everything. `action` and `subject` match
/// exactly, or by prefix when they end in `*` (`project.*`).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Filter {
    pub org_id: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub subject: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

impl Filter {
    pub fn matches(&self, r: &AuditRecord) -> bool {
        fn pattern(p: &Option<String>, value: &str) -> bool {
            match p.as_deref() {
                None | Some("") => true,
                Some(p) => match p.strip_suffix('*') {
                    Some(prefix) => value.starts_with(prefix),
                    None => value == p,
                },
            }
        }
        (self.org_id.is_none() || self.org_id == r.org_id)
            && self
                .actor
                .as_deref()
                .is_none_or(|a| a == r.actor.id || a == r.actor.name)
            && pattern(&self.action, &r.action)
            && pattern(&self.subject, &r.subject)
            && self.since.is_none_or(|t| r.time >= t)
            && self.until.is_none_or(|t| r.time < t)
    }
}

/// Records after sequence number `after` that match, oldest first, at most `limit`; and
/// whether more follow.
pub fn query(
    store: &Store,
    filter: &Filter,
    after: Option<u64>,
    limit: usize,
) -> Result<(Vec<AuditRecord>, bool), StoreError> {
    let after = after.map(|seq| format!("{seq:020}"));
    let (items, more) =
        store.scan::<AuditRecord>(keys::AUDIT_PREFIX, after.as_deref(), limit, |r| {
            filter.matches(r)
        })?;
    Ok((items.into_iter().map(|(_, r)| r).collect(), more))
}

/// The whole chain is walked either way (an org's records chain through everyone's), but the
/// report names only what is the org's: how many records it has, its last one, and the
/// problems at its records. Problems elsewhere (other orgs' records, deleted records, whose
/// owner is unknown, the stored head) show as one line without figures, pointing to a site
/// administrator, so an org's readers learn that the log is damaged and nothing else.
pub fn verify_org(
    store: &Store,
    org_id: &str,
    expected_head: Option<&str>,
) -> Result<VerifyReport, StoreError> {
    let (full, about_records) = walk(store, None)?;
    let mut own = std::collections::HashSet::new();
    let mut head = Head {
        seq: 0,
        hash: GENESIS_HASH.into(),
    };
    let mut seen_expected_head = expected_head.is_none();
    for (_, bytes) in store.scan_raw(keys::AUDIT_PREFIX)? {
        let Ok(record) = serde_json::from_slice::<AuditRecord>(&bytes) else {
            continue;
        };
        if record.org_id.as_deref() != Some(org_id) {
            continue;
        }
        own.insert(record.seq);
        seen_expected_head |= Some(record.hash.as_str()) == expected_head;
        head = Head {
            seq: record.seq,
            hash: record.hash,
        };
    }
    let mut problems = Vec::new();
    let mut elsewhere = 0;
    for (i, p) in full.problems.into_iter().enumerate() {
        if i < about_records && own.contains(&p.seq) {
            problems.push(p);
        } else {
            elsewhere += 1;
        }
    }
    if elsewhere > 0 {
        problems.push(Problem {
            seq: 0,
            message: "the audit chain is broken outside this org's records; a site administrator \
                      can see where with `airlock admin audit verify`"
                .into(),
        });
    }
    if !seen_expected_head {
        problems.push(Problem {
            seq: head.seq,
            message: format!(
                "the head you recorded ({}) is not among this org's records: records were removed or the log was rewritten",
                expected_head.unwrap_or_default()
            ),
        });
    }
    Ok(VerifyReport {
        ok: problems.is_empty(),
        records: own.len() as u64,
        head,
        problems,
        scope: format!("org {org_id}"),
    })
}

/// Walks the whole chain. `expected_head` is a hash the site stored earlier: it must be the
/// hash of some record, or the log was truncated or rewritten since.
pub fn verify(store: &Store, expected_head: Option<&str>) -> Result<VerifyReport, StoreError> {
    Ok(walk(store, expected_head)?.0)
}

/// [`verify`], and how many of the problems (the first ones) are about records rather than
/// the head.
fn walk(store: &Store, expected_head: Option<&str>) -> Result<(VerifyReport, usize), StoreError> {
    let mut problems = Vec::new();
    let mut expected_seq = 1u64;
    let mut prev_hash = GENESIS_HASH.to_string();
    let mut count = 0u64;
    let mut last: Option<Head> = None;
    let mut seen_expected_head = expected_head.is_none();
    // Set when the previous position already has a problem, so its knock-on effect on the
    // next link is not reported twice.
    let mut previous_flagged = false;
    for (key, bytes) in store.scan_raw(keys::AUDIT_PREFIX)? {
        count += 1;
        let position: u64 = key[keys::AUDIT_PREFIX.len()..].parse().unwrap_or(0);
        let mut flagged = false;
        if position > expected_seq {
            let missing = if position - 1 == expected_seq {
                format!("record {expected_seq} is missing (deleted)")
            } else {
                format!(
                    "records {expected_seq} to {} are missing (deleted)",
                    position - 1
                )
            };
            problems.push(Problem {
                seq: expected_seq,
                message: missing,
            });
            previous_flagged = true;
        }
        expected_seq = position + 1;
        let record: AuditRecord = match serde_json::from_slice(&bytes) {
            Ok(r) => r,
            Err(e) => {
                problems.push(Problem {
                    seq: position,
                    message: format!("record {position} cannot be read: {e}"),
                });
                previous_flagged = true;
                continue;
            }
        };
        if Some(record.hash.as_str()) == expected_head {
            seen_expected_head = true;
        }
        if record.seq != position {
            problems.push(Problem {
                seq: position,
                message: format!(
                    "record {position} holds record {} instead: records were swapped or moved",
                    record.seq
                ),
            });
            flagged = true;
        }
        if record.compute_hash() != record.hash {
            problems.push(Problem {
                seq: position,
                message: format!(
                    "record {position} was modified after it was written (its hash does not match its contents)"
                ),
            });
            flagged = true;
        }
        if record.prev_hash != prev_hash && !flagged && !previous_flagged {
            problems.push(Problem {
                seq: position,
                message: format!(
                    "record {position} does not follow record {}: one of them was replaced or re-hashed",
                    position - 1
                ),
            });
            flagged = true;
        }
        previous_flagged = flagged;
        prev_hash = record.hash.clone();
        last = Some(Head {
            seq: position,
            hash: record.hash,
        });
    }
    let about_records = problems.len();
    let stored_head = head(store)?;
    let last = last.unwrap_or(Head {
        seq: 0,
        hash: GENESIS_HASH.into(),
    });
    if stored_head.seq > last.seq {
        problems.push(Problem {
            seq: last.seq + 1,
            message: format!(
                "records {} to {} are missing from the end of the log (truncated)",
                last.seq + 1,
                stored_head.seq
            ),
        });
    } else if stored_head.seq < last.seq
        || (stored_head.seq == last.seq && stored_head.hash != last.hash)
    {
        problems.push(Problem {
            seq: last.seq,
            message: format!(
                "the stored head (record {}, {}) does not match the last record (record {}, {})",
                stored_head.seq, stored_head.hash, last.seq, last.hash
            ),
        });
    }
    if !seen_expected_head {
        problems.push(Problem {
            seq: last.seq,
            message: format!(
                "the head you recorded ({}) is not in the log: records were removed from the end or the log was rewritten",
                expected_head.unwrap_or_default()
            ),
        });
    }
    let report = VerifyReport {
        ok: problems.is_empty(),
        records: count,
        head: stored_head,
        problems,
        scope: "site".into(),
    };
    Ok((report, about_records))
}
