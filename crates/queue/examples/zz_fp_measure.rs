use actionkit_queue::{FingerprintPart, Queue, QueueConfig};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
fn main() {
    let n_ids: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(1_000_000);
    let path = std::path::Path::new("/tmp/fpbench/q.db");
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file("/tmp/fpbench/q.db-wal");
    let cfg = QueueConfig {
        durability: actionkit_queue::Durability::ProcessCrashOnly,
        fingerprint_max_rows: 4_000_000,
        ..QueueConfig::default()
    };
    let q = Queue::open(path, cfg).unwrap();
    let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let start = Instant::now();
    for chunk in 0..(n_ids / 1000) {
        let entries: Vec<(String, Vec<FingerprintPart>)> = (0..1000)
            .map(|i| {
                let id = format!("user-{}", chunk * 1000 + i);
                (
                    id,
                    [
                        "",
                        "metadata.plan",
                        "metadata.email",
                        "metadata.name",
                        "metadata.company",
                    ]
                    .iter()
                    .enumerate()
                    .map(|(k, p)| FingerprintPart {
                        part: p.to_string(),
                        hash: (i * 31 + k) as u64,
                    })
                    .collect(),
                )
            })
            .collect();
        q.remember_fingerprints(
            "userpilot",
            "user",
            &entries,
            t0 + Duration::from_millis(chunk as u64),
        )
        .unwrap();
    }
    println!("insert {:?}", start.elapsed());
    let s = Instant::now();
    let st = q.fingerprint_count().unwrap();
    println!("count {st} {:?}", s.elapsed());
    let s = Instant::now();
    let st = q.fingerprint_count().unwrap();
    println!("count again {st} {:?}", s.elapsed());
    let s = Instant::now();
    let n = q.prune_fingerprints(t0 + Duration::from_secs(1)).unwrap();
    println!("prune (none old, over bound) {n} {:?}", s.elapsed());
    let s = Instant::now();
    let n = q.prune_fingerprints(t0 + Duration::from_secs(2)).unwrap();
    println!("prune (nothing) {n} {:?}", s.elapsed());
    let s = Instant::now();
    let n = q
        .prune_fingerprints(t0 + Duration::from_secs(7 * 86400) + Duration::from_millis(500))
        .unwrap();
    println!("prune (age, many) {n} {:?}", s.elapsed());
    let _ = SystemTime::now();
}
