//! What the client replay tests (`client_replays.rs`, `client_settings.rs`) share: a sink that
//! records what intake stores, and the intake router started on 127.0.0.1 with it.

use std::sync::{Arc, Mutex};

use actionkit_intake::{
    BoxFuture, EventSink, IntakeConfig, IntakeState, MetricsRegistry, NormalizedEvent, SinkError,
    router,
};

/// A sink that records what it is given.
#[derive(Default)]
pub struct RecordingSink {
    events: Mutex<Vec<NormalizedEvent>>,
}

impl RecordingSink {
    /// Every event stored so far, in order.
    pub fn events(&self) -> Vec<NormalizedEvent> {
        match self.events.lock() {
            Ok(events) => events.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl EventSink for RecordingSink {
    fn enqueue(&self, events: Vec<NormalizedEvent>) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            match self.events.lock() {
                Ok(mut stored) => stored.extend(events),
                Err(poisoned) => poisoned.into_inner().extend(events),
            }
            Ok(())
        })
    }
}

/// Starts the intake router with `config` on 127.0.0.1 and a fresh recording sink; returns its
/// base URL and the sink.
pub async fn start_server(config: IntakeConfig) -> (String, Arc<RecordingSink>) {
    let sink = Arc::new(RecordingSink::default());
    let state = IntakeState::new(config, sink.clone(), MetricsRegistry::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("read the bound address");
    tokio::spawn(async move {
        axum::serve(listener, router(state))
            .await
            .expect("serve the intake router");
    });
    (format!("http://{addr}"), sink)
}
