//! The state Userpilot would hold after the requests the mock accepted: users with their
//! metadata and company, companies with theirs, tracked events, and the bulk-identify jobs.
//!
//! Pure data and functions of time given by the caller, so the rules can be tested without a
//! server. The rules the mock assumes, where Userpilot documents little:
//!
//! - **Merge**: an identify (real-time or bulk) sets each metadata key it is sent, `null`
//!   included, and keeps every key it is not sent. A user or company exists from its first
//!   identify.
//! - **Links**: a user belongs to at most one company. `POST /v1/identify` with a `company`
//!   object (`{"id": ...}`, or `{"company_id": ...}` as Userpilot's OpenAPI names it) links the
//!   user to that company and merges the object's other keys into the company's metadata,
//!   creating the company if needed; a bulk user's `company_id` links likewise. An identify
//!   without a company leaves the link as it was. `POST /v1/companies/identify` links nobody.
//! - **Track** appends the event to the user's list, in the order the mock accepted them, whether
//!   or not the user was identified first (Userpilot asks for that, but does not say what it does
//!   otherwise).
//! - **Delete** removes the users (with their events) or the companies (and every link to them)
//!   at once; Userpilot runs deletions as a daily job, which a test would only wait for.
//! - **Bulk jobs**: one job at a time per app (a second gets 409 while one runs); a job's rows
//!   are applied in order at `rows_per_minute` from the moment it was accepted (Userpilot
//!   documents about 1,200 rows a minute), so its state changes as time passes.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

/// Userpilot's documented bulk processing speed, in rows per minute.
pub const DEFAULT_BULK_ROWS_PER_MINUTE: u32 = 1200;

/// The most records one bulk-identify request may carry; more is 413.
pub const MAX_BULK_RECORDS: usize = 10_000;

/// One user as Userpilot would hold it.
#[derive(Debug, Clone, Default, PartialEq)]
struct User {
    metadata: Map<String, Value>,
    company: Option<String>,
    events: Vec<Value>,
}

/// What a bulk job identifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobKind {
    /// `POST /v1/users/bulk_identify`.
    Users,
    /// `POST /v1/companies/bulk_identify`.
    Companies,
}

impl JobKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Users => "users_bulk_identify",
            Self::Companies => "companies_bulk_identify",
        }
    }
}

/// One bulk-identify job.
#[derive(Debug, Clone)]
struct Job {
    id: String,
    kind: JobKind,
    rows: Vec<Map<String, Value>>,
    /// When the job was accepted, in milliseconds since the Unix epoch.
    submitted_ms: u128,
    /// How many rows are applied to the state so far.
    applied: usize,
}

/// The whole state, behind the server's lock.
#[derive(Debug, Clone)]
pub(crate) struct World {
    users: BTreeMap<String, User>,
    companies: BTreeMap<String, Map<String, Value>>,
    jobs: Vec<Job>,
    rows_per_minute: u32,
}

/// Why a bulk job was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BulkRefusal {
    /// Another job is still running: its id.
    Busy(String),
}

impl World {
    /// An empty state whose bulk jobs process `rows_per_minute` rows a minute (at least one).
    pub(crate) fn new(rows_per_minute: u32) -> Self {
        Self {
            users: BTreeMap::new(),
            companies: BTreeMap::new(),
            jobs: Vec::new(),
            rows_per_minute: rows_per_minute.max(1),
        }
    }

    /// `POST /v1/identify`, already validated.
    pub(crate) fn identify(&mut self, body: &Map<String, Value>) {
        let Some(user_id) = body.get("user_id").and_then(Value::as_str) else {
            return;
        };
        let company = body.get("company").and_then(Value::as_object);
        let company_id = company.and_then(|c| {
            c.get("id")
                .or_else(|| c.get("company_id"))
                .and_then(id_text)
        });
        if let (Some(company), Some(company_id)) = (company, &company_id) {
            let props: Map<String, Value> = company
                .iter()
                .filter(|(key, _)| *key != "id" && *key != "company_id")
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect();
            merge(
                self.companies.entry(company_id.clone()).or_default(),
                &props,
            );
        }
        self.merge_user(user_id, body.get("metadata"), company_id);
    }

    /// `POST /v1/companies/identify`, already validated.
    pub(crate) fn identify_company(&mut self, body: &Map<String, Value>) {
        let Some(company_id) = body.get("company_id").and_then(Value::as_str) else {
            return;
        };
        let metadata = body.get("metadata").and_then(Value::as_object);
        let company = self.companies.entry(company_id.to_owned()).or_default();
        if let Some(metadata) = metadata {
            merge(company, metadata);
        }
    }

    /// `POST /v1/track`, already validated.
    pub(crate) fn track(&mut self, body: &Map<String, Value>) {
        let Some(user_id) = body.get("user_id").and_then(Value::as_str) else {
            return;
        };
        let event = json!({
            "event_name": body.get("event_name").cloned().unwrap_or(Value::Null),
            "metadata": body.get("metadata").cloned().unwrap_or_else(|| json!({})),
        });
        self.users
            .entry(user_id.to_owned())
            .or_default()
            .events
            .push(event);
    }

    /// `DELETE /v1/users`.
    pub(crate) fn delete_users(&mut self, ids: &[Value]) {
        for id in ids.iter().filter_map(Value::as_str) {
            self.users.remove(id);
        }
    }

    /// `DELETE /v1/companies`: the companies and every link to them.
    pub(crate) fn delete_companies(&mut self, ids: &[Value]) {
        for id in ids.iter().filter_map(Value::as_str) {
            self.companies.remove(id);
            for user in self.users.values_mut() {
                if user.company.as_deref() == Some(id) {
                    user.company = None;
                }
            }
        }
    }

    /// Accepts a bulk job of already validated rows at `now`, unless one is still running;
    /// returns the job's descriptor.
    pub(crate) fn submit_bulk(
        &mut self,
        kind: JobKind,
        rows: Vec<Map<String, Value>>,
        now: SystemTime,
    ) -> Result<Value, BulkRefusal> {
        self.advance(now);
        if let Some(running) = self.jobs.iter().find(|job| job.applied < job.rows.len()) {
            return Err(BulkRefusal::Busy(running.id.clone()));
        }
        let job = Job {
            id: format!("job_{:06}", self.jobs.len() + 1),
            kind,
            rows,
            submitted_ms: millis(now),
            applied: 0,
        };
        self.jobs.push(job);
        // Applies nothing yet (no time has passed) but a job of zero rows completes at once.
        self.advance(now);
        let job = self.jobs.last().map(|job| self.describe(job, now));
        Ok(job.unwrap_or(Value::Null))
    }

    /// Applies the rows of every job that are due by `now`.
    pub(crate) fn advance(&mut self, now: SystemTime) {
        let now_ms = millis(now);
        let rate = u128::from(self.rows_per_minute);
        // Jobs run one at a time, so only the last can still have rows to apply.
        let Some(mut job) = self.jobs.pop() else {
            return;
        };
        let elapsed = now_ms.saturating_sub(job.submitted_ms);
        let due = usize::try_from(elapsed * rate / 60_000)
            .unwrap_or(usize::MAX)
            .min(job.rows.len());
        for row in &job.rows[job.applied.min(due)..due] {
            match job.kind {
                JobKind::Users => self.apply_bulk_user(row),
                JobKind::Companies => self.identify_company(row),
            }
        }
        job.applied = job.applied.max(due);
        self.jobs.push(job);
    }

    /// Whether every bulk job has finished at `now`.
    pub(crate) fn jobs_done(&mut self, now: SystemTime) -> bool {
        self.advance(now);
        self.jobs.iter().all(|job| job.applied == job.rows.len())
    }

    /// The descriptor of job `id` at `now`, as `GET /v1/background_jobs/{id}` answers it.
    pub(crate) fn job(&mut self, id: &str, now: SystemTime) -> Option<Value> {
        self.advance(now);
        let job = self.jobs.iter().find(|job| job.id == id)?;
        Some(self.describe(job, now))
    }

    /// Every job's descriptor at `now`, newest first.
    pub(crate) fn jobs(&mut self, now: SystemTime) -> Value {
        self.advance(now);
        Value::Array(
            self.jobs
                .iter()
                .rev()
                .map(|job| self.describe(job, now))
                .collect(),
        )
    }

    /// The whole state at `now` as JSON: users (metadata, company, events), companies, jobs.
    pub(crate) fn snapshot(&mut self, now: SystemTime) -> Value {
        self.advance(now);
        let users: Map<String, Value> = self
            .users
            .iter()
            .map(|(id, user)| {
                (
                    id.clone(),
                    json!({
                        "metadata": user.metadata,
                        "company": user.company,
                        "events": user.events,
                    }),
                )
            })
            .collect();
        let companies: Map<String, Value> = self
            .companies
            .iter()
            .map(|(id, metadata)| (id.clone(), json!({ "metadata": metadata })))
            .collect();
        json!({
            "users": users,
            "companies": companies,
            "jobs": self.jobs(now),
        })
    }

    fn apply_bulk_user(&mut self, row: &Map<String, Value>) {
        let Some(user_id) = row.get("user_id").and_then(Value::as_str) else {
            return;
        };
        let company_id = row.get("company_id").and_then(id_text);
        if let Some(company_id) = &company_id {
            self.companies.entry(company_id.clone()).or_default();
        }
        self.merge_user(user_id, row.get("metadata"), company_id);
    }

    fn merge_user(&mut self, user_id: &str, metadata: Option<&Value>, company: Option<String>) {
        let user = self.users.entry(user_id.to_owned()).or_default();
        if let Some(metadata) = metadata.and_then(Value::as_object) {
            merge(&mut user.metadata, metadata);
        }
        if company.is_some() {
            user.company = company;
        }
    }

    fn describe(&self, job: &Job, now: SystemTime) -> Value {
        let total = job.rows.len();
        let status = if job.applied == total {
            "completed"
        } else if job.applied == 0 {
            "queued"
        } else {
            "processing"
        };
        let rate = u128::from(self.rows_per_minute);
        let end_ms = job.submitted_ms + (total as u128 * 60_000).div_ceil(rate);
        let elapsed_ms = millis(now).min(end_ms).saturating_sub(job.submitted_ms);
        json!({
            "job_id": job.id,
            "status": status,
            "type": job.kind.as_str(),
            "total_rows": total,
            "completed_rows": job.applied,
            "submitted_at": rfc3339(job.submitted_ms),
            "start_time": rfc3339(job.submitted_ms),
            "end_time": (job.applied == total).then(|| rfc3339(end_ms)),
            "elapsed_time": elapsed_ms as f64 / 1000.0,
            "links": { "self": format!("/v1/background_jobs/{}", job.id) },
        })
    }
}

/// Sets every key of `update` in `target`, keeping the others.
fn merge(target: &mut Map<String, Value>, update: &Map<String, Value>) {
    for (key, value) in update {
        target.insert(key.clone(), value.clone());
    }
}

/// An id as text: a string as it is, a number written out (Userpilot's ids are strings, but
/// company ids often arrive as numbers).
fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn millis(at: SystemTime) -> u128 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis()
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for milliseconds since the epoch (civil-from-days, proleptic
/// Gregorian calendar).
fn rfc3339(ms: u128) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    #[test]
    fn identify_merges_the_keys_it_is_sent_and_keeps_the_others() {
        let mut world = World::new(DEFAULT_BULK_ROWS_PER_MINUTE);
        world.identify(&obj(
            json!({"user_id": "u1", "metadata": {"plan": "free", "name": "Ada"}}),
        ));
        world.identify(&obj(
            json!({"user_id": "u1", "metadata": {"plan": "pro", "seats": null}}),
        ));
        let state = world.snapshot(at(0));
        assert_eq!(
            state["users"]["u1"]["metadata"],
            json!({"plan": "pro", "name": "Ada", "seats": null})
        );
        assert_eq!(state["users"]["u1"]["company"], Value::Null);
    }

    #[test]
    fn a_company_object_links_the_user_and_carries_company_properties() {
        let mut world = World::new(DEFAULT_BULK_ROWS_PER_MINUTE);
        world.identify_company(&obj(
            json!({"company_id": "c1", "metadata": {"name": "Acme"}}),
        ));
        world.identify(&obj(
            json!({"user_id": "u1", "company": {"id": "c1", "plan": "gold"}}),
        ));
        world.identify(&obj(json!({"user_id": "u2", "company": {"company_id": 7}})));
        // An identify without a company keeps the link.
        world.identify(&obj(json!({"user_id": "u1", "metadata": {"a": 1}})));
        let state = world.snapshot(at(0));
        assert_eq!(state["users"]["u1"]["company"], "c1");
        assert_eq!(state["users"]["u2"]["company"], "7");
        assert_eq!(
            state["companies"]["c1"]["metadata"],
            json!({"name": "Acme", "plan": "gold"})
        );
        assert_eq!(state["companies"]["7"]["metadata"], json!({}));
    }

    #[test]
    fn deletes_remove_users_with_their_events_and_companies_with_their_links() {
        let mut world = World::new(DEFAULT_BULK_ROWS_PER_MINUTE);
        world.identify(&obj(json!({"user_id": "u1", "company": {"id": "c1"}})));
        world.identify(&obj(json!({"user_id": "u2", "company": {"id": "c1"}})));
        world.track(&obj(
            json!({"user_id": "u1", "event_name": "E", "metadata": {"n": 1}}),
        ));
        world.track(&obj(json!({"user_id": "u2", "event_name": "E"})));
        world.delete_users(&[json!("u1"), json!("nobody")]);
        world.delete_companies(&[json!("c1")]);
        let state = world.snapshot(at(0));
        assert_eq!(state["users"].as_object().map(Map::len), Some(1));
        assert_eq!(state["users"]["u2"]["company"], Value::Null);
        assert_eq!(
            state["users"]["u2"]["events"],
            json!([{"event_name": "E", "metadata": {}}])
        );
        assert_eq!(state["companies"], json!({}));
    }

    #[test]
    fn bulk_jobs_apply_their_rows_as_time_passes_one_job_at_a_time() {
        // 60 rows a minute: one row a second.
        let mut world = World::new(60);
        let rows: Vec<Map<String, Value>> = (0..3)
            .map(|i| {
                obj(json!({"user_id": format!("u{i}"), "company_id": "c1", "metadata": {"i": i}}))
            })
            .collect();
        let job = world
            .submit_bulk(JobKind::Users, rows, at(0))
            .expect("the first job is accepted");
        assert_eq!(job["status"], "queued");
        assert_eq!(job["total_rows"], 3);
        assert_eq!(job["job_id"], "job_000001");
        assert_eq!(job["submitted_at"], "2023-11-14T22:13:20.000Z");

        let second = vec![obj(json!({"company_id": "c2"}))];
        assert_eq!(
            world.submit_bulk(JobKind::Companies, second.clone(), at(1)),
            Err(BulkRefusal::Busy("job_000001".to_owned()))
        );
        let state = world.snapshot(at(2));
        assert_eq!(state["users"].as_object().map(Map::len), Some(2));
        assert_eq!(state["jobs"][0]["status"], "processing");
        assert_eq!(state["jobs"][0]["completed_rows"], 2);
        assert!(!world.jobs_done(at(2)));
        assert!(world.jobs_done(at(3)));
        let done = world.job("job_000001", at(10)).expect("the job is known");
        assert_eq!(done["status"], "completed");
        assert_eq!(done["end_time"], "2023-11-14T22:13:23.000Z");
        assert_eq!(done["elapsed_time"], 3.0);
        assert_eq!(world.snapshot(at(10))["users"]["u2"]["company"], "c1");

        // Now the company job may run.
        let job = world
            .submit_bulk(JobKind::Companies, second, at(10))
            .expect("accepted once the first finished");
        assert_eq!(job["job_id"], "job_000002");
        assert!(world.jobs_done(at(11)));
        assert!(world.job("job_000009", at(11)).is_none());
    }
}
