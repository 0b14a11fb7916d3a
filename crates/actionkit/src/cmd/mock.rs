//! `actionkit mock-userpilot`: run the local stand-in for Userpilot's API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use actionkit_mock_userpilot::{
    FaultConfig, FaultEndpoints, Latency, MockConfig, MockServer, RateLimits,
};
use anyhow::Context;
use clap::Args;

/// Serve a local stand-in for Userpilot's API, for demos and tests.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  actionkit mock-userpilot --listen 127.0.0.1:8089 --record requests.ndjson
  actionkit mock-userpilot --api-key test --error-rate 0.3 --retry-after 2 --seed 7
  actionkit mock-userpilot --latency 50ms..250ms --drop-rate 0.05 --no-rate-limits
  actionkit mock-userpilot --fault-endpoints bulk --fault-script 503,429 --retry-after 1
  actionkit mock-userpilot --state-file state.json   # then: curl http://127.0.0.1:8089/_mock/state")]
pub struct MockArgs {
    /// The address to listen on (port 0 picks a free port and prints it).
    #[arg(long, default_value = "127.0.0.1:8089")]
    listen: SocketAddr,
    /// Require `Authorization: Token <KEY>`; without it the header is not checked.
    #[arg(
        long,
        value_name = "KEY",
        env = "MOCK_USERPILOT_API_KEY",
        hide_env_values = true
    )]
    api_key: Option<String>,
    /// Append one JSON line per request received to FILE (authorization values are masked).
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Answer without Userpilot's rate limits.
    #[arg(long)]
    no_rate_limits: bool,
    /// Multiply Userpilot's rate limits by this factor (windows unchanged), to run a test at a
    /// multiple of Userpilot's pace; give the client the same factor
    /// (`delivery.rate_limit_scale`, or `--rate-limit-scale` of `send`).
    #[arg(long, default_value_t = 1.0, value_name = "FACTOR", value_parser = positive_factor)]
    rate_limit_scale: f64,
    /// Share of requests answered with the error status, from 0 to 1 (of the requests
    /// --fault-endpoints selects, as for every fault below).
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// The status of injected errors.
    #[arg(long, default_value_t = 503)]
    error_status: u16,
    /// `Retry-After` seconds added to injected 429 and 503 answers.
    #[arg(long, value_name = "SECONDS")]
    retry_after: Option<u64>,
    /// Delay before answering: a fixed time (`150ms`, `2s`) or a range (`50ms..250ms`).
    #[arg(long)]
    latency: Option<Latency>,
    /// Share of requests whose connection is closed without an answer, from 0 to 1.
    #[arg(long, default_value_t = 0.0)]
    drop_rate: f64,
    /// Seed for fault injection, for reproducible runs.
    #[arg(long)]
    seed: Option<u64>,
    /// Answer the next requests to the faulted endpoints with these statuses, one each, in
    /// arrival order, then behave as the rates say: comma-separated HTTP error statuses
    /// (400-599) or `drop` to close the connection, e.g. `503,429`. Injected 429 and 503 answers
    /// carry --retry-after when it is set.
    #[arg(long, value_name = "STATUSES", value_parser = parse_script)]
    fault_script: Option<Script>,
    /// Apply the faults above (errors, drops, latency, script) only to these endpoint groups,
    /// comma-separated: identify (POST /v1/identify), companies (POST /v1/companies/identify),
    /// track (POST /v1/track), delete (DELETE /v1/users and /v1/companies), bulk (POST
    /// /v1/users/bulk_identify and /v1/companies/bulk_identify), validate (GET /v1/validate),
    /// jobs (GET /v1/background_jobs...); `all` means every request.
    #[arg(long, value_name = "GROUPS", default_value = "all")]
    fault_endpoints: FaultEndpoints,
    /// Rows a minute a bulk-identify job applies (Userpilot documents about 1,200).
    #[arg(long, default_value_t = actionkit_mock_userpilot::DEFAULT_BULK_ROWS_PER_MINUTE)]
    bulk_rows_per_minute: u32,
    /// Write the state Userpilot would hold (users, companies, links, events, bulk jobs) to FILE
    /// as JSON when the mock stops; `GET /_mock/state` answers the same while it runs.
    #[arg(long, value_name = "FILE")]
    state_file: Option<PathBuf>,
}

/// The steps of `--fault-script` (a wrapper so that clap takes the list as one value).
#[derive(Debug, Clone)]
struct Script(Vec<u16>);

fn parse_script(input: &str) -> Result<Script, actionkit_mock_userpilot::ConfigError> {
    FaultConfig::parse_script(input).map(Script)
}

/// Parses a positive, finite factor.
fn positive_factor(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
        _ => Err(format!("'{text}' is not a positive number")),
    }
}

/// Runs the mock until Ctrl-C or SIGTERM.
pub fn run(args: MockArgs) -> anyhow::Result<ExitCode> {
    let config = MockConfig {
        listen: args.listen,
        api_key: args.api_key,
        rate_limits: if args.no_rate_limits {
            RateLimits::disabled()
        } else {
            RateLimits::userpilot().scaled(args.rate_limit_scale)
        },
        faults: FaultConfig {
            error_rate: args.error_rate,
            error_status: args.error_status,
            latency: args.latency,
            retry_after: args.retry_after,
            drop_rate: args.drop_rate,
            seed: args.seed,
            endpoints: args.fault_endpoints,
            script: args.fault_script.map(|script| script.0).unwrap_or_default(),
        },
        record: args.record,
        bulk_rows_per_minute: args.bulk_rows_per_minute,
        state_file: args.state_file,
        ..MockConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let server = MockServer::bind(config)
            .await
            .map_err(|err| anyhow::anyhow!("{err}"))?;
        eprintln!(
            "Mock Userpilot API listening on http://{}/ (Ctrl-C stops it).",
            server.local_addr()
        );
        server
            .run(shutdown_signal())
            .await
            .map_err(|err| anyhow::anyhow!("{err}"))
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
