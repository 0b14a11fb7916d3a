//! From the requests many events plan to what is actually sent: coalescing and skipping
//! requests that change nothing, for actions whose API merges by id (`merges_by_id`).
//!
//! A *unit* is one request or one batch entry to send, with the events (rows) that wait for its
//! outcome. [`build_units`] makes one unit per planned request, except that requests of one
//! action for one record are merged in event order into the first one's unit (coalescing).
//! [`skip_unchanged`] then marks the units whose fingerprint the store already covers: their
//! rows count them as delivered without sending. Both apply only to actions the caller gives a
//! merge rule for (`serve` and `send` give none when the instance's `send_only_changes` is off);
//! every other planned request is its own unit, as Segment sends. Pure: the caller reads and
//! writes what was delivered (serve in its queue, the data-driven cases in memory).

use std::collections::HashMap;

use serde_json::Value;

use crate::changes::{self, Fingerprint, Known};
use crate::destination::MergesDef;
use crate::dispatch::BatchItem;
use crate::request::Request;

/// What a unit sends.
#[derive(Debug, Clone)]
pub enum Work {
    /// A single request.
    Request(Request),
    /// An entry of a batch action.
    Entry(BatchItem),
}

impl Work {
    fn body(&self) -> Option<&Value> {
        match self {
            Work::Request(request) => request.json.as_ref(),
            Work::Entry(item) => Some(&item.entry),
        }
    }
}

/// One request or batch entry to send, and the rows that wait for it.
#[derive(Debug)]
pub struct Unit {
    /// The key of the action that built it.
    pub action: &'static str,
    /// What to send.
    pub work: Work,
    /// The indices of the rows (events) whose outcome depends on it, in event order.
    pub rows: Vec<usize>,
    /// What it writes to its record, when its action merges by id and the target sends only
    /// changes.
    pub fingerprint: Option<Fingerprint>,
    /// Whether it would change nothing delivered before, so it is not sent.
    pub unchanged: bool,
}

/// Makes the units of `planned`: per row (in event order), the action and work of each of its
/// requests; `merges_of` gives the merge rule of an action, if it is to be coalesced and
/// fingerprinted. Returns the units in the order their first request was planned.
pub fn build_units(
    planned: Vec<(usize, Vec<(&'static str, Work)>)>,
    merges_of: impl Fn(&str) -> Option<MergesDef>,
) -> Vec<Unit> {
    let mut units: Vec<Unit> = Vec::new();
    // (action, batch group, record id) -> unit index.
    let mut open: HashMap<(&'static str, String, String), usize> = HashMap::new();
    for (row, works) in planned {
        for (action, work) in works {
            let merges = merges_of(action);
            let key = merges.and_then(|def| {
                let id = changes::record_id(&def, work.body()?)?;
                // The form is part of the key: an action with both forms may plan a request
                // for one event and an entry for another, and those never merge.
                let group = match &work {
                    Work::Entry(item) => format!("entry:{}", item.group),
                    Work::Request(_) => "request".to_owned(),
                };
                Some(((action, group, id), def))
            });
            if let Some((key, def)) = &key
                && let Some(&idx) = open.get(key)
            {
                let unit = &mut units[idx];
                merge_work(def, &mut unit.work, work);
                if !unit.rows.contains(&row) {
                    unit.rows.push(row);
                }
                continue;
            }
            if let Some((key, _)) = key {
                open.insert(key, units.len());
            }
            units.push(Unit {
                action,
                work,
                rows: vec![row],
                fingerprint: None,
                unchanged: false,
            });
        }
    }
    for unit in &mut units {
        unit.fingerprint = merges_of(unit.action)
            .zip(unit.work.body())
            .and_then(|(def, body)| changes::fingerprint(&def, body));
    }
    units
}

/// Merges `later` into `earlier` (same action and record). The marks of what derives from
/// secrets are united: merging keeps every member at its path, so each mark still covers what it
/// covered (or a value that replaced it, which is then hidden too, erring on the safe side).
fn merge_work(def: &MergesDef, earlier: &mut Work, later: Work) {
    match (earlier, later) {
        (Work::Request(earlier), Work::Request(later)) => {
            if let (Some(body), Some(later_body)) = (earlier.json.as_mut(), later.json) {
                changes::merge(def, body, later_body);
                earlier.redactions.json.extend(later.redactions.json);
            }
        }
        (Work::Entry(earlier), Work::Entry(later)) => {
            changes::merge(def, &mut earlier.entry, later.entry);
            earlier.marks.extend(later.marks);
            earlier.bytes = serde_json::to_vec(&earlier.entry).map_or(0, |b| b.len());
        }
        // `build_units` keys units by form, so a request never meets an entry here.
        (Work::Request(_), Work::Entry(_)) | (Work::Entry(_), Work::Request(_)) => {}
    }
}

/// Marks the units whose fingerprint `known` (what was delivered, by record kind and id) covers.
pub fn skip_unchanged(units: &mut [Unit], known: &HashMap<(&'static str, String), Known>) {
    for unit in units {
        if let Some(fingerprint) = &unit.fingerprint {
            unit.unchanged = known
                .get(&(fingerprint.record, fingerprint.id.clone()))
                .is_some_and(|k| k.covers(fingerprint));
        }
    }
}

/// The record ids whose known parts [`skip_unchanged`] needs, by record kind.
pub fn wanted_records(units: &[Unit]) -> HashMap<&'static str, Vec<String>> {
    let mut wanted: HashMap<&'static str, Vec<String>> = HashMap::new();
    for fingerprint in units.iter().filter_map(|u| u.fingerprint.as_ref()) {
        let ids = wanted.entry(fingerprint.record).or_default();
        if !ids.contains(&fingerprint.id) {
            ids.push(fingerprint.id.clone());
        }
    }
    wanted
}
