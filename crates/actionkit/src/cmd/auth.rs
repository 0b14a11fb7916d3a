//! `actionkit test-auth`, `actionkit delete-user` and `actionkit delete-company`: the
//! destination's credential check (Segment's `testAuthentication`), user deletion (Segment's
//! `onDelete` for one user, the destination's bulk `deletions.users` for several) and company
//! deletion (`deletions.companies`, beyond Segment). Each works on any destination: an instance
//! of a configuration file, or a destination by slug (Userpilot by default), see
//! [`setup::select`].

use std::process::ExitCode;

use std::ops::Range;
use std::path::{Path, PathBuf};

use actionkit_runtime::delivery::Outcome;
use actionkit_runtime::destination::{CompiledDestination, DeletionKind};
use actionkit_runtime::request::Request;
use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;

use crate::setup::{self, InstanceArgs, TargetArgs};
use crate::store::EventQueue;

/// The help of the commands of this module after their examples, on choosing a destination: a
/// macro, so that `concat!` can join it to each command's examples.
macro_rules! with_choosing {
    ($examples:literal) => {
        concat!(
            $examples,
            "\n\nChoosing the destination: --config FILE uses an instance of a runtime \
             configuration (--instance NAME when it has several) with its destination and \
             settings; --destination SLUG uses a destination's presets with its settings from \
             --setting NAME=VALUE or the environment variable <DESTINATION>_<NAME>. Without \
             either, the destination is Userpilot (actions-userpilot-cloud), its API key from \
             --setting apiKey=… or USERPILOT_API_KEY. A required setting given nowhere is an \
             error before anything is sent."
        )
    };
}

/// Check the destination's credentials with its test-authentication request.
#[derive(Debug, Args)]
#[command(after_help = with_choosing!("Examples:
  actionkit test-auth --config actionkit.yaml --instance prod
  actionkit test-auth --destination SLUG --setting NAME=VALUE
  USERPILOT_API_KEY=… actionkit test-auth
  actionkit test-auth --setting apiKey=… --setting endpoint=https://analytex-eu.userpilot.io/"))]
pub struct TestAuthArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    #[command(flatten)]
    target: TargetArgs,
}

/// Delete users in the destination (GDPR): one with its on-delete request, as Segment does,
/// several with its bulk deletion, as few requests as its limits allow (or one on-delete
/// request each when it has no bulk deletion).
#[derive(Debug, Args)]
#[command(after_help = with_choosing!("Examples:
  actionkit delete-user --config actionkit.yaml --instance prod user-1001
  actionkit delete-user --destination SLUG --setting NAME=VALUE user-1001
  USERPILOT_API_KEY=… actionkit delete-user user-1001
  actionkit delete-user --anonymous-id anon-42 user-1001
  actionkit delete-user user-1001 user-1002 user-1003
  actionkit delete-user --from gdpr-requests.txt      # one id per line; - reads stdin"))]
#[command(mut_arg("instance", |arg| arg.help(FORGET_INSTANCE_HELP)))]
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
    instance: InstanceArgs,
    #[command(flatten)]
    target: TargetArgs,
}

/// What `--instance` also means beside `--queue` or `--queue-config`.
const FORGET_INSTANCE_HELP: &str = "The instance of --config to use, by its `name`; it may be \
left out when the file has a single enabled instance. With --queue or --queue-config, also the \
instance whose memory of deliveries is cleared (default: the instance used; without --config it \
names only that memory)";

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
}

/// Delete companies in the destination, with its bulk company deletion (beyond Segment).
#[derive(Debug, Args)]
#[command(after_help = with_choosing!("Examples:
  actionkit delete-company --config actionkit.yaml --instance prod acme-gmbh
  USERPILOT_API_KEY=… actionkit delete-company acme-gmbh
  actionkit delete-company --from closed-accounts.txt"))]
#[command(mut_arg("instance", |arg| arg.help(FORGET_INSTANCE_HELP)))]
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
    instance: InstanceArgs,
    #[command(flatten)]
    target: TargetArgs,
}

/// How a destination's definition is named in errors: its slug and display name.
fn named(dest: &CompiledDestination) -> String {
    format!("destination '{}' ({})", dest.def.slug, dest.def.name)
}

/// Fails, naming the destination, when it has no test-authentication request.
fn can_test_auth(dest: &CompiledDestination) -> anyhow::Result<()> {
    if dest.def.test_authentication.is_none() {
        bail!(
            "{} has no test-authentication request (`test_authentication` in its \
             destination.yaml), so its credentials cannot be checked",
            named(dest)
        );
    }
    Ok(())
}

/// Fails, naming the destination, when it can delete no user, or when an anonymous id is to be
/// passed and it has no on-delete request to pass it to.
fn can_delete_users(dest: &CompiledDestination, anonymous: bool) -> anyhow::Result<()> {
    let def = dest.def;
    if def.on_delete.is_none() && def.deletions.users.is_none() {
        bail!(
            "{} has no user deletion: neither `on_delete` nor `deletions.users` in its \
             destination.yaml",
            named(dest)
        );
    }
    if anonymous && def.on_delete.is_none() {
        bail!(
            "--anonymous-id goes to the on-delete request, and {} has none (`on_delete` in its \
             destination.yaml); its bulk deletion takes user ids only",
            named(dest)
        );
    }
    Ok(())
}

/// Fails, naming the destination, when it has no bulk deletion of companies.
fn can_delete_companies(dest: &CompiledDestination) -> anyhow::Result<()> {
    if dest.def.deletions.companies.is_none() {
        bail!(
            "{} has no company deletion (`deletions.companies` in its destination.yaml)",
            named(dest)
        );
    }
    Ok(())
}

/// Runs `test-auth`; exit code 1 when the credentials are invalid.
pub fn test_auth(args: TestAuthArgs) -> anyhow::Result<ExitCode> {
    let target = setup::select(&args.instance, &args.target, can_test_auth)?;
    let request = target
        .instance
        .test_authentication_request()
        .map_err(|err| anyhow::anyhow!("{err}"))?
        .with_context(|| {
            format!(
                "{} has no test-authentication request",
                named(target.instance.destination())
            )
        })?;
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

/// The target of a deletion command and the instance whose memory `forget` clears: `--instance`
/// names the instance of `--config`, or without it only the memory to clear.
fn deletion_target(
    instance: &InstanceArgs,
    forget: &ForgetArgs,
    target: &TargetArgs,
    able: impl Fn(&CompiledDestination) -> anyhow::Result<()>,
) -> anyhow::Result<(setup::Target, String)> {
    let forgets = forget.queue.is_some() || forget.queue_config.is_some();
    if instance.config.is_none() && instance.instance.is_some() && !forgets {
        bail!(
            "--instance names an instance of --config FILE, or with --queue or --queue-config \
             the instance whose memory of deliveries to clear"
        );
    }
    let select = if instance.config.is_some() {
        instance.clone()
    } else {
        InstanceArgs {
            instance: None,
            ..instance.clone()
        }
    };
    let target = setup::select(&select, target, able)?;
    let forget_name = instance
        .instance
        .clone()
        .unwrap_or_else(|| target.name.clone());
    Ok((target, forget_name))
}

/// Runs `delete-user`; exit code 1 when the destination refused any request or could not be
/// reached.
pub fn delete_user(args: DeleteUserArgs) -> anyhow::Result<ExitCode> {
    let ids = collect_ids(args.user_ids, args.from.as_deref())?;
    if args.anonymous_id.is_some() && ids.len() > 1 {
        bail!("--anonymous-id goes with one user id, not {}", ids.len());
    }
    let anonymous = args.anonymous_id.is_some();
    let (target, forget_name) =
        deletion_target(&args.instance, &args.forget, &args.target, |dest| {
            can_delete_users(dest, anonymous)
        })?;
    let def = target.instance.destination().def;
    let code = if def.on_delete.is_some() && (ids.len() == 1 || def.deletions.users.is_none()) {
        // One user (or a destination without bulk deletion): Segment's own on-delete request,
        // byte for byte, per user.
        let mut requests = Vec::with_capacity(ids.len());
        for (idx, user_id) in ids.iter().enumerate() {
            let event = json!({ "userId": user_id, "anonymousId": args.anonymous_id });
            let request = target
                .instance
                .on_delete_request(&event)
                .map_err(|err| anyhow::anyhow!("{err}"))?
                .with_context(|| {
                    format!(
                        "{} has no on-delete request",
                        named(target.instance.destination())
                    )
                })?;
            requests.push((idx..idx + 1, request));
        }
        send_deletions(&target, ("user", "users"), &ids, requests)?
    } else {
        bulk_delete(&target, DeletionKind::Users, &ids)?
    };
    forget(&args.forget, &forget_name, DeletionKind::Users, &ids, code)?;
    Ok(code)
}

/// Runs `delete-company`; exit code 1 when the destination refused any request or could not be
/// reached.
pub fn delete_company(args: DeleteCompanyArgs) -> anyhow::Result<ExitCode> {
    let ids = collect_ids(args.company_ids, args.from.as_deref())?;
    let (target, forget_name) = deletion_target(
        &args.instance,
        &args.forget,
        &args.target,
        can_delete_companies,
    )?;
    let code = bulk_delete(&target, DeletionKind::Companies, &ids)?;
    forget(
        &args.forget,
        &forget_name,
        DeletionKind::Companies,
        &ids,
        code,
    )?;
    Ok(code)
}

/// Forgets what the serve of `args.queue` remembers delivering to the deleted `ids`, once every
/// deletion was accepted (`code` is success). The record kinds are `user` and `company`, as the
/// identify actions name them in `merges_by_id`.
fn forget(
    args: &ForgetArgs,
    instance: &str,
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
            .forget_fingerprints(instance, record, ids.to_vec())
            .await
            .with_context(|| format!("cannot forget delivered records in {place}"))
    })?;
    println!(
        "Forgot {n} remembered part(s) of {} deleted {}(s) for instance '{}'.",
        ids.len(),
        record,
        instance
    );
    Ok(())
}

/// Deletes `ids` with the destination's bulk deletion of `kind`, or fails naming the
/// destination when it declares none.
fn bulk_delete(
    target: &setup::Target,
    kind: DeletionKind,
    ids: &[String],
) -> anyhow::Result<ExitCode> {
    let (noun, key) = match kind {
        DeletionKind::Users => (("user", "users"), "users"),
        DeletionKind::Companies => (("company", "companies"), "companies"),
    };
    let requests = target
        .instance
        .deletion_requests(kind, ids)
        .map_err(|err| anyhow::anyhow!("{err}"))?
        .with_context(|| {
            format!(
                "{} has no bulk deletion of {key} (`deletions.{key}` in its destination.yaml)",
                named(target.instance.destination())
            )
        })?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use actionkit_runtime::destination::{DeletionsDef, DestinationDef};

    /// Userpilot's definition without any credential check or deletion, compiled.
    fn bare_destination() -> CompiledDestination {
        let registry = setup::registry().expect("the generated destinations compile");
        let userpilot = registry
            .get(setup::DEFAULT_DESTINATION)
            .expect("Userpilot is generated");
        let def: &'static DestinationDef = Box::leak(Box::new(DestinationDef {
            slug: "actions-bare",
            name: "Bare",
            test_authentication: None,
            on_delete: None,
            deletions: DeletionsDef::NONE,
            ..*userpilot.def
        }));
        CompiledDestination::new(def).expect("the bare destination compiles")
    }

    fn message(res: anyhow::Result<()>) -> String {
        res.err().map(|err| format!("{err:#}")).unwrap_or_default()
    }

    #[test]
    fn a_destination_that_lacks_a_request_is_named_with_what_it_lacks() {
        let bare = bare_destination();
        assert_eq!(
            message(can_test_auth(&bare)),
            "destination 'actions-bare' (Bare) has no test-authentication request \
             (`test_authentication` in its destination.yaml), so its credentials cannot be checked"
        );
        assert_eq!(
            message(can_delete_users(&bare, false)),
            "destination 'actions-bare' (Bare) has no user deletion: neither `on_delete` nor \
             `deletions.users` in its destination.yaml"
        );
        assert_eq!(
            message(can_delete_companies(&bare)),
            "destination 'actions-bare' (Bare) has no company deletion (`deletions.companies` in \
             its destination.yaml)"
        );
    }

    #[test]
    fn an_anonymous_id_needs_the_on_delete_request() {
        let registry = setup::registry().expect("the generated destinations compile");
        let userpilot = registry
            .get(setup::DEFAULT_DESTINATION)
            .expect("Userpilot is generated");
        let bulk_only: &'static DestinationDef = Box::leak(Box::new(DestinationDef {
            slug: "actions-bulk-only",
            name: "Bulk Only",
            on_delete: None,
            ..*userpilot.def
        }));
        let bulk_only = CompiledDestination::new(bulk_only).expect("it compiles");
        assert!(can_delete_users(&bulk_only, false).is_ok());
        assert_eq!(
            message(can_delete_users(&bulk_only, true)),
            "--anonymous-id goes to the on-delete request, and destination 'actions-bulk-only' \
             (Bulk Only) has none (`on_delete` in its destination.yaml); its bulk deletion takes \
             user ids only"
        );
        assert!(can_test_auth(userpilot).is_ok());
        assert!(can_delete_users(userpilot, true).is_ok());
        assert!(can_delete_companies(userpilot).is_ok());
    }
}
