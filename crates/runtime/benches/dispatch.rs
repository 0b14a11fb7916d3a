//! Hot-path benchmarks of the runtime core: payload validation alone, and the full dispatch of
//! one event (trigger matching, mapping, empty-value removal, validation, hook, request building)
//! on the hand-made Userpilot fixture with its preset mappings.

use std::hint::black_box;
use std::sync::Arc;

use actionkit_runtime::destination::CompiledDestination;
use actionkit_runtime::dispatch::Instance;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

#[path = "../tests/fixtures/userpilot.rs"]
mod userpilot;

fn benches(c: &mut Criterion) {
    let dest = match CompiledDestination::new(&userpilot::USERPILOT) {
        Ok(dest) => Arc::new(dest),
        Err(err) => panic!("the fixture must compile: {err}"),
    };
    let settings = json!({"apiKey": "bench-key", "endpoint": "https://analytex.userpilot.io/"});
    let instance = match Instance::from_presets(dest.clone(), &settings) {
        Ok(instance) => instance,
        Err(err) => panic!("the fixture settings must be valid: {err}"),
    };
    let identify = json!({
        "type": "identify",
        "messageId": "m-1",
        "userId": "user-1",
        "anonymousId": "anon-1",
        "timestamp": "2021-02-01T00:00:00.000Z",
        "traits": {"name": "Ada", "email": "ada@example.com", "createdAt": "2021-01-01T00:00:00Z", "plan": "pro"},
        "context": {"ip": "127.0.0.1", "library": {"name": "analytics.js", "version": "2.0.0"}}
    });
    let track = json!({
        "type": "track",
        "event": "Clicked",
        "userId": "user-1",
        "properties": {"button": "buy", "price": 9.99}
    });
    let page = json!({"type": "page", "name": "Home"});

    c.bench_function("dispatch/identify", |b| {
        b.iter(|| black_box(instance.dispatch(black_box(&identify))))
    });
    c.bench_function("dispatch/track", |b| {
        b.iter(|| black_box(instance.dispatch(black_box(&track))))
    });
    c.bench_function("dispatch/not_subscribed", |b| {
        b.iter(|| black_box(instance.dispatch(black_box(&page))))
    });

    let Some(action) = dest.action("identifyUser") else {
        panic!("identifyUser exists")
    };
    let payload = json!({"userId": "user-1", "createdAt": "Feb 1 2021", "traits": {"name": "Ada"}, "extra": 1});
    c.bench_function("validate/identify_user", |b| {
        b.iter(|| {
            let mut p = payload.clone();
            black_box(action.schema.clean_and_validate(&mut p))
        })
    });
}

criterion_group!(runtime, benches);
criterion_main!(runtime);
