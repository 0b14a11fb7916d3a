//! The actionkit command-line interface.
//!
//! Each subcommand lives in its own module under `cmd`; this file only parses arguments and
//! reports errors.

mod activity;
mod cluster;
mod cmd;
mod events;
mod input;
mod setup;
mod store;
mod worker;

use clap::{Parser, Subcommand};

/// Declarative destination actions: deliver Segment events to SaaS tools.
#[derive(Debug, Parser)]
#[command(name = "actionkit", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Deliver Segment events through the destination's mappings.
    Send(cmd::send::SendArgs),
    /// Evaluate one mapping or trigger on one event (Segment's Mappings Tester).
    Map(cmd::map::MapArgs),
    /// Check the destination's credentials (its test-authentication request).
    TestAuth(cmd::auth::TestAuthArgs),
    /// Delete users in the destination (its on-delete request, or its bulk deletion for several).
    DeleteUser(cmd::auth::DeleteUserArgs),
    /// Delete companies in the destination (its bulk company deletion).
    DeleteCompany(cmd::auth::DeleteCompanyArgs),
    /// Serve a local stand-in for Userpilot's API.
    MockUserpilot(cmd::mock::MockArgs),
    /// Serve the Segment-compatible HTTP intake and deliver what it accepts.
    Serve(cmd::serve::ServeArgs),
    /// Serve the web console (Event Tester with real sends, mapping editor) without intake or
    /// queue, for local work.
    Console(cmd::console::ConsoleArgs),
    /// Inspect, replay or purge the dead-letter queue of `serve`.
    Dlq(cmd::dlq::DlqArgs),
    /// Inspect the durable queue of `serve`.
    Queue(cmd::dlq::QueueArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let res = match cli.command {
        Command::Send(args) => cmd::send::run(args),
        Command::Map(args) => cmd::map::run(args),
        Command::TestAuth(args) => cmd::auth::test_auth(args),
        Command::DeleteUser(args) => cmd::auth::delete_user(args),
        Command::DeleteCompany(args) => cmd::auth::delete_company(args),
        Command::MockUserpilot(args) => cmd::mock::run(args),
        Command::Serve(args) => cmd::serve::run(args),
        Command::Console(args) => cmd::console::run(args),
        Command::Dlq(args) => cmd::dlq::run_dlq(args),
        Command::Queue(args) => cmd::dlq::run_queue(args),
    };
    match res {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}
