//! `actionkit test-auth` and `actionkit delete-user`: the destination's credential check and
//! user deletion (Segment's `testAuthentication` and `onDelete`).

use std::process::ExitCode;

use actionkit_runtime::delivery::Outcome;
use anyhow::Context;
use clap::Args;
use serde_json::json;

use crate::setup::{self, TargetArgs};

/// Check the destination's credentials with its test-authentication request.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  USERPILOT_API_KEY=… actionkit test-auth
  actionkit test-auth --setting apiKey=… --setting endpoint=https://analytex-eu.userpilot.io/")]
pub struct TestAuthArgs {
    #[command(flatten)]
    target: TargetArgs,
}

/// Delete a user in the destination (GDPR), with its on-delete request.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  USERPILOT_API_KEY=… actionkit delete-user user-1001
  actionkit delete-user --anonymous-id anon-42 user-1001")]
pub struct DeleteUserArgs {
    /// The user's id.
    user_id: String,
    /// The user's anonymous id, passed to the request as `anonymousId`.
    #[arg(long)]
    anonymous_id: Option<String>,
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

/// Runs `delete-user`; exit code 1 when the destination refused or could not be reached.
pub fn delete_user(args: DeleteUserArgs) -> anyhow::Result<ExitCode> {
    let target = setup::embedded_default(&args.target, None)?;
    let event = json!({ "userId": args.user_id, "anonymousId": args.anonymous_id });
    let request = target
        .instance
        .on_delete_request(&event)
        .map_err(|err| anyhow::anyhow!("{err}"))?
        .context("this destination has no on-delete request")?;
    let outcome = runtime()?.block_on(target.client.send(&request));
    if outcome.is_delivered() {
        println!(
            "Deletion of user '{}' accepted ({}).",
            args.user_id,
            status_text(outcome.status)
        );
        Ok(ExitCode::SUCCESS)
    } else {
        let reason = outcome.reason.as_deref().unwrap_or("unknown reason");
        println!(
            "Deletion of user '{}' failed after {} attempt(s): {reason}",
            args.user_id, outcome.attempts
        );
        Ok(ExitCode::from(1))
    }
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
