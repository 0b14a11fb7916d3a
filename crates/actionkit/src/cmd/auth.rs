//! `actionkit test-auth`, `actionkit delete-user` and `actionkit delete-company`: the
//! destination's credential check (Segment's `testAuthentication`), user deletion (Segment's
//! `onDelete` for one user, the destination's bulk `deletions.users` for several) and company
//! deletion (`deletions.companies`, beyond Segment).

use std::process::ExitCode;

use std::ops::Range;
use std::path::{Path, PathBuf};

use actionkit_runtime::delivery::Outcome;
use actionkit_runtime::destination::DeletionKind;
use actionkit_runtime::request::Request;
use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;

use crate::setup::{self, TargetArgs};
use crate::store::EventQueue;

/// Check the destination's credentials with its test-authentication request.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  USERPILOT_API_KEY=… actionkit test-auth
  actionkit test-auth --setting apiKey=… --setting endpoint=https://analytex-eu.userpilot.io/")]
pub struct TestAuthArgs {
    #[command(flatten)]
    target: TargetArgs,
}

/// Delete users in the destination (GDPR): one with its on-delete request, as Segment does,
/// several with its bulk deletion, as few requests as its limits allow.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  USERPILOT_API_KEY=… actionkit delete-user user-1001
  actionkit delete-user --anonymous-id anon-42 user-1001
  actionkit delete-user user-1001 user-1002 user-1003
  actionkit delete-user --from gdpr-requests.txt      # one id per line; - reads stdin")]
pub struct DeleteUserArgs {
    /// The users' ids.
    #[arg(value_name = "USER_ID")]
    user_ids: Vec<String>,
    /// Also read ids from FILE, one per line (blank lines are skipped; `-` is stdin).
    #[arg(long, value_name = "FILE")]
    from: Option<PathBuf>,
    /// The user's anonymous id, passed to the on-delete request as `anonymousId` (one user only).
    #[arg(long)]
    anonymous_id: Option<String>,
    #[command(flatten)]
    forget: ForgetArgs,
    #[command(flatten)]
    target: TargetArgs,
}

/// Where `serve` remembers what it delivered, so that a deleted record is sent again in full.
#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// The queue file of a `serve` that sends only what changed (`server.queue.path`): after the
    /// destination accepts a deletion, what that serve remembers delivering to the deleted ids
    /// is forgotten, so their next identify is sent even if it repeats old traits.
    #[arg(long, value_name = "FILE", group = "forget_store")]
    queue: Option<PathBuf>,
    /// Like --queue, for the queue a `serve` configuration names in `server.queue`, on either
    /// store (an SQLite file, or JetStream shared by several nodes).
    #[arg(
        long,
        value_name = "FILE",
        group = "forget_store",
        conflicts_with = "queue"
    )]
    queue_config: Option<PathBuf>,
    /// The instance whose memory to clear (its `name` in the configuration).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "userpilot",
        requires = "forget_store"
    )]
    instance: String,
}

/// Delete companies in the destination, with its bulk company deletion (beyond Segment).
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  USERPILOT_API_KEY=… actionkit delete-company acme-gmbh
  actionkit delete-company --from closed-accounts.txt")]
pub struct DeleteCompanyArgs {
    /// The companies' ids.
    #[arg(value_name = "COMPANY_ID")]
    company_ids: Vec<String>,
    /// Also read ids from FILE, one per line (blank lines are skipped; `-` is stdin).
    #[arg(long, value_name = "FILE")]
    from: Option<PathBuf>,
    #[command(flatten)]
    forget: ForgetArgs,
    #[command(flatten)]
    target: TargetArgs,
}

/// Runs `test-auth`; exit code 1 when the credentials are invalid.
pub fn test_auth(args: TestAuthArgs) -> anyhow::Result<ExitCode> {
    let target = setup::embedded_default(&args.target, None)?;
    let request = target
        .instance
        .test_authentication_request()
        .map_err(|err| anyhow::anyhow!("{err}"))?
        .context("this destination has no test-authentication request")?;
    let outcome = runtime()?.block_on(target.client.send_once(&request));
    if matches!(outcome, Outcome::Delivered { .. }) {
        println!("Credentials are valid ({}).", status_text(outcome.status()));
        Ok(ExitCode::SUCCESS)
    } else {
        // Segment's wording: `Credentials are invalid: <status> <reason>`.
        let reason = outcome.reason().unwrap_or("no response");
        println!("Credentials are invalid: {reason}");
        Ok(ExitCode::from(1))
    }
}

/// Runs `delete-user`; exit code 1 when the destination refused any request or could not be
/// reached.
pub fn delete_user(args: DeleteUserArgs) -> anyhow::Result<ExitCode> {
    let ids = collect_ids(args.user_ids, args.from.as_deref())?;
    let target = setup::embedded_default(&args.target, None)?;
    if let [user_id] = ids.as_slice() {
        // One user: Segment's own on-delete request, byte for byte.
        let event = json!({ "userId": user_id, "anonymousId": args.anonymous_id });
        let request = target
            .instance
            .on_delete_request(&event)
            .map_err(|err| anyhow::anyhow!("{err}"))?
            .context("this destination has no on-delete request")?;
        let code = send_deletions(&target, ("user", "users"), &ids, vec![(0..1, request)])?;
        forget(&args.forget, DeletionKind::Users, &ids, code)?;
        return Ok(code);
    }
    if args.anonymous_id.is_some() {
        bail!("--anonymous-id goes with one user id, not {}", ids.len());
    }
    let code = bulk_delete(
        &target,
        DeletionKind::Users,
        &ids,
        "this destination declares no bulk user deletion (`deletions.users`); delete one user at a time",
    )?;
    forget(&args.forget, DeletionKind::Users, &ids, code)?;
    Ok(code)
}

/// Runs `delete-company`; exit code 1 when the destination refused any request or could not be
/// reached.
pub fn delete_company(args: DeleteCompanyArgs) -> anyhow::Result<ExitCode> {
    let ids = collect_ids(args.company_ids, args.from.as_deref())?;
    let target = setup::embedded_default(&args.target, None)?;
    let code = bulk_delete(
        &target,
        DeletionKind::Companies,
        &ids,
        "this destination declares no company deletion (`deletions.companies`)",
    )?;
    forget(&args.forget, DeletionKind::Companies, &ids, code)?;
    Ok(code)
}

/// Forgets what the serve of `args.queue` remembers delivering to the deleted `ids`, once every
/// deletion was accepted (`code` is success). The record kinds are `user` and `company`, as the
/// identify actions name them in `merges_by_id`.
fn forget(
    args: &ForgetArgs,
    kind: DeletionKind,
    ids: &[String],
    code: ExitCode,
) -> anyhow::Result<()> {
    if args.queue.is_none() && args.queue_config.is_none() {
        return Ok(());
    }
    if code != ExitCode::SUCCESS {
        println!("Not forgetting what was delivered, because a deletion failed.");
        return Ok(());
    }
    let record = match kind {
        DeletionKind::Users => "user",
        DeletionKind::Companies => "company",
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let n = runtime.block_on(async {
        let (queue, place) = match (&args.queue, &args.queue_config) {
            (Some(path), _) => {
                let config = actionkit_queue::QueueConfig {
                    // Another process (serve) may hold rows in flight; they stay its own.
                    recover_in_flight: false,
                    ..actionkit_queue::QueueConfig::default()
                };
                let queue = actionkit_queue::Queue::open(path, config)
                    .with_context(|| format!("cannot open the queue {}", path.display()))?;
                (EventQueue::sqlite(queue, None), path.display().to_string())
            }
            (None, Some(config)) => (
                crate::cmd::dlq::open_configured(config).await?.0,
                format!("the queue of {}", config.display()),
            ),
            (None, None) => return Ok(0),
        };
        queue
            .forget_fingerprints(&args.instance, record, ids.to_vec())
            .await
            .with_context(|| format!("cannot forget delivered records in {place}"))
    })?;
    println!(
        "Forgot {n} remembered part(s) of {} deleted {}(s) for instance '{}'.",
        ids.len(),
        record,
        args.instance
    );
    Ok(())
}

/// Deletes `ids` with the destination's bulk deletion of `kind`, or fails with `missing` when it
/// declares none.
fn bulk_delete(
    target: &setup::Target,
    kind: DeletionKind,
    ids: &[String],
    missing: &'static str,
) -> anyhow::Result<ExitCode> {
    let requests = target
        .instance
        .deletion_requests(kind, ids)
        .map_err(|err| anyhow::anyhow!("{err}"))?
        .context(missing)?;
    let noun = match kind {
        DeletionKind::Users => ("user", "users"),
        DeletionKind::Companies => ("company", "companies"),
    };
    send_deletions(target, noun, ids, requests)
}

/// The ids given as arguments, then those of `from` (one per line, trimmed, blank lines
/// skipped); at least one.
fn collect_ids(mut ids: Vec<String>, from: Option<&Path>) -> anyhow::Result<Vec<String>> {
    if let Some(path) = from {
        let text = if path == Path::new("-") {
            std::io::read_to_string(std::io::stdin()).context("cannot read ids from stdin")?
        } else {
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read ids from {}", path.display()))?
        };
        ids.extend(
            text.lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .map(str::to_owned),
        );
    }
    if ids.is_empty() {
        bail!("no id given: name at least one, or a file of ids with --from");
    }
    Ok(ids)
}

/// Sends the deletion requests one after the other (the destination's rate limit spaces them)
/// and reports each with the ids it carries, naming them with `noun` (singular, plural); exit
/// code 1 when any failed.
fn send_deletions(
    target: &setup::Target,
    noun: (&str, &str),
    ids: &[String],
    requests: Vec<(Range<usize>, Request)>,
) -> anyhow::Result<ExitCode> {
    let runtime = runtime()?;
    let n_requests = requests.len();
    let mut failed = 0usize;
    for (idx, (carried, request)) in requests.iter().enumerate() {
        let chunk = ids.get(carried.clone()).unwrap_or_default();
        let outcome = runtime.block_on(target.client.send(request));
        let what = match chunk {
            [one] => format!("{} '{one}'", noun.0),
            [first, .., last] => format!("{} {} ({first} … {last})", chunk.len(), noun.1),
            [] => format!("no {}", noun.1),
        };
        let step = if n_requests > 1 {
            format!("[{}/{n_requests}] ", idx + 1)
        } else {
            String::new()
        };
        if outcome.is_delivered() {
            println!(
                "{step}Deletion of {what} accepted ({}).",
                status_text(outcome.status)
            );
        } else {
            failed += 1;
            let reason = outcome.reason.as_deref().unwrap_or("unknown reason");
            println!(
                "{step}Deletion of {what} failed after {} attempt(s): {reason}",
                outcome.attempts
            );
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn status_text(status: Option<u16>) -> String {
    status.map_or_else(|| "no response".to_owned(), |s| format!("HTTP {s}"))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
