//! Matching must not allocate: paths are split and values converted when the tree is built.
//! This binary counts every allocation made through the global allocator while matching.
// A counting allocator needs `unsafe impl GlobalAlloc`; it only forwards to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: forwards the caller's layout unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with this layout in `alloc` above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn matching_does_not_allocate() {
    let trigger = actionkit_fql::parse(
        r#"type = "track" and (event = "Order Completed" or match(event, "Checkout*"))
           and properties.total >= 100 and properties.products.0.sku != null
           and properties.products.length = 2 and properties.code.1 = "b"
           and contains(context.page.url, "/checkout") and !contains(context.userAgent, "bot")
           and (traits.plan = "pro" or properties.coupon = null) and userId != null"#,
    )
    .expect("the trigger parses");
    let event = json!({
        "type": "track",
        "event": "Order Completed",
        "userId": "u1",
        "properties": {"total": 120, "code": "abc", "products": [{"sku": "A"}, {"sku": "B"}]},
        "context": {"page": {"url": "https://example.com/checkout"}, "userAgent": "Mozilla/5.0"},
    });
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let matched = trigger.matches(&event);
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    assert!(
        matched,
        "the event should match, so every condition was evaluated"
    );
    assert_eq!(
        after - before,
        0,
        "matching allocated {} times",
        after - before
    );
}
